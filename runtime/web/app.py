"""The Sanic application, built by :func:`create_app` (no module-level app, pool or store).

Routes: ``POST /telegram/<bot_id>`` (Telegram's webhook) and ``GET /health``. The signed user
webhooks are added by :mod:`runtime.web.webhook`.
"""

from __future__ import annotations

import hmac
import json
from typing import Any, Final

from sanic import HTTPResponse, Request, Sanic
from sanic.exceptions import BadURL, SanicException
from sanic.response import json as json_response

from runtime import serverlog
from runtime.errors import BotboxError, NotFound, StoreError
from runtime.runs.reload import bot_problems
from runtime.settings import Settings
from runtime.telegram.update import parse_update
from runtime.web.responses import HttpError, error_response, to_http
from runtime.web.state import App, AppContext, AppRequest, AppState, Parts
from runtime.web.webhook import handle_click
from sandbox import Overloaded

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


def create_app(settings: Settings, *, parts: Parts | None = None) -> App:
    """Build the server: routes now, store/pool/bots when the server starts."""
    # One fixed name: with several server processes, each rebuilds the app by this name.
    # strict_slashes: ``/webhook/demo/`` is not ``/webhook/demo`` (a 404, never a click).
    context = AppContext(settings, parts or Parts(), serverlog.FailureLog())
    app: App = Sanic(
        APP_NAME,
        ctx=context,
        configure_logging=False,
        strict_slashes=True,
        request_class=SafeRequest,
    )
    serverlog.configure(settings.log_level)  # again in every server process: no secret in a line
    app.config.REQUEST_MAX_SIZE = MAX_BODY_BYTES
    app.before_server_start(start_services)
    app.after_server_stop(stop_services)
    app.error_handler.add(Exception, on_error)
    app.add_route(health, "/health", methods=["GET"])
    app.add_route(telegram_update, "/telegram/<bot_id:str>", methods=["POST"])
    app.add_route(handle_click, "/webhook/<bot_id:str>", methods=["GET", "POST", "HEAD", "OPTIONS"])
    return app


async def start_services(app: App) -> None:
    """Open everything the server runs on (see :meth:`AppState.open`)."""
    ctx = app.ctx
    ctx.state = await AppState.open(ctx.settings, ctx.parts, ctx.failures)


async def stop_services(app: App) -> None:
    """Close what the start opened, in reverse order (see :meth:`AppState.close`)."""
    state, app.ctx.state = app.ctx.state, None
    if state is not None:
        await state.close()


async def on_error(request: AppRequest, exc: Exception) -> HTTPResponse:
    """Every error, as a status code and a plain message (never a traceback).

    Refusals and failed runs are not logged here (a failed run is a short line from the run
    log); only a bug in the server is, with its traceback, rate-limited and redacted.
    """
    if isinstance(exc, SanicException):
        headers = {str(k): str(v) for k, v in (exc.headers or {}).items()}  # Allow on a 405
        error = HttpError(exc.status_code, str(exc) or "request refused", headers=headers)
    else:
        error = to_http(exc)
        if not isinstance(exc, BotboxError | Overloaded):
            request.app.ctx.failures.unexpected(f"request to {request.path}", exc)
    return error_response(request, error)


async def health(request: AppRequest) -> HTTPResponse:
    """Liveness and a few numbers: bots, pool, isolation, queue, run log; 503 while a loop is down.

    Bots are counted (``bots``: those serving; ``bots_failed`` and ``problems``: those that
    failed to load or whose latest change was refused); they are named (``bot_ids``, ``failed``,
    ``stale``) only to a caller with an admin token of the API. ``/health`` is public, and the
    API hides a bot from a token that may not see it; the log names them.

    ``running`` (queue items this process is handling) and ``run_log_pending`` (run records not
    yet written) are this process's own: both 0 means every run it finished is in the run log.
    """
    state = request.app.ctx.running
    problems = state.problems()
    pending: int | None = None
    try:
        pending = await state.store.pending_count()
    except StoreError as exc:
        problems.append(f"store: {exc}")
    # A bot that failed to load is a problem (ok: false), not a server one: the status stays
    # 200 so a probe never restarts every bot for one bot's typo. Public: counts, no names.
    bots = bot_problems(state.registry) + state.folders.folder_problems()
    check = request.app.ctx.is_admin
    named = check is not None and await check(request)
    names = (
        {
            "bot_ids": state.registry.ids,
            "failed": state.registry.failed,
            "stale": state.registry.stale,
        }
        if named
        else {}
    )
    return json_response(
        {
            "ok": not problems and not bots,
            "problems": [serverlog.redact(problem) for problem in problems + bots],
            "bots_failed": len(state.registry.failed),
            "instance": state.processor.owner,
            "bots": len(state.registry.ids),  # a count: the API hides bots from some tokens
            **names,
            "pool": state.pool.stats,
            "isolation": state.pool.isolation,
            "pending": pending,
            "handled": state.processor.handled,
            "running": state.processor.in_hand,
            "run_log_pending": state.services.runlog.pending,
            "run_log_dropped": state.services.runlog.dropped,
        },
        status=503 if problems else 200,
    )


async def telegram_update(request: AppRequest, bot_id: str) -> HTTPResponse:
    """Telegram's webhook: check the secret, store the update durably, then answer 200."""
    state = request.app.ctx.running
    if (secret := state.registry.disabled.get(bot_id)) is not None:
        # Disabled: acknowledged and dropped, so Telegram neither retries for a day nor
        # delivers a backlog of stale messages when the bot is enabled again.
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, secret.encode()):
            raise HttpError(403, "bad or missing secret token")
        return json_response({"ok": True, "dropped": "the bot is disabled"})
    try:
        bot = state.registry.get(bot_id)
    except NotFound:
        # A bot that failed to load answers like one that does not exist (no existence leak):
        # Telegram retries a 404 with growing pauses for up to 24 hours, so a bot fixed in
        # that time still gets its updates, and the server stores nothing for a broken bot.
        raise HttpError(404, "unknown bot") from None
    given = request.headers.get(SECRET_HEADER, "").encode()
    if not hmac.compare_digest(given, bot.webhook_secret.encode()):
        raise HttpError(403, "bad or missing secret token")
    try:
        payload = json.loads(request.body)
        update = parse_update(payload)
    except (ValueError, RecursionError) as exc:
        raise HttpError(400, f"not a Telegram update: {exc}") from None
    await state.store.enqueue(
        bot.id, "update", update.chat_key, payload, update_id=update.update_id
    )
    state.processor.wake()
    return json_response({"ok": True})


__all__ = ["App", "Parts", "SafeRequest", "create_app"]
