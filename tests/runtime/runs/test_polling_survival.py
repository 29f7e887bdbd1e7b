"""Long polling in process: updates enqueued and confirmed, errors survived (loop survival)."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import httpx
import pytest

from runtime.runs import polling
from runtime.runs.polling import Poller
from runtime.telegram.client import TelegramClient
from sandbox import WorkerPool
from tests.support.runtime import TOKEN, Hosted, hosted, wait_until, write_bot
from tests.support.updates import make_update

PING = '"""\ncommand: /ping\n"""\nBot.sendMessage("pong")\n'


def update(update_id: int, text: str = "/ping") -> dict[str, object]:
    """A private text message from user 3."""
    return make_update(update_id=update_id, user_id=3, chat_id=3, text=text, bot_token=TOKEN)


async def queued(lab: Hosted) -> int:
    """The updates stored for bot ``poll``, handled or not."""
    return await lab.store.pending_count("poll", kind="update")


async def test_poll_once_enqueues_good_updates_skips_bad_ones_and_moves_the_offset(
    pool: WorkerPool, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two good updates are stored, a malformed one between them is skipped with a warning."""
    folder = write_bot(tmp_path / "bots", "poll", {"ping.py": PING})
    async with hosted(pool, tmp_path, [folder]) as lab:
        bot = lab.registry.get("poll")
        poller = Poller(lab.registry, lab.services, lab.processor)
        lab.telegram.push_update(TOKEN, update(10))
        lab.telegram.push_update(TOKEN, {"update_id": 11, "message": "not an object"})
        lab.telegram.push_update(TOKEN, update(12))
        with caplog.at_level(logging.WARNING, logger="runtime.runs.polling"):
            offset = await poller.poll_once(bot, None, 0)
        assert offset == 13
        assert await queued(lab) == 2
        assert caplog.messages == [
            "bot poll: skipping a malformed update: update 11: message must be an object, "
            "not a string"
        ]
        assert await poller.poll_once(bot, offset, 0) == 13
        assert lab.telegram.pending_updates(TOKEN) == []


async def test_the_poller_survives_telegram_refusals_and_answers_the_update(
    pool: WorkerPool, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A failed deleteWebhook is logged, a 429 on getUpdates waits, then the update is answered."""
    folder = write_bot(tmp_path / "bots", "poll", {"ping.py": PING})
    async with hosted(pool, tmp_path, [folder]) as lab:
        lab.telegram.fail_next("deleteWebhook", 500, "Internal Server Error")
        lab.telegram.fail_next("getUpdates", 429, retry_after=1)
        lab.telegram.push_update(TOKEN, update(20))
        poller = Poller(lab.registry, lab.services, lab.processor)
        lab.processor.start()
        with caplog.at_level(logging.WARNING, logger="runtime.runs.polling"):
            poller.start()
            try:
                await wait_until(
                    lambda: lab.telegram.calls_to("sendMessage"), timeout=10, what="the reply"
                )
            finally:
                await poller.stop()
        assert lab.telegram.calls_to("sendMessage")[0].params["text"] == "pong"
        assert caplog.messages[0].startswith("bot poll: deleteWebhook failed: ")


async def test_the_poller_survives_a_broken_connection(
    pool: WorkerPool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A transport error is logged once per outage and polling starts again after the backoff."""
    monkeypatch.setattr(polling, "ERROR_BACKOFF", 0.05)
    folder = write_bot(tmp_path / "bots", "poll", {"ping.py": PING})
    async with hosted(pool, tmp_path, [folder]) as lab:
        lab.telegram.push_update(TOKEN, update(30))
        broken = {"left": 2}
        real = httpx.AsyncHTTPTransport()

        async def flaky(request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("/getUpdates") and broken["left"]:
                broken["left"] -= 1
                raise httpx.ConnectError("connection refused", request=request)
            response = await real.handle_async_request(request)
            await response.aread()
            return httpx.Response(response.status_code, content=response.content)

        client = TelegramClient(lab.telegram.base_url, transport=httpx.MockTransport(flaky))
        services = dataclasses.replace(lab.services, telegram=client)
        poller = Poller(lab.registry, services, lab.processor)
        with caplog.at_level(logging.WARNING, logger="runtime.runs.polling"):
            poller.start()
            try:
                await wait_until(lambda: queued(lab), timeout=10, what="the update to be stored")
            finally:
                await poller.stop()
        await client.close()
        await real.aclose()
        assert broken["left"] == 0
        failed = [m for m in caplog.messages if m.startswith("bot poll: polling failed: ")]
        assert len(failed) == 1, caplog.messages  # two failures in a row: one outage, one line
