"""The run log, written behind: runs are recorded in batches, off every request's path.

A run's record is queued at once and written with the others of the next ``interval`` in one
transaction. What is lost on a crash is at most that interval of log lines, never a run's
effects (those are committed before the record is queued). If the store falls far behind, the
oldest queued records are dropped, with a warning, rather than memory growing without bound.
A record the store cannot hold is refused alone (the others of its batch are written) and
counted in :attr:`RunLog.dropped` with a warning.
A failed run is also one short, rate-limited line in the server log (:mod:`runtime.serverlog`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final

from runtime import metrics
from runtime.errors import StoreError
from runtime.serverlog import FailureLog
from runtime.store import RunRecord, Store

logger = logging.getLogger(__name__)

INTERVAL: Final = 0.05
MAX_PENDING: Final = 20_000


class RunLog:
    """Queues run records and writes them in batches."""

    def __init__(
        self,
        store: Store,
        *,
        interval: float = INTERVAL,
        max_pending: int = MAX_PENDING,
        failures: FailureLog | None = None,
    ) -> None:
        self.store = store
        self.failures = failures or FailureLog()
        self.interval = interval
        self.max_pending = max_pending
        self.dropped = 0
        self._pending: list[RunRecord] = []
        self._writing = 0
        self._timer: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        """Records queued or being written, not yet in the store (0: the log is up to date)."""
        return len(self._pending) + self._writing

    def add(self, record: RunRecord) -> None:
        """Queue one record; it is written within ``interval`` seconds."""
        metrics.run_ended(record.bot_id, record.command, record.status, record.wall_seconds)
        if record.status != "ok":
            error = record.error
            kind = error.get("type") if isinstance(error, dict) else None
            self.failures.run_failed(record.bot_id, record.command, record.status, kind)
        self._pending.append(record)
        if len(self._pending) > self.max_pending:
            excess = len(self._pending) - self.max_pending
            del self._pending[:excess]
            self.dropped += excess
            logger.warning("run log: the store is behind; dropped %d old records", excess)
        if self._timer is None or self._timer.done():
            self._timer = asyncio.ensure_future(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.interval)
        await self.flush()

    async def flush(self) -> None:
        """Write every queued record now."""
        while self._pending:
            batch, self._pending = self._pending[:1000], self._pending[1000:]
            self._writing += len(batch)
            try:
                refused = await self.store.record_runs(batch)
            except StoreError:
                logger.exception("run log: %d records could not be written", len(batch))
                continue
            finally:
                self._writing -= len(batch)
            for index, error in refused.items():
                record = batch[index]
                self.dropped += 1
                logger.warning(
                    "run log: a run of bot %s (command %r) could not be stored: %s",
                    record.bot_id,
                    record.command,
                    error,
                )

    async def close(self) -> None:
        """Stop the timer and write what is queued."""
        if self._timer is not None and not self._timer.done():
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
        await self.flush()
