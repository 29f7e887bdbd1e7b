"""A local stand-in for the Telegram Bot API, served over real HTTP for tests and benchmarks.

It runs a stdlib ``ThreadingHTTPServer`` on 127.0.0.1 in a background thread, so it works with
or without an asyncio loop. Requests go to ``{base_url}/bot{token}/{method}`` as with the real
API. Every call is checked against the packaged Bot API spec: an unknown token is a 401, an
unknown method a 404, a missing required field, unknown field or impossible value a 400. Valid
calls are recorded and answered with realistic, spec-shaped results.

Example::

    with TelegramStandIn(tokens={"123:abc"}) as tg:
        tg.push_update("123:abc", make_update(update_id=1, text="/start"))
        ...  # run the bot against tg.base_url
        (call,) = tg.wait_for_calls(1, method="sendMessage")
"""

from __future__ import annotations

import json
import logging
import re
import socket
import sys
import threading
import time
import zlib
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import MappingProxyType, TracebackType
from typing import Final, Self, cast
from urllib.parse import parse_qsl, unquote, urlsplit

from runtime.telegram.spec import BotApiSpec, MethodSpec, load_spec
from tests.support.updates import bot_user, concrete_type, make_chat, sample_object, utf16_len

logger = logging.getLogger(__name__)

HOST: Final = "127.0.0.1"
LONG_POLL_CAP: Final = 2.0
MAX_BODY_BYTES: Final = 64 * 1024 * 1024
TOKEN_RE: Final = re.compile(r"\d+:[A-Za-z0-9_-]+")
_PATH_RE: Final = re.compile(r"/bot(?P<token>[^/]+)/(?P<method>[^/]*)")
_FILE_PATH_RE: Final = re.compile(r"/file/bot(?P<token>[^/]+)/(?P<path>.+)")
_INT_RE: Final = re.compile(r"[+-]?\d+")
_ARRAY_PREFIX: Final = "Array of "
OPT_IN_KINDS: Final = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
"""Update kinds Telegram sends only when ``allowed_updates`` names them."""
FLOOD_SLACK: Final = 0.05
"""Seconds of network jitter a strict flood window forgives at its edge."""
MAX_TEXT_UNITS: Final = 4096
"""Telegram's limit on a message text, in UTF-16 units (checked here on texts without markup)."""
_TEXT_METHODS: Final = frozenset({"sendMessage", "editMessageText"})
_EMPTY: Final = "Bad Request: message text is empty"
_CONFLICT: Final = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
_DEFAULT_DESCRIPTIONS: Final = MappingProxyType(
    {
        400: "Bad Request: injected failure",
        401: "Unauthorized",
        403: "Forbidden: bot was blocked by the user",
        404: "Not Found",
        409: _CONFLICT,
        500: "Internal Server Error",
        502: "Bad Gateway",
    }
)
_STRING_RESULTS: Final = MappingProxyType(
    {
        "exportChatInviteLink": "https://t.me/+standinInviteLink",
        "createInvoiceLink": "https://t.me/$standinInvoice",
    }
)
_CAPTION_FIELDS: Final = ("caption", "caption_entities", "show_caption_above_media")
_EMPTY: Final[Mapping[str, object]] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """A file part of a multipart/form-data request."""

    filename: str
    content_type: str
    data: bytes


def _empty_files() -> Mapping[str, UploadedFile]:
    """An empty, read-only attachment mapping."""
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class RecordedCall:
    """A call that passed validation; ``error_code`` is set when an injected fault answered it.

    ``params`` are decoded the way Telegram reads them, whatever the request encoding: numeric
    strings become ints for Integer fields, JSON strings become objects for object fields.
    ``attachments`` holds multipart file parts referenced as ``attach://name``.
    """

    token: str
    method: str
    params: Mapping[str, object]
    error_code: int | None = None
    attachments: Mapping[str, UploadedFile] = field(default_factory=_empty_files)
    at: float = field(default=0.0, compare=False)
    """When the call arrived (``time.monotonic()``); not compared."""


@dataclass(frozen=True, slots=True)
class RejectedCall:
    """A call the stand-in refused (bad token, unknown method or invalid parameters)."""

    token: str
    method: str
    params: Mapping[str, object]
    error_code: int
    description: str


