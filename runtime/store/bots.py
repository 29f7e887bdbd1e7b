"""SQL for bot identities (link generations), used by :class:`SqliteStore`.

A bot id is only a name: a folder removed and another added later with the same id is another
bot. So each bot gets a random *generation* the first time a store sees it, and its link keys
are derived with it (:meth:`runtime.signing.keys.KeyRing.bot_key`). At every server start, a
known bot with no folder is *retired*; if a bot with that id appears again, it gets a new
generation, and every link of the old one (one-time links included) stops verifying.

Bots that already had data when this table was added keep generation ``""`` (links derived as
before, so an upgrade breaks no link) until they are retired once.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Sequence
from typing import Final

MIGRATION: Final = (
    """CREATE TABLE bot (
        bot_id TEXT PRIMARY KEY,
        generation TEXT NOT NULL,  -- random; '' for bots from before this table existed
        first_seen REAL NOT NULL,
        retired_at REAL  -- set when a server started without the bot's folder
    )""",
    """INSERT INTO bot (bot_id, generation, first_seen)
        SELECT bot_id, '', 0 FROM (
            SELECT bot_id FROM queue UNION SELECT bot_id FROM property
            UNION SELECT bot_id FROM waiting UNION SELECT bot_id FROM run
            UNION SELECT bot_id FROM nonce
        )""",
)


def new_generation() -> str:
    """A fresh random generation (128 bits, URL-safe text)."""
    return secrets.token_urlsafe(16)


def generations(conn: sqlite3.Connection, bot_ids: Sequence[str], now: float) -> dict[str, str]:
    """Return each bot's generation, giving a new one to a bot never seen or retired."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        found: dict[str, str] = {}
        for bot_id in dict.fromkeys(bot_ids):
            row = conn.execute(
                "SELECT generation, retired_at FROM bot WHERE bot_id = ?", (bot_id,)
            ).fetchone()
            if row is not None and row[1] is None:
                found[bot_id] = row[0]
                continue
            found[bot_id] = new_generation()
            conn.execute(
                "INSERT INTO bot (bot_id, generation, first_seen) VALUES (?, ?, ?) "
                "ON CONFLICT (bot_id) DO UPDATE SET generation = excluded.generation, "
                "first_seen = excluded.first_seen, retired_at = NULL",
                (bot_id, found[bot_id], now),
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return found


def retire(conn: sqlite3.Connection, keep: Sequence[str], now: float) -> list[str]:
    """Mark every live bot not in ``keep`` retired; return their ids, sorted."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        live = [
            row[0]
            for row in conn.execute("SELECT bot_id FROM bot WHERE retired_at IS NULL ORDER BY 1")
        ]
        gone = [bot_id for bot_id in live if bot_id not in set(keep)]
        conn.executemany(
            "UPDATE bot SET retired_at = ? WHERE bot_id = ?", [(now, bot_id) for bot_id in gone]
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return gone
