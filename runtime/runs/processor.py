"""The queue processor: claims updates and scheduled runs from the store and carries them out.

Each server process runs one processor with a few concurrent loops. Items are claimed with a
lease, so several processes (and later machines) can share one queue: a chat's items are handled
one at a time, in order, and a crashed process's items are picked up again (at least once) as
soon as its instance is found gone (:mod:`runtime.runs.instance`), or its lease ends.

No loop dies of an error: a failed claim, finish or prune is logged, the loop waits (doubling
up to :data:`MAX_BACKOFF`) and goes on; while it waits, :meth:`Processor.problems` names it, and
``/health`` answers not OK with that reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final

from runtime.errors import NotFound, StoreError
from runtime.runs.instance import Heartbeat, this_instance
from runtime.runs.pipeline import Runner
from runtime.runs.registry import Registry
from runtime.runs.session import Services
from runtime.store import QueuedItem
from sandbox import Overloaded

logger = logging.getLogger(__name__)

LEASE_SECONDS: Final = 120.0
IDLE_POLL: Final = 0.5
MAX_ATTEMPTS: Final = 5
PRUNE_EVERY: Final = 3600.0
FIRST_BACKOFF: Final = 0.5
MAX_BACKOFF: Final = 10.0


def backoff(failures: int) -> float:
    """Seconds to wait after ``failures`` failures in a row: 0.5, 1, 2, ... up to 10."""
    return float(min(FIRST_BACKOFF * 2.0 ** (failures - 1), MAX_BACKOFF))


class Processor:
    """Claims ready queue items and hands them to the runner."""

    def __init__(
        self,
        registry: Registry,
        services: Services,
        runner: Runner,
        *,
        concurrency: int = 4,
        owner: str | None = None,
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        self.registry = registry
        self.services = services
        self.runner = runner
        self.concurrency = concurrency
        self.instance = this_instance(owner)
        self.owner = self.instance.instance_id
        self.lease_seconds = lease_seconds
        self.heartbeat = Heartbeat(
            services.store, self.instance, services.clock, on_reaped=self.wake
        )
        self._wake = asyncio.Event()
        self._stopped = asyncio.Event()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._down: dict[str, str] = {}
        self._stopping = False
        self.handled = 0
        self.in_hand = 0
        """Items claimed by this process and not yet finished or put back."""

    def start(self, *, retention_seconds: float | None = None) -> None:
        """Start the heartbeat, the claim loops, and the hourly prune when a retention is given."""
        self.heartbeat.start()
        for i in range(self.concurrency):
            self._tasks[f"processor loop {i}"] = asyncio.create_task(
                self._loop(f"processor loop {i}")
            )
        if retention_seconds is not None:
            task = asyncio.create_task(self._prune_loop(retention_seconds))
            self._tasks["retention loop"] = task

    def problems(self) -> list[str]:
        """Why a loop is down right now (failing and backing off, or ended), one line each."""
        found = [f"{name}: {reason}" for name, reason in sorted(self._down.items())]
        for name, task in sorted(self._tasks.items()):
            if task.done() and not self._stopping:
                found.append(f"{name} ended")
        if self.heartbeat.problem is not None:
            found.append(self.heartbeat.problem)
        elif self._tasks and not self.heartbeat.running and not self._stopping:
            found.append("heartbeat ended")
        return found

    async def _pause(self, seconds: float) -> None:
        """Wait ``seconds``, or less if the processor stops."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopped.wait()

    async def _prune_loop(self, retention_seconds: float) -> None:
        """Drop finished queue items and run log entries older than the retention, hourly."""
        failures = 0
        while not self._stopping:
            try:
                removed = await self.services.store.prune(self.services.clock() - retention_seconds)
                if removed:
                    logger.info("pruned %d old queue items and run log entries", removed)
            except Exception as exc:
                failures += 1
                self._fail("retention loop", exc)
                await self._pause(backoff(failures))
                continue
            failures = 0
            self._down.pop("retention loop", None)
            await self._pause(PRUNE_EVERY)

    def _fail(self, name: str, exc: Exception) -> None:
        """Record (and log, once per outage) why a loop is backing off."""
        if name not in self._down:
            if isinstance(exc, StoreError):
                logger.warning("%s: %s; backing off", name, exc)
            else:
                logger.exception("%s failed; backing off", name)
        self._down[name] = f"{type(exc).__name__}: {exc}"

    def wake(self) -> None:
        """Tell the loops that something was enqueued."""
        self._wake.set()

    async def stop(self, timeout: float = 15.0) -> None:
        """Stop claiming; let items in hand finish (up to ``timeout``), then cancel."""
        self._stopping = True
        self._stopped.set()
        self._wake.set()
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks.values(), timeout=timeout)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.heartbeat.stop()  # after the last finish: its leases are free at once

    async def _loop(self, name: str) -> None:
        """Claim and handle items until stopped; back off on any error, never end early."""
        failures = 0
        while not self._stopping:
            try:
                await self._step()
            except Exception as exc:
                failures += 1
                self._fail(name, exc)
                await self._pause(backoff(failures))
                continue
            if failures:
                failures = 0
                self._down.pop(name, None)
                logger.info("%s: working again", name)

    async def _step(self) -> None:
        """Claim one item and handle it, or wait a little for one."""
        item = await self.services.store.claim(
            self.owner,
            now=self.services.clock(),
            lease_seconds=self.lease_seconds,
            bot_ids=self.registry.ids,
        )
        if item is None:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(IDLE_POLL):
                    await self._wake.wait()
            return
        self.in_hand += 1
        try:
            await self._handle(item)
        finally:
            self.in_hand -= 1

    async def _handle(self, item: QueuedItem) -> None:
        store = self.services.store
        try:
            bot = self.registry.get(item.bot_id)
            await self.runner.handle_item(bot, item)
        except Overloaded as exc:
            await store.retry(item, self.owner, run_after=self.services.clock() + exc.retry_after)
            return
        except NotFound:
            logger.warning("dropping a queue item of unknown bot %s", item.bot_id)
            await store.finish(item, self.owner, failed=True)
            return
        except Exception as exc:
            self.services.runlog.failures.unexpected(
                f"bot {item.bot_id}: queue item {item.seq} (attempt {item.attempts})", exc
            )
            if item.attempts < MAX_ATTEMPTS:
                await store.retry(
                    item, self.owner, run_after=self.services.clock() + 2.0**item.attempts
                )
            else:
                await store.finish(item, self.owner, failed=True)
            return
        self.handled += 1
        await store.finish(item, self.owner)
        self._wake.set()