@dataclass(frozen=True, slots=True)
class _Fault:
    """One injected failure waiting for its method to be called."""

    error_code: int
    description: str
    parameters: Mapping[str, object]
    chat_id: object = None
    """Only a call to this chat takes the fault (None: any call of the method)."""


@dataclass(frozen=True, slots=True)
class _Reply:
    """An HTTP status and a JSON body to send back."""

    status: int
    body: Mapping[str, object]


class _ApiError(Exception):
    """An error answer in Telegram's format."""

    def __init__(
        self, error_code: int, description: str, parameters: Mapping[str, object] = _EMPTY
    ) -> None:
        """Keep the error code, description and optional ResponseParameters."""
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.parameters = parameters

    def reply(self) -> _Reply:
        """The error as a Bot API response."""
        body: dict[str, object] = {
            "ok": False,
            "error_code": self.error_code,
            "description": self.description,
        }
        if self.parameters:
            body["parameters"] = dict(self.parameters)
        return _Reply(self.error_code, body)


class TelegramStandIn:
    """A Telegram Bot API stand-in on a local port; use as a context manager or call close().

    ``tokens`` lists the accepted bot tokens (None accepts any well-formed token). getUpdates
    calls are not recorded unless ``record_polling`` is true, so ``calls`` and
    ``wait_for_calls`` see what a bot *did* rather than its polling loop.
    """

    def __init__(
        self,
        tokens: Iterable[str] | None = None,
        *,
        record_polling: bool = False,
        long_poll_cap: float = LONG_POLL_CAP,
        spec: BotApiSpec | None = None,
        strict_flood: bool = False,
        flood_slack: float = FLOOD_SLACK,
    ) -> None:
        """Start serving on 127.0.0.1 at a free port.

        With ``strict_flood``, sends (``send*``, ``forward*``, ``copy*``) are held to Telegram's
        limits as exact sliding windows per token: one a second per chat, 20 a minute per group
        or channel, 30 a second in all. A send over a limit is recorded with ``error_code`` 429
        and answered 429 with ``retry_after``. ``flood_slack`` forgives that much network
        jitter at each window's edge.
        """
        self._spec = spec or load_spec()
        self._tokens = None if tokens is None else set(tokens)
        self._record_polling = record_polling
        self._long_poll_cap = long_poll_cap
        self._cond = threading.Condition(threading.RLock())
        self._calls: list[RecordedCall] = []
        self._rejected: list[RejectedCall] = []
        self._faults: defaultdict[str, deque[_Fault]] = defaultdict(deque)
        self._updates: defaultdict[str, list[dict[str, object]]] = defaultdict(list)
        self._webhooks: dict[str, dict[str, object]] = {}
        self._allowed: dict[str, list[str]] = {}
        self._message_ids: defaultdict[tuple[str, int], int] = defaultdict(int)
        self._strict_flood = strict_flood
        self._flood_slack = flood_slack
        self._sends: defaultdict[tuple[str, str], deque[float]] = defaultdict(deque)
        self._files: dict[str, tuple[str, bytes, int | None]] = {}
        self._downloads: list[str] = []
        self._closed = False
        self._server = _Server((HOST, 0), _Handler, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name=f"telegram-standin-{self.port}",
            daemon=True,
        )
        self._thread.start()
        logger.debug("Telegram stand-in listening on %s", self.base_url)

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> Self:
        """Return the running stand-in."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server."""
        self.close()

    def close(self) -> None:
        """Stop serving: wake long polls, drop open connections, join all server threads."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        self._server.shutdown()
        self._server.drop_connections()
        self._server.server_close()
        self._thread.join()
        logger.debug("Telegram stand-in on port %d stopped", self.port)

    @property
    def port(self) -> int:
        """The TCP port the stand-in listens on."""
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """The API root, e.g. ``http://127.0.0.1:PORT`` (requests go to ``/bot<token>/<m>``)."""
        return f"http://{HOST}:{self.port}"

    def bot_url(self, token: str) -> str:
        """The URL prefix of one bot's methods: ``{base_url}/bot{token}``."""
        return f"{self.base_url}/bot{token}"

    def add_token(self, token: str) -> None:
        """Accept one more bot token."""
        with self._cond:
            if self._tokens is not None:
                self._tokens.add(token)

    # -- inspection --------------------------------------------------------------------------

    @property
    def calls(self) -> list[RecordedCall]:
        """A snapshot of the recorded calls, oldest first."""
        with self._cond:
            return list(self._calls)

    @property
    def rejected(self) -> list[RejectedCall]:
        """A snapshot of the refused calls (401/404/400 from validation), oldest first."""
        with self._cond:
            return list(self._rejected)

    def calls_to(self, method: str) -> list[RecordedCall]:
        """The recorded calls of ``method`` (any capitalisation), oldest first."""
        canonical = self._spec.canonical_name(method) or method
        with self._cond:
            return [call for call in self._calls if call.method == canonical]

    def wait_for_calls(
        self, n: int, timeout: float = 5.0, *, method: str | None = None
    ) -> list[RecordedCall]:
        """Block until ``n`` calls (of ``method``, if given) are recorded; return them.

        Raises TimeoutError naming what was recorded if they do not arrive in ``timeout`` s.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = self.calls_to(method) if method is not None else list(self._calls)
                if len(found) >= n:
                    return found[:n]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [call.method for call in self._calls]
                    what = f"calls to {method}" if method is not None else "calls"
                    raise TimeoutError(
                        f"expected {n} {what} within {timeout}s, got {len(found)}; "
                        f"recorded: {seen}; rejected: {self._rejected}"
                    )
                self._cond.wait(remaining)

    def clear(self) -> None:
        """Forget recorded and rejected calls and pending faults (queued updates stay)."""
        with self._cond:
            self._calls.clear()
            self._rejected.clear()
            self._faults.clear()

    # -- files -------------------------------------------------------------------------------

    def add_file(
        self, file_id: str, data: bytes, path: str, *, declared_size: int | None = None
    ) -> None:
        """Serve a file: ``getFile(file_id)`` answers ``path`` (and ``declared_size``, default
        the real size), and ``GET /file/bot<token>/<path>`` answers ``data``."""
        with self._cond:
            size = len(data) if declared_size is None else declared_size
            self._files[file_id] = (path, data, size)

    @property
    def downloads(self) -> list[str]:
        """The file paths downloaded so far (``/file/bot<token>/<path>``), oldest first."""
        with self._cond:
            return list(self._downloads)

    def serve_file(self, path: str) -> tuple[int, bytes]:
        """Answer ``GET /file/bot<token>/<path>``: the file's bytes, or 404."""
        match = _FILE_PATH_RE.fullmatch(urlsplit(path).path)
        if match is None or not self._token_ok(match.group("token")):
            return 404, b"Not Found"
        wanted = unquote(match.group("path"))
        with self._cond:
            self._downloads.append(wanted)
            for file_path, data, _ in self._files.values():
                if file_path == wanted:
                    return 200, data
        return 404, b"Not Found"

    def _get_file(self, params: Mapping[str, object]) -> object:
        """``getFile``: a file added with :meth:`add_file`, else a sample File (not served)."""
        file_id = str(params.get("file_id"))
        with self._cond:
            known = self._files.get(file_id)
        if known is None:
            return _sample("File", params)
        path, _, size = known
        result: dict[str, object] = {
            "file_id": file_id,
            "file_unique_id": f"u{zlib.crc32(file_id.encode())}",
            "file_path": path,
        }
        if size is not None:
            result["file_size"] = size
        return result

    # -- scripting ---------------------------------------------------------------------------

    def push_update(self, token: str, update: Mapping[str, object]) -> int:
        """Queue an Update for ``token``'s getUpdates; return its update_id (assigned if absent)."""
        with self._cond:
            queue = self._updates[token]
            item = dict(update)
            if "update_id" not in item:
                last = max((_int(u["update_id"]) for u in queue), default=0)
                item["update_id"] = last + 1
            queue.append(item)
            self._cond.notify_all()
            return _int(item["update_id"])

    def allowed_updates(self, token: str) -> list[str] | None:
        """The last ``allowed_updates`` getUpdates or setWebhook sent for ``token`` (or None)."""
        with self._cond:
            found = self._allowed.get(token)
            return None if found is None else list(found)

    def pending_updates(self, token: str) -> list[dict[str, object]]:
        """The updates of ``token`` not yet confirmed by a getUpdates offset."""
        with self._cond:
            return [dict(update) for update in self._updates[token]]

    def fail_next(
        self,
        method: str,
        error_code: int = 429,
        description: str | None = None,
        retry_after: int | None = None,
        *,
        count: int = 1,
        migrate_to_chat_id: int | None = None,
        chat_id: int | str | None = None,
    ) -> None:
        """Make the next ``count`` valid calls of ``method`` fail with ``error_code``
        (with ``chat_id``, only calls to that chat).

        For 429 ``retry_after`` defaults to 1 and the description to Telegram's
        ``Too Many Requests: retry after N``; ``retry_after`` / ``migrate_to_chat_id`` are sent
        as ``parameters`` when set.
        """
        canonical = self._spec.canonical_name(method)
        if canonical is None:
            hint = self._spec.suggest(method)
            raise ValueError(f"cannot inject a fault into unknown method {method!r} ({hint=})")
        if error_code == HTTPStatus.TOO_MANY_REQUESTS and retry_after is None:
            retry_after = 1
        if description is None:
            if error_code == HTTPStatus.TOO_MANY_REQUESTS:
                description = f"Too Many Requests: retry after {retry_after}"
            else:
                description = _DEFAULT_DESCRIPTIONS.get(error_code, f"Error {error_code}")
        parameters: dict[str, object] = {}
        if retry_after is not None:
            parameters["retry_after"] = retry_after
        if migrate_to_chat_id is not None:
            parameters["migrate_to_chat_id"] = migrate_to_chat_id
        fault = _Fault(error_code, description, MappingProxyType(parameters), chat_id)
        with self._cond:
            self._faults[canonical].extend([fault] * count)

    # -- request handling (called from server threads) ----------------------------------------

    def handle(
        self, http_method: str, path: str, content_type: str, body: bytes
    ) -> tuple[int, bytes]:
        """Answer one HTTP request; returns the status and the JSON body."""
        try:
            reply = self._dispatch(http_method, path, content_type, body)
        except _ApiError as error:
            reply = error.reply()
        payload = json.dumps(reply.body, ensure_ascii=False, separators=(",", ":"))
        return reply.status, payload.encode("utf-8")

    def _dispatch(self, http_method: str, path: str, content_type: str, body: bytes) -> _Reply:
        """Route, authenticate, validate, record and answer one request."""
        url = urlsplit(path)
        match = _PATH_RE.fullmatch(url.path)
        if match is None or http_method not in {"GET", "POST"}:
            raise _ApiError(404, "Not Found")
        token, requested = match.group("token"), match.group("method")
        raw: dict[str, object] = dict(parse_qsl(url.query, keep_blank_values=True))
        raw_body, attachments = _parse_body(content_type, body)
        raw.update(raw_body)
        if not self._token_ok(token):
            raise self._reject(token, requested, raw, _ApiError(401, "Unauthorized"))
        method = self._spec.canonical_name(requested)
        if method is None:
            error = _ApiError(404, "Not Found: method not found")
            raise self._reject(token, requested, raw, error)
        method_spec = self._spec.method(method)
        params = _normalise(method_spec, raw)
        for name in [name for name, value in params.items() if isinstance(value, UploadedFile)]:
            if name not in method_spec.fields:
                attachments[name] = cast(UploadedFile, params.pop(name))
        problems = self._spec.check_call(method, params)
        if problems:
            description = "Bad Request: " + "; ".join(problem.message for problem in problems)
            raise self._reject(token, method, params, _ApiError(400, description))
        text = params.get("text")
        plain = isinstance(text, str) and not params.get("parse_mode")
        if method in _TEXT_METHODS and plain and not 1 <= utf16_len(str(text)) <= MAX_TEXT_UNITS:
            error = _ApiError(400, "Bad Request: message is too long" if text else _EMPTY)
            raise self._reject(token, method, params, error)
        with self._cond:
            now = time.monotonic()
            fault = self._take_fault(method, params.get("chat_id"))
            if (
                fault is None
                and self._strict_flood
                and method.startswith(("send", "forward", "copy"))
            ):
                fault = self._flood_fault(token, params.get("chat_id"), now)
            if method != "getUpdates" or self._record_polling:
                self._calls.append(
                    RecordedCall(
                        token,
                        method,
                        MappingProxyType(params),
                        None if fault is None else fault.error_code,
                        MappingProxyType(attachments),
                        now,
                    )
                )
                self._cond.notify_all()
        if fault is not None:
            raise _ApiError(fault.error_code, fault.description, fault.parameters)
        return _Reply(200, {"ok": True, "result": self._result(token, method_spec, params)})

    def _take_fault(self, method: str, chat_id: object) -> _Fault | None:
        """The first injected fault for this call, removed (called under the lock)."""
        faults = self._faults[method]
        for fault in faults:
            if fault.chat_id is None or str(fault.chat_id) == str(chat_id):
                faults.remove(fault)
                return fault
        return None

    def _flood_fault(self, token: str, chat_id: object, now: float) -> _Fault | None:
        """A 429 if one more send now passes a flood limit; else count it (under the lock)."""
        chat = str(chat_id)
        windows = [("*", 30, 1.0), (chat, 1, 1.0)]
        if chat.startswith(("-", "@")):
            windows.append(("group:" + chat, 20, 60.0))
        wait = 0.0
        for key, count, period in windows:
            sent = self._sends[token, key]
            while sent and sent[0] <= now - period + self._flood_slack:
                sent.popleft()
            if len(sent) >= count:
                wait = max(wait, sent[0] + period - self._flood_slack - now)
        if wait > 0:
            retry_after = max(1, int(wait + 0.999))
            return _Fault(
                429,
                f"Too Many Requests: retry after {retry_after}",
                MappingProxyType({"retry_after": retry_after}),
            )
        for key, _, _ in windows:
            self._sends[token, key].append(now)
        return None

    def _token_ok(self, token: str) -> bool:
        """Whether ``token`` is accepted."""
        with self._cond:
            if self._tokens is not None:
                return token in self._tokens
        return TOKEN_RE.fullmatch(token) is not None

    def _reject(
        self, token: str, method: str, params: Mapping[str, object], error: _ApiError
    ) -> _ApiError:
        """Record a refused call and return its error for raising."""
        logger.debug("stand-in refused %s: %s", method, error.description)
        with self._cond:
            self._rejected.append(
                RejectedCall(
                    token,
                    method,
                    MappingProxyType(dict(params)),
                    error.error_code,
                    error.description,
                )
            )
            self._cond.notify_all()
        return error

    # -- results -----------------------------------------------------------------------------

    def _result(self, token: str, spec: MethodSpec, params: dict[str, object]) -> object:
        """The ``result`` of a valid call, shaped by the method's spec return type."""
        match spec.name:
            case "getMe":
                return bot_user(token)
            case "getUpdates":
                return self._get_updates(token, params)
            case "setWebhook":
                return self._set_webhook(token, params)
            case "deleteWebhook":
                return self._delete_webhook(token, params)
            case "getWebhookInfo":
                return self._webhook_info(token)
            case "sendMediaGroup":
                return self._media_group(token, params)
            case "getChatMemberCount":
                return 2
            case "getFile":
                return self._get_file(params)
            case name if name in _STRING_RESULTS:
                return _STRING_RESULTS[name]
        returns = spec.returns
        if "Message" in returns:
            if "Boolean" in returns and params.get("inline_message_id") is not None:
                return True
            return self._message(token, spec.name, params)
        first = returns[0] if returns else "Boolean"
        if first == "MessageId":
            return {"message_id": self._next_message_id(token, params.get("chat_id"))}
        if first == "Array of MessageId":
            ids = params.get("message_ids")
            count = len(ids) if isinstance(ids, list) else 1
            chat_id = params.get("chat_id")
            return [{"message_id": self._next_message_id(token, chat_id)} for _ in range(count)]
        return _sample(first, params)

    def _chat(self, chat_id: object) -> dict[str, object]:
        """The Chat object for a chat_id parameter (numeric id or ``@username``)."""
        if isinstance(chat_id, int):
            return make_chat(chat_id)
        name = str(chat_id).removeprefix("@") or "channel"
        numeric = -(10**12 + zlib.crc32(name.encode()))
        return make_chat(numeric, chat_type="channel", title=name, username=name)

    def _next_message_id(self, token: str, chat_id: object) -> int:
        """The next message id in one bot's chat."""
        chat = _int(self._chat(chat_id)["id"])
        with self._cond:
            self._message_ids[(token, chat)] += 1
            return self._message_ids[(token, chat)]

    def _message(self, token: str, method: str, params: Mapping[str, object]) -> dict[str, object]:
        """A Message for a send*/edit*/forward*/stop* call, echoing what was sent."""
        chat_id = params.get("chat_id")
        chat = (
            self._chat(chat_id) if chat_id is not None else make_chat(_int(bot_user(token)["id"]))
        )
        editing = method.startswith(("edit", "stop", "set"))
        message_id = params.get("message_id") if editing else None
        if not isinstance(message_id, int):
            message_id = self._next_message_id(token, chat["id"])
        message: dict[str, object] = {
            "message_id": message_id,
            "from": bot_user(token),
            "chat": chat,
            "date": int(time.time()),
        }
        if editing:
            message["edit_date"] = int(time.time())
        for name in ("message_thread_id", "text", "entities", "has_spoiler", *_CAPTION_FIELDS):
            if params.get(name) is not None:
                message[name] = params[name]
        if "text" not in message and method in {"editMessageText", "sendMessage"}:
            message["text"] = ""
        markup = params.get("reply_markup")
        if isinstance(markup, Mapping) and "inline_keyboard" in markup:
            message["reply_markup"] = dict(markup)
        content = _content_field(method)
        message_type = self._spec.type_spec("Message")
        if content is not None and content in message_type.fields:
            message[content] = _sample(message_type.fields[content].types[0], params)
        return message

    def _media_group(self, token: str, params: Mapping[str, object]) -> list[dict[str, object]]:
        """One Message per InputMedia of a sendMediaGroup call, sharing a media_group_id."""
        media = params.get("media")
        items = media if isinstance(media, list) else []
        group_id = str(zlib.crc32(json.dumps(items, sort_keys=True, default=str).encode()))
        messages = []
        message_type = self._spec.type_spec("Message")
        for item in items:
            entry = item if isinstance(item, Mapping) else {}
            message = self._message(token, "sendMediaGroup", params)
            message["media_group_id"] = group_id
            for name in _CAPTION_FIELDS:
                if entry.get(name) is not None:
                    message[name] = entry[name]
            kind = str(entry.get("type", "photo"))
            if kind in message_type.fields:
                message[kind] = _sample(message_type.fields[kind].types[0], entry)
            messages.append(message)
        return messages

    def _get_updates(self, token: str, params: Mapping[str, object]) -> list[dict[str, object]]:
        """Confirm updates below ``offset``, then long-poll up to ``timeout`` (capped) for more."""
        with self._cond:
            if self._webhooks.get(token, {}).get("url"):
                raise _ApiError(409, _CONFLICT)
        offset = _int(params.get("offset", 0))
        limit = min(max(_int(params.get("limit", 100)), 1), 100)
        timeout = min(max(_float(params.get("timeout", 0)), 0.0), self._long_poll_cap)
        allowed = params.get("allowed_updates")
        deadline = time.monotonic() + timeout
        with self._cond:
            if isinstance(allowed, list):  # like Telegram: kept until the next call sends one
                self._allowed[token] = [str(kind) for kind in allowed]
            kept = self._allowed.get(token)
            kinds = set(kept) if kept else None
            queue = self._updates[token]
            if offset < 0:
                del queue[: max(len(queue) + offset, 0)]
            elif offset > 0:
                queue[:] = [u for u in queue if _int(u["update_id"]) >= offset]
            while True:
                ready = [u for u in queue if _wanted(kinds, u.keys() - {"update_id"})]
                remaining = deadline - time.monotonic()
                if ready or self._closed or remaining <= 0:
                    return [dict(u) for u in ready[:limit]]
                self._cond.wait(remaining)

    def _set_webhook(self, token: str, params: Mapping[str, object]) -> bool:
        """Remember the webhook so getWebhookInfo reflects it."""
        info: dict[str, object] = {"url": str(params.get("url", ""))}
        for name in ("max_connections", "allowed_updates", "ip_address"):
            if params.get(name) is not None:
                info[name] = params[name]
        info["has_custom_certificate"] = params.get("certificate") is not None
        with self._cond:
            allowed = params.get("allowed_updates")
            if isinstance(allowed, list):
                self._allowed[token] = [str(kind) for kind in allowed]
            if params.get("drop_pending_updates") is True:
                self._updates[token].clear()
            self._webhooks[token] = info
        return True

    def _delete_webhook(self, token: str, params: Mapping[str, object]) -> bool:
        """Forget the webhook (and the queue, with drop_pending_updates)."""
        with self._cond:
            self._webhooks.pop(token, None)
            if params.get("drop_pending_updates") is True:
                self._updates[token].clear()
        return True

    def _webhook_info(self, token: str) -> dict[str, object]:
        """A WebhookInfo reflecting setWebhook/deleteWebhook and the update queue."""
        with self._cond:
            info = dict(self._webhooks.get(token, {"url": "", "has_custom_certificate": False}))
            info["pending_update_count"] = len(self._updates[token])
        return info


