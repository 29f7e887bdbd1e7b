"""The flood gate spaces a bot's sends to Telegram's limits (with an injected clock)."""

from __future__ import annotations

import pytest

from runtime.telegram.flood import FloodGate, is_sending


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


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


def test_a_chat_gets_a_short_burst_then_one_message_a_second():
    """Three quick messages pass at once; the fourth waits about a second."""
    clock = Clock()
    gate = FloodGate(clock=clock)
    delays = [gate.delay("sendMessage", 42) for _ in range(5)]
    assert delays[:3] == [0.0, 0.0, 0.0]
    assert delays[3] == pytest.approx(1.0)
    assert delays[4] == pytest.approx(2.0)


def test_other_chats_are_not_held_back_by_a_busy_one():
    """Limits are per chat: a new chat sends at once."""
    gate = FloodGate(clock=Clock())
    for _ in range(5):
        gate.delay("sendMessage", 1)
    assert gate.delay("sendMessage", 2) == 0.0


def test_groups_are_limited_to_twenty_a_minute():
    """A group (negative id) gets its burst, then three seconds between messages."""
    gate = FloodGate(clock=Clock())
    delays = [gate.delay("sendMessage", -100) for _ in range(4)]
    assert delays[3] == pytest.approx(3.0)


def test_the_whole_bot_is_held_to_thirty_a_second():
    """Across many chats, the 31st message in a second waits."""
    gate = FloodGate(clock=Clock())
    delays = [gate.delay("sendMessage", chat) for chat in range(31)]
    assert max(delays[:30]) == 0.0
    assert delays[30] > 0.0


def test_retry_after_pauses_every_call_of_the_bot():
    """After Telegram's 429, even non-sending calls wait until retry_after has passed."""
    clock = Clock()
    gate = FloodGate(clock=clock)
    gate.pause(5)
    assert gate.delay("getMe", None) == pytest.approx(5.0)
    clock.now += 5
    assert gate.delay("getMe", None) == 0.0


def test_a_disabled_gate_never_waits_but_still_honours_retry_after():
    """flood_limits: false (for local Bot API servers and benchmarks) skips the spacing only."""
    clock = Clock()
    gate = FloodGate(clock=clock, enabled=False)
    assert [gate.delay("sendMessage", 1) for _ in range(50)] == [0.0] * 50
    gate.pause(2)
    assert gate.delay("sendMessage", 1) == pytest.approx(2.0)
