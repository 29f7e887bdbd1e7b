"""The demo bot in commands/, driven through the real server, store, pool and HTTP."""

from __future__ import annotations

import json

from tests.e2e.conftest import DEMO_TOKEN
from tests.support.updates import make_update


def send(
    server,
    telegram,
    update_ids,
    chat_id,
    text,
    *,
    expect=1,
    user_id=None,
    first_name="Alice",
    kind="message",
    data=None,
    chat_type=None,
):
    """Post one update and wait for the bot's `expect` new Bot API calls."""
    before = len(telegram.calls)
    update = make_update(
        kind,
        update_id=next(update_ids),
        user_id=user_id or chat_id,
        chat_id=chat_id,
        text=text,
        data=data,
        first_name=first_name,
        chat_type=chat_type,
        bot_token=DEMO_TOKEN,
    )
    response = server.post_update(update)
    assert response.status_code == 200, response.text
    return telegram.wait_for_calls(before + expect, timeout=10)[before:]


def texts(calls):
    return [c.params.get("text") for c in calls]


def test_start_sends_the_answer_with_keyboard_then_the_script_message(
    server, telegram, update_ids, chat_id
):
    """/start answers with the rendered header answer and keyboard, then runs its script."""
    answer, message = send(server, telegram, update_ids, chat_id, "/start", expect=2)
    assert answer.params["text"] == "Hello, Alice!"
    assert answer.params["chat_id"] == chat_id
    assert answer.params["reply_markup"]["keyboard"][0] == [{"text": "/help"}, {"text": "/count"}]
    assert message.params["text"].startswith("This is visit number 1.")


def test_properties_persist_per_user_and_per_bot(server, telegram, update_ids, chat_id):
    """/count keeps a per-user counter and a bot-wide total across updates."""
    first = send(server, telegram, update_ids, chat_id, "/count")
    second = send(server, telegram, update_ids, chat_id, "/count")
    mine_1 = int(texts(first)[0].split(".")[0].removeprefix("You: "))
    assert texts(second)[0].startswith(f"You: {mine_1 + 1}.")


def test_the_longest_command_name_wins_and_params_are_the_rest(
    server, telegram, update_ids, chat_id
):
    """`/set name Ada` runs `/set name` with params `Ada`; `/set` alone runs `/set`."""
    assert texts(send(server, telegram, update_ids, chat_id, "/set name Ada")) == [
        "I will call you Ada."
    ]
    assert texts(send(server, telegram, update_ids, chat_id, "/set")) == ["Try /set name Ada"]


def test_aliases_and_bot_username_suffixes_match(server, telegram, update_ids, chat_id):
    """`?` is an alias of /help and `/start@botbox_demo_bot` counts as /start."""
    (help_call,) = send(server, telegram, update_ids, chat_id, "?")
    assert help_call.params["parse_mode"] == "HTML"
    assert "/count" in help_call.params["text"]
    calls = send(server, telegram, update_ids, chat_id, "/start@botbox_demo_bot", expect=2)
    assert calls[0].params["text"] == "Hello, Alice!"


def test_answer_placeholders_are_escaped_for_the_parse_mode(server, telegram, update_ids, chat_id):
    """An answer-only command escapes the user's name for HTML."""
    (call,) = send(server, telegram, update_ids, chat_id, "/about", first_name="<b>Eve</b>")
    assert call.params["text"] == "<b>botbox</b> runs this bot. You are &lt;b&gt;Eve&lt;/b&gt;."
    assert call.params["parse_mode"] == "HTML"


def test_need_reply_takes_the_next_message_and_a_command_cancels_it(
    server, telegram, update_ids, chat_id
):
    """/feedback asks, the next message answers; a new command instead cancels the wait."""
    (question,) = send(server, telegram, update_ids, chat_id, "/feedback")
    assert question.params["text"].startswith("What do you think")
    assert texts(send(server, telegram, update_ids, chat_id, "Great tool")) == ["Thank you, noted."]
    send(server, telegram, update_ids, chat_id, "/feedback")
    (cancelled,) = send(server, telegram, update_ids, chat_id, "/set")
    assert cancelled.params["text"] == "Try /set name Ada"
    (fallback,) = send(server, telegram, update_ids, chat_id, "just chatting")
    assert fallback.params["text"].startswith("You said: just chatting")


