"""SQL for the admin API's accounts, API tokens, audit log and run queries (:class:`SqliteStore`).

A token is stored as its SHA-256 digest, never as itself: tokens are 256 random bits, so a
fast hash is enough (no guessing attack on a digest of a 256-bit secret can succeed; slow
password hashes exist for low-entropy human passwords) and a lookup is one indexed equality.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Final, cast

from runtime.errors import AlreadyExists, NotFound, StoreError
from runtime.store.base import (
    ApiToken,
    AuditEntry,
    GrantRole,
    Principal,
    RunQuery,
    User,
    UserRole,
)

MIGRATION: Final = (
    """CREATE TABLE account (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL CHECK (role IN ('admin', 'author', 'viewer')),
        created_at REAL NOT NULL
    )""",
    """CREATE TABLE account_grant (
        account_id INTEGER NOT NULL REFERENCES account (id) ON DELETE CASCADE,
        bot_id TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('author', 'viewer')),
        PRIMARY KEY (account_id, bot_id)
    )""",
    """CREATE TABLE api_token (
        id INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES account (id) ON DELETE CASCADE,
        prefix TEXT NOT NULL,  -- the token's first characters, shown to tell tokens apart
        digest TEXT NOT NULL UNIQUE,  -- SHA-256 of the whole token, hex
        created_at REAL NOT NULL,
        expires_at REAL, revoked_at REAL, last_used_at REAL
    )""",
    """CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        actor TEXT NOT NULL, via TEXT NOT NULL, action TEXT NOT NULL,
        bot_id TEXT, target TEXT NOT NULL,
        before TEXT NOT NULL, after TEXT NOT NULL  -- JSON
    )""",
    """CREATE INDEX audit_bot ON audit (bot_id, id)""",
)

LAST_USED_EVERY: Final = 60.0
"""A token's ``last_used_at`` is written at most this often (seconds), not on every request."""


def _grants(conn: sqlite3.Connection, account_id: int) -> dict[str, GrantRole]:
    rows = conn.execute(
        "SELECT bot_id, role FROM account_grant WHERE account_id = ? ORDER BY bot_id",
        (account_id,),
    )
    return {str(bot): cast(GrantRole, role) for bot, role in rows}


def _user(conn: sqlite3.Connection, row: tuple[Any, ...] | None) -> User | None:
    if row is None:
        return None
    account_id, name, role, created_at = row
    return User(account_id, name, role, created_at, _grants(conn, account_id))


_USER_SQL: Final = "SELECT id, name, role, created_at FROM account"


def create_user(conn: sqlite3.Connection, name: str, role: UserRole, now: float) -> User:
    """Insert a user; raise AlreadyExists if the name is taken."""
    try:
        cursor = conn.execute(
            "INSERT INTO account (name, role, created_at) VALUES (?, ?, ?)", (name, role, now)
        )
    except sqlite3.IntegrityError:
        raise AlreadyExists(f"there is already a user {name!r}") from None
    return User(cast(int, cursor.lastrowid), name, role, now)


def get_user(conn: sqlite3.Connection, name: str) -> User | None:
    """A user by name, with its grants."""
    return _user(conn, conn.execute(f"{_USER_SQL} WHERE name = ?", (name,)).fetchone())


def list_users(conn: sqlite3.Connection) -> list[User]:
    """Every user, by name."""
    rows = conn.execute(f"{_USER_SQL} ORDER BY name").fetchall()
    return [user for row in rows if (user := _user(conn, row)) is not None]


def set_user_role(conn: sqlite3.Connection, name: str, role: UserRole) -> User | None:
    """Change a user's role."""
    conn.execute("UPDATE account SET role = ? WHERE name = ?", (role, name))
    return get_user(conn, name)


def delete_user(conn: sqlite3.Connection, name: str) -> bool:
    """Delete a user; its grants and tokens go with it (ON DELETE CASCADE)."""
    return conn.execute("DELETE FROM account WHERE name = ?", (name,)).rowcount == 1


def set_grant(conn: sqlite3.Connection, name: str, bot_id: str, role: GrantRole) -> User | None:
    """Grant (or change) a user's role on a bot."""
    user = get_user(conn, name)
    if user is None:
        return None
    conn.execute(
        "INSERT INTO account_grant (account_id, bot_id, role) VALUES (?, ?, ?)"
        " ON CONFLICT (account_id, bot_id) DO UPDATE SET role = excluded.role",
        (user.id, bot_id, role),
    )
    return get_user(conn, name)


def remove_grant(conn: sqlite3.Connection, name: str, bot_id: str) -> User | None:
    """Remove a user's grant on a bot."""
    user = get_user(conn, name)
    if user is None:
        return None
    conn.execute("DELETE FROM account_grant WHERE account_id = ? AND bot_id = ?", (user.id, bot_id))
    return get_user(conn, name)


_ISSUED_SQL: Final = """
    SELECT t.id, a.name, t.prefix, t.created_at, t.expires_at, t.revoked_at, t.last_used_at
    FROM api_token AS t JOIN account AS a ON a.id = t.account_id
"""


