"""SQL for the bots catalog (created, disabled, deleted), used by :class:`SqliteStore`.

The catalog is ``bot_live`` with two more facts (schema version 12):

- ``created_at`` / ``created_by``: a bot made through the admin API (``POST /api/v1/bots``)
  exists before its first version, so its author can upload one;
- ``disabled``: the bot keeps its versions and data, but no process serves it
  (:class:`runtime.runs.reload.LiveSync` treats it as having no live version).

Every change bumps ``stamp`` like a deploy does, so every process follows it within its poll.
A bot is *known* (listed, and not 404 to those who may see it) while it has a live version, a
refused deploy, is disabled, or was created and not deleted.
"""

from __future__ import annotations

import sqlite3
from typing import Final, Literal

from runtime.store.base import LiveState
from runtime.store.versions import live_states_where

MIGRATION: Final = (
    """ALTER TABLE bot_live ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0""",
    """ALTER TABLE bot_live ADD COLUMN created_at REAL""",  # set by the admin API's create
    """ALTER TABLE bot_live ADD COLUMN created_by TEXT""",
)


def known(prefix: str = "") -> str:
    """The condition for rows of ``bot_live`` that are bots the API lists."""
    return (
        f"({prefix}version IS NOT NULL OR {prefix}refused_digest IS NOT NULL"
        f" OR {prefix}disabled = 1 OR {prefix}created_at IS NOT NULL)"
    )


NEXT_STAMP: Final = "(SELECT COALESCE(MAX(stamp), 0) + 1 FROM bot_live)"

Created = Literal["created", "exists", "used"]


def catalog(conn: sqlite3.Connection) -> list[LiveState]:
    """Every known bot, by id."""
    return live_states_where(conn, known("l."))


def create(
    conn: sqlite3.Connection, bot_id: str, created_by: str, now: float, reuse: bool
) -> Created:
    """Create a bot with no version; ``exists`` if it is known, ``used`` if the id has history
    (versions, or data: secrets, properties, queued items, waits) and ``reuse`` is False."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute(
            f"SELECT 1 FROM bot_live WHERE bot_id = ? AND {known()}",  # noqa: S608 - constants
            (bot_id,),
        ).fetchone()
        if row is not None:
            conn.execute("COMMIT")
            return "exists"
        if not reuse:
            # Data an admin may give a bot before anything serves it counts too: secrets,
            # properties, queued runs, waits (a deleted bot's never go to another author).
            used = conn.execute(
                "SELECT 1 FROM bot_version WHERE bot_id = :bot"
                " UNION ALL SELECT 1 FROM bot WHERE bot_id = :bot"
                " UNION ALL SELECT 1 FROM bot_secret WHERE bot_id = :bot"
                " UNION ALL SELECT 1 FROM property WHERE bot_id = :bot"
                " UNION ALL SELECT 1 FROM queue WHERE bot_id = :bot"
                " UNION ALL SELECT 1 FROM waiting WHERE bot_id = :bot LIMIT 1",
                {"bot": bot_id},
            ).fetchone()
            if used is not None:
                conn.execute("COMMIT")
                return "used"
        conn.execute(
            "INSERT INTO bot_live (bot_id, version, origin, changed_at, stamp, created_at,"  # noqa: S608
            f" created_by) VALUES (?, NULL, 'api', ?, {NEXT_STAMP}, ?, ?)"
            " ON CONFLICT (bot_id) DO UPDATE SET origin = 'api', changed_at = excluded.changed_at,"
            " stamp = excluded.stamp, created_at = excluded.created_at,"
            " created_by = excluded.created_by, disabled = 0",
            (bot_id, now, now, created_by),
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise
    return "created"


def set_disabled(conn: sqlite3.Connection, bot_id: str, disabled: bool, now: float) -> bool:
    """Disable or enable a known bot; False if it is not known or already so."""
    cursor = conn.execute(
        f"UPDATE bot_live SET disabled = ?, changed_at = ?, stamp = {NEXT_STAMP}"  # noqa: S608
        f" WHERE bot_id = ? AND disabled != ? AND {known()}",
        (int(disabled), now, bot_id, int(disabled)),
    )
    return cursor.rowcount == 1


def delete(conn: sqlite3.Connection, bot_id: str, now: float) -> bool:
    """Stop a bot everywhere and forget it in the catalog; retire its links (a bot created again
    with this id gets a new link generation) and drop every user's grant on it. Versions,
    properties and the run log stay."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        cursor = conn.execute(
            "UPDATE bot_live SET version = NULL, refused_digest = NULL, refused = NULL,"  # noqa: S608
            " refused_at = NULL, disabled = 0, created_at = NULL, created_by = NULL,"
            f" origin = 'api', changed_at = ?, stamp = {NEXT_STAMP}"
            f" WHERE bot_id = ? AND {known()}",
            (now, bot_id),
        )
        deleted = cursor.rowcount == 1
        if deleted:
            conn.execute(
                "UPDATE bot SET retired_at = ? WHERE bot_id = ? AND retired_at IS NULL",
                (now, bot_id),
            )
            # Grants go too: a bot created again with this id starts with no one's access.
            conn.execute("DELETE FROM account_grant WHERE bot_id = ?", (bot_id,))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise
    return deleted
