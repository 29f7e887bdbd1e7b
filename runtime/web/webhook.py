"""``/webhook/<bot_id>``: the signed user links, and ``res``, the answer a script controls.

A click is checked in this order, cheapest refusal first: the bot exists (404); a link-preview
fetcher gets a harmless page and nothing runs; the query parses strictly and the signature,
key and expiry hold (400/413/403/410); the command exists (404); the rate limits, shared across
server processes through the store, allow it (429); a one-time link is claimed atomically
(410 if already used); then the command runs in the user's context and ``res`` shapes the reply.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from sanic import HTTPResponse, Request
from sanic.response import html as html_response
from sanic.response import json as json_response
from sanic.response import raw, redirect

from runtime.bots import dispatch
from runtime.bots.command import Command
from runtime.errors import LinkError, NotFound
from runtime.runs.pipeline import RES_DEFERRED, Extras
from runtime.runs.registry import LiveBot
from runtime.runs.session import Context
from runtime.signing.links import Link, verify_link
from runtime.store import RateHit
from runtime.web import pages
from runtime.web.responses import HttpError, to_http, wants_html
from runtime.web.state import AppRequest
from sandbox import JSON, CallRequest, CapabilityError, Handler, Overloaded, StopScript
from sandbox.jsontypes import is_int

MAX_BODY: Final = 64 * 1024
NEVER: Final = 1e15
MAX_HEADERS: Final = 50
PREVIEW_AGENTS: Final = (
    "telegrambot (like twitterbot)",
    "twitterbot",
    "facebookexternalhit",
    "facebot",
    "slackbot",
    "discordbot",
    "whatsapp",
    "linkedinbot",
    "skypeuripreview",
    "vkshare",
    "redditbot",
    "applebot",
    "embedly",
    "iframely",
    "pinterest",
    "mastodon",
    "googlebot",
    "bingbot",
    "snapchat",
    "viber",
    "line-poker",
    "kakaotalk",
    "zoominfobot",
)
HEADER_NAME: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")
HEADER_VALUE_BAD: Final = re.compile(r"[\x00-\x1f\x7f]")
FORBIDDEN_HEADERS: Final = frozenset(
    {
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "proxy-authenticate",
        "proxy-authorization",
        "date",
        "server",
    }
)


def is_link_preview(user_agent: str) -> bool:
    """True for the fetchers that unfurl links in chats (they must never run a command)."""
    agent = user_agent.lower()
    return any(name in agent for name in PREVIEW_AGENTS)


@dataclass(slots=True)
class Reply:
    """What ``res`` set: status, headers, and a body or a redirect."""

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    content_type: str = "text/plain; charset=utf-8"
    location: str | None = None

    def response(self) -> HTTPResponse:
        """The HTTP response these settings describe."""
        if self.location is not None:
            return redirect(self.location, status=self.status or 303, headers=self.headers)
        return raw(
            self.body or b"",
            status=self.status or 200,
            headers=self.headers,
            content_type=self.content_type,
        )


def _one(call: CallRequest, what: str) -> JSON:
    if len(call.args) != 1 or call.kwargs:
        raise CapabilityError(f"res.{what} takes exactly one argument")
    return call.args[0]


def res_capabilities(reply: Reply) -> dict[str, Handler]:
    """The ``res`` functions of one click."""

    def finish() -> None:
        raise StopScript(None)

    def check_open() -> None:
        if reply.body is not None or reply.location is not None:
            raise CapabilityError("the answer was already sent")

    def body_sender(what: str, content_type: str) -> Handler:
        async def send(call: CallRequest) -> JSON:
            check_open()
            value = _one(call, what)
            text = json.dumps(value, ensure_ascii=False) if what == "json" else str(value)
            reply.body, reply.content_type = text.encode(), content_type
            finish()
            return None

        return send

    async def send_redirect(call: CallRequest) -> JSON:
        check_open()
        target = _one(call, "redirect")
        if not isinstance(target, str) or HEADER_VALUE_BAD.search(target) or "\\" in target:
            raise CapabilityError("res.redirect needs a URL without control characters")
        parts = urlsplit(target)
        if not (parts.scheme in ("http", "https") and parts.netloc) and not (
            target.startswith("/") and not target.startswith("//")
        ):
            raise CapabilityError("res.redirect needs an absolute http(s) URL or a /path")
        reply.location = target
        finish()
        return None

    async def set_status(call: CallRequest) -> JSON:
        code = _one(call, "status")
        if not is_int(code) or not 200 <= code <= 599:
            raise CapabilityError("res.status takes a whole number from 200 to 599")
        reply.status = code
        return None

    async def set_header(call: CallRequest) -> JSON:
        if len(call.args) != 2 or call.kwargs:
            raise CapabilityError("res.set takes a header name and a value")
        name, value = call.args
        if not isinstance(name, str) or not HEADER_NAME.fullmatch(name):
            raise CapabilityError("res.set: the header name is not a valid token")
        if name.lower() in FORBIDDEN_HEADERS:
            raise CapabilityError(f"res.set: {name} is set by the server")
        text = str(value)
        if HEADER_VALUE_BAD.search(text) or len(text) > 4096:
            raise CapabilityError("res.set: the value has control characters or is too long")
        reply.headers[name] = text
        return None

    return {
        "res.json": body_sender("json", "application/json"),
        "res.text": body_sender("text", "text/plain; charset=utf-8"),
        "res.html": body_sender("html", "text/html; charset=utf-8"),
        "res.redirect": send_redirect,
        "res.status": set_status,
        "res.set": set_header,
    }


def request_global(request: Request[Any, Any], link: Link) -> dict[str, JSON]:
    """What a script sees as ``request`` for a click: method, headers, query, body, client."""
    headers: dict[str, JSON] = {}
    for name, value in list(request.headers.items())[:MAX_HEADERS]:
        headers[name.lower()] = value[:1024]
    body: dict[str, JSON] = {"json": None, "form": None, "body": None}
    if request.method == "POST" and request.body:
        content_type = request.headers.get("content-type", "")
        text = request.body.decode("utf-8", "replace")
        body["body"] = text
        if "json" in content_type:
            body["json"] = parse_json_body(text)
        elif "application/x-www-form-urlencoded" in content_type:
            body["form"] = {k: v[0] for k, v in (request.form or {}).items()}
    return {
        "method": request.method,
        "path": request.path,
        "query": dict(link.params),
        "headers": headers,
        "client_ip": request.remote_addr or request.ip,
        **body,
    }


def parse_json_body(text: str) -> JSON:
    """A POSTed JSON body; NaN, Infinity and deep nesting are refused (None)."""
    try:
        value: JSON = json.loads(text, parse_constant=_not_json)
    except (ValueError, RecursionError):
        return None
    return value


def _not_json(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def rate_hits(bot: LiveBot, link: Link, sig: str) -> list[RateHit]:
    """The three rate limits a click counts against."""
    settings = bot.webhook
    hits = [
        RateHit(f"link:{bot.id}:{sig}", settings.per_link.limit, settings.per_link.period, "link"),
        RateHit(f"bot:{bot.id}", settings.per_bot.limit, settings.per_bot.period, "bot"),
    ]
    if link.user_id is not None:
        hits.insert(
            1,
            RateHit(
                f"user:{bot.id}:{link.user_id}",
                settings.per_user.limit,
                settings.per_user.period,
                "user",
            ),
        )
    return hits


async def authorize(request: AppRequest, bot: LiveBot) -> tuple[Link, Command]:
    """Verify a click's link, its command, the rate limits and a one-time claim."""
    services = request.app.ctx.running.services
    now = services.clock()
    try:
        link = verify_link(services.keys.current(), bot.id, request.query_string, now=now)
    except LinkError as exc:
        raise HttpError(
            exc.status, exc.message, code="expired" if exc.status == 410 else None
        ) from None
    command = dispatch.find(bot.definition.commands, link.command)
    if command is None:
        raise HttpError(404, "this link's command no longer exists")
    over = await services.store.hit_rates(rate_hits(bot, link, link.signature), now=now)
    if over is not None:
        raise HttpError(
            429,
            f"too many clicks ({over.name} limit); try again later",
            headers={"Retry-After": str(int(over.period))},
        )
    if link.once is not None:
        # A nonce is kept as long as its link could verify: forever for links with no expiry.
        expires = link.expires_ms / 1000 if link.expires_ms else NEVER
        if not await services.store.claim_nonce(bot.id, link.once, expires_at=expires, now=now):
            raise HttpError(410, "this one-time link was already used", code="used")
    return link, command