def create_token(
    conn: sqlite3.Connection,
    name: str,
    prefix: str,
    digest: str,
    now: float,
    expires_at: float | None,
) -> ApiToken:
    """Insert a token digest for a user; raise NotFound if there is no such user."""
    row = conn.execute("SELECT id FROM account WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise NotFound(f"no user {name!r}")
    cursor = conn.execute(
        "INSERT INTO api_token (account_id, prefix, digest, created_at, expires_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (row[0], prefix, digest, now, expires_at),
    )
    return ApiToken(cast(int, cursor.lastrowid), name, prefix, now, expires_at)


def list_tokens(conn: sqlite3.Connection, name: str | None) -> list[ApiToken]:
    """Every token (of one user), newest first."""
    rows = conn.execute(
        f"{_ISSUED_SQL} WHERE ? IS NULL OR a.name = ? ORDER BY t.id DESC", (name, name)
    )
    return [ApiToken(*row) for row in rows]


def revoke_token(conn: sqlite3.Connection, token_id: int, now: float) -> ApiToken | None:
    """Revoke a token (keeping the first revocation time)."""
    conn.execute(
        "UPDATE api_token SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?", (now, token_id)
    )
    row = conn.execute(f"{_ISSUED_SQL} WHERE t.id = ?", (token_id,)).fetchone()
    return None if row is None else ApiToken(*row)


def authenticate(conn: sqlite3.Connection, digest: str, now: float) -> Principal | None:
    """The principal of a live token; its last use is written at most every minute.

    A read, and now and then one single-statement write: no transaction held across both, so
    an API request takes SQLite's write lock at most once a minute per token.
    """
    row = conn.execute(
        "SELECT t.id, t.last_used_at, a.id, a.name, a.role FROM api_token AS t"
        " JOIN account AS a ON a.id = t.account_id"
        " WHERE t.digest = ? AND t.revoked_at IS NULL"
        " AND (t.expires_at IS NULL OR t.expires_at > ?)",
        (digest, now),
    ).fetchone()
    if row is None:
        return None
    token_id, last_used, account_id, name, role = row
    if last_used is None or now - last_used >= LAST_USED_EVERY:
        conn.execute("UPDATE api_token SET last_used_at = ? WHERE id = ?", (now, token_id))
    return Principal(account_id, name, role, token_id, _grants(conn, account_id))


def _json(value: object) -> str:
    """Compact JSON text of an audit value (its values come from the API's checked models)."""
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"the audit entry is not storable JSON: {exc}") from exc


def record_audit(conn: sqlite3.Connection, entry: AuditEntry) -> int:
    """Append an audit entry; return its id."""
    cursor = conn.execute(
        "INSERT INTO audit (at, actor, via, action, bot_id, target, before, after)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            entry.at,
            entry.actor,
            entry.via,
            entry.action,
            entry.bot_id,
            entry.target,
            _json(entry.before),
            _json(entry.after),
        ),
    )
    return cast(int, cursor.lastrowid)


def list_audit(
    conn: sqlite3.Connection, bot_id: str | None, before_id: int | None, limit: int
) -> list[AuditEntry]:
    """Audit entries, newest first."""
    rows = conn.execute(
        "SELECT id, at, actor, via, action, bot_id, target, before, after FROM audit"
        " WHERE (:bot IS NULL OR bot_id = :bot) AND (:before IS NULL OR id < :before)"
        " ORDER BY id DESC LIMIT :limit",
        {"bot": bot_id, "before": before_id, "limit": limit},
    )
    return [
        AuditEntry(
            actor,
            via,
            action,
            at,
            bot,
            target,
            json.loads(before),
            json.loads(after),
            entry_id,
        )
        for entry_id, at, actor, via, action, bot, target, before, after in rows
    ]


FIND_RUNS_SQL: Final = """
    SELECT id, bot_id, command, trigger, user_id, chat_id, status, started_at, cpu_seconds,
           wall_seconds, output, calls, error, extra
    FROM run
    WHERE bot_id = :bot_id
      AND (:before_id IS NULL OR id < :before_id)
      AND (:command IS NULL OR command = :command)
      AND (:status IS NULL OR status = :status)
      AND (NOT :failed OR status != 'ok')
      AND (:user_id IS NULL OR user_id = :user_id)
      AND (:since IS NULL OR started_at >= :since)
      AND (:until IS NULL OR started_at < :until)
      AND (:run_id IS NULL OR id = :run_id)
    ORDER BY id DESC
    LIMIT :limit
"""


def find_runs(
    conn: sqlite3.Connection, bot_id: str, query: RunQuery, run_id: int | None = None
) -> list[sqlite3.Row]:
    """A bot's run rows matching a query (or the one run ``run_id``), newest first."""
    params = {
        "bot_id": bot_id,
        "before_id": query.before_id,
        "command": query.command,
        "status": query.status,
        "failed": query.failed,
        "user_id": query.user_id,
        "since": query.since,
        "until": query.until,
        "run_id": run_id,
        "limit": query.limit,
    }
    cursor = conn.execute(FIND_RUNS_SQL, params)
    cursor.row_factory = sqlite3.Row
    return cursor.fetchall()
