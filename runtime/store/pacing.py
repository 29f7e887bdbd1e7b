"""Send pacing shared by every server process: sliding-window reservations and pauses.

An outside service allows at most ``count`` events per ``period`` seconds per key (Telegram: one
message a second in a chat, 20 a minute in a group, 30 a second per bot). Every process that
wants to send first *reserves* a time: the earliest moment, from now, at which one more event
fits every window it belongs to, given the times already reserved, and no pause covers it. The
reservation is written in the same transaction, so two processes never get the same slot.

Windows are exact sliding windows, not token buckets: ``count`` events in any ``period``
seconds, never more, however the reservations were spread (a bucket refills its burst after
each pause, which an exact limiter on the other side answers with 429).

:func:`earliest` is the pure rule; :func:`reserve` and :func:`pause` are the SQL.
"""

from __future__ import annotations

import bisect
import math
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

MIGRATION: Final = (
    """CREATE TABLE send_slot (
        bot_id TEXT NOT NULL, key TEXT NOT NULL, at REAL NOT NULL
    )""",
    """CREATE INDEX send_slot_key ON send_slot (bot_id, key, at)""",
    """CREATE TABLE send_pause (
        bot_id TEXT NOT NULL, key TEXT NOT NULL, until REAL NOT NULL,
        PRIMARY KEY (bot_id, key)
    ) WITHOUT ROWID""",
)
MAX_PERIOD: Final = 3600.0
"""Longest window a reservation may name (slots older than their window are deleted)."""
SWEEP_ROWS: Final = 64
"""Oldest slot rows each reservation looks at to delete those older than :data:`MAX_PERIOD`."""


@dataclass(frozen=True, slots=True)
class Window:
    """At most ``count`` events per ``period`` seconds under ``key``."""

    key: str
    count: int
    period: float

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 < self.period <= MAX_PERIOD:
            raise ValueError(f"window {self.key!r} needs count >= 1 and 0 < period <= 1 h")


def _fits(times: Sequence[float], window: Window, at: float) -> float | None:
    """None if one more event at ``at`` keeps every window of ``times`` within its count; else
    the earliest later time worth trying (when the oldest event in the way leaves the window)."""
    period, count = window.period, window.count
    # The windows (x - period, x] that contain ``at`` end at x in [at, at + period): the count
    # changes only at ``at`` and at each reserved time in that range.
    ends = [at, *times[bisect.bisect_right(times, at) : bisect.bisect_left(times, at + period)]]
    for end in ends:
        first = bisect.bisect_right(times, end - period)
        if bisect.bisect_right(times, end) - first + 1 > count:
            return times[first] + period
    return None


def earliest(
    now: float,
    windows: Sequence[Window],
    times: Mapping[str, Sequence[float]],
    pauses: Sequence[float] = (),
) -> float:
    """The earliest time >= ``now`` (and after every pause) at which one more event fits.

    ``times`` holds each window key's reserved times, sorted.
    """
    at = max([now, *pauses])
    while True:
        later = [
            nxt
            for window in windows
            if (nxt := _fits(times.get(window.key, ()), window, at)) is not None
        ]
        if not later:
            return at
        # Rounding may leave ``t + period - period`` a hair below ``t``: always move on.
        at = max(*later, math.nextafter(at, math.inf))


def reserve(
    conn: sqlite3.Connection,
    bot_id: str,
    windows: Sequence[Window],
    pause_keys: Sequence[str],
    now: float,
    horizon: float,
) -> float | None:
    """Reserve the earliest time one more event fits; None (nothing written) if it is more than
    ``horizon`` seconds away. Slots that left their windows are deleted on the way."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        times: dict[str, list[float]] = {}
        for window in windows:
            conn.execute(
                "DELETE FROM send_slot WHERE bot_id = ? AND key = ? AND at <= ?",
                (bot_id, window.key, now - window.period),
            )
            times[window.key] = [
                row[0]
                for row in conn.execute(
                    "SELECT at FROM send_slot WHERE bot_id = ? AND key = ? ORDER BY at",
                    (bot_id, window.key),
                )
            ]
        pauses = [
            row[0]
            for key in pause_keys
            for row in conn.execute(
                "SELECT until FROM send_pause WHERE bot_id = ? AND key = ? AND until > ?",
                (bot_id, key, now),
            )
        ]
        at = earliest(now, windows, times, pauses)
        if at - now > horizon:
            conn.execute("ROLLBACK")
            return None
        # Slots of keys never reserved again (a chat sent to once) are not deleted above: clear
        # the oldest rows (any bot's) once they are older than any window may be, a few at a
        # time, so a script making up chat ids cannot grow the shared table without bound.
        conn.execute(
            "DELETE FROM send_slot WHERE rowid IN "
            "(SELECT rowid FROM send_slot ORDER BY rowid LIMIT ?) AND at <= ?",
            (SWEEP_ROWS, now - MAX_PERIOD),
        )
        conn.executemany(
            "INSERT INTO send_slot (bot_id, key, at) VALUES (?, ?, ?)",
            [(bot_id, window.key, at) for window in windows],
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return at


def pause(conn: sqlite3.Connection, bot_id: str, key: str, until: float, now: float) -> None:
    """Hold every event under ``key`` until ``until`` (a later pause wins); drop old pauses."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("DELETE FROM send_pause WHERE bot_id = ? AND until <= ?", (bot_id, now))
        conn.execute(
            "INSERT INTO send_pause (bot_id, key, until) VALUES (?, ?, ?) "
            "ON CONFLICT (bot_id, key) DO UPDATE SET until = max(until, excluded.until)",
            (bot_id, key, until),
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
