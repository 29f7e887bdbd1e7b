"""Two Sanic server processes on one store: one-time links and updates still run once."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import DEMO_TOKEN
from tests.support.links import mint
from tests.support.server import BotboxServer
from tests.support.telegram_standin import TelegramStandIn
from tests.support.updates import make_update


@pytest.fixture(scope="module")
def pair(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[BotboxServer, TelegramStandIn]]:
    """The demo bot served by two server processes (BOTBOX_SERVER_WORKERS=2)."""
    data = Path(tmp_path_factory.mktemp("two-processes"))
    with TelegramStandIn(tokens={DEMO_TOKEN}) as telegram:
        server = BotboxServer(
            data,
            telegram_api=telegram.base_url,
            env={
                "DEMO_BOT_TOKEN": DEMO_TOKEN,
                "BOTBOX_SERVER_WORKERS": "2",
                "BOTBOX_SANDBOX_WORKERS": "1",
            },
        ).start()
        yield server, telegram
        server.close()


def test_a_one_time_link_clicked_at_once_many_times_runs_once(pair):
    """Twenty simultaneous clicks across two processes: one 200, nineteen 410."""
    server, _ = pair
    url = server.url + mint(server.data_dir, "claimReward", user_id=8080, once=True)
    with ThreadPoolExecutor(20) as threads:
        statuses = sorted(threads.map(lambda _: httpx.get(url, timeout=30).status_code, range(20)))
    assert statuses == [200] + [410] * 19


def test_every_update_is_handled_exactly_once(pair):
    """Updates for thirty chats, spread over both processes, are each answered once."""
    server, telegram = pair
    before = len(telegram.calls)
    chats = list(range(9000, 9030))
    for n, chat in enumerate(chats):
        update = make_update(
            update_id=70_000 + n, user_id=chat, chat_id=chat, text="/set", bot_token=DEMO_TOKEN
        )
        assert server.post_update(update).status_code == 200
    calls = telegram.wait_for_calls(before + len(chats), timeout=30)[before:]
    server.wait_idle(timeout=20)
    answered = sorted(
        c.params["chat_id"] for c in telegram.calls[before:] if c.method == "sendMessage"
    )
    assert answered == chats
    assert len(calls) == len(chats)
