"""The run log, written behind: what is pending until the store has it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from runtime.runs.runlog import RunLog
from runtime.store import RunRecord, SqliteStore
from tests.support.runtime import wait_until


class GatedStore(SqliteStore):
    """A store whose run-log writes wait for ``gate`` (set: they go through at once)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.gate = asyncio.Event()
        self.writing = asyncio.Event()

    async def record_runs(self, records: Sequence[RunRecord]) -> None:
        """Say a write started, wait for the gate, then write."""
        self.writing.set()
        await self.gate.wait()
        await super().record_runs(records)


def record(n: int) -> RunRecord:
    """A finished run of bot ``b``."""
    return RunRecord("b", f"/c{n}", "update", 1, 1, "ok", 1.0, 0.0, 0.0)


async def test_pending_counts_records_until_the_store_has_them(tmp_path: Path) -> None:
    """Queued and in-flight records are pending; 0 means every added record is in the store."""
    store = GatedStore(tmp_path / "log.sqlite3")
    await store.open()
    runlog = RunLog(store, interval=0.01)
    try:
        runlog.add(record(1))
        runlog.add(record(2))
        assert runlog.pending == 2
        await asyncio.wait_for(store.writing.wait(), timeout=5)
        assert runlog.pending == 2  # taken off the queue, not yet written
        store.gate.set()
        await wait_until(lambda: runlog.pending == 0, timeout=5, what="the batch written")
        assert [r.command for r in await store.list_runs("b")] == ["/c2", "/c1"]
    finally:
        store.gate.set()
        await runlog.close()
        await store.close()