class _Server(ThreadingHTTPServer):
    """The HTTP server: knows its stand-in and can drop its open keep-alive connections."""

    daemon_threads = False
    block_on_close = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        standin: TelegramStandIn,
    ) -> None:
        """Bind to ``address`` and remember the stand-in that answers requests."""
        self.standin = standin
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def track(self, connection: socket.socket, *, open_: bool) -> None:
        """Register or unregister a client connection."""
        with self._connections_lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def drop_connections(self) -> None:
        """Shut down every open client connection so handler threads finish."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                logger.debug("connection already closed", exc_info=True)

    def handle_error(self, request: object, client_address: object) -> None:
        """Log handler errors (clients hanging up) at debug level instead of stderr."""
        logger.debug("stand-in request from %s failed", client_address, exc_info=sys.exc_info())


class _Handler(BaseHTTPRequestHandler):
    """Turns HTTP requests into stand-in calls."""

    protocol_version = "HTTP/1.1"
    server_version = "TelegramStandIn/1.0"
    timeout = 30

    def setup(self) -> None:
        """Track the connection so close() can drop it; disable Nagle for prompt replies."""
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._server().track(self.connection, open_=True)

    def finish(self) -> None:
        """Untrack the connection."""
        self._server().track(self.connection, open_=False)
        try:
            super().finish()
        except OSError:
            logger.debug("error finishing a stand-in connection", exc_info=True)

    def do_GET(self) -> None:
        """Handle GET /bot<token>/<method>?query."""
        self._answer("GET")

    def do_POST(self) -> None:
        """Handle POST /bot<token>/<method> with a JSON, form or multipart body."""
        self._answer("POST")

    def log_message(self, format: str, *args: object) -> None:
        """Send the access log to logging at debug level."""
        logger.debug("stand-in: " + format, *args)

    def _server(self) -> _Server:
        """The server, typed."""
        return cast(_Server, self.server)

    def _answer(self, http_method: str) -> None:
        """Read the body, let the stand-in answer, write the JSON response."""
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            status, body = (
                413,
                b'{"ok":false,"error_code":413,"description":"Request Entity Too Large"}',
            )
            self.close_connection = True
        elif http_method == "GET" and self.path.startswith("/file/bot"):
            status, body = self._server().standin.serve_file(self.path)
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        else:
            data = self.rfile.read(length) if length else b""
            content_type = self.headers.get("Content-Type", "")
            status, body = self._server().standin.handle(http_method, self.path, content_type, data)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _wanted(kinds: set[str] | None, present: Iterable[str]) -> bool:
    """Whether an update of kind ``present`` is sent: the asked kinds, else Telegram's default."""
    if kinds is None:
        return not set(present) & OPT_IN_KINDS
    return bool(kinds & set(present))


