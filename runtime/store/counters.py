"""SQL for rate-limit windows and one-time link nonces, used by :class:`SqliteStore`.

Both are shared by every server process through the store file. Rate windows are fixed
windows (``floor(now / period)``), counted with one upsert per key in a single transaction.
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
        PRIMARY KEY (key, window)
    ) WITHOUT ROWID""",
)


def claim_nonce(
    conn: sqlite3.Connection, bot_id: str, nonce: str, expires_at: float, now: float
) -> bool:
    """Insert the nonce; True if this call inserted it (the link's one use), else False."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "DELETE FROM nonce WHERE expires_at < ? AND rowid IN "
            "(SELECT rowid FROM nonce WHERE expires_at < ? LIMIT 100)",
            (now, now),
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


def hit_rates(conn: sqlite3.Connection, hits: Sequence[RateHit], now: float) -> RateHit | None:
    """Count one hit on every key; return the first whose window is now over its limit.

    Hits are counted even when a limit is crossed, so a client hammering a limited link stays
    limited until its window passes.
    """
    exceeded: RateHit | None = None
    conn.execute("BEGIN IMMEDIATE")
    try:
        for hit in hits:
            window = int(now // hit.period)
            count = conn.execute(
                "INSERT INTO rate (key, window, count) VALUES (?, ?, 1) "
                "ON CONFLICT (key, window) DO UPDATE SET count = count + 1 RETURNING count",
                (hit.key, window),
            ).fetchone()[0]
            if count > hit.limit and exceeded is None:
                exceeded = hit
        if int(now) % 60 == 0:
            conn.execute("DELETE FROM rate WHERE window < ?", (int(now // 3600) - 2,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return exceeded
