"""The app's state: one start opens the parts, one stop closes exactly those."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from runtime.errors import ConfigError, StoreError
from runtime.serverlog import FailureLog
from runtime.settings import Settings
from runtime.store import SqliteStore
from runtime.telegram.client import TelegramClient
from runtime.web.state import AppState, Parts
from sandbox import PoolClosed, WorkerPool
from tests.support.runtime import write_bot

FIXTURES = Path(__file__).parent.parent / "fixtures"
UNUSED_API = "http://127.0.0.1:9"  # never called: these tests make no Bot API call


def settings_for(tmp_path: Path) -> Settings:
    """Settings on a temporary data folder, hosting the bots in ``tmp_path / "bots"``."""
    bots_dir = tmp_path / "bots"
    bots_dir.mkdir(exist_ok=True)
    return Settings(data_dir=tmp_path / "data", bots_dir=bots_dir, demo=False, sandbox_workers=1)


async def test_a_start_that_fails_closes_what_it_had_opened(tmp_path: Path) -> None:
    """An unreadable key ring stops the start; the store and pool it had opened are closed."""
    settings = settings_for(tmp_path)
    settings.keys_file.parent.mkdir(parents=True, exist_ok=True)
    settings.keys_file.write_text("not a key ring")
    store, pool = SqliteStore(settings.database), WorkerPool(1)
    with pytest.raises(ConfigError):
        await AppState.open(settings, Parts(store=store, pool=pool), FailureLog())
    with pytest.raises(StoreError):
        await store.pending_count()
    with pytest.raises(PoolClosed):
        await pool.run("x = 1", tenant="t")


async def test_stop_closes_what_the_start_opened_and_leaves_a_handed_in_client_open(
    tmp_path: Path,
) -> None:
    """After close, store and pool refuse work; a Telegram client passed in is still usable."""
    write_bot(tmp_path / "bots", "hello", {"hello.py": "# command: /hello\n# answer: hi\n"})
    settings = settings_for(tmp_path)
    telegram = TelegramClient(UNUSED_API)
    state = await AppState.open(settings, Parts(telegram=telegram), FailureLog())
    assert state.registry.ids == ["hello"]
    assert (await state.pool.run("x = 1", tenant="t")).ok
    await state.close()
    with pytest.raises(StoreError):
        await state.store.pending_count()
    with pytest.raises(PoolClosed):
        await state.pool.run("x = 1", tenant="t")
    assert state.services.telegram is telegram
    assert not telegram._http.is_closed
    await telegram.close()


async def test_a_broken_bot_fails_alone_and_the_start_goes_on(tmp_path: Path) -> None:
    """A bot folder that does not compile is listed as failed; the bot beside it serves."""
    shutil.copytree(FIXTURES / "badbot", tmp_path / "bots" / "badbot")
    write_bot(tmp_path / "bots", "hello", {"hello.py": "# command: /hello\n# answer: hi\n"})
    state = await AppState.open(settings_for(tmp_path), Parts(), FailureLog())
    try:
        assert state.registry.ids == ["hello"]
        assert state.registry.failed == ["badbot"]
        described = [problem.describe() for problem in state.registry.refused["badbot"]]
        assert any(line.startswith("syntax.py:6: SyntaxError") for line in described)
        assert state.problems() == []  # a failed bot is not a server-wide problem
    finally:
        await state.close()
