"""The one place botbox talks HTTP to the Telegram Bot API (through httpx).

Calls are checked against the packaged Bot API spec before they are sent; Telegram's answer is
read by the pure :func:`check_response`; ``httpx.HTTPError`` is translated to
:class:`~runtime.errors.TransportError` here and nowhere else. Tokens appear in request URLs, so
this module redacts them from httpx's own log lines and never logs a URL itself.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import quote

import httpx

from runtime import metrics
from runtime.errors import ApiError, CallRefused, FileRefused, TelegramError, TransportError
from runtime.telegram.files import multipart_parts
from runtime.telegram.spec import BotApiSpec, load_spec
from sandbox import JSON

logger = logging.getLogger(__name__)

TOKEN_IN_URL: Final = re.compile(r"/bot\d+:[A-Za-z0-9_-]+")


class RedactTokens(logging.Filter):
    """Replace ``/bot<token>`` in log records with ``/bot<redacted>``."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's arguments; always keep the record."""
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(
                TOKEN_IN_URL.sub("/bot<redacted>", str(a)) if "/bot" in str(a) else a for a in args
            )
        record.msg = TOKEN_IN_URL.sub("/bot<redacted>", str(record.msg))
        return True


def _install_redaction() -> None:
    for name in ("httpx", "httpcore"):
        target = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in target.filters):
            target.addFilter(RedactTokens())


def check_response(method: str, status: int, body: bytes) -> JSON:
    """Return the ``result`` of a Bot API answer, or raise ApiError / TransportError."""
    try:
        document = json.loads(body)
    except ValueError:
        raise TransportError(
            f"{method}: the Bot API answered HTTP {status} with something that is not JSON"
        ) from None
    if not isinstance(document, dict) or not isinstance(document.get("ok"), bool):
        raise TransportError(f"{method}: the Bot API answer has no 'ok' field")
    if document["ok"]:
        result: JSON = document.get("result")
        return result
    parameters = document.get("parameters")
    retry_after = None
    if isinstance(parameters, dict) and isinstance(parameters.get("retry_after"), int | float):
        retry_after = float(parameters["retry_after"])
    code = document.get("error_code")
    return_code = code if isinstance(code, int) else status
    description = str(document.get("description") or "unknown error")
    raise ApiError(method, return_code, description, retry_after)


class TelegramClient:
    """An async Bot API client: ``await client.call(token, "sendMessage", {...})``."""

    def __init__(
        self,
        base_url: str = "https://api.telegram.org",
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        spec: BotApiSpec | None = None,
    ) -> None:
        _install_redaction()
        self.base_url = base_url.rstrip("/")
        self.spec = spec or load_spec()
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=timeout,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )

    def check(self, method: str, params: Mapping[str, Any]) -> str:
        """Return the canonical method name, or raise CallRefused naming every problem."""
        problems = self.spec.check_call(method, params)
        if problems:
            raise CallRefused(method, [p.message for p in problems])
        return self.spec.canonical_name(method) or method

    async def call(
        self,
        token: str,
        method: str,
        params: Mapping[str, Any],
        *,
        timeout: float | None = None,
        multipart: bool = False,
    ) -> JSON:
        """Check, send and return Telegram's ``result`` (raises ApiError on a refusal).

        With ``multipart``, the parameters hold :class:`~runtime.telegram.files.Upload` values
        and go as multipart/form-data (files as parts, ``attach://`` inside fields).
        """
        name = self.check(method, params)
        params = {key: value for key, value in params.items() if value is not None}
        url = f"{self.base_url}/bot{token}/{name}"
        wait = timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT
        try:
            if multipart:
                fields, files = multipart_parts(params)
                response = await self._http.post(url, data=fields, files=files, timeout=wait)
            else:
                response = await self._http.post(url, json=dict(params), timeout=wait)
        except httpx.HTTPError as exc:
            metrics.telegram_call(name, "transport")
            raise TransportError(
                f"{name}: cannot reach the Bot API ({type(exc).__name__})"
            ) from exc
        try:
            result = check_response(name, response.status_code, response.content)
        except TelegramError as exc:
            code = exc.code if isinstance(exc, ApiError) else 0
            metrics.telegram_call(name, "flood" if code == 429 else "error")
            raise
        metrics.telegram_call(name, "ok")
        return result

    async def download(self, token: str, file_path: str, *, max_bytes: int) -> bytes:
        """The content of a file ``getFile`` named, from the Bot API's file URL, read up to
        ``max_bytes`` (FileRefused past it: the download stops there)."""
        url = f"{self.base_url}/file/bot{token}/{quote(file_path, safe='/')}"
        try:
            async with self._http.stream("GET", url) as response:
                if response.status_code != 200:
                    metrics.telegram_call("downloadFile", "error")
                    raise ApiError(
                        "downloadFile", response.status_code, "the file could not be downloaded"
                    )
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise FileRefused(
                        f"the file is {declared} bytes; at most {max_bytes} here", status=413
                    )
                chunks: list[bytes] = []
                total = 0
                async for chunk in response.aiter_bytes():
                    total += len(chunk)
                    if total > max_bytes:
                        raise FileRefused(
                            f"the file is over {max_bytes} bytes, the cap here", status=413
                        )
                    chunks.append(chunk)
        except httpx.HTTPError as exc:
            metrics.telegram_call("downloadFile", "transport")
            raise TransportError(
                f"downloadFile: cannot reach the Bot API ({type(exc).__name__})"
            ) from exc
        metrics.telegram_call("downloadFile", "ok")
        return b"".join(chunks)

    async def close(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()