async def handle_click(request: AppRequest, bot_id: str) -> HTTPResponse:
    """GET/POST/HEAD/OPTIONS on a signed link; a browser gets the bot's branded pages."""
    state = request.app.ctx.running
    try:
        bot: LiveBot = state.registry.get(bot_id)
    except NotFound:
        raise HttpError(404, "unknown bot") from None
    branding = bot.definition.config.pages
    if request.method == "OPTIONS":
        return HTTPResponse(status=204, headers={"Allow": "GET, POST, HEAD, OPTIONS"})
    if request.method == "HEAD" or is_link_preview(request.headers.get("user-agent", "")):
        preview = pages.render("preview", branding) if request.method != "HEAD" else ""
        return html_response(preview, status=200)
    try:
        return await _click(request, bot)
    except (HttpError, Overloaded) as exc:
        if not wants_html(request):
            raise
        error = to_http(exc)
        return html_response(
            pages.render(pages.kind_for(error.status, error.code), branding),
            status=error.status,
            headers=error.headers,
        )


async def _click(request: AppRequest, bot: LiveBot) -> HTTPResponse:
    """A click past the preview check: verify, run, answer."""
    state = request.app.ctx.running
    if len(request.body or b"") > MAX_BODY:
        raise HttpError(413, f"the request body is over {MAX_BODY} bytes")
    link, command = await authorize(request, bot)
    try:
        options = link.parsed_options()
    except LinkError as exc:
        raise HttpError(400, exc.message) from None
    user = None if link.user_id is None else {"id": link.user_id}
    chat = None if link.user_id is None else {"id": link.user_id, "type": "private"}
    context = Context(
        bot,
        command,
        "webhook",
        user=user,
        chat=chat,
        update_type="webhook",
        request=request_global(request, link),
        params=dict(link.params),
        options=options,
    )
    reply, error_reply = Reply(), Reply()
    extras = Extras(
        res_capabilities(reply),
        RES_DEFERRED,
        on_error=Extras(res_capabilities(error_reply), RES_DEFERRED),
    )
    # A click runs to its end even if the browser hangs up meanwhile: the command's effects
    # (messages, properties) are all or nothing, never cut off by a closed connection.
    outcome = await asyncio.shield(
        asyncio.ensure_future(state.runner.run_pipeline(context, extras=extras))
    )
    if not outcome.ok:
        if error_reply.body is not None or error_reply.location is not None:
            # The bot's `!` command wrote its own error page (500 unless it set a status).
            if error_reply.location is None and error_reply.status is None:
                error_reply.status = 500
            return error_reply.response()
        raise HttpError(500, "the bot's command failed; its author can see why in the run log")
    if reply.body is not None or reply.location is not None or reply.status is not None:
        return reply.response()
    if link.redirect is not None:
        return redirect(link.redirect, status=303)
    if wants_html(request):
        return html_response(pages.render("done", bot.definition.config.pages))
    return json_response({"ok": True})


__all__ = ["Reply", "handle_click", "is_link_preview", "res_capabilities"]
