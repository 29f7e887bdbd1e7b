"""Telegram's flood limits as data: which windows a call must fit, and what a 429 pauses."""

from __future__ import annotations

import pytest

from runtime.telegram.flood import Limit, is_sending, limits_for, pause_key, pause_keys


@pytest.mark.parametrize(
    ("method", "sending"),
    [
        ("sendMessage", True),
        ("forwardMessage", True),
        ("copyMessage", True),
        ("getMe", False),
        ("answerCallbackQuery", False),
        ("editMessageText", False),
    ],
    ids=["send", "forward", "copy", "get", "answer", "edit"],
)
def test_only_posting_methods_count_against_chat_limits(method, sending):
    """Sends, forwards and copies post into chats; other calls do not."""
    assert is_sending(method) is sending


def test_a_private_chat_send_fits_the_bot_window_and_one_a_second_in_the_chat():
    """30 a second for the bot, 1 a second for the chat, no group window."""
    assert limits_for("sendMessage", 42) == (Limit("bot", 30, 1.0), Limit("chat:42", 1, 1.0))


@pytest.mark.parametrize("chat_id", [-1001234, "@channel"], ids=["group", "channel"])
def test_a_group_or_channel_send_also_fits_twenty_a_minute(chat_id):
    """Groups and channels add Telegram's 20-a-minute window."""
    assert Limit(f"group:{chat_id}", 20, 60.0) in limits_for("sendPhoto", chat_id)


def test_calls_that_send_nothing_are_not_paced():
    """getMe and friends reserve nothing."""
    assert limits_for("getChat", 42) == ()


@pytest.mark.parametrize("chat_id", [None, 1.5, "x" * 65, "", True], ids=repr)
def test_a_chat_id_unfit_for_a_key_only_counts_for_the_bot(chat_id):
    """A missing or malformed chat id (refused by the spec check later) keys no chat window."""
    assert limits_for("sendMessage", chat_id) == (Limit("bot", 30, 1.0),)
    assert pause_keys(chat_id) == ("bot",)
    assert pause_key(chat_id) == "bot"


def test_a_429_for_a_chat_pauses_that_chat_and_the_bot_pause_holds_every_chat():
    """What a 429 pauses is the call's chat; a call waits for its chat's pause and the bot's."""
    assert pause_key(42) == "chat:42"
    assert pause_keys(42) == ("bot", "chat:42")
