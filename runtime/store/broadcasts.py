"""SQL for broadcasts, used by :class:`SqliteStore`: a command fanned out to many users.

A broadcast starts as one queue item (kind ``run``, chat key ``broadcast``) committed with the
run that called ``Bot.broadcast``. Each time a server process claims a broadcast item,
:func:`drive` does one step in one transaction: it creates the broadcast (first step only,
its id is the originating item's ``seq``), enqueues the runs of the next chunk of users,
advances the broadcast's cursor, and enqueues the next step (run_after one pacing period on)
unless it is done. The step names the cursor it expects: a step claimed again after a crash
finds the cursor moved and does nothing, so every user's run is queued exactly once; the runs
themselves are queue items like any other (handled at least once).

The users of "every user" are the bot's *known users*: each user who wrote to the bot in a
private chat, recorded when the update is stored (:func:`remember_user`), known before the
broadcast's first step.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

MIGRATION: Final = (
    # rowid: the order users became known (a broadcast to everyone takes those before it).
    """CREATE TABLE known_user (
        id INTEGER PRIMARY KEY,
        bot_id TEXT NOT NULL, user_id INTEGER NOT NULL, first_seen REAL NOT NULL,
        UNIQUE (bot_id, user_id)
    )""",
    """CREATE TABLE broadcast (
        id INTEGER PRIMARY KEY,  -- the seq of the queue item that started it
        bot_id TEXT NOT NULL,
        command TEXT NOT NULL,
        spec TEXT NOT NULL,  -- JSON: options, generation, the user list (null: every known user)
        total INTEGER NOT NULL,
        known_until INTEGER NOT NULL,  -- the last known_user id it includes
        cursor INTEGER NOT NULL DEFAULT 0,  -- users queued so far (list) / last user id (all)
        queued INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        finished_at REAL
    )""",
    """CREATE INDEX broadcast_bot ON broadcast (bot_id, id)""",
)
PRIVATE_CHAT_PREFIX: Final = "chat:"


@dataclass(frozen=True, slots=True)
class Step:
    """What one :func:`drive` step did."""

    broadcast_id: int
    queued: int
    """Runs this step enqueued (0 for a repeated step or one held back by the backlog)."""
    done: bool


def remember_user(conn: sqlite3.Connection, bot_id: str, chat_key: str, now: float) -> None:
    """Record the user of a private chat (a positive chat id is its user's id) as known."""
    if not chat_key.startswith(PRIVATE_CHAT_PREFIX):
        return
    text = chat_key[len(PRIVATE_CHAT_PREFIX) :]
    if not text.isdigit() or len(text) > 19:
        return
    conn.execute(
        "INSERT INTO known_user (bot_id, user_id, first_seen) VALUES (?, ?, ?) "
        "ON CONFLICT DO NOTHING",
        (bot_id, int(text), now),
    )


def _enqueue_run(
    conn: sqlite3.Connection, bot_id: str, chat_key: str, payload: Any, run_after: float, now: float
) -> None:
    conn.execute(
        "INSERT INTO queue (bot_id, kind, chat_key, payload, update_id, run_after, enqueued_at)"
        " VALUES (?, 'run', ?, ?, NULL, ?, ?)",
        (bot_id, chat_key, json.dumps(payload, ensure_ascii=False), run_after, now),
    )


def _backlog(conn: sqlite3.Connection, bot_id: str) -> int:
    row = conn.execute(
        "SELECT COUNT(*) FROM queue WHERE finished_at IS NULL AND bot_id = ? AND kind = 'run'",
        (bot_id,),
    ).fetchone()
    return int(row[0])


def drive(
    conn: sqlite3.Connection,
    bot_id: str,
    seq: int,
    payload: dict[str, Any],
    now: float,
    chunk: int,
    period: float,
    max_backlog: int,
) -> Step:
    """Do one step of a broadcast (see the module docstring), in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        step = _drive(conn, bot_id, seq, payload, now, chunk, period, max_backlog)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return step


def _drive(
    conn: sqlite3.Connection,
    bot_id: str,
    seq: int,
    payload: dict[str, Any],
    now: float,
    chunk: int,
    period: float,
    max_backlog: int,
) -> Step:
    spec = payload.get("broadcast")
    if isinstance(spec, dict):  # the first step: create it (once: its id is this item's seq)
        users = spec.get("users")
        known_until, known = conn.execute(
            "SELECT COALESCE(MAX(id), 0), COUNT(*) FROM known_user WHERE bot_id = ?", (bot_id,)
        ).fetchone()
        total = len(users) if isinstance(users, list) else known
        created = conn.execute(
            "INSERT INTO broadcast (id, bot_id, command, spec, total, known_until, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (seq, bot_id, str(spec.get("command")), json.dumps(spec), total, known_until, now),
        ).rowcount
        broadcast_id, cursor = seq, 0
        if not created:
            return Step(seq, 0, done=False)
    else:
        step_id, step_cursor = payload.get("broadcast_id"), payload.get("cursor")
        if type(step_id) is not int or type(step_cursor) is not int:
            raise ValueError(f"queue item {seq} is not a broadcast step")
        broadcast_id, cursor = step_id, step_cursor
    row = conn.execute(
        "SELECT spec, cursor, known_until, finished_at FROM broadcast WHERE id = ? AND bot_id = ?",
        (broadcast_id, bot_id),
    ).fetchone()
    if row is None or row[1] != cursor or row[3] is not None:
        return Step(broadcast_id, 0, done=row is not None and row[3] is not None)
    spec, known_until = json.loads(row[0]), row[2]
    if _backlog(conn, bot_id) > max_backlog:  # the bot is behind: wait, queue nothing yet
        _next_step(conn, bot_id, broadcast_id, cursor, now + period, now)
        return Step(broadcast_id, 0, done=False)
    users = spec.get("users")
    if isinstance(users, list):
        batch: Sequence[int] = users[cursor : cursor + chunk]
        new_cursor = cursor + len(batch)
        done = new_cursor >= len(users)
    else:
        batch = [
            r[0]
            for r in conn.execute(
                "SELECT user_id FROM known_user WHERE bot_id = ? AND user_id > ? "
                "AND id <= ? ORDER BY user_id LIMIT ?",
                (bot_id, cursor, known_until, chunk),
            )
        ]
        new_cursor = batch[-1] if batch else cursor
        done = len(batch) < chunk
    for i, user_id in enumerate(batch):
        who = {"id": user_id}
        _enqueue_run(
            conn,
            bot_id,
            f"chat:{user_id}",
            {
                "command": spec.get("command"),
                "user": who,
                "chat": {**who, "type": "private"},
                "options": spec.get("options"),
                "generation": spec.get("generation"),
                "from_broadcast": broadcast_id,
            },
            now + period * i / max(len(batch), 1),
            now,
        )
    conn.execute(
        "UPDATE broadcast SET cursor = ?, queued = queued + ?, finished_at = ? WHERE id = ?",
        (new_cursor, len(batch), now if done else None, broadcast_id),
    )
    if not done:
        _next_step(conn, bot_id, broadcast_id, new_cursor, now + period, now)
    return Step(broadcast_id, len(batch), done)


def _next_step(
    conn: sqlite3.Connection, bot_id: str, broadcast_id: int, cursor: int, at: float, now: float
) -> None:
    _enqueue_run(
        conn, bot_id, "broadcast", {"broadcast_id": broadcast_id, "cursor": cursor}, at, now
    )


@dataclass(frozen=True, slots=True)
class Progress:
    """A broadcast as ``run.py logs`` shows it."""

    id: int
    command: str
    total: int
    queued: int
    created_at: float
    finished_at: float | None
    runs: dict[str, int]
    """Its runs that ended, by status."""


def progress(conn: sqlite3.Connection, bot_id: str, limit: int) -> list[Progress]:
    """The bot's newest broadcasts, with how their runs ended so far."""
    found = []
    for row in conn.execute(
        "SELECT id, command, total, queued, created_at, finished_at FROM broadcast "
        "WHERE bot_id = ? ORDER BY id DESC LIMIT ?",
        (bot_id, limit),
    ).fetchall():
        runs = {
            status: count
            for status, count in conn.execute(
                "SELECT status, COUNT(*) FROM run WHERE bot_id = ? AND trigger = ? GROUP BY status",
                (bot_id, f"broadcast:{row[0]}"),
            )
        }
        found.append(Progress(row[0], row[1], row[2], row[3], row[4], row[5], runs=runs))
    return found
