"""SQL for bot versions and the live version of each bot, used by :class:`SqliteStore`.

``bot_content`` holds file sets by digest (content-addressed: a rollback points at old content,
never copies it); ``bot_version`` numbers each bot's versions 1, 2, ...; ``bot_live`` is the
source of truth every server process follows: which version of a bot serves now (``NULL``: none),
and the latest refused deploy (its digest and problems) while it is not fixed. ``stamp`` grows
with every change of any ``bot_live`` row, so a process polls one ``MAX(stamp)``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from typing import Final

from runtime.store.base import BotVersion, LiveState
from sandbox import JSON

MIGRATION: Final = (
    """CREATE TABLE bot_content (
        digest TEXT PRIMARY KEY,  -- SHA-256 of the sorted file names and texts
        files TEXT NOT NULL  -- JSON: {name: text}
    )""",
    """CREATE TABLE bot_version (
        bot_id TEXT NOT NULL,
        version INTEGER NOT NULL,  -- 1, 2, ... per bot
        digest TEXT NOT NULL REFERENCES bot_content (digest),
        created_at REAL NOT NULL,
        origin TEXT NOT NULL,  -- 'folder', 'api', 'cli', 'rollback'
        rollback_of INTEGER,  -- the version whose content a rollback restored
        PRIMARY KEY (bot_id, version)
    )""",
    """CREATE TABLE bot_live (
        bot_id TEXT PRIMARY KEY,
        version INTEGER,  -- the version serving now; NULL: none (never loaded, or removed)
        origin TEXT NOT NULL,  -- 'folder': follows BOTBOX_BOTS_DIR (removed with its folder)
        changed_at REAL NOT NULL,
        stamp INTEGER NOT NULL,  -- grows with every change of any row
        refused_digest TEXT,  -- the latest refused deploy, until one succeeds
        refused TEXT,  -- JSON: its problems
        refused_at REAL
    )""",
    """CREATE INDEX bot_live_stamp ON bot_live (stamp)""",
)


def _begin(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")


def _version(row: tuple[object, ...]) -> BotVersion:
    bot_id, version, digest, created_at, origin, rollback_of = row
    return BotVersion(
        str(bot_id),
        int(str(version)),
        str(digest),
        float(str(created_at)),
        str(origin),
        None if rollback_of is None else int(str(rollback_of)),
    )


def deploy(
    conn: sqlite3.Connection,
    bot_id: str,
    files_json: str,
    digest: str,
    origin: str,
    now: float,
    rollback_of: int | None,
) -> tuple[BotVersion, bool]:
    """Make ``digest`` the bot's live version: a new one, unless it already is (then unchanged)."""
    _begin(conn)
    try:
        live = conn.execute(
            "SELECT l.version, v.digest, l.refused_digest FROM bot_live AS l"
            " LEFT JOIN bot_version AS v ON v.bot_id = l.bot_id AND v.version = l.version"
            " WHERE l.bot_id = ?",
            (bot_id,),
        ).fetchone()
        if live is not None and live[1] == digest and rollback_of is None:
            if live[2] is not None:  # the refused change was undone: nothing is refused now
                conn.execute(
                    "UPDATE bot_live SET refused_digest = NULL, refused = NULL, refused_at = NULL,"
                    " stamp = (SELECT COALESCE(MAX(stamp), 0) + 1 FROM bot_live) WHERE bot_id = ?",
                    (bot_id,),
                )
            row = conn.execute(
                "SELECT bot_id, version, digest, created_at, origin, rollback_of"
                " FROM bot_version WHERE bot_id = ? AND version = ?",
                (bot_id, live[0]),
            ).fetchone()
            conn.execute("COMMIT")
            return _version(row), False
        conn.execute(
            "INSERT INTO bot_content (digest, files) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (digest, files_json),
        )
        number = conn.execute(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM bot_version WHERE bot_id = ?", (bot_id,)
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO bot_version (bot_id, version, digest, created_at, origin, rollback_of)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (bot_id, number, digest, now, origin, rollback_of),
        )
        live_origin = "folder" if origin == "folder" else "api"
        conn.execute(
            "INSERT INTO bot_live (bot_id, version, origin, changed_at, stamp)"
            " VALUES (?, ?, ?, ?, (SELECT COALESCE(MAX(stamp), 0) + 1 FROM bot_live))"
            " ON CONFLICT (bot_id) DO UPDATE SET"
            " version = excluded.version, changed_at = excluded.changed_at,"
            " stamp = excluded.stamp, refused_digest = NULL, refused = NULL, refused_at = NULL,"
            " origin = CASE WHEN excluded.origin = 'folder' THEN 'folder' ELSE"
            " CASE WHEN bot_live.origin = 'folder' AND ? = 'rollback' THEN 'folder'"
            " ELSE excluded.origin END END",
            (bot_id, number, live_origin, now, origin),
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise
    return BotVersion(bot_id, number, digest, now, origin, rollback_of), True


def refuse(
    conn: sqlite3.Connection, bot_id: str, digest: str, problems: str, origin: str, now: float
) -> None:
    """Record a refused deploy; the live version (if any) stays. Repeating it changes nothing."""
    _begin(conn)
    try:
        row = conn.execute(
            "SELECT refused_digest, refused FROM bot_live WHERE bot_id = ?", (bot_id,)
        ).fetchone()
        if row is not None and row[0] == digest and row[1] == problems:
            conn.execute("COMMIT")
            return
        conn.execute(
            "INSERT INTO bot_live (bot_id, version, origin, changed_at, stamp, refused_digest,"
            " refused, refused_at) VALUES (?, NULL, ?, ?,"
            " (SELECT COALESCE(MAX(stamp), 0) + 1 FROM bot_live), ?, ?, ?)"
            " ON CONFLICT (bot_id) DO UPDATE SET stamp = excluded.stamp,"
            " refused_digest = excluded.refused_digest, refused = excluded.refused,"
            " refused_at = excluded.refused_at",
            (bot_id, "folder" if origin == "folder" else "api", now, digest, problems, now),
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise


def undeploy(conn: sqlite3.Connection, bot_id: str, now: float) -> bool:
    """Stop a bot everywhere: no live version, nothing refused; False if it was not running."""
    cursor = conn.execute(
        "UPDATE bot_live SET version = NULL, refused_digest = NULL, refused = NULL,"
        " refused_at = NULL, changed_at = ?,"
        " stamp = (SELECT COALESCE(MAX(stamp), 0) + 1 FROM bot_live)"
        " WHERE bot_id = ? AND (version IS NOT NULL OR refused_digest IS NOT NULL)",
        (now, bot_id),
    )
    return cursor.rowcount == 1


def live_stamp(conn: sqlite3.Connection) -> int:
    """The newest stamp of any bot's live row (0 when there is none)."""
    return int(conn.execute("SELECT COALESCE(MAX(stamp), 0) FROM bot_live").fetchone()[0])


def live_states(conn: sqlite3.Connection) -> list[LiveState]:
    """Every bot with a live version or a refused deploy, or disabled, by id."""
    return live_states_where(
        conn, "(l.version IS NOT NULL OR l.refused_digest IS NOT NULL OR l.disabled = 1)"
    )


def live_states_where(conn: sqlite3.Connection, where: str) -> list[LiveState]:
    """The ``bot_live`` rows (``l``) meeting ``where`` (trusted SQL), by id."""
    rows = conn.execute(
        "SELECT l.bot_id, l.version, v.digest, l.origin, l.changed_at, l.stamp,"  # noqa: S608
        " l.refused_digest, l.refused, l.refused_at, l.disabled, l.created_at, l.created_by"
        " FROM bot_live AS l"
        " LEFT JOIN bot_version AS v ON v.bot_id = l.bot_id AND v.version = l.version"
        f" WHERE {where} ORDER BY l.bot_id"
    ).fetchall()
    states: list[LiveState] = []
    for row in rows:
        bot_id, version, digest, origin, changed, stamp, refused_digest, refused, at = row[:9]
        problems: JSON = None if refused is None else json.loads(refused)
        states.append(
            LiveState(
                bot_id,
                version,
                digest,
                origin,
                changed,
                stamp,
                refused_digest,
                problems,
                at,
                bool(row[9]),
                row[10],
                row[11],
            )
        )
    return states


def versions(conn: sqlite3.Connection, bot_id: str) -> list[BotVersion]:
    """A bot's versions, newest first."""
    rows = conn.execute(
        "SELECT bot_id, version, digest, created_at, origin, rollback_of FROM bot_version"
        " WHERE bot_id = ? ORDER BY version DESC",
        (bot_id,),
    ).fetchall()
    return [_version(row) for row in rows]


def files_of(conn: sqlite3.Connection, bot_id: str, version: int) -> str | None:
    """The JSON file set of one version, or None if the bot has no such version."""
    row = conn.execute(
        "SELECT c.files FROM bot_version AS v JOIN bot_content AS c ON c.digest = v.digest"
        " WHERE v.bot_id = ? AND v.version = ?",
        (bot_id, version),
    ).fetchone()
    return None if row is None else str(row[0])


def encode_files(files: Mapping[str, str]) -> str:
    """A file set as the JSON ``bot_content`` keeps."""
    return json.dumps(dict(sorted(files.items())), ensure_ascii=False)
