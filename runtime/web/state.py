"""The application's typed state: what :func:`~runtime.web.app.create_app` is given
(:class:`AppContext`, the app's ``ctx``) and what a started server holds (:class:`AppState`).

:meth:`AppState.open` is the one start and :meth:`AppState.close` the one stop: every part the
start opened is closed, in reverse order, and only those. A start that fails halfway closes
what it had opened before it raises.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from types import SimpleNamespace

from sanic import Request, Sanic
from sanic.config import Config

from runtime.outbound.broker import Broker
from runtime.runs.deployments import Deployments
from runtime.runs.pipeline import Runner
from runtime.runs.polling import Poller
from runtime.runs.processor import Processor
from runtime.runs.registry import Registry
from runtime.runs.reload import FolderSync, LiveSync
from runtime.runs.runlog import RunLog
from runtime.runs.scheduler import Scheduler
from runtime.runs.secrets import BotSecrets
from runtime.runs.session import Services
from runtime.serverlog import FailureLog
from runtime.settings import Settings
from runtime.signing.keys import KeyFile, load_master_key
from runtime.signing.sealing import SecretBox
from runtime.store import SqliteStore, Store
from runtime.telegram.client import TelegramClient
from sandbox import WorkerPool

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Parts:
    """Pre-built parts to use instead of the ones :func:`create_app` would build."""

    store: Store | None = None
    telegram: TelegramClient | None = None
    pool: WorkerPool | None = None
    env: dict[str, str] = field(default_factory=dict)
    poll: bool = False


@dataclass(slots=True)
class AppState:
    """What a started server process holds; built by :meth:`open`, closed by :meth:`close`."""

    store: Store
    pool: WorkerPool
    registry: Registry
    services: Services
    runner: Runner
    processor: Processor
    poller: Poller | None
    _opened: AsyncExitStack
    deployments: Deployments
    live: LiveSync
    folders: FolderSync
    scheduler: Scheduler | None = None

    def problems(self) -> list[str]:
        """Server-wide problems right now (``/health`` answers 503 while there is one)."""
        found = self.processor.problems() + self.live.problems() + self.folders.problems()
        if self.scheduler is not None:
            found += self.scheduler.problems()
        if self.poller is not None:
            found += self.poller.problems()
        return found

    @classmethod
    async def open(cls, settings: Settings, parts: Parts, failures: FailureLog) -> AppState:
        """Open the store, start the sandbox pool, load the bots, start processing."""
        master_key = load_master_key(settings.key_file)
        async with AsyncExitStack() as opened:
            store = parts.store or SqliteStore(
                settings.database, synchronous=settings.sqlite_synchronous
            )
            await store.open()
            opened.push_async_callback(store.close)
            telegram = parts.telegram or TelegramClient(settings.telegram_api)
            if parts.telegram is None:  # a client handed in is its owner's to close
                opened.push_async_callback(telegram.close)
            runlog = RunLog(store, failures=failures)
            opened.push_async_callback(runlog.close)
            pool = parts.pool or WorkerPool(
                settings.sandbox_workers or None,
                max_workers=settings.sandbox_max_workers or None,
                queue_size=settings.sandbox_queue or None,
                file_budget_bytes=settings.file_budget_mb * 1024 * 1024,
            )
            await pool.start()
            opened.push_async_callback(pool.close)
            demo = settings.demo_dir if settings.demo else None
            # Folder mode: every folder is deployed into the store (a broken one is recorded as
            # refused, never stops the start); then this process serves what the store says.
            deployments = Deployments(store)
            folders = FolderSync(deployments, settings.bots_dir, demo)
            await folders.sync()
            registry = Registry()
            keys = KeyFile(settings.keys_file)
            keys.load()
            live = LiveSync(
                store,
                registry,
                env=parts.env,
                master_key=master_key,
                cache=pool.cache,
                keys=keys,
            )
            await live.refresh()
            services = Services(
                pool,
                store,
                telegram,
                keys,
                settings.base_url,
                runlog,
                outbound=Broker(opened=settings.http_private_networks),
                secrets=BotSecrets(store, SecretBox(master_key)),
            )
            opened.push_async_callback(services.outbound.close)
            runner = Runner(services)
            processor = Processor(
                registry,
                services,
                runner,
                concurrency=max(2, pool.size * 2),
                lease_seconds=settings.lease_seconds,
            )
            processor.start(retention_seconds=settings.retention_days * 86400)
            opened.push_async_callback(processor.stop)
            poller = Poller(registry, services, processor) if parts.poll else None
            if poller is not None:
                poller.start()
                opened.push_async_callback(poller.stop)
            live.on_change = processor.wake if poller is None else _both(processor, poller)
            live.start()
            opened.push_async_callback(live.stop)
            folders.start(live.refresh)
            opened.push_async_callback(folders.stop)
            scheduler = Scheduler(
                registry,
                store,
                services.clock,
                tick=settings.schedule_tick,
                on_enqueue=processor.wake,
            )
            scheduler.start()
            opened.push_async_callback(scheduler.stop)
            state = cls(
                store,
                pool,
                registry,
                services,
                runner,
                processor,
                poller,
                opened.pop_all(),
                deployments,
                live,
                folders,
                scheduler,
            )
        logger.info("botbox serving %d bot(s): %s", len(registry), ", ".join(registry.ids))
        for bot_id in registry.failed:
            logger.error("bot %s failed to load; every other bot serves", bot_id)
        return state

    async def close(self) -> None:
        """Stop in reverse order: polling, processing, pool, run log, Telegram, store."""
        await self._opened.aclose()


def _both(processor: Processor, poller: Poller) -> Callable[[], None]:
    """After a change of what serves: wake the claim loops and follow it in the poller."""

    def changed() -> None:
        processor.wake()
        poller.refresh()

    return changed


@dataclass(slots=True)
class AppContext:
    """The app's ``ctx``: its settings and parts from the start, its state while it runs."""

    settings: Settings
    parts: Parts
    failures: FailureLog
    state: AppState | None = None
    is_admin: Callable[[AppRequest], Awaitable[bool]] | None = None
    """Set by the admin API: whether a request carries a valid admin token (``/health`` then
    names the bots; to anyone else it only counts them)."""

    @property
    def running(self) -> AppState:
        """The started server's state (a request is only served after the start)."""
        if self.state is None:
            raise RuntimeError("the server has not started")
        return self.state


App = Sanic[Config, AppContext]
AppRequest = Request[App, SimpleNamespace]

__all__ = ["App", "AppContext", "AppRequest", "AppState", "Parts"]
