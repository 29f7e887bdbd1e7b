"""Fixtures shared by every test: one warm worker pool for the whole session."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from sandbox import WorkerPool


@pytest_asyncio.fixture(scope="session")
async def pool() -> AsyncIterator[WorkerPool]:
    """A real two-worker pool, shared by tests that do not break it on purpose."""
    async with WorkerPool(2) as shared:
        yield shared
