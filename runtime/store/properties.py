"""SQL for properties, used by :class:`SqliteStore`: versioned reads, listing, and writes.

Every property row carries a ``version``. Versions come from one clock per bot
(``property_clock``), bumped once by every commit that writes the bot's properties, so a
property deleted and set again never gets back a version it had before: a run that read
version ``v`` can tell, at commit, whether anything touched the property since. A property that
is not set reads as version 0.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Sequence
from typing import Final

from runtime.errors import ConflictError, NotANumber, QuotaExceeded

MIGRATION: Final = (
    "ALTER TABLE property ADD COLUMN version INTEGER NOT NULL DEFAULT 1",
    """CREATE TABLE property_clock (
        bot_id TEXT PRIMARY KEY,
        version INTEGER NOT NULL  -- the version the bot's last property commit wrote
    )""",
    # Rows that exist already have version 1; the next commit of their bot writes 2.
    "INSERT INTO property_clock (bot_id, version) SELECT bot_id, 1 FROM property GROUP BY bot_id",
)
"""Schema step: property versions and the per-bot clock they come from."""

PropertyRow = tuple[str, str, "str | None", int, "int | float | None"]
"""A property write as the store keeps it: scope, name, JSON text (None: delete or add), size,
and the number to add (None unless ``incProperty``)."""

Expectation = tuple[str, str, int]
"""A version a commit requires: scope, name, version (0: not set)."""


def read(conn: sqlite3.Connection, bot_id: str, scope: str, name: str) -> tuple[str | None, int]:
    """Return a property's JSON text (None when not set) and its version (0 when not set)."""
    row = conn.execute(
        "SELECT value, version FROM property WHERE bot_id = ? AND scope = ? AND name = ?",
        (bot_id, scope, name),
    ).fetchone()
    return (None, 0) if row is None else (str(row[0]), int(row[1]))


def names(
    conn: sqlite3.Connection, bot_id: str, scope: str, prefix: str, after: str, limit: int
) -> list[str]:
    """Return up to ``limit`` names of a scope starting with ``prefix``, after ``after``, sorted.

    Names compare by code point (SQLite's BINARY collation), prefixes by ``substr``, so no
    character of a name or prefix is special.
    """
    rows = conn.execute(
        "SELECT name FROM property WHERE bot_id = ? AND scope = ? AND name > ?"
        " AND substr(name, 1, ?) = ? ORDER BY name LIMIT ?",
        (bot_id, scope, after, len(prefix), prefix, limit),
    ).fetchall()
    return [str(row[0]) for row in rows]


def check(conn: sqlite3.Connection, bot_id: str, expected: Sequence[Expectation]) -> None:
    """Raise ConflictError unless every property still has the version the run saw."""
    for scope, name, version in expected:
        now = read(conn, bot_id, scope, name)[1]
        if now != version:
            raise ConflictError(scope, name, version, now)


def bot_data_bytes(conn: sqlite3.Connection, bot_id: str) -> int:
    """Sum the sizes of a bot's properties."""
    row = conn.execute(
        "SELECT COALESCE(SUM(size), 0) FROM property WHERE bot_id = ?", (bot_id,)
    ).fetchone()
    return int(row[0])


def _added(text: str | None, name: str, add: int | float) -> tuple[str, int]:
    """The JSON text and size of a property's value plus ``add``; NotANumber if it is none."""
    current = 0 if text is None else json.loads(text)
    if type(current) not in (int, float):
        raise NotANumber(f"incProperty: property {name!r} holds {text}, not a number")
    total = current + add
    if type(total) is float and not math.isfinite(total):
        raise NotANumber(f"incProperty: property {name!r} would no longer be a finite number")
    value = json.dumps(total, separators=(",", ":"))
    return value, len(value.encode()) + len(name.encode())


def apply(
    conn: sqlite3.Connection, bot_id: str, rows: Sequence[PropertyRow], max_bot_bytes: int
) -> None:
    """Apply the writes in order at the bot's next version; QuotaExceeded if they grew it past
    its quota, NotANumber for an add to a value that is not a number.

    The caller owns the transaction (and rolls it back on the error).
    """
    before = bot_data_bytes(conn, bot_id)
    (version,) = conn.execute(
        "INSERT INTO property_clock (bot_id, version) VALUES (?, 1) ON CONFLICT (bot_id)"
        " DO UPDATE SET version = version + 1 RETURNING version",
        (bot_id,),
    ).fetchone()
    for scope, name, given, given_size, add in rows:
        value, size = given, given_size
        if add is not None:
            value, size = _added(read(conn, bot_id, scope, name)[0], name, add)
        if value is None:
            conn.execute(
                "DELETE FROM property WHERE bot_id = ? AND scope = ? AND name = ?",
                (bot_id, scope, name),
            )
        else:
            conn.execute(
                "INSERT INTO property (bot_id, scope, name, value, size, version)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (bot_id, scope, name)"
                " DO UPDATE SET value = excluded.value, size = excluded.size,"
                " version = excluded.version",
                (bot_id, scope, name, value, size, version),
            )
    after = bot_data_bytes(conn, bot_id)
    if after > max_bot_bytes and after > before:
        raise QuotaExceeded(
            f"bot {bot_id!r} data would take {after} bytes, over its "
            f"max_bot_bytes quota of {max_bot_bytes} bytes"
        )
