"""Delivery as a Telegram user expects it: long texts split or refused before sending, replies
in forum topics stay in the topic, through a real runner, workers and the Bot API stand-in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from runtime.telegram.update import parse_update
from sandbox import WorkerPool
from tests.support.runtime import TOKEN, Hosted, hosted, wait_until, write_bot
from tests.support.updates import make_update, utf16_len

LONG = (
    '"""\ncommand: /long\n"""\n'
    "lines = []\nn = 0\nwhile n < 10000:\n"
    "    line = 'line ' + str(len(lines)) + ' ' + '\\U0001F600' * 20 + ' words here'\n"
    "    lines.append(line)\n    n += len(line) + 1\n"
    "Bot.setProperty('sent', '\\n'.join(lines))\n"
    "Bot.sendMessage('\\n'.join(lines), reply_markup={'keyboard': [[{'text': 'ok'}]]})\n"
)
TOO_LONG = (
    '"""\ncommand: /toolong\n"""\n'
    "try:\n    Api.sendMessage(text='\\U0001F600' * 2049)\n"
    "except ApiError as e:\n    Bot.sendMessage(f'{e.code}: {e.description}')\n"
)
ANSWER = '"""\ncommand: /hi\nanswer: hello {{user.first_name}}\n"""\n'
TOPIC = (
    '"""\ncommand: /topic\n"""\nBot.sendMessage("by Bot")\nApi.sendPhoto(photo="x")\n'
    'Api.sendMessage(text="elsewhere", chat_id=99)\n'
)

THREAD = 77
GROUP = -1001234


@pytest.fixture
async def lab(pool: WorkerPool, tmp_path: Path) -> AsyncIterator[Hosted]:
    """Bot ``d`` with /long, /toolong, /hi (an answer) and /topic; the processor runs."""
    files = {"long.py": LONG, "toolong.py": TOO_LONG, "hi.py": ANSWER, "topic.py": TOPIC}
    async with hosted(pool, tmp_path, [write_bot(tmp_path / "bots", "d", files)]) as running:
        running.processor.start()
        yield running


async def sent(lab: Hosted, n: int, method: str = "sendMessage") -> list[dict[str, object]]:
    """Wait for ``n`` calls of ``method``; return their parameters."""
    await wait_until(
        lambda: len(lab.telegram.calls_to(method)) >= n, timeout=20, what=f"{n} {method} calls"
    )
    return [dict(call.params) for call in lab.telegram.calls_to(method)]


async def enqueue(lab: Hosted, payload: dict[str, object]) -> None:
    """Store an update as the webhook does and wake the processor."""
    update = parse_update(payload)
    await lab.store.enqueue("d", "update", update.chat_key, payload, update_id=update.update_id)
    lab.processor.wake()


async def test_a_10000_character_text_arrives_as_several_messages_split_at_lines(
    lab: Hosted,
) -> None:
    """Bot.sendMessage splits a long text at line breaks; each part is at most 4096 UTF-16 units."""
    await lab.post("d", 1, "/long", chat=5)

    async def committed() -> object:
        return isinstance(await lab.store.get_property("d", "bot", "sent"), str)

    await wait_until(committed, timeout=20, what="the run to end")
    original = await lab.store.get_property("d", "bot", "sent")
    assert isinstance(original, str) and len(original) >= 10_000
    assert utf16_len(original) > 3 * 4096  # emoji count twice: more than 3 messages' worth
    calls = await sent(lab, 4)
    parts = [str(call["text"]) for call in calls]
    assert "\n".join(parts) == original
    assert all(utf16_len(part) <= 4096 for part in parts)
    assert all(part.endswith("words here") for part in parts)
    assert lab.telegram.rejected == []
    assert [("reply_markup" in call) for call in calls] == [False] * (len(calls) - 1) + [True]


async def test_api_send_message_refuses_a_too_long_text_before_any_http_call(lab: Hosted) -> None:
    """2,049 emoji are 4,098 units: Api.sendMessage raises a clear 400 and Telegram sees nothing."""
    await lab.post("d", 1, "/toolong", chat=5)
    (call,) = await sent(lab, 1)
    assert call["text"] == (
        "400: the text is 4098 UTF-16 units long and Telegram allows at most 4096 per message "
        "(emoji count as 2); Bot.sendMessage splits long texts into several messages"
    )
    assert lab.telegram.rejected == []


def in_topic(update_id: int, text: str) -> dict[str, object]:
    """A message in forum topic 77 of a supergroup."""
    payload = make_update(
        update_id=update_id,
        user_id=5,
        chat_id=GROUP,
        chat_type="supergroup",
        text=text,
        bot_token=TOKEN,
    )
    message = payload["message"]
    assert isinstance(message, dict)
    message.update(message_thread_id=THREAD, is_topic_message=True)
    message["chat"]["is_forum"] = True
    return payload


async def test_replies_to_a_message_in_a_forum_topic_stay_in_the_topic(lab: Hosted) -> None:
    """Bot.sendMessage and Api calls to the current chat carry message_thread_id; others do not."""
    await enqueue(lab, in_topic(1, "/topic"))
    by_bot, elsewhere = await sent(lab, 2)
    (photo,) = await sent(lab, 1, "sendPhoto")
    assert by_bot == {"chat_id": GROUP, "text": "by Bot", "message_thread_id": THREAD}
    assert photo["message_thread_id"] == THREAD and photo["chat_id"] == GROUP
    assert elsewhere == {"chat_id": 99, "text": "elsewhere"}


async def test_a_commands_answer_in_a_forum_topic_stays_in_the_topic(lab: Hosted) -> None:
    """The ``answer`` header's message goes to the topic the command came from."""
    await enqueue(lab, in_topic(1, "/hi"))
    (call,) = await sent(lab, 1)
    assert call == {"chat_id": GROUP, "text": "hello Alice", "message_thread_id": THREAD}


async def test_a_business_message_is_answered_through_its_business_connection(
    lab: Hosted,
) -> None:
    """A business_message's reply carries its business_connection_id."""
    payload = make_update(update_id=1, user_id=5, text="/hi", bot_token=TOKEN)
    message = payload.pop("message")
    assert isinstance(message, dict)
    payload["business_message"] = message
    message["business_connection_id"] = "conn-1"
    await enqueue(lab, payload)
    (call,) = await sent(lab, 1)
    assert call == {"chat_id": 5, "text": "hello Alice", "business_connection_id": "conn-1"}
