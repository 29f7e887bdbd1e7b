"""The Sanic application, built by :func:`create_app` (no module-level app, pool or store).

Routes: ``POST /telegram/<bot_id>`` (Telegram's webhook) and ``GET /health``. The signed user
webhooks are added by :mod:`runtime.web.webhook`.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Final

from sanic import HTTPResponse, Request, Sanic
from sanic.exceptions import BadURL, SanicException
from sanic.response import json as json_response

from runtime import serverlog
from runtime.errors import BotboxError, NotFound
from runtime.runs.pipeline import Runner
from runtime.runs.polling import Poller
from runtime.runs.processor import Processor
from runtime.runs.registry import Registry, bot_folders
from runtime.runs.runlog import RunLog
from runtime.runs.session import Services
from runtime.settings import Settings
from runtime.signing.keys import KeyFile, load_master_key
from runtime.store import SqliteStore, Store
from runtime.telegram.client import TelegramClient
from runtime.telegram.update import parse_update
from runtime.web.responses import HttpError, error_response, to_http
from runtime.web.webhook import handle_click
from sandbox import Overloaded, WorkerPool

logger = logging.getLogger(__name__)

App = Sanic[Any, Any]
MAX_BODY_BYTES: Final = 1024 * 1024
APP_NAME: Final = "botbox"
SECRET_HEADER: Final = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name


class SafeRequest(Request):
    """Sanic's Request, but a malformed request target never reaches an error or a log line.

    Sanic puts the whole target of a request it cannot parse (a signed link with a control
    byte in it, say) into the BadURL message, and then fails again building the stand-in
    request it answers the error with, so the target is logged with a traceback and the
    client gets no answer. Here the message names no URL, and the stand-in request (method
    ``NONE``) falls back to ``/``, so the client gets a plain 400.
    """

    def __init__(self, url_bytes: bytes, *args: Any, **kwargs: Any) -> None:
        method = kwargs.get("method", args[2] if len(args) > 2 else None)
        try:
            super().__init__(url_bytes, *args, **kwargs)
        except BadURL:
            if method != "NONE":
                raise BadURL("malformed request target") from None
            super().__init__(b"/", *args, **kwargs)


@dataclass(slots=True)
class Parts:
    """Pre-built parts to use instead of the ones :func:`create_app` would build."""

    store: Store | None = None
    telegram: TelegramClient | None = None
    pool: WorkerPool | None = None
    env: dict[str, str] = field(default_factory=dict)
    poll: bool = False


def create_app(settings: Settings, *, parts: Parts | None = None) -> App:
    """Build the server: routes now, store/pool/bots when the server starts."""
    # One fixed name: with several server processes, each rebuilds the app by this name.
    # strict_slashes: ``/webhook/demo/`` is not ``/webhook/demo`` (a 404, never a click).
    app: App = Sanic(
        APP_NAME, configure_logging=False, strict_slashes=True, request_class=SafeRequest
    )
    serverlog.configure(settings.log_level)  # again in every server process: no secret in a line
    app.ctx.failures = serverlog.FailureLog()
    app.config.REQUEST_MAX_SIZE = MAX_BODY_BYTES
    app.ctx.settings = settings
    app.ctx.parts = parts or Parts()
    app.before_server_start(start_services)
    app.after_server_stop(stop_services)
    app.error_handler.add(Exception, on_error)
    app.add_route(health, "/health", methods=["GET"])
    app.add_route(telegram_update, "/telegram/<bot_id:str>", methods=["POST"])
    app.add_route(handle_click, "/webhook/<bot_id:str>", methods=["GET", "POST", "HEAD", "OPTIONS"])
    return app


async def start_services(app: App) -> None:
    """Open the store, start the sandbox pool, load the bots, start processing."""
    settings: Settings = app.ctx.settings
    parts: Parts = app.ctx.parts
    master_key = load_master_key(settings.key_file)
    store = parts.store or SqliteStore(settings.database, synchronous=settings.sqlite_synchronous)
    await store.open()
    pool = parts.pool or WorkerPool(
        settings.sandbox_workers or None,
        max_workers=settings.sandbox_max_workers or None,
        queue_size=settings.sandbox_queue or None,
    )
    await pool.start()
    telegram = parts.telegram or TelegramClient(settings.telegram_api)
    demo = settings.demo_dir if settings.demo else None
    registry = Registry.load(
        bot_folders(settings.bots_dir, demo),
        env=parts.env,
        master_key=master_key,
        cache=pool.cache,
    )
    keys = KeyFile(settings.keys_file, generations=await bot_generations(store, registry))
    keys.load()
    runlog = RunLog(store, failures=app.ctx.failures)
    services = Services(pool, store, telegram, keys, settings.base_url, runlog)
    runner = Runner(services)
    processor = Processor(
        registry,
        services,
        runner,
        concurrency=max(2, pool.size * 2),
        lease_seconds=settings.lease_seconds,
    )
    processor.start(retention_seconds=settings.retention_days * 86400)
    poller = Poller(registry, services, processor) if parts.poll else None
    if poller is not None:
        poller.start()
    ctx = app.ctx
    ctx.master_key, ctx.store, ctx.pool, ctx.telegram = master_key, store, pool, telegram
    ctx.registry, ctx.services, ctx.runner = registry, services, runner
    ctx.processor, ctx.poller = processor, poller
    logger.info("botbox serving %d bot(s): %s", len(registry), ", ".join(registry.ids))


async def bot_generations(store: Store, registry: Registry) -> dict[str, str]:
    """Retire the bots that lost their folder; return every hosted bot's link generation.

    Runs once per server process at start, so a click never reads the store for it. Every
    process hosts the same bots, so the processes of one server agree.
    """
    now = time.time()
    for bot_id in await store.retire_bots(registry.ids, now=now):
        logger.warning("bot %s has no folder any more: retired, its links no longer work", bot_id)
    return await store.bot_generations(registry.ids, now=now)


async def stop_services(app: App) -> None:
    """Stop in reverse order: polling, processing, the pool, Telegram, the store."""
    ctx = app.ctx
    if getattr(ctx, "poller", None) is not None:
        await ctx.poller.stop()
    if hasattr(ctx, "processor"):
        await ctx.processor.stop()
    if hasattr(ctx, "pool"):
        await ctx.pool.close()
    if hasattr(ctx, "services"):
        await ctx.services.runlog.close()
    if hasattr(ctx, "telegram") and ctx.parts.telegram is None:
        await ctx.telegram.close()
    if hasattr(ctx, "store"):
        await ctx.store.close()


async def on_error(request: Request, exc: Exception) -> HTTPResponse:
    """Every error, as a status code and a plain message (never a traceback).

    Refusals and failed runs are not logged here (a failed run is a short line from the run
    log); only a bug in the server is, with its traceback, rate-limited and redacted.
    """
    if isinstance(exc, SanicException):
        error = HttpError(exc.status_code, str(exc) or "request refused")
    else:
        error = to_http(exc)
        if not isinstance(exc, BotboxError | Overloaded):
            request.app.ctx.failures.unexpected(f"request to {request.path}", exc)
    return error_response(request, error)


async def health(request: Request) -> HTTPResponse:
    """Liveness and a few numbers: bots, pool, isolation, queue."""
    ctx = request.app.ctx
    return json_response(
        {
            "ok": True,
            "bots": ctx.registry.ids,
            "pool": ctx.pool.stats,
            "isolation": ctx.pool.isolation,
            "pending": await ctx.store.pending_count(),
            "handled": ctx.processor.handled,
            "run_log_dropped": ctx.services.runlog.dropped,
        }
    )


async def telegram_update(request: Request, bot_id: str) -> HTTPResponse:
    """Telegram's webhook: check the secret, store the update durably, then answer 200."""
    ctx = request.app.ctx
    try:
        bot = ctx.registry.get(bot_id)
    except NotFound:
        raise HttpError(404, "unknown bot") from None
    given = request.headers.get(SECRET_HEADER, "").encode()
    if not hmac.compare_digest(given, bot.webhook_secret.encode()):
        raise HttpError(403, "bad or missing secret token")
    try:
        payload = json.loads(request.body)
        update = parse_update(payload)
    except (ValueError, RecursionError) as exc:
        raise HttpError(400, f"not a Telegram update: {exc}") from None
    await ctx.store.enqueue(bot.id, "update", update.chat_key, payload, update_id=update.update_id)
    ctx.processor.wake()
    return json_response({"ok": True})
