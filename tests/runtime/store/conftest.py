"""The store contract suites' fixtures: every implementation in STORE_FACTORIES, opened empty."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from runtime.store import Store
from tests.runtime.store.test_contract import STORE_FACTORIES


@pytest.fixture(params=sorted(STORE_FACTORIES))
def backend(request: pytest.FixtureRequest) -> str:
    """The name of the store implementation under test (every one in the contract suite)."""
    return str(request.param)


@pytest.fixture
async def store(backend: str, tmp_path: Path) -> AsyncIterator[Store]:
    """An opened, empty store of each implementation, closed after the test."""
    opened = STORE_FACTORIES[backend](tmp_path)
    await opened.open()
    yield opened
    await opened.close()
