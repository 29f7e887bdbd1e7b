"""Recurring schedules and labelled runs in the store (issue 11).

``schedule`` keeps, per bot and schedule name, the next occurrence not yet handled (``due_at``).
Every server process looks at the due rows of the bots it serves; whoever *advances* a row (a
compare-and-set on ``due_at`` in one write transaction) also enqueues the run, in the same
transaction, so an occurrence runs once however many processes (or machines sharing the store)
look at it, and a crash between the two cannot lose or double it.

Rows follow the bot's versions (:func:`sync`): ``schedule_bot.version`` is the newest version
that synced, and an older one (a process that has not loaded the new version yet) changes
nothing. An unchanged ``spec`` (cron and time zone) keeps its ``due_at``; a changed one starts
again from the given next occurrence; a schedule no longer listed is deleted.

Labels: ``queue.label`` (set by ``Bot.run(..., label=...)``); :func:`cancel` deletes a bot's
pending runs by label or seq. A claim and a cancel are both write transactions, so a run is
either claimed (and runs; cancel does not count it) or deleted (and never claimed).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Final

from runtime.store.commit import enqueue, pending_count

BROADCAST_STEP: Final = "broadcast"
"""The chat key of a broadcast's steps (:mod:`runtime.store.broadcasts`): queue items of kind
``run`` that are not runs of a command."""

MIGRATION: Final = (
    """ALTER TABLE queue ADD COLUMN label TEXT""",
    """CREATE INDEX queue_label ON queue (bot_id, label, seq)
        WHERE finished_at IS NULL AND label IS NOT NULL""",
    """CREATE TABLE schedule (
        bot_id TEXT NOT NULL, name TEXT NOT NULL,
        spec TEXT NOT NULL,  -- cron and time zone: a change starts the schedule again
        command TEXT NOT NULL,
        due_at REAL NOT NULL,  -- the next occurrence not yet handled
        last_run_at REAL,  -- the last occurrence enqueued
        PRIMARY KEY (bot_id, name)
    ) WITHOUT ROWID""",
    """CREATE INDEX schedule_due ON schedule (due_at)""",
    """CREATE TABLE schedule_bot (
        bot_id TEXT PRIMARY KEY, version INTEGER NOT NULL  -- the newest version that synced
    ) WITHOUT ROWID""",
)

SyncRow = tuple[str, str, str, float]
"""A schedule as a version defines it: name, spec, command, its next occurrence from now."""
DueRow = tuple[str, str, str, str, float]
"""A due schedule: bot id, name, spec, command, due_at."""
ListRow = tuple[str, str, str, float, float | None]
"""name, spec, command, due_at, last_run_at."""
PendingRow = tuple[int, str, float, str | None, str, int]
"""seq, command, run_after, label, status, attempts."""
QueuedRun = tuple[str, str, float, str | None]
"""What advancing enqueues: chat key, payload text, run_after, label."""


def sync(conn: sqlite3.Connection, bot_id: str, version: int, rows: Sequence[SyncRow]) -> bool:
    """Make a bot's schedules those of ``version``; False (nothing changed) if a newer version
    already synced. Must run inside a write transaction."""
    seen = conn.execute("SELECT version FROM schedule_bot WHERE bot_id = ?", (bot_id,)).fetchone()
    if seen is not None and int(seen[0]) > version:
        return False
    conn.execute(
        "INSERT INTO schedule_bot (bot_id, version) VALUES (?, ?)"
        " ON CONFLICT (bot_id) DO UPDATE SET version = excluded.version",
        (bot_id, version),
    )
    names = [row[0] for row in rows]
    conn.execute(
        "DELETE FROM schedule WHERE bot_id = ? AND name NOT IN (SELECT value FROM json_each(?))",
        (bot_id, _json_list(names)),
    )
    for name, spec, command, due_at in rows:
        conn.execute(
            "INSERT INTO schedule (bot_id, name, spec, command, due_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (bot_id, name) DO UPDATE SET command = excluded.command,"
            " due_at = CASE WHEN schedule.spec = excluded.spec THEN schedule.due_at"
            "               ELSE excluded.due_at END,"
            " spec = excluded.spec",
            (bot_id, name, spec, command, due_at),
        )
    return True


def due(conn: sqlite3.Connection, bot_ids: Sequence[str], now: float) -> list[DueRow]:
    """The schedules of these bots whose next occurrence has come, oldest first (at most 1,000
    per call: the rest come at the next tick)."""
    rows = conn.execute(
        "SELECT bot_id, name, spec, command, due_at FROM schedule"
        " WHERE due_at <= ? AND bot_id IN (SELECT value FROM json_each(?))"
        " ORDER BY due_at LIMIT 1000",
        (now, _json_list(bot_ids)),
    ).fetchall()
    return [(str(b), str(n), str(s), str(c), float(d)) for b, n, s, c, d in rows]


def advance(
    conn: sqlite3.Connection,
    bot_id: str,
    name: str,
    spec: str,
    due_at: float,
    next_at: float,
    run: QueuedRun | None,
    max_pending: int,
) -> str:
    """Move a schedule from ``due_at`` to ``next_at`` and enqueue its run, if it still is at
    ``due_at`` (else another process did it: ``"taken"``). Returns ``"enqueued"``,
    ``"skipped"`` (no run asked), ``"full"`` (advanced, but the bot has ``max_pending`` runs
    queued: this occurrence is dropped) or ``"taken"``. Must run inside a write transaction.
    """
    cursor = conn.execute(
        "UPDATE schedule SET due_at = ?, last_run_at = COALESCE(?, last_run_at)"
        " WHERE bot_id = ? AND name = ? AND spec = ? AND due_at = ?",
        (next_at, None if run is None else run[2], bot_id, name, spec, due_at),
    )
    if cursor.rowcount != 1:
        return "taken"
    if run is None:
        return "skipped"
    if pending_count(conn, bot_id, "run") >= max_pending:
        return "full"
    chat_key, payload, run_after, label = run
    enqueue(conn, bot_id, "run", chat_key, payload, None, run_after, label)
    return "enqueued"


def listed(conn: sqlite3.Connection, bot_id: str) -> list[ListRow]:
    """A bot's schedules by name."""
    rows = conn.execute(
        "SELECT name, spec, command, due_at, last_run_at FROM schedule WHERE bot_id = ?"
        " ORDER BY name",
        (bot_id,),
    ).fetchall()
    return [
        (str(n), str(s), str(c), float(d), None if r is None else float(r))
        for n, s, c, d, r in rows
    ]


