"""SQL for server instances (one per server process) and their heartbeats, used by
:class:`SqliteStore`.

Every server process registers an *instance* and renews ``alive_until`` every second or so. A
lease is live only while its owner is: ``CLAIM_SQL`` treats the leases of an instance whose
``alive_until`` has passed (a process that stopped cleanly sets it to the time it stopped) as
expired, so a crashed or stopped process's items are claimable at once instead of after
``BOTBOX_LEASE_SECONDS``. An owner with no instance row (rows leased before this table existed)
keeps its lease until ``lease_until``.
"""

from __future__ import annotations

import sqlite3
from typing import Final

from runtime.store.base import Instance

MIGRATION: Final = (
    """CREATE TABLE instance (
        instance_id TEXT PRIMARY KEY NOT NULL,  -- the owner name of its leases
        host TEXT NOT NULL,  -- host, boot and pid namespace: where ``pid`` means something
        pid INTEGER NOT NULL,
        started TEXT NOT NULL,  -- the process's start time on its host ('' if unknown)
        alive_until REAL NOT NULL,  -- renewed by heartbeats; set to the stop time at a stop
        stopped_at REAL  -- set when it stopped cleanly or was found gone
    )""",
)

FORGET_AFTER: Final = 86400.0
"""Rows of instances dead this long are deleted (their leases ran out long before)."""


def register(conn: sqlite3.Connection, instance: Instance, now: float, alive_until: float) -> None:
    """Insert (or revive) an instance; forget the ones dead for a day."""
    conn.execute("DELETE FROM instance WHERE alive_until < ?", (now - FORGET_AFTER,))
    conn.execute(
        "INSERT INTO instance (instance_id, host, pid, started, alive_until)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (instance_id) DO UPDATE"
        " SET alive_until = excluded.alive_until, stopped_at = NULL",
        (instance.instance_id, instance.host, instance.pid, instance.started, alive_until),
    )


def heartbeat(conn: sqlite3.Connection, instance_id: str, alive_until: float) -> bool:
    """Renew a live instance; False if it is unknown or was declared stopped."""
    cursor = conn.execute(
        "UPDATE instance SET alive_until = ? WHERE instance_id = ? AND stopped_at IS NULL",
        (alive_until, instance_id),
    )
    return cursor.rowcount == 1


def stop(conn: sqlite3.Connection, instance_id: str, now: float) -> None:
    """Mark an instance stopped now: its leases are free from this moment."""
    conn.execute(
        "UPDATE instance SET stopped_at = ?, alive_until = MIN(alive_until, ?)"
        " WHERE instance_id = ? AND stopped_at IS NULL",
        (now, now, instance_id),
    )


def live_on(conn: sqlite3.Connection, host: str, now: float) -> list[Instance]:
    """The instances on ``host`` still alive by their heartbeat."""
    rows = conn.execute(
        "SELECT instance_id, host, pid, started FROM instance"
        " WHERE host = ? AND alive_until > ? AND stopped_at IS NULL ORDER BY instance_id",
        (host, now),
    ).fetchall()
    return [Instance(str(i), str(h), int(p), str(s)) for i, h, p, s in rows]
