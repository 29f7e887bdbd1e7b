"""Helpers for sandbox tests."""

from __future__ import annotations

import textwrap

import pytest

from sandbox import RunResult, WorkerPool


class Runner:
    """Runs dedented source through a pool: ``await runner("print(1)")``."""

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool

    async def __call__(self, source: str, **kwargs: object) -> RunResult:
        return await self.pool.run(textwrap.dedent(source), **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def run(pool: WorkerPool) -> Runner:
    """Run a script in the shared pool."""
    return Runner(pool)
