"""SQL for bot secrets (:class:`SqliteStore`): sealed values only, never plaintext.

The store keeps what :class:`runtime.signing.sealing.SecretBox` sealed; it cannot open it (the
key comes from the master key, which the store never sees). Secrets live in their own table,
outside ``bot_content``, so no version, diff or rollback ever carries one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Final

from runtime.store.base import SecretInfo

MIGRATION: Final = (
    """CREATE TABLE bot_secret (
        bot_id TEXT NOT NULL,
        name TEXT NOT NULL,
        sealed BLOB NOT NULL,  -- version, nonce, AES-GCM ciphertext and tag
        updated_at REAL NOT NULL,
        PRIMARY KEY (bot_id, name)
    ) WITHOUT ROWID""",
)


def put_secret(conn: sqlite3.Connection, bot_id: str, name: str, sealed: bytes, now: float) -> bool:
    """Insert or replace a secret; True if it is new."""
    existed = conn.execute(
        "SELECT 1 FROM bot_secret WHERE bot_id = ? AND name = ?", (bot_id, name)
    ).fetchone()
    conn.execute(
        "INSERT INTO bot_secret (bot_id, name, sealed, updated_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (bot_id, name) DO UPDATE SET sealed = excluded.sealed,"
        " updated_at = excluded.updated_at",
        (bot_id, name, sealed, now),
    )
    return existed is None


def delete_secret(conn: sqlite3.Connection, bot_id: str, name: str) -> bool:
    """Delete a secret; True if there was one."""
    cursor = conn.execute("DELETE FROM bot_secret WHERE bot_id = ? AND name = ?", (bot_id, name))
    return cursor.rowcount == 1


def list_secrets(conn: sqlite3.Connection, bot_id: str) -> list[SecretInfo]:
    """A bot's secrets by name: names and times, never values."""
    rows = conn.execute(
        "SELECT name, updated_at FROM bot_secret WHERE bot_id = ? ORDER BY name", (bot_id,)
    )
    return [SecretInfo(str(name), float(at)) for name, at in rows]


def sealed_secrets(
    conn: sqlite3.Connection, bot_id: str, names: Sequence[str] | None
) -> dict[str, bytes]:
    """A bot's sealed secrets (all, or those named)."""
    if names is None:
        rows = conn.execute("SELECT name, sealed FROM bot_secret WHERE bot_id = ?", (bot_id,))
        return {str(name): bytes(sealed) for name, sealed in rows}
    found: dict[str, bytes] = {}
    for name in names:
        row = conn.execute(
            "SELECT sealed FROM bot_secret WHERE bot_id = ? AND name = ?", (bot_id, name)
        ).fetchone()
        if row is not None:
            found[name] = bytes(row[0])
    return found


def secret_bots(conn: sqlite3.Connection) -> list[str]:
    """Every bot id with at least one secret, sorted."""
    rows = conn.execute("SELECT DISTINCT bot_id FROM bot_secret ORDER BY bot_id")
    return [str(bot_id) for (bot_id,) in rows]
