"""The queue processor: claims updates and scheduled runs from the store and carries them out.

Each server process runs one processor with a few concurrent loops. Items are claimed with a
lease, so several processes (and later machines) can share one queue: a crashed process's items
are picked up again when their lease ends (at-least-once), and a chat's items are handled one at
a time, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from typing import Final

from runtime.errors import NotFound, StoreError
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


def owner_name() -> str:
    """A name for this process that is unique across machines: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


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
        self.owner = owner or owner_name()
        self.lease_seconds = lease_seconds
        self._wake = asyncio.Event()
        self._stopped = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self.handled = 0
        self.in_hand = 0
        """Items claimed by this process and not yet finished or put back."""

    def start(self, *, retention_seconds: float | None = None) -> None:
        """Start the claim loops (and the hourly prune, when a retention is given)."""
        self._tasks = [asyncio.create_task(self._loop(i)) for i in range(self.concurrency)]
        if retention_seconds is not None:
            self._tasks.append(asyncio.create_task(self._prune_loop(retention_seconds)))

    async def _prune_loop(self, retention_seconds: float) -> None:
        """Drop finished queue items and run log entries older than the retention, hourly."""
        while not self._stopping:
            try:
                removed = await self.services.store.prune(self.services.clock() - retention_seconds)
                if removed:
                    logger.info("pruned %d old queue items and run log entries", removed)
            except StoreError:
                logger.exception("pruning the store failed; trying again later")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(PRUNE_EVERY):
                    await self._stopped.wait()

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
        _, pending = await asyncio.wait(self._tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self, index: int) -> None:
        store = self.services.store
        while not self._stopping:
            item = await store.claim(
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
                continue
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
