"""The pacing rule: the earliest time one more event fits exact sliding windows."""

from __future__ import annotations

import bisect
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.store import SqliteStore
from runtime.store.pacing import MAX_PERIOD, Window, earliest

CHAT = Window("chat:1", 1, 1.0)
GROUP = Window("group:-1", 20, 60.0)
BOT = Window("bot", 30, 1.0)


def fits(times: list[float], window: Window) -> bool:
    """Whether no window (x - period, x] holds more than count of ``times``."""
    ordered = sorted(times)
    return all(
        bisect.bisect_right(ordered, end) - bisect.bisect_right(ordered, end - window.period)
        <= window.count
        for end in ordered
    )


def schedule(nows: list[float], windows: list[Window]) -> list[float]:
    """Reserve one event per ``now`` (in order), as the store does; return the times."""
    times: dict[str, list[float]] = {}
    got = []
    for now in nows:
        at = earliest(now, windows, times)
        assert at >= now
        got.append(at)
        for window in windows:
            bisect.insort(times.setdefault(window.key, []), at)
    return got


def test_a_chat_gets_one_message_a_second_with_no_burst():
    """Five sends at once go out one second apart, the first at once."""
    assert schedule([100.0] * 5, [CHAT]) == [100.0, 101.0, 102.0, 103.0, 104.0]


def test_a_group_gets_twenty_a_minute_and_no_second_burst_after_a_pause():
    """Twenty at one a second, then the 21st waits for the first to leave the minute."""
    got = schedule([0.0] * 22, [CHAT, GROUP])
    assert got[:20] == [float(i) for i in range(20)]
    assert got[20] == 60.0 and got[21] == 61.0


def test_the_bot_window_lets_thirty_through_a_second_across_chats():
    """Thirty different chats share one second; the 31st send waits for the next."""
    nows = [5.0] * 31
    times: dict[str, list[float]] = {}
    got = []
    for i, now in enumerate(nows):
        windows = [BOT, Window(f"chat:{i}", 1, 1.0)]
        at = earliest(now, windows, times)
        got.append(at)
        for window in windows:
            bisect.insort(times.setdefault(window.key, []), at)
    assert got[:30] == [5.0] * 30
    assert got[30] == 6.0


def test_a_pause_holds_events_until_it_ends():
    """The earliest time is never inside a pause."""
    assert earliest(10.0, [CHAT], {}, [12.5]) == 12.5
    assert earliest(10.0, [CHAT], {"chat:1": [12.5]}, [12.5]) == 13.5


def test_a_reservation_far_in_the_future_does_not_block_one_now():
    """Reserved times are not a queue: a gap before them is used."""
    assert earliest(0.0, [CHAT], {"chat:1": [10.0]}) == 0.0
    assert earliest(9.5, [CHAT], {"chat:1": [10.0]}) == 11.0


def test_a_window_needs_a_positive_count_and_period():
    """A window that could never let an event through is refused when made."""
    with pytest.raises(ValueError, match="count >= 1"):
        Window("k", 0, 1.0)
    with pytest.raises(ValueError, match="period"):
        Window("k", 1, 0.0)


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(st.tuples(st.floats(0, 5), st.integers(0, 3)), min_size=1, max_size=60),
    count=st.integers(1, 5),
    period=st.sampled_from([0.5, 1.0, 3.0]),
)
def test_no_schedule_ever_puts_more_than_count_events_in_any_window(steps, count, period):
    """Whatever the order of requests and chats, every window of every key holds <= count."""
    bot = Window("bot", count * 2, period)
    times: dict[str, list[float]] = {}
    now = 0.0
    for advance, chat in steps:
        now += advance
        windows = [bot, Window(f"chat:{chat}", count, period)]
        at = earliest(now, windows, times)
        assert at >= now
        for window in windows:
            bisect.insort(times.setdefault(window.key, []), at)
    assert fits(times["bot"], bot)
    for key, values in times.items():
        if key != "bot":
            assert fits(values, Window(key, count, period))


async def test_slots_of_chats_never_sent_to_again_do_not_pile_up_in_the_store(
    tmp_path: Path,
) -> None:
    """A bot sending once to each of many chat ids (a hostile script makes them up) leaves one
    slot row per chat; once those slots are older than any window, later sends of any bot
    clear them, so the shared table stays bounded."""
    path = tmp_path / "store.sqlite3"
    store = SqliteStore(path)
    await store.open()
    try:
        now = 1_000_000.0
        for n in range(500):
            windows = [Window("bot", 30, 1.0), Window(f"chat:{n}", 1, 1.0)]
            assert await store.reserve_send("bot-a", windows, [], now=now, horizon=600) is not None
        later = now + MAX_PERIOD + 10
        for n in range(40):
            windows = [Window("bot", 30, 1.0), Window(f"chat:x{n}", 1, 1.0)]
            await store.reserve_send("bot-b", windows, [], now=later + n, horizon=600)
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        (left,) = conn.execute("SELECT COUNT(*) FROM send_slot WHERE bot_id = 'bot-a'").fetchone()
    assert left == 0
