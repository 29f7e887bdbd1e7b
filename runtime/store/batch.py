"""Group commit: concurrent calls of one store operation share one transaction.

While one batch is being written on the store's thread, new calls queue up on the event loop;
when the write finishes they all go in the next batch. One caller alone pays what it paid before;
under load, a hundred callers share one thread hop and (for synced operations) one fsync.

One call that cannot be written never fails the others: when a batch fails, each of its calls
is written again alone, so only the bad one gets the error. ``write_many`` must therefore be
all or nothing (one transaction, rolled back on error), as every store operation batched here is.
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
                await self._write(batch)
        finally:
            self._writing = False

    async def _write(self, batch: list[tuple[A, asyncio.Future[R]]]) -> None:
        """Write a batch and answer its calls; if it fails, write each call again on its own."""
        try:
            results = await self._write_many([item for item, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                _fail(batch, exc)
                return
            for index, call in enumerate(batch):
                try:
                    await self._write([call])
                except BaseException as stopped:  # cancelled: answer the rest, then stop
                    _fail(batch[index:], stopped)
                    raise
            return
        except BaseException as exc:  # cancelled: no call is left waiting
            _fail(batch, exc)
            raise
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)


def _fail(calls: list[tuple[A, asyncio.Future[R]]], exc: BaseException) -> None:
    """Give ``exc`` to every call not answered yet."""
    for _, future in calls:
        if not future.done():
            future.set_exception(exc)