def _parse_body(
    content_type: str, body: bytes
) -> tuple[dict[str, object], dict[str, UploadedFile]]:
    """Decode a request body (JSON, urlencoded or multipart) into parameters and files."""
    mime = content_type.split(";", 1)[0].strip().lower()
    if not body:
        return {}, {}
    if mime == "application/json":
        try:
            decoded = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise _ApiError(400, "Bad Request: can't parse JSON object") from None
        if not isinstance(decoded, dict):
            raise _ApiError(400, "Bad Request: JSON object expected")
        return decoded, {}
    if mime == "multipart/form-data":
        return _parse_multipart(content_type, body), {}
    text = body.decode("utf-8", errors="replace")
    return dict(parse_qsl(text, keep_blank_values=True)), {}


def _parse_multipart(content_type: str, body: bytes) -> dict[str, object]:
    """Decode multipart/form-data: text parts become strings, file parts UploadedFiles."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    if not isinstance(message, EmailMessage) or not message.is_multipart():
        raise _ApiError(400, "Bad Request: can't parse multipart body")
    params: dict[str, object] = {}
    for part in message.iter_parts():
        if not isinstance(part, EmailMessage):
            continue
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            params[name] = UploadedFile(filename, part.get_content_type(), data)
        else:
            charset = part.get_content_charset() or "utf-8"
            params[name] = data.decode(charset, errors="replace")
    return params


def _normalise(spec: MethodSpec, raw: Mapping[str, object]) -> dict[str, object]:
    """Decode string parameters the way Telegram reads them, by the field's spec types."""
    params: dict[str, object] = {}
    for name, value in raw.items():
        field_spec = spec.fields.get(name)
        if field_spec is None or not isinstance(value, str):
            params[name] = value
            continue
        params[name] = _decode_string(field_spec.types, value)
    return params


