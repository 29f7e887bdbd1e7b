"""Group commit: concurrent calls of one store operation share one transaction.

While one batch is being written on the store's thread, new calls queue up on the event loop;
when the write finishes they all go in the next batch. One caller alone pays what it paid before;
under load, a hundred callers share one thread hop and (for synced operations) one fsync.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

A = TypeVar("A")
R = TypeVar("R")


class Batcher(Generic[A, R]):
    """Collects calls and hands them, as lists, to ``write_many`` (one call per batch)."""

    def __init__(
        self, write_many: Callable[[list[A]], Awaitable[list[R]]], *, max_batch: int = 500
    ) -> None:
        self._write_many = write_many
        self._max_batch = max_batch
        self._pending: list[tuple[A, asyncio.Future[R]]] = []
        self._writing = False
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: A) -> R:
        """Add one call to the next batch and wait for its own result."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if not self._writing:
            self._writing = True
            self._task = asyncio.ensure_future(self._drain())
        return await future

    async def wait(self) -> None:
        """Wait until every call submitted so far has been written."""
        while self._writing and self._task is not None:
            await asyncio.shield(self._task)

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                try:
                    results = await self._write_many([item for item, _ in batch])
                except BaseException as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._writing = False
