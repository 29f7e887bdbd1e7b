"""The run log's rows in SQLite, and the JSON encoding every stored value goes through."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from runtime.errors import StoreError
from runtime.store.base import RunRecord
from runtime.store.schema import LIST_RUNS_SQL, RECORD_RUN_SQL, RUN_JSON_FIELDS


def encode(value: object, what: str) -> tuple[str, int]:
    """Return compact JSON text for a value and its size in UTF-8 bytes."""
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        return text, len(text.encode("utf-8"))
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
        raise StoreError(f"{what} is not storable JSON: {exc}") from exc


def run_row(record: RunRecord) -> dict[str, Any]:
    """The run table row of a record (JSON fields encoded)."""
    row: dict[str, Any] = {
        "bot_id": record.bot_id,
        "command": record.command,
        "trigger": record.trigger,
        "user_id": record.user_id,
        "chat_id": record.chat_id,
        "status": record.status,
        "started_at": record.started_at,
        "cpu_seconds": record.cpu_seconds,
        "wall_seconds": record.wall_seconds,
        "output": record.output,
    }
    # Not dataclasses.asdict: it deep-copies calls and extra only to encode them next.
    row["calls"] = encode(list(record.calls), "the run's calls")[0]
    row["error"] = encode(record.error, "the run's error")[0]
    row["extra"] = encode(record.extra, "the run's extra")[0]
    return row


def record_runs(conn: sqlite3.Connection, rows: list[tuple[int, dict[str, Any]]]) -> dict[int, str]:
    """Insert run rows in one transaction; return, by index, the rows refused and why.

    The batch goes in with one ``executemany``; if that fails, the rows go in one by one, each
    in its own savepoint, so one row SQLite cannot hold never loses the others.
    """
    conn.execute("BEGIN")
    try:
        try:
            conn.executemany(RECORD_RUN_SQL, [row for _, row in rows])
            refused: dict[int, str] = {}
        except (sqlite3.Error, OverflowError, UnicodeEncodeError):
            conn.execute("ROLLBACK")
            conn.execute("BEGIN")
            refused = {}
            for index, row in rows:
                conn.execute("SAVEPOINT run_row")
                try:
                    conn.execute(RECORD_RUN_SQL, row)
                except (sqlite3.Error, OverflowError, UnicodeEncodeError) as exc:
                    conn.execute("ROLLBACK TO run_row")
                    refused[index] = f"run record not storable: {exc}"
                conn.execute("RELEASE run_row")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return refused


def record_run(conn: sqlite3.Connection, row: dict[str, Any]) -> int:
    """Insert a run row; return its id."""
    cursor = conn.execute(RECORD_RUN_SQL, row)
    if cursor.lastrowid is None:
        raise StoreError("SQLite returned no id for the recorded run")
    return cursor.lastrowid


def list_runs(
    conn: sqlite3.Connection, bot_id: str, failed_only: bool, limit: int
) -> list[sqlite3.Row]:
    """Select a bot's newest run rows."""
    params = {"bot_id": bot_id, "failed_only": failed_only, "limit": limit}
    cursor = conn.execute(LIST_RUNS_SQL, params)
    cursor.row_factory = sqlite3.Row
    return cursor.fetchall()


def run_record(row: sqlite3.Row) -> RunRecord:
    """Build a RunRecord from a run row."""
    fields = dict(zip(row.keys(), row, strict=True))
    for name in RUN_JSON_FIELDS:
        fields[name] = json.loads(fields[name])
    return RunRecord(**fields | {"calls": tuple(fields["calls"])})