def _decode_string(types: Sequence[str], value: str) -> object:
    """One string parameter decoded for a field that takes ``types``."""
    stripped = value.strip()
    if "Integer" in types and _INT_RE.fullmatch(stripped):
        return int(stripped)
    if "String" in types or "InputFile" in types:
        return value
    if "Float" in types:
        try:
            return float(stripped)
        except ValueError:
            return value
    if "Boolean" in types:
        lowered = stripped.lower()
        return lowered in {"true", "1"} if lowered in {"true", "false", "1", "0"} else value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _content_field(method: str) -> str | None:
    """The Message field a send method fills: sendVideoNote -> video_note."""
    if not method.startswith("send"):
        return None
    return re.sub(r"(?<!^)(?=[A-Z])", "_", method.removeprefix("send")).lower()


def _sample(type_str: str, overrides: Mapping[str, object]) -> object:
    """A plausible value of a spec type, taking scalar values from ``overrides`` by name."""
    if type_str.startswith(_ARRAY_PREFIX):
        inner = type_str.removeprefix(_ARRAY_PREFIX)
        return [_sample(inner, overrides)] if load_spec().has_type(inner) else []
    if type_str == "Boolean":
        return True
    if type_str == "Integer":
        return 1
    if type_str == "Float":
        return 0.0
    if type_str == "String":
        return "standin"
    if not load_spec().has_type(type_str):
        return True
    scalars = {key: value for key, value in overrides.items() if _is_scalar(value)}
    return sample_object(type_str, _fitting(type_str, scalars))