def test_callback_data_is_matched_like_text(server, telegram, update_ids, chat_id):
    """Pressing a `vote yes` button runs /vote's alias with params `yes`."""
    (call,) = send(
        server, telegram, update_ids, chat_id, None, kind="callback_query", data="vote yes"
    )
    assert call.method == "answerCallbackQuery"
    assert call.params["text"] == "You voted yes"


def test_a_script_error_runs_the_error_command_and_is_logged_with_its_line(
    server, telegram, update_ids, chat_id
):
    """/crash fails at line 9 of crash.py; `!` tells the user; the run log has the line."""
    (call,) = send(server, telegram, update_ids, chat_id, "/crash")
    assert call.params["text"] == "Sorry, /crash failed: ZeroDivisionError (line 6)."
    failed = [r for r in server.logs("demo", "--failed") if r["command"] == "/crash"]
    assert failed[0]["error"]["line"] == 6
    assert failed[0]["error"]["type"] == "ZeroDivisionError"
    assert failed[0]["output"] == "about to divide\n"
    assert [f["line"] for f in failed[0]["error"]["traceback"]] == [9, 6]


def test_run_command_nests_and_bot_run_schedules_after_the_run(
    server, telegram, update_ids, chat_id
):
    """/menu runs /help in place; /remind's Bot.run sends the reminder after /remind's reply."""
    (help_call,) = send(server, telegram, update_ids, chat_id, "/menu")
    assert "/count" in help_call.params["text"]
    menu = next(r for r in server.logs("demo") if r["command"] == "/menu")
    assert menu["output"] == "help returned shown\n"
    ok, reminder = send(server, telegram, update_ids, chat_id, "/remind drink water", expect=2)
    assert ok.params["text"] == "OK, a reminder is on its way."
    assert reminder.params["text"] == "Reminder: drink water"


def test_group_only_commands_do_not_run_in_private_chats(server, telegram, update_ids, chat_id):
    """/groupstats falls back to `*` in a private chat and answers in a group."""
    (private,) = send(server, telegram, update_ids, chat_id, "/groupstats")
    assert private.params["text"].startswith("You said: /groupstats")
    (group,) = send(
        server, telegram, update_ids, -chat_id, "/groupstats", user_id=chat_id, chat_type="group"
    )
    assert group.params["text"].startswith("This group is")


def test_api_errors_reach_the_script_as_catchable_api_error(server, telegram, update_ids, chat_id):
    """A refusal from Telegram raises ApiError with its code and description."""
    telegram.fail_next("sendMessage", 400, "Bad Request: chat not found")
    calls = send(server, telegram, update_ids, chat_id, "/tryapi", expect=2)
    assert calls[-1].params["text"] == "Telegram said 400: Bad Request: chat not found"


def test_inline_queries_run_the_inline_query_command(server, telegram, update_ids, chat_id):
    """An inline query runs /inline_query, which answers with answerInlineQuery."""
    before = len(telegram.calls)
    update = make_update(
        "inline_query",
        update_id=next(update_ids),
        user_id=chat_id,
        text="hello",
        bot_token=DEMO_TOKEN,
    )
    assert server.post_update(update).status_code == 200
    (call,) = telegram.wait_for_calls(before + 1, timeout=10)[before:]
    assert call.method == "answerInlineQuery"
    assert json.dumps(call.params["results"]).count("Echo: hello") == 1


def test_bot_inspect_sends_the_value_pretty_printed(server, telegram, update_ids, chat_id):
    """/debug's Bot.inspect posts the value as escaped, pre-formatted JSON to the chat."""
    (call,) = send(server, telegram, update_ids, chat_id, "/debug <x>")
    assert call.params["parse_mode"] == "HTML"
    text = call.params["text"]
    assert text.startswith("<pre>") and text.endswith("</pre>")
    assert '"update_type": "message"' in text
    assert '"params": "&lt;x&gt;"' in text
