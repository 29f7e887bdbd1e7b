"""Telegram delivery of replies: callback spinners, need_reply waits, and answers that fail."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import DEMO_TOKEN
from tests.support.server import BotboxServer
from tests.support.telegram_standin import RecordedCall, TelegramStandIn
from tests.support.updates import make_update

BOT = "replies"


def make_bot(folder: Path) -> None:
    """The `replies` bot: buttons that do or do not answer, a question, a Markdown answer."""
    folder.mkdir(parents=True)
    (folder / "bot.yaml").write_text(f"id: {BOT}\ntoken_env: DEMO_BOT_TOKEN\n")
    (folder / "press.py").write_text('"""\ncommand: press\n"""\nBot.sendMessage("pressed")\n')
    (folder / "self.py").write_text(
        '"""\ncommand: self\n"""\n'
        'Api.answerCallbackQuery(callback_query_id=request["id"], text="mine")\n'
    )
    (folder / "ask.py").write_text(
        '"""\ncommand: /ask\nanswer: Your name?\nneed_reply: true\n"""\n'
        'kind = sorted(k for k in update["message"] if k in ("text", "photo"))\n'
        'Bot.sendMessage(f"got {message!r} {kind}")\n'
    )
    (folder / "md.py").write_text(
        '"""\ncommand: /md\nanswer: Hi {{user.first_name}}\nparse_mode: Markdown\n"""\n'
        'Bot.sendMessage("script ran")\n'
    )
    (folder / "oops.py").write_text(
        '"""\ncommand: "!"\n"""\n'
        "Bot.sendMessage(f\"failed: {error['type']}: {error['message']}\")\n"
    )


@pytest.fixture(scope="module")
def server(
    telegram: TelegramStandIn, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BotboxServer]:
    """A server hosting the `replies` bot only."""
    root = tmp_path_factory.mktemp("replies")
    make_bot(root / "bots" / BOT)
    running = BotboxServer(
        root / "data",
        telegram_api=telegram.base_url,
        bots_dir=root / "bots",
        demo=False,
        env={"DEMO_BOT_TOKEN": DEMO_TOKEN},
    ).start()
    yield running
    running.close()


def post(server: BotboxServer, update: dict[str, object]) -> None:
    """Post one update to the bot and wait until it has been handled."""
    assert server.post_update(update, bot_id=BOT).status_code == 200
    server.wait_idle()


def button(update_id: int, chat_id: int, data: str) -> dict[str, object]:
    """A press of an inline button with callback ``data``."""
    return make_update(
        "callback_query",
        update_id=update_id,
        user_id=chat_id,
        chat_id=chat_id,
        data=data,
        bot_token=DEMO_TOKEN,
    )


def text(update_id: int, chat_id: int, words: str) -> dict[str, object]:
    """A text message from the chat's user."""
    return make_update(
        update_id=update_id, user_id=chat_id, chat_id=chat_id, text=words, bot_token=DEMO_TOKEN
    )


def sent_to(telegram: TelegramStandIn, chat_id: int) -> list[RecordedCall]:
    """The sendMessage calls to one chat, in order."""
    return [c for c in telegram.calls_to("sendMessage") if c.params.get("chat_id") == chat_id]


def callback_answers(telegram: TelegramStandIn, query_id: object) -> list[RecordedCall]:
    """The answerCallbackQuery calls for one callback query."""
    return [
        c
        for c in telegram.calls_to("answerCallbackQuery")
        if c.params.get("callback_query_id") == query_id
    ]


def test_a_callback_command_that_does_not_answer_is_answered_once_by_the_platform(
    server, telegram, update_ids, chat_id
):
    """The platform answers the query the script left unanswered, so the spinner stops."""
    press = button(next(update_ids), chat_id, "press")
    post(server, press)
    assert [c.params["text"] for c in sent_to(telegram, chat_id)] == ["pressed"]
    (answer,) = callback_answers(telegram, press["callback_query"]["id"])
    assert "text" not in answer.params


def test_a_callback_command_that_answers_itself_gets_no_second_answer(
    server, telegram, update_ids, chat_id
):
    """The script's own answerCallbackQuery is the only one."""
    press = button(next(update_ids), chat_id, "self")
    post(server, press)
    (answer,) = callback_answers(telegram, press["callback_query"]["id"])
    assert answer.params["text"] == "mine"


def test_need_reply_sends_the_answer_and_runs_the_script_only_on_the_next_message(
    server, telegram, update_ids, chat_id
):
    """/ask only asks; the user's next message runs /ask's script with that text as `message`."""
    post(server, text(next(update_ids), chat_id, "/ask"))
    assert [c.params["text"] for c in sent_to(telegram, chat_id)] == ["Your name?"]
    post(server, text(next(update_ids), chat_id, "Ada"))
    assert [c.params["text"] for c in sent_to(telegram, chat_id)] == [
        "Your name?",
        "got 'Ada' ['text']",
    ]


def test_a_photo_reply_reaches_the_waiting_command_with_message_none(
    server, telegram, update_ids, chat_id
):
    """A reply without text runs the waiting command: `message` None, the photo in `update`."""
    post(server, text(next(update_ids), chat_id, "/ask"))
    photo = text(next(update_ids), chat_id, "unused")
    inner = photo["message"]
    assert isinstance(inner, dict)
    del inner["text"]
    inner["photo"] = [{"file_id": "AgAD1", "file_unique_id": "AQAD1", "width": 90, "height": 90}]
    post(server, photo)
    assert [c.params["text"] for c in sent_to(telegram, chat_id)] == [
        "Your name?",
        "got None ['photo']",
    ]


def test_an_answer_telegram_refuses_fails_the_command_in_the_run_log_and_reaches_the_error_command(
    server, telegram, update_ids, chat_id
):
    """Telegram refuses /md's Markdown answer: the run log has the failure, `!` tells the user."""
    refusal = "Bad Request: can't parse entities: Can't find end of the entity at byte offset 3"
    telegram.fail_next("sendMessage", 400, refusal)
    post(server, text(next(update_ids), chat_id, "/md"))
    delivered = [c.params["text"] for c in sent_to(telegram, chat_id) if c.error_code is None]
    assert delivered == [f"failed: ApiError: the answer was not sent: sendMessage: {refusal}"]
    (record,) = [r for r in server.logs(BOT, "--failed") if r["command"] == "/md"]
    assert record["error"]["type"] == "ApiError"
    assert refusal in record["error"]["message"]
