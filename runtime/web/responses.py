"""Mapping errors to HTTP in one place: status codes, and a small page or JSON per client."""

from __future__ import annotations

import html
from typing import Any, Final

from sanic import HTTPResponse, Request
from sanic.response import html as html_response
from sanic.response import json as json_response

from runtime.errors import BotboxError, ConfigError, NotFound, QuotaExceeded
from sandbox import Overloaded

TITLES: Final = {
    200: "botbox",
    400: "Bad request",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    410: "Gone",
    413: "Too large",
    429: "Too many requests",
    500: "Something went wrong",
    503: "Busy",
}


class HttpError(BotboxError):
    """An error with an HTTP status, a message safe to show, and optional headers."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.code = code or TITLES.get(status, "error").lower().replace(" ", "_")


def wants_html(request: Request[Any, Any]) -> bool:
    """True when the client is a browser (asks for HTML before JSON)."""
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "application/json" not in accept.split(",")[0]


def page(status: int, message: str) -> str:
    """A small, friendly HTML page for browsers."""
    title = TITLES.get(status, "Error")
    return (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<title>{html.escape(title)}</title>"
        "<body style='font-family:system-ui,sans-serif;max-width:32em;margin:4em auto;"
        "padding:0 1em'>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p></body></html>"
    )


def to_http(exc: BaseException) -> HttpError:
    """Translate any exception to the HttpError the client sees (never a traceback)."""
    if isinstance(exc, HttpError):
        return exc
    if isinstance(exc, NotFound):
        return HttpError(404, str(exc))
    if isinstance(exc, Overloaded):
        return HttpError(
            503,
            "the server is busy; try again shortly",
            headers={"Retry-After": str(max(1, round(exc.retry_after)))},
        )
    if isinstance(exc, QuotaExceeded):
        return HttpError(500, "the bot's storage is full")
    if isinstance(exc, ConfigError):
        return HttpError(500, "the bot is misconfigured")
    return HttpError(500, "the server could not handle this request")


def error_response(request: Request[Any, Any], error: HttpError) -> HTTPResponse:
    """Render an HttpError for this client: HTML for browsers, JSON for everyone else."""
    if wants_html(request):
        return html_response(
            page(error.status, error.message), status=error.status, headers=error.headers
        )
    return json_response(
        {"ok": False, "error": error.code, "message": error.message},
        status=error.status,
        headers=error.headers,
    )
