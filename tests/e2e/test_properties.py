"""Properties under concurrency through a real server: overlapping updates and clicks."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import DEMO_TOKEN
from tests.support.links import mint
from tests.support.server import BotboxServer, hosting
from tests.support.telegram_standin import TelegramStandIn
from tests.support.updates import make_update

COMMANDS = {
    "bot.yaml": "id: tally\ntoken_env: DEMO_BOT_TOKEN\n",
    "count.py": (
        '"""\ncommand: /count\n"""\nBot.setProperty("runs", Bot.getProperty("runs", 0) + 1)\n'
    ),
    "tick.py": (
        '"""\ncommand: tick\n"""\nn = Bot.getProperty("clicks", 0) + 1\n'
        'Bot.setProperty("clicks", n)\nres.json({"n": n})\n'
    ),
    "value.py": '"""\ncommand: value\n"""\nres.json(Bot.getProperty(options))\n',
}


@pytest.fixture(scope="module")
def tally(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BotboxServer]:
    """A server hosting the `tally` bot."""
    root = Path(tmp_path_factory.mktemp("tally"))
    with (
        TelegramStandIn(tokens={DEMO_TOKEN}) as telegram,
        hosting(
            root,
            {"tally": COMMANDS},
            telegram_api=telegram.base_url,
            env={"DEMO_BOT_TOKEN": DEMO_TOKEN},
        ) as server,
    ):
        yield server


def value(server: BotboxServer, name: str) -> object:
    """A bot property, read through a click on the `value` link."""
    url = mint(server.data_dir, "value", bot_id="tally", user_id=None, options=name)
    response = server.client.get(url)
    assert response.status_code == 200
    return response.json()


async def at_once(
    urls: list[str],
    *,
    post: bool = False,
    bodies: list[bytes] | None = None,
    headers: dict[str, str] | None = None,
) -> list[httpx.Response]:
    """Send every request at the same moment (one connection each)."""
    limits = httpx.Limits(max_connections=len(urls))
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        if post:
            assert bodies is not None
            calls = [
                client.post(url, content=body, headers=headers)
                for url, body in zip(urls, bodies, strict=True)
            ]
        else:
            calls = [client.get(u) for u in urls]
        return list(await asyncio.gather(*calls))


_ids = itertools.count(1)


def test_46_overlapping_updates_reading_and_writing_one_property_lose_none(tally):
    """46 /count updates from 46 chats at once (the issue's case): `runs` ends at exactly 46."""
    server = tally
    bodies = [
        make_update(
            update_id=next(_ids), user_id=chat, chat_id=chat, text="/count", bot_token=DEMO_TOKEN
        )
        for chat in range(500, 546)
    ]
    url = f"{server.url}/telegram/tally"
    headers = {
        "Content-Type": "application/json",
        "X-Telegram-Bot-Api-Secret-Token": server.secret("tally"),
    }
    encoded = [json.dumps(body).encode() for body in bodies]
    responses = asyncio.run(at_once([url] * 46, post=True, bodies=encoded, headers=headers))
    assert [r.status_code for r in responses] == [200] * 46
    server.wait_idle(60)
    runs = [r for r in server.logs("tally") if r["command"] == "/count"]
    assert len(runs) == 46 and {r["status"] for r in runs} == {"ok"}
    assert value(server, "runs") == 46


def test_concurrent_clicks_each_see_their_own_count_and_none_is_lost(tally):
    """20 clicks at once of a link that reads, adds one, writes and answers with res.json.

    Every click that answers 200 saw a different count (as if the clicks ran one at a time),
    and the property holds exactly as many counts as clicks succeeded; a click whose count was
    taken meanwhile is re-run before its answer is sent, so at least one re-run is logged.
    """
    server = tally
    urls = [
        server.url + mint(server.data_dir, "tick", bot_id="tally", user_id=7000 + n)
        for n in range(20)
    ]
    responses = asyncio.run(at_once(urls))
    assert {r.status_code for r in responses} <= {200, 500}
    seen = sorted(r.json()["n"] for r in responses if r.status_code == 200)
    assert seen == list(range(1, len(seen) + 1))
    assert value(server, "clicks") == len(seen)
    runs = [r for r in server.logs("tally") if r["command"] == "tick"]
    assert len(runs) == 20
    failed = [r for r in runs if r["status"] != "ok"]
    assert all(r["error"]["type"] == "ConflictError" for r in failed)
    assert len(failed) == 20 - len(seen)
    assert sum(r["retries"] for r in runs) > 0
