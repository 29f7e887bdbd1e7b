"""SQL for rate-limit windows and one-time link nonces, used by :class:`SqliteStore`.

Both are shared by every server process through the store file. Rate windows are fixed
windows (``floor(now / period)``), counted with one upsert per key; a batch of clicks is counted
in one transaction (see :mod:`runtime.store.batch`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Final

from runtime.store.base import RateHit

MIGRATION: Final = (
    """CREATE TABLE nonce (
        bot_id TEXT NOT NULL, nonce TEXT NOT NULL, expires_at REAL NOT NULL,
        PRIMARY KEY (bot_id, nonce)
    )""",
    """CREATE TABLE rate (
        key TEXT NOT NULL, window INTEGER NOT NULL, count INTEGER NOT NULL,
        expires_at REAL NOT NULL,  -- the end of the window: the row is useless after it
        PRIMARY KEY (key, window)
    ) WITHOUT ROWID""",
    """CREATE INDEX rate_expiry ON rate (expires_at)""",
)
SWEEP: Final = 100
"""Expired rows deleted per batch beyond what the batch itself may add, so the table stays
small without a separate job (an index range that is empty costs next to nothing)."""


def claim_nonce(
    conn: sqlite3.Connection, bot_id: str, nonce: str, expires_at: float, now: float
) -> bool:
    """Insert the nonce; True if this call inserted it (the link's one use), else False."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "DELETE FROM nonce WHERE rowid IN "
            "(SELECT rowid FROM nonce WHERE expires_at < ? LIMIT ?)",
            (now, SWEEP),
        )
        cursor = conn.execute(
            "INSERT OR IGNORE INTO nonce (bot_id, nonce, expires_at) VALUES (?, ?, ?)",
            (bot_id, nonce, expires_at),
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return cursor.rowcount == 1


def _hit(conn: sqlite3.Connection, hits: Sequence[RateHit], now: float) -> RateHit | None:
    exceeded: RateHit | None = None
    for hit in hits:
        window = int(now // hit.period)
        count = conn.execute(
            "INSERT INTO rate (key, window, count, expires_at) VALUES (?, ?, 1, ?) "
            "ON CONFLICT (key, window) DO UPDATE SET count = count + 1 RETURNING count",
            (hit.key, window, (window + 1) * hit.period),
        ).fetchone()[0]
        if count > hit.limit and exceeded is None:
            exceeded = hit
    return exceeded


def hit_rates_many(
    conn: sqlite3.Connection, clicks: Sequence[tuple[Sequence[RateHit], float]]
) -> list[RateHit | None]:
    """Count one hit on every key of every click, in one transaction.

    For each click, return the first key whose window is now over its limit. Hits are counted
    even when a limit is crossed, so a client hammering a limited link stays limited until its
    window passes. A few expired windows are swept each time.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        results = [_hit(conn, hits, now) for hits, now in clicks]
        if clicks:
            conn.execute(
                "DELETE FROM rate WHERE (key, window) IN "
                "(SELECT key, window FROM rate WHERE expires_at < ? LIMIT ?)",
                (clicks[0][1], SWEEP + 4 * len(clicks)),
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return results
