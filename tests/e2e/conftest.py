"""End-to-end fixtures: a real server process, a real SQLite file, a Bot API stand-in."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import BotboxServer
from tests.support.telegram_standin import TelegramStandIn

DEMO_TOKEN = "123456789:AAFakeDemoTokenForTestsOnly_abcdefghijk"


@pytest.fixture(scope="module")
def telegram() -> Iterator[TelegramStandIn]:
    """A Telegram Bot API stand-in that accepts the demo bot's token."""
    with TelegramStandIn(tokens={DEMO_TOKEN}) as standin:
        yield standin


@pytest.fixture(scope="module")
def server(
    telegram: TelegramStandIn,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[BotboxServer]:
    """``python run.py serve`` with the demo bot, talking to the stand-in."""
    data = tmp_path_factory.mktemp("botbox-data")
    running = BotboxServer(
        Path(data), telegram_api=telegram.base_url, env={"DEMO_BOT_TOKEN": DEMO_TOKEN}
    ).start()
    yield running
    running.close()


_ids = itertools.count(1000)


@pytest.fixture
def chat_id() -> int:
    """A chat id no other test uses (flood limits are per chat)."""
    return next(_ids)


@pytest.fixture
def update_ids() -> Iterator[int]:
    """Fresh update ids."""
    return itertools.count(next(_ids) * 1000)
