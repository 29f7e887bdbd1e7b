"""A script's ``HTTP.*`` call read into an :class:`OutboundRequest` (pure, no I/O).

``HTTP.get(url, params=None, headers=None, timeout=None)``, ``HTTP.post(url, json=...,
data=..., params=..., headers=..., timeout=...)`` and ``HTTP.request(method, url, ...)``, the
same keywords. ``json`` is sent as JSON; ``data`` as text (a string) or as a form (a dict).
Every problem raises :class:`OutboundError` with reason ``bad_request``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode

from runtime.errors import OutboundError
from runtime.outbound.policy import HttpPolicy

METHODS: Final = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
KEYWORDS: Final = ("url", "params", "headers", "json", "data", "timeout")
TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
FORBIDDEN_HEADERS: Final = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
        "proxy-connection",
    }
)
MAX_HEADERS: Final = 50
MAX_HEADER_BYTES: Final = 8192


@dataclass(frozen=True, slots=True)
class OutboundRequest:
    """What a script asked for. ``headers`` never include ``Host``; ``timeout`` in seconds."""

    method: str
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    timeout: float = 10.0


def bad(message: str) -> OutboundError:
    """The error of a call whose arguments are wrong."""
    return OutboundError(message, reason="bad_request")


def build_request(
    called: str, args: tuple[Any, ...], kwargs: Mapping[str, Any], policy: HttpPolicy
) -> OutboundRequest:
    """Read the arguments of ``HTTP.<called>`` (``get``, ``post`` or ``request``)."""
    given = dict(kwargs)
    method = _method(called, list(args), given)
    url = given.get("url")
    if type(url) is not str:
        raise bad("the URL must be text, as in HTTP.get('https://example.com/')")
    url = _with_params(url.partition("#")[0], given.get("params"))
    headers = _headers(given.get("headers"))
    names = {name.lower() for name, _ in headers}
    body: bytes | None = None
    if given.get("json") is not None and given.get("data") is not None:
        raise bad("pass json or data, not both")
    if given.get("json") is not None:
        body = json.dumps(given["json"], ensure_ascii=False).encode()
        if "content-type" not in names:
            headers.append(("Content-Type", "application/json"))
    elif given.get("data") is not None:
        data = given["data"]
        if type(data) is str:
            body = data.encode()
            content_type = "text/plain; charset=utf-8"
        elif type(data) is dict:
            body = urlencode(_pairs(data, "data")).encode()
            content_type = "application/x-www-form-urlencoded"
        else:
            raise bad("data must be text or a dict (a form)")
        if "content-type" not in names:
            headers.append(("Content-Type", content_type))
    return OutboundRequest(method, url, tuple(headers), body, _timeout(given, policy))


def _method(called: str, positional: list[Any], given: dict[str, Any]) -> str:
    """The method, with the positional arguments (method, url) moved into ``given``."""
    unknown = sorted(set(given) - set(KEYWORDS) - ({"method"} if called == "request" else set()))
    if unknown:
        raise bad(f"unknown argument(s) {', '.join(unknown)}; HTTP takes {', '.join(KEYWORDS)}")
    if called == "request":
        if positional:
            _once(given, "method", positional.pop(0))
        method = given.pop("method", None)
        if type(method) is not str or method.upper() not in METHODS:
            raise bad(f"the method must be one of {', '.join(sorted(METHODS))}")
    elif called in ("get", "post"):
        method = called
    else:
        raise bad(f"HTTP has get, post and request, not {called}")
    if positional:
        _once(given, "url", positional.pop(0))
    if positional:
        raise bad("too many positional arguments: pass params, headers, json, data by name")
    return method.upper()


def _once(given: dict[str, Any], name: str, value: object) -> None:
    if name in given:
        raise bad(f"{name} given twice")
    given[name] = value


def _timeout(given: Mapping[str, Any], policy: HttpPolicy) -> float:
    value = given.get("timeout")
    if value is None:
        return policy.timeout
    if type(value) not in (int, float) or not 0 < value <= policy.timeout:
        raise bad(
            f"timeout must be a number of seconds above 0, at most {policy.timeout:g} "
            "(http.timeout_seconds in bot.yaml)"
        )
    return float(value)


def _scalar(value: object, where: str) -> str:
    if type(value) is str:
        return value
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) in (int, float):
        return str(value)
    raise bad(f"{where} values must be text, numbers or true/false")


def _pairs(mapping: Mapping[str, Any], where: str) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for key, value in mapping.items():
        items = value if type(value) is list else [value]
        pairs.extend((key, _scalar(item, where)) for item in items if item is not None)
    return pairs


def _with_params(url: str, params: object) -> str:
    if params is None:
        return url
    if type(params) is not dict:
        raise bad("params must be a dict")
    query = urlencode(_pairs(params, "params"))
    if not query:
        return url
    return f"{url}{'&' if '?' in url else '?'}{query}"


def _headers(raw: object) -> list[tuple[str, str]]:
    if raw is None:
        return []
    if type(raw) is not dict:
        raise bad("headers must be a dict of names and values")
    if len(raw) > MAX_HEADERS:
        raise bad(f"at most {MAX_HEADERS} headers")
    headers: list[tuple[str, str]] = []
    size = 0
    for name, value in raw.items():
        if not TOKEN.fullmatch(name):
            raise bad(f"{name!r} is not a header name")
        if name.lower() in FORBIDDEN_HEADERS:
            raise bad(f"the {name} header is set by the platform")
        text = _scalar(value, "header")
        if any(ch in text for ch in "\r\n\0"):
            raise bad(f"the value of the {name} header holds a line break")
        if not text.isascii() or any((ch < " " and ch != "\t") or ch == "\x7f" for ch in text):
            raise bad(f"the value of the {name} header must be printable ASCII (quote the rest)")
        size += len(name) + len(text)
        headers.append((name, text))
    if size > MAX_HEADER_BYTES:
        raise bad(f"the headers are larger than {MAX_HEADER_BYTES} bytes")
    return headers
