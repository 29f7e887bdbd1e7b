"""The web layer in process: the app from ``create_app``, driven over ASGI by httpx.

No socket and no subprocess: requests go through httpx's ``ASGITransport`` into the Sanic app,
whose start and stop run through the ASGI lifespan protocol, as under an ASGI server. The parts
are injected through ``Parts``: a temporary SQLite store, a small real worker pool (one per test
module, closed by the app's stop), and a Telegram client whose transport answers from the Bot
API stand-in's handler in a thread (``stub_transport``), so no Bot API call leaves the process.
Start one app per test module (a module-scoped fixture around :func:`serve`): a start forks the
pool's workers, so it costs a second; the tests of a module then take milliseconds each.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sanic import Sanic

from runtime.settings import Settings
from runtime.signing.links import make_link
from runtime.store import RunRecord, SqliteStore
from runtime.telegram.client import TelegramClient
from runtime.web.app import create_app
from runtime.web.state import App, AppState, Parts
from sandbox import WorkerPool
from tests.support.origin import LOOPBACK_NETWORKS
from tests.support.runtime import TOKEN, wait_until, write_bot
from tests.support.telegram_standin import TelegramStandIn

Sanic.test_mode = True  # several apps named "botbox" in one process, one per test module
BASE_URL = "http://botbox.test"


def stub_transport(standin: TelegramStandIn) -> httpx.MockTransport:
    """An httpx transport answering Bot API calls from the stand-in's handler, off the loop."""

    async def answer(request: httpx.Request) -> httpx.Response:
        content_type = request.headers.get("content-type", "")
        status, body = await asyncio.to_thread(
            standin.handle, request.method, request.url.raw_path.decode(), content_type,
            request.content,
        )  # fmt: skip
        return httpx.Response(status, content=body, headers={"content-type": "application/json"})

    return httpx.MockTransport(answer)


@asynccontextmanager
async def lifespan(app: App) -> AsyncIterator[None]:
    """Run the app's ASGI start (``before_server_start``) and, on exit, its stop."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def send(message: dict[str, Any]) -> None:
        await outbox.put(message)

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    task = asyncio.create_task(app(scope, inbox.get, send))  # type: ignore[arg-type]
    await inbox.put({"type": "lifespan.startup"})
    started = await asyncio.wait_for(outbox.get(), timeout=60)
    if started["type"] != "lifespan.startup.complete":
        task.cancel()
        raise RuntimeError(f"the app did not start: {started.get('message')}")
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(outbox.get(), timeout=60)
        await asyncio.wait_for(task, timeout=60)


@dataclass
class Web:
    """A started app, its HTTP client, and the Telegram stand-in behind its client."""

    app: App
    http: httpx.AsyncClient
    telegram: TelegramStandIn

    @property
    def state(self) -> AppState:
        """The started app's state."""
        return self.app.ctx.running

    def link(self, bot_id: str, command: str, *, user_id: int | None = 7, **args: Any) -> str:
        """A link signed by the app's own keys, as a path and query (``now`` is the real clock)."""
        bot = self.state.registry.get(bot_id)
        made = make_link(command, user_id=user_id, now=self.state.services.clock(), **args)
        return self.state.services.mint(bot, made).removeprefix(BASE_URL)

    async def runs(self, bot_id: str, n: int = 1) -> list[RunRecord]:
        """The bot's newest ``n`` runs from the run log (written behind: flushed first)."""
        await self.state.services.runlog.flush()
        return await self.state.store.list_runs(bot_id, limit=n)

    async def pending(self, bot_id: str) -> int:
        """The bot's unfinished scheduled runs."""
        return await self.state.store.pending_count(bot_id, kind="run")


def unconfigured(settings: Settings, parts: Parts) -> App:
    """``create_app(settings, parts=parts)``, undoing what it did to this process's logging.

    ``create_app`` configures logging for a server process (level, a Redactor on every root
    handler); in a test process that would reach pytest's own capture handlers and outlive the
    app, changing what later tests see.
    """
    root = logging.getLogger()
    level = root.level
    filters = {handler: list(handler.filters) for handler in root.handlers}
    try:
        return create_app(settings, parts=parts)
    finally:
        root.setLevel(level)
        for handler, kept in filters.items():
            handler.filters[:] = kept


@asynccontextmanager
async def serve(
    tmp_path: Path, bots: Mapping[str, Mapping[str, str]], *, yaml: Mapping[str, str] = {}
) -> AsyncIterator[Web]:
    """Start an app hosting ``bots`` (id to command files) on fresh parts; stop it on exit."""
    for bot_id, files in bots.items():
        write_bot(tmp_path / "bots", bot_id, files, yaml=yaml.get(bot_id, ""))
    settings = Settings(
        data_dir=tmp_path / "data",
        bots_dir=tmp_path / "bots",
        demo=False,
        public_url=BASE_URL,
        sandbox_workers=1,
        http_private_networks=LOOPBACK_NETWORKS,
    )
    with TelegramStandIn(tokens={TOKEN}) as standin:
        telegram = TelegramClient("http://telegram.test", transport=stub_transport(standin))
        parts = Parts(
            store=SqliteStore(tmp_path / "web.sqlite3"),
            telegram=telegram,
            pool=WorkerPool(2),
            env={"TEST_TOKEN": TOKEN},
        )
        app = unconfigured(settings, parts)
        try:
            async with lifespan(app):
                transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
                async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
                    yield Web(app, http, standin)
        finally:
            await telegram.close()


__all__ = ["BASE_URL", "Web", "lifespan", "serve", "stub_transport", "wait_until"]