def _fitting(type_name: str, values: Mapping[str, object]) -> dict[str, object]:
    """The scalar ``values`` whose name is a scalar field of ``type_name`` of a matching kind."""
    type_spec = load_spec().type_spec(concrete_type(type_name))
    fitting: dict[str, object] = {}
    for key, value in values.items():
        field_spec = type_spec.fields.get(key)
        if field_spec is not None and any(_fits(t, value) for t in field_spec.types):
            fitting[key] = value
    return fitting


def _fits(type_str: str, value: object) -> bool:
    """Whether a decoded scalar is exactly of the scalar spec type ``type_str``."""
    if isinstance(value, bool):
        return type_str == "Boolean"
    if isinstance(value, int):
        return type_str in {"Integer", "Float"}
    if isinstance(value, float):
        return type_str == "Float"
    return isinstance(value, str) and type_str == "String"


def _is_scalar(value: object) -> bool:
    """Whether ``value`` is a JSON scalar."""
    return isinstance(value, str | int | float | bool)


def _int(value: object) -> int:
    """``value`` as an int (0 if it is not one)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _INT_RE.fullmatch(value.strip()):
        return int(value)
    return 0


def _float(value: object) -> float:
    """``value`` as a float (0.0 if it is not a number)."""
    if isinstance(value, bool):
        return 0.0
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        return 0.0
