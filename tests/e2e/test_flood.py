"""Flood limits through a real server against a strict Bot API stand-in: sends are paced to
Telegram's limits without spending the run's wall clock, and a 429 holds only its own chat."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import DEMO_TOKEN
from tests.support.server import BotboxServer, hosting
from tests.support.telegram_standin import FLOOD_SLACK, RecordedCall, TelegramStandIn
from tests.support.updates import make_update

BOT = {
    "bot.yaml": "id: pacer\ntoken_env: DEMO_BOT_TOKEN\nlimits:\n  wall_seconds: 3\n",
    "burst.py": '"""\ncommand: /burst\n"""\nfor i in range(5):\n    Bot.sendMessage("n%d" % i)\n',
    "one.py": '"""\ncommand: /one\n"""\nApi.sendMessage(text="hello")\n',
}
TIGHT = {
    "bot.yaml": (
        "id: tight\ntoken_env: DEMO_BOT_TOKEN\nlimits:\n  wall_seconds: 3\n  wait_seconds: 1.5\n"
    ),
    "burst.py": BOT["burst.py"],
}
_ids = itertools.count(1)


@pytest.fixture(scope="module")
def strict() -> Iterator[TelegramStandIn]:
    """A stand-in that answers 429 to any send past Telegram's limits."""
    with TelegramStandIn(tokens={DEMO_TOKEN}, strict_flood=True) as standin:
        yield standin


@pytest.fixture(scope="module")
def server(
    strict: TelegramStandIn, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BotboxServer]:
    """A server hosting `pacer` (flood limits on, 3 s wall clock) and `tight` (1.5 s of waits)."""
    root = Path(tmp_path_factory.mktemp("flood"))
    with hosting(
        root,
        {"pacer": BOT, "tight": TIGHT},
        telegram_api=strict.base_url,
        env={"DEMO_BOT_TOKEN": DEMO_TOKEN},
    ) as running:
        yield running


def send(server: BotboxServer, bot_id: str, chat: int, text: str) -> None:
    """Post one private-chat message from user ``chat``."""
    update = make_update(update_id=next(_ids), user_id=chat, chat_id=chat, text=text)
    assert server.post_update(update, bot_id).status_code == 200


def sends_to(
    telegram: TelegramStandIn, chat: int, count: int, timeout: float
) -> list[RecordedCall]:
    """Wait for ``count`` successful sendMessage calls to ``chat``; return every call to it."""
    deadline = time.monotonic() + timeout
    while True:
        calls = [c for c in telegram.calls_to("sendMessage") if c.params.get("chat_id") == chat]
        if sum(c.error_code is None for c in calls) >= count:
            return calls
        assert time.monotonic() < deadline, f"{len(calls)} sends to {chat} after {timeout} s"
        time.sleep(0.02)


def run_of(server: BotboxServer, bot_id: str, chat: int) -> dict[str, object]:
    """The newest run log record for ``chat``."""
    return next(r for r in server.logs(bot_id) if r["chat_id"] == chat)


def test_five_sends_to_one_chat_pass_a_second_apart_past_the_wall_clock(
    server: BotboxServer, strict: TelegramStandIn
) -> None:
    """Five messages in a run with a 3 s wall clock: all sent, not one 429, a second apart."""
    send(server, "pacer", 101, "/burst")
    calls = sends_to(strict, 101, 5, timeout=20)
    assert [c.error_code for c in calls] == [None] * 5
    gaps = [b.at - a.at for a, b in itertools.pairwise(calls)]
    assert min(gaps) >= 1 - FLOOD_SLACK
    record = run_of(server, "pacer", 101)
    assert record["status"] == "ok", record
    assert record["wall_seconds"] >= 4  # more than the 3 s limit: the waits were not counted


def test_a_429_for_one_chat_does_not_hold_another(
    server: BotboxServer, strict: TelegramStandIn
) -> None:
    """Chat 201 gets a 429 (retry after 3 s); chat 202's message goes out meanwhile, and 201's
    is sent again once its pause ends."""
    strict.fail_next("sendMessage", retry_after=3, chat_id=201)
    send(server, "pacer", 201, "/one")
    send(server, "pacer", 202, "/one")
    (other,) = sends_to(strict, 202, 1, timeout=10)
    refused, retried = sends_to(strict, 201, 1, timeout=10)
    assert refused.error_code == 429 and retried.error_code is None
    assert other.at < refused.at + 2  # not held for chat 201's three seconds
    assert retried.at - refused.at >= 3 - FLOOD_SLACK
    assert run_of(server, "pacer", 201)["status"] == "ok"


def test_waits_past_wait_seconds_end_the_run_as_a_limit(
    server: BotboxServer, strict: TelegramStandIn
) -> None:
    """With 1.5 s of paced waits allowed, the third message (2 s away) ends the run."""
    send(server, "tight", 301, "/burst")
    calls = sends_to(strict, 301, 2, timeout=10)
    server.wait_idle()
    record = run_of(server, "tight", 301)
    assert record["status"] == "limit_exceeded", record
    assert record["error"] == {
        "type": "LimitExceeded",
        "message": "wait_seconds limit of 1.5 exceeded",
    }
    refused = record["calls"][-1]
    assert "flood limits would hold sendMessage longer than" in refused["error"]
    assert len([c for c in strict.calls_to("sendMessage") if c.params["chat_id"] == 301]) == 2
    assert [c.error_code for c in calls] == [None, None]