def pending(
    conn: sqlite3.Connection,
    bot_id: str,
    label: str | None,
    command: str | None,
    after: int,
    limit: int,
) -> list[PendingRow]:
    """A bot's unfinished queued runs (``Bot.run``, schedules, a broadcast's runs), by seq
    after ``after``; a broadcast's own steps are not runs: never listed, never cancelled."""
    rows = conn.execute(
        "SELECT seq, json_extract(payload, '$.command'), run_after, label, status, attempts"
        " FROM queue"
        " WHERE bot_id = :bot AND kind = 'run' AND finished_at IS NULL AND seq > :after"
        " AND chat_key != :step"
        " AND (:label IS NULL OR label = :label)"
        " AND (:command IS NULL OR json_extract(payload, '$.command') = :command)"
        " ORDER BY seq LIMIT :limit",
        {
            "bot": bot_id,
            "label": label,
            "command": command,
            "after": after,
            "limit": limit,
            "step": BROADCAST_STEP,
        },
    ).fetchall()
    return [
        (int(s), str(c), float(r), None if lb is None else str(lb), str(st), int(a))
        for s, c, r, lb, st, a in rows
    ]


def cancel(conn: sqlite3.Connection, bot_id: str, label: str | None, seq: int | None) -> int:
    """Delete a bot's runs still waiting (not claimed) by label or seq; how many."""
    if label is None and seq is None:
        return 0
    cursor = conn.execute(
        "DELETE FROM queue WHERE bot_id = :bot AND kind = 'run' AND status = 'pending'"
        " AND chat_key != :step"
        " AND finished_at IS NULL"
        " AND (:label IS NULL OR label = :label) AND (:seq IS NULL OR seq = :seq)",
        {"bot": bot_id, "label": label, "seq": seq, "step": BROADCAST_STEP},
    )
    return cursor.rowcount


def _json_list(values: Sequence[str]) -> str:
    return json.dumps(list(values))
