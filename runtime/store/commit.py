"""SQL for a run's commit, used by :class:`SqliteStore`: property writes and scheduled runs.

A run's commit is all or nothing: its property writes (checked against ``max_bot_bytes``) and
its scheduled runs (checked against ``max_pending_runs``) land together or not at all. Several
commits share one write transaction (group commit, see :mod:`runtime.store.batch`); each runs
inside its own ``SAVEPOINT``, so one refused commit is undone alone. The checks read the bot's
totals inside the write transaction, which SQLite holds for one writer at a time across every
process: two commits can never both pass a check against the same totals.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence

from runtime.errors import PendingRunsExceeded, QuotaExceeded

PropertyRow = tuple[str, str, "str | None", int]
"""A property write as the store keeps it: scope, name, JSON text (None: delete), size."""

RunRow = tuple[str, str, float]
"""A scheduled run as the store keeps it: chat key, JSON payload text, run_after."""


def enqueue(
    conn: sqlite3.Connection,
    bot_id: str,
    kind: str,
    chat_key: str,
    payload: str,
    update_id: int | None,
    run_after: float,
) -> bool:
    """Insert one item unless its update_id is already known for the bot."""
    cursor = conn.execute(
        "INSERT INTO queue (bot_id, kind, chat_key, payload, update_id, run_after, enqueued_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (bot_id, kind, chat_key, payload, update_id, run_after, time.time()),
    )
    return cursor.rowcount == 1


def bot_data_bytes(conn: sqlite3.Connection, bot_id: str) -> int:
    """Sum the sizes of a bot's properties."""
    row = conn.execute(
        "SELECT COALESCE(SUM(size), 0) FROM property WHERE bot_id = ?", (bot_id,)
    ).fetchone()
    return int(row[0])


def pending_count(conn: sqlite3.Connection, bot_id: str | None, kind: str | None) -> int:
    """Count unfinished items, of one bot or all, of one kind or both."""
    row = conn.execute(
        "SELECT COUNT(*) FROM queue WHERE finished_at IS NULL"
        " AND (:bot IS NULL OR bot_id = :bot) AND (:kind IS NULL OR kind = :kind)",
        {"bot": bot_id, "kind": kind},
    ).fetchone()
    return int(row[0])


def apply_properties(
    conn: sqlite3.Connection, bot_id: str, rows: Sequence[PropertyRow], max_bot_bytes: int
) -> None:
    """Apply the writes in order, then raise QuotaExceeded if they grew the bot past its quota.

    The caller owns the transaction (and rolls it back on the error).
    """
    before = bot_data_bytes(conn, bot_id)
    for scope, name, value, size in rows:
        if value is None:
            conn.execute(
                "DELETE FROM property WHERE bot_id = ? AND scope = ? AND name = ?",
                (bot_id, scope, name),
            )
        else:
            conn.execute(
                "INSERT INTO property (bot_id, scope, name, value, size)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (bot_id, scope, name)"
                " DO UPDATE SET value = excluded.value, size = excluded.size",
                (bot_id, scope, name, value, size),
            )
    after = bot_data_bytes(conn, bot_id)
    if after > max_bot_bytes and after > before:
        raise QuotaExceeded(
            f"bot {bot_id!r} data would take {after} bytes, over its "
            f"max_bot_bytes quota of {max_bot_bytes} bytes"
        )


CommitArgs = tuple[str, tuple[PropertyRow, ...], tuple[RunRow, ...], int, int]
"""One run's commit: bot id, property rows, run rows, max_bot_bytes, max_pending_runs."""


def commit_one(
    conn: sqlite3.Connection,
    bot_id: str,
    rows: Sequence[PropertyRow],
    runs: Sequence[RunRow],
    max_bot_bytes: int,
    max_pending_runs: int,
) -> QuotaExceeded | None:
    """Apply one run's commit inside a savepoint; undo it alone and return the error if refused.

    Must run inside a write transaction. Any other error propagates (the caller rolls back).
    """
    conn.execute("SAVEPOINT run_commit")
    try:
        if rows:
            apply_properties(conn, bot_id, rows, max_bot_bytes)
        if runs:
            pending = pending_count(conn, bot_id, "run")
            if pending + len(runs) > max_pending_runs:
                raise PendingRunsExceeded(bot_id, pending, len(runs), max_pending_runs)
            for chat_key, payload, run_after in runs:
                enqueue(conn, bot_id, "run", chat_key, payload, None, run_after)
    except QuotaExceeded as refused:
        conn.execute("ROLLBACK TO run_commit")
        conn.execute("RELEASE run_commit")
        return refused
    conn.execute("RELEASE run_commit")
    return None
