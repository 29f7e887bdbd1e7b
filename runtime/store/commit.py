"""SQL for a run's commit, used by :class:`SqliteStore`: property writes and scheduled runs.

A run's commit is all or nothing: the versions of the properties it read must be unchanged
(else ConflictError), and its property writes (checked against ``max_bot_bytes``) and
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

from runtime.errors import ConflictError, NotANumber, PendingRunsExceeded, QuotaExceeded, StoreError
from runtime.store import broadcasts, properties
from runtime.store.properties import Expectation, PropertyRow

RunRow = tuple[str, str, float, str | None]
"""A scheduled run as the store keeps it: chat key, JSON payload text, run_after, label."""


def enqueue(
    conn: sqlite3.Connection,
    bot_id: str,
    kind: str,
    chat_key: str,
    payload: str,
    update_id: int | None,
    run_after: float,
    label: str | None = None,
) -> bool:
    """Insert one item unless its update_id is already known for the bot."""
    now = time.time()
    cursor = conn.execute(
        "INSERT INTO queue (bot_id, kind, chat_key, payload, update_id, run_after, enqueued_at,"
        " label) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (bot_id, kind, chat_key, payload, update_id, run_after, now, label),
    )
    if kind == "update" and cursor.rowcount == 1:
        broadcasts.remember_user(conn, bot_id, chat_key, now)
    return cursor.rowcount == 1


def pending_count(conn: sqlite3.Connection, bot_id: str | None, kind: str | None) -> int:
    """Count unfinished items, of one bot or all, of one kind or both."""
    row = conn.execute(
        "SELECT COUNT(*) FROM queue WHERE finished_at IS NULL"
        " AND (:bot IS NULL OR bot_id = :bot) AND (:kind IS NULL OR kind = :kind)",
        {"bot": bot_id, "kind": kind},
    ).fetchone()
    return int(row[0])


def oldest_pending(conn: sqlite3.Connection, now: float) -> dict[str, float]:
    """Per bot with unfinished items due by ``now``: when its oldest one was enqueued."""
    rows = conn.execute(
        "SELECT bot_id, MIN(enqueued_at) FROM queue WHERE finished_at IS NULL"
        " AND run_after <= ? GROUP BY bot_id",
        (now,),
    ).fetchall()
    return {str(bot_id): float(at) for bot_id, at in rows}


CommitArgs = tuple[
    str, tuple[PropertyRow, ...], tuple[RunRow, ...], int, int, tuple[Expectation, ...]
]
"""One run's commit: bot id, property rows, run rows, max_bot_bytes, max_pending_runs, and the
property versions it requires."""


def commit_one(
    conn: sqlite3.Connection,
    bot_id: str,
    rows: Sequence[PropertyRow],
    runs: Sequence[RunRow],
    max_bot_bytes: int,
    max_pending_runs: int,
    expected: Sequence[Expectation] = (),
) -> StoreError | None:
    """Apply one run's commit inside a savepoint; undo it alone and return the error if refused.

    Must run inside a write transaction. Any other error propagates (the caller rolls back).
    """
    conn.execute("SAVEPOINT run_commit")
    try:
        properties.check(conn, bot_id, expected)
        if rows:
            properties.apply(conn, bot_id, rows, max_bot_bytes)
        if runs:
            pending = pending_count(conn, bot_id, "run")
            if pending + len(runs) > max_pending_runs:
                raise PendingRunsExceeded(bot_id, pending, len(runs), max_pending_runs)
            for chat_key, payload, run_after, label in runs:
                enqueue(conn, bot_id, "run", chat_key, payload, None, run_after, label)
    except (QuotaExceeded, ConflictError, NotANumber) as refused:
        conn.execute("ROLLBACK TO run_commit")
        conn.execute("RELEASE run_commit")
        return refused
    conn.execute("RELEASE run_commit")
    return None
