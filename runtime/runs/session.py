"""One run's world: who it is for (:class:`Context`), its pending writes (:class:`Transaction`),
and the capabilities a script gets (:class:`Session`): ``Api``, ``Bot`` and ``User``.

Everything a script does to the outside goes through here, in the server process: Telegram
calls (checked against the spec, paced to Telegram's flood limits by :func:`pace`), a command's
``answer`` (:func:`send_answer`), property reads and writes (buffered, committed together when
the run ends well), and scheduled runs.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final, cast

from runtime.bots import dispatch
from runtime.bots.answer import render_answer, reply_keyboard
from runtime.bots.command import Command
from runtime.bots.cron import label_problem
from runtime.errors import (
    ApiError,
    CallRefused,
    FileRefused,
    LinkError,
    OutboundError,
    TelegramError,
    TransportError,
)
from runtime.outbound.broker import Broker, Hop
from runtime.outbound.request import OutboundRequest, build_request
from runtime.runs.properties import Properties
from runtime.runs.registry import LiveBot
from runtime.runs.runlog import RunLog
from runtime.runs.secrets import BotSecrets
from runtime.runs.transaction import BroadcastRun, ScheduledRun, Transaction
from runtime.signing.keys import KeyFile
from runtime.signing.links import Link, make_link, signature, url_of
from runtime.signing.sealing import NAME_PATTERN
from runtime.store import RateHit, Store, Window
from runtime.telegram import files, flood
from runtime.telegram.client import TelegramClient
from runtime.telegram.markup import markup_problem
from runtime.telegram.text import split_text, too_long
from runtime.telegram.update import reply_route
from sandbox import JSON, CallRequest, CapabilityError, Handler, WorkerPool
from sandbox.capability import FileReply, Response, RunInPlace, wait_budget
from sandbox.errors import FileRefused as SandboxFileRefused
from sandbox.errors import WaitExhausted
from sandbox.jsontypes import is_int, is_number

logger = logging.getLogger(__name__)

MAX_RUN_COMMAND_DEPTH: Final = 6
MAX_RETRY_AFTER: Final = 5.0
"""Longest 429 pause an unpaced bot (``flood_limits: false``) waits out before one retry."""
MAX_ATTEMPTS: Final = 3
MAX_BROADCAST_USERS: Final = 10_000
"""Most user ids one ``Bot.broadcast(user_ids=...)`` takes (every known user: no limit)."""
MAX_USER_ID: Final = 2**53
MAX_BROADCAST_OPTIONS: Final = 16 * 1024
"""Largest ``Bot.broadcast`` options, as JSON bytes (every user's run carries a copy)."""
MAX_UNBUDGETED_WAIT: Final = 120.0
"""Longest flood wait for a call made outside a run (a command's ``answer``, a callback's
automatic answer)."""
MAX_SCHEDULED: Final = 20
MEDIA_SHORTCUTS: Final = {
    "Bot.sendPhoto": ("sendPhoto", "photo"),
    "Bot.sendDocument": ("sendDocument", "document"),
    "Bot.sendVideo": ("sendVideo", "video"),
    "Bot.sendAudio": ("sendAudio", "audio"),
    "Bot.sendVoice": ("sendVoice", "voice"),
    "Bot.sendSticker": ("sendSticker", "sticker"),
    "Bot.sendAnimation": ("sendAnimation", "animation"),
}
"""``Bot.sendPhoto(file_id_or_url, **params)`` and the like: the Bot API method and the field
the first argument fills, sent to the current chat."""

MAX_LISTED: Final = 100
"""Most runs one ``Bot.listRuns`` call returns (page with ``after=``)."""


@dataclass(slots=True)
class Delivery:
    """What the runs of one pipeline did that the platform completes afterwards (shared by
    ``@``, the command, ``!``, ``@@`` and nested commands)."""

    callback_answered: bool = False
    revealed: dict[str, str] = field(default_factory=dict)
    """Secrets the runs read (name -> value), masked in their run log records."""


@dataclass(frozen=True, slots=True)
class Context:
    """Who and where one run is for, and what it was given."""

    bot: LiveBot
    command: Command
    trigger: str
    user: dict[str, Any] | None = None
    chat: dict[str, Any] | None = None
    update: dict[str, Any] | None = None
    update_type: str | None = None
    request: dict[str, Any] | None = None
    message: str | None = None
    params: JSON = ""
    options: JSON = None
    error: JSON = None
    depth: int = 0
    generation: int = 0
    """0 for a run started by an update or a click; n + 1 for a run a generation-n run queued."""
    delivery: Delivery = field(default_factory=Delivery, compare=False)

    @property
    def user_id(self) -> int | None:
        """The current user's id, if the run has a user."""
        return self.user.get("id") if self.user else None

    @property
    def chat_id(self) -> int | None:
        """The current chat's id, if the run has a chat."""
        return self.chat.get("id") if self.chat else None

    @property
    def route(self) -> dict[str, int | str]:
        """What a reply in the current chat carries besides ``chat_id``: topic, business link."""
        return reply_route(self.update_type, self.request)

    def globals(self) -> dict[str, JSON]:
        """The JSON globals a script sees."""
        return {
            "update": self.update,
            "update_type": self.update_type,
            "message": self.message,
            "request": self.request,
            "user": self.user,
            "chat": self.chat,
            "params": self.params,
            "options": self.options,
            "error": self.error,
            # bot.yaml's settings: a copy in every run, so a change stays in its run.
            "settings": self.bot.definition.config.settings,
        }

    def for_command(self, command: Command, **changes: Any) -> Context:
        """The same context for another command (``@``, ``@@``, ``!``, or a nested one)."""
        return replace(self, command=command, **changes)


@dataclass(frozen=True, slots=True)
class Services:
    """What sessions need from the server: pool, store, Telegram, link keys, and a clock."""

    pool: WorkerPool
    store: Store
    telegram: TelegramClient
    keys: KeyFile
    base_url: str
    runlog: RunLog
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    outbound: Broker = field(default_factory=Broker)
    """Makes scripts' HTTP requests (``HTTP.*``); its owner closes it."""
    secrets: BotSecrets | None = None
    """Bot secrets (``Secrets.get``, run log masking); None: every bot has none."""

    def mint(self, bot: LiveBot, link: Link) -> str:
        """Sign a link for a bot with the active key; return its URL."""
        ring = self.keys.current()
        return url_of(self.base_url, bot.id, link, signature(ring, bot.id, link))


def api_error(
    method: str, code: int, description: str, retry_after: float | None = None
) -> CapabilityError:
    """The error a script sees when a Bot API call fails: ``ApiError`` with code and text."""
    data: dict[str, JSON] = {"method": method, "code": code, "description": description}
    if retry_after is not None:
        data["retry_after"] = retry_after
    return CapabilityError(f"{method}: {description}", kind="ApiError", data=data)


async def call_telegram(
    services: Services,
    bot: LiveBot,
    method: str,
    params: Mapping[str, Any],
    *,
    multipart: bool = False,
) -> JSON:
    """Make one Bot API call for a bot: paced to Telegram's flood limits, retried after a 429.

    A 429 pauses what it was about (the call's chat, or the bot) for ``retry_after``, in the
    store so every server process respects it, and the call is tried again when the pause ends,
    if the run's paced-wait budget allows (up to :data:`MAX_ATTEMPTS` tries).
    """
    if bot.token is None:
        raise api_error(
            method,
            401,
            f"this bot has no Telegram token (set {bot.definition.config.token_env} on the server)",
        )
    chat_id = params.get("chat_id")
    for attempt in range(1, MAX_ATTEMPTS + 1):
        if bot.paced:
            await pace(services, bot, method, chat_id)
        try:
            return await services.telegram.call(bot.token, method, params, multipart=multipart)
        except CallRefused as exc:
            raise api_error(method, 400, "; ".join(exc.problems)) from None
        except FileRefused as exc:
            raise api_error(method, exc.status, str(exc)) from None
        except ApiError as exc:
            retry_after = exc.retry_after
            if exc.code == 429 and retry_after is not None and attempt < MAX_ATTEMPTS:
                now = services.clock()
                await services.store.pause_sends(
                    bot.id, flood.pause_key(chat_id), until=now + retry_after, now=now
                )
                if bot.paced:
                    continue  # pace() waits for the pause (or refuses past the budget)
                if retry_after <= MAX_RETRY_AFTER:
                    await paced_sleep(services, retry_after)
                    continue
            raise api_error(exc.method, exc.code, exc.description, exc.retry_after) from None
        except TransportError as exc:
            raise api_error(method, 502, str(exc)) from None
        except TelegramError as exc:  # pragma: no cover - every subclass is handled above
            raise api_error(method, 500, str(exc)) from None
    raise api_error(method, 429, "Too Many Requests")  # pragma: no cover - loop always returns


async def pace(services: Services, bot: LiveBot, method: str, chat_id: object) -> None:
    """Wait until Telegram's flood limits (shared by every server process) let a call through.

    The wait is a paced wait: inside a run it counts against ``limits.wait_seconds``, not the
    wall clock; a wait past what is left ends the run (``WaitExhausted``). Outside a run (the
    platform's own answers) it may take up to :data:`MAX_UNBUDGETED_WAIT` seconds; beyond, the
    call fails as a 429.
    """
    limits = flood.limits_for(method, chat_id)
    if not limits:
        return
    budget = wait_budget()
    horizon = MAX_UNBUDGETED_WAIT if budget is None else budget.remaining
    now = services.clock()
    at = await services.store.reserve_send(
        bot.id,
        [Window(limit.key, limit.count, limit.period) for limit in limits],
        flood.pause_keys(chat_id),
        now=now,
        horizon=horizon,
    )
    if at is None:
        if budget is not None:
            raise WaitExhausted(
                f"Telegram's flood limits would hold {method} longer than the {horizon:.1f} s "
                "left of this run's wait_seconds"
            )
        raise api_error(method, 429, f"Telegram's flood limits hold {method} over {horizon:.0f} s")
    await paced_sleep(services, at - services.clock())


async def paced_sleep(services: Services, seconds: float) -> None:
    """Sleep as a paced wait: through the run's wait budget when serving a run."""
    if seconds <= 0:
        return
    budget = wait_budget()
    if budget is None:
        await services.sleep(seconds)
    else:
        await budget.sleep(seconds, services.sleep)


async def send_answer(services: Services, context: Context) -> None:
    """Send a command's ``answer`` (and ``keyboard``) to the current chat, if any.

    Raises CapabilityError (``ApiError``) when Telegram refuses it or cannot be reached.
    """
    command = context.command
    if command.answer is None or context.chat_id is None:
        return
    params: dict[str, Any] = {
        **context.route,
        "chat_id": context.chat_id,
        "text": render_answer(
            command.answer,
            {"user": context.user or {}, "chat": context.chat or {}, "params": context.params},
            command.parse_mode,
        ),
    }
    if command.parse_mode:
        params["parse_mode"] = command.parse_mode
    if command.keyboard:
        params["reply_markup"] = reply_keyboard(command.keyboard)
    try:
        await call_telegram(services, context.bot, "sendMessage", params)
    except CapabilityError as exc:
        raise CapabilityError(
            f"the answer was not sent: {exc.message}", kind=exc.kind, data=exc.data
        ) from None


async def answer_callback(services: Services, context: Context) -> None:
    """Answer a callback query no run of the pipeline answered, so the user's spinner stops."""
    query_id = (context.request or {}).get("id")
    if context.update_type != "callback_query" or context.delivery.callback_answered:
        return
    if type(query_id) is not str:
        return
    context.delivery.callback_answered = True
    try:
        await call_telegram(
            services, context.bot, "answerCallbackQuery", {"callback_query_id": query_id}
        )
    except CapabilityError as exc:
        logger.warning(
            "bot %s: the callback query of %s was not answered: %s",
            context.bot.id,
            context.command.name,
            exc.message,
        )


class Session:
    """The capabilities of one run, bound to its context and transaction."""

    def __init__(self, services: Services, context: Context, transaction: Transaction) -> None:
        self.services = services
        self.context = context
        self.tx = transaction

    def capabilities(self) -> dict[str, Handler]:
        """The handlers, by the names scripts call them."""
        return {
            "Api.*": self.api,
            "Bot.sendMessage": self.send_message,
            "Bot.inspect": self.inspect,
            "Bot.runCommand": self.run_command,
            "Bot.run": self.schedule,
            "Bot.broadcast": self.broadcast,
            "Bot.cancelRuns": self.cancel_runs,
            "Bot.listRuns": self.list_runs,
            "Webhook.getUrl": self.get_url,
            "Webhook.getUrlFor": self.get_url_for,
            "Webhook.getGlobalUrl": self.get_global_url,
            "HTTP.get": self.http,
            "HTTP.post": self.http,
            "HTTP.request": self.http,
            "Bot.sendKeyboard": self.send_keyboard,
            **dict.fromkeys(MEDIA_SHORTCUTS, self.send_media),
            "Secrets.get": self.get_secret,
            **Properties(
                self.services.store,
                self.context.bot,
                self.context.user_id,
                self.context.chat_id,
                self.tx,
            ).handlers(),
        }

    # -- Telegram --
    async def api(self, call: CallRequest) -> JSON | FileReply:
        """``Api.<method>(**params)``, ``Api.<method>({...})`` or ``Api.call(name, {...})``."""
        method, args = call.method, list(call.args)
        if method == "downloadFile":
            return await self.download_file(call)
        if method == "call":
            first = args[0] if args else None
            if not isinstance(first, str):
                raise api_error(
                    "call",
                    400,
                    "Api.call needs the method name first, as in "
                    "Api.call('sendMessage', {'text': 'hi'})",
                )
            method = first
            args = args[1:]
            if method == "downloadFile":
                return await self.download_file(replace(call, args=tuple(args)))
        single = args[0] if len(args) == 1 else None
        if args and (not isinstance(single, dict) or call.kwargs):
            raise api_error(method, 400, f"Api.{method} takes keyword arguments or one dict")
        params: dict[str, Any] = dict(single) if isinstance(single, dict) else dict(call.kwargs)
        text = params.get("text")
        problem = markup_problem(params.get("reply_markup"))
        if problem is not None:
            raise api_error(method, 400, problem)
        if method == "sendMessage" and type(text) is str and params.get("parse_mode") is None:
            reason = too_long(text)
            if reason is not None:
                raise api_error(method, 400, reason)
        spec = self.services.telegram.spec.methods.get(method)
        if (
            spec is not None
            and "chat_id" in spec.fields
            and "chat_id" not in params
            and self.context.chat_id is not None
        ):
            params["chat_id"] = self.context.chat_id
            for name, value in self.context.route.items():
                if name in spec.fields:
                    params.setdefault(name, value)
        params, multipart = await self._uploads(method, params, call)
        self.tx.external = True
        if method == "answerCallbackQuery":
            # Even a refused answer counts: Telegram takes one answer per query.
            self.context.delivery.callback_answered = True
        return await call_telegram(
            self.services, self.context.bot, method, params, multipart=multipart
        )

    async def _uploads(
        self, method: str, params: dict[str, Any], call: CallRequest
    ) -> tuple[dict[str, Any], bool]:
        """The call's ``File`` values as uploads (checked against the caps by their declared
        sizes, then pulled from the worker through the file channel), and whether any."""
        spec = self.services.telegram.spec.methods.get(method)
        file_fields = frozenset(
            name
            for name, field_spec in (spec.fields.items() if spec is not None else ())
            if "InputFile" in field_spec.types
        )
        channel = call.files
        try:
            params, multipart = files.take_uploads(
                params,
                file_fields,
                max_bytes=self.context.bot.definition.config.files.max_upload_bytes,
                size_of=None if channel is None else channel.size,
            )
            pending = files.refs_of(params)
            if pending and channel is not None:
                blobs = {
                    upload.ref: await channel.receive(upload.ref)
                    for upload in pending
                    if upload.ref is not None
                }
                params = files.with_blobs(params, blobs)
        except (FileRefused, SandboxFileRefused) as exc:
            raise api_error(method, exc.status, _text(exc)) from None
        return params, multipart

    async def download_file(self, call: CallRequest) -> JSON | FileReply:
        """``Api.downloadFile(file_id)``: ``getFile``, then the file's content through the host,
        up to the bot's ``files.max_download_mb`` (and Telegram's 20 MB); a ``File`` back."""
        given: Mapping[str, Any] = call.kwargs
        if len(call.args) == 1 and isinstance(call.args[0], dict) and not call.kwargs:
            given = call.args[0]  # Api.downloadFile({"file_id": ...}) or through Api.call
        file_id = (
            call.args[0] if len(call.args) == 1 and given is call.kwargs else given.get("file_id")
        )
        if (
            type(file_id) is not str
            or not file_id
            or set(given) - {"file_id"}
            or len(call.args) > 1
        ):
            raise api_error("downloadFile", 400, "Api.downloadFile needs file_id, as text")
        bot = self.context.bot
        cap = min(bot.definition.config.files.max_download_bytes, files.TELEGRAM_MAX_DOWNLOAD)
        found = await call_telegram(self.services, bot, "getFile", {"file_id": file_id})
        # Through the file channel, the content is spooled in the host and streamed to the
        # worker in chunks; without one (a deferred call), it goes back inline.
        spool = None if call.files is None else call.files.spool()
        try:
            path, size = files.file_path_of(found)
            if size is not None and size > cap:
                raise FileRefused(
                    f"the file is {size} bytes; at most {cap} may be downloaded", status=413
                )
            data = await self.services.telegram.download(
                cast(str, bot.token), path, max_bytes=cap, into=spool
            )
        except (FileRefused, SandboxFileRefused) as exc:
            raise api_error("downloadFile", exc.status, _text(exc)) from None
        except ApiError as exc:
            raise api_error("downloadFile", exc.code, exc.description) from None
        except TransportError as exc:
            raise api_error("downloadFile", 502, str(exc)) from None
        if spool is not None:
            name, mime = files.downloaded_name(path)
            return FileReply(name, mime, spool)
        return cast(JSON, files.downloaded(path, data))

    async def send_message(self, call: CallRequest) -> JSON:
        """``Bot.sendMessage(text, **params)`` or ``Bot.sendMessage({...})`` to the current
        chat."""
        single = call.args[0] if len(call.args) == 1 and not call.kwargs else None
        if type(single) is dict:
            call = CallRequest(call.name, (), single)
        if not call.args and "text" not in call.kwargs:
            raise api_error("sendMessage", 400, "Bot.sendMessage needs the text to send")
        if len(call.args) > 1:
            raise api_error(
                "sendMessage", 400, "Bot.sendMessage takes the text, then keyword arguments"
            )
        params = dict(call.kwargs)
        if call.args:
            params["text"] = call.args[0]
        problem = markup_problem(params.get("reply_markup"))
        if problem is not None:
            raise api_error("sendMessage", 400, problem)
        if "chat_id" not in params:
            if self.context.chat_id is None:
                raise api_error("sendMessage", 400, "this run has no chat; pass chat_id")
            params["chat_id"] = self.context.chat_id
            for name, value in self.context.route.items():
                params.setdefault(name, value)
        text = params.get("text")
        if type(text) is not str or too_long(text) is None:
            self.tx.external = True
            return await call_telegram(self.services, self.context.bot, "sendMessage", params)
        if params.get("entities") is not None:
            raise api_error("sendMessage", 400, f"{too_long(text)}, but not with entities")
        return await self._send_parts(split_text(text), params)

    async def send_keyboard(self, call: CallRequest) -> JSON:
        """``Bot.sendKeyboard(text, keyboard, **params)``: a message with a keyboard, to the
        current chat. ``keyboard`` is reply markup (``Keyboard.inline(...)``...) or the TBL
        notation ``"A,B\\nC"`` (a reply keyboard)."""
        args = list(call.args)
        params = dict(call.kwargs)
        single = args[0] if len(args) == 1 and not params else None
        if isinstance(single, dict):  # the one-dict form
            params, args = dict(single), []
        for name in ("text", "keyboard"):
            if args and name not in params:
                params[name] = args.pop(0)
        if args or "text" not in params or "keyboard" not in params:
            raise api_error("sendMessage", 400, "Bot.sendKeyboard takes a text and a keyboard")
        keyboard = params.pop("keyboard")
        if type(keyboard) is str:
            keyboard = reply_keyboard(keyboard)
        elif type(keyboard) is not dict:
            raise api_error(
                "sendMessage",
                400,
                "Bot.sendKeyboard: the keyboard is Keyboard.inline(...), Keyboard.reply(...) "
                "or 'A,B\\nC' text",
            )
        params["reply_markup"] = keyboard
        return await self.send_message(CallRequest("Bot.sendMessage", (), params))

    async def send_media(self, call: CallRequest) -> JSON:
        """``Bot.sendPhoto(file_id_or_url, **params)`` (and document, video, audio, voice,
        sticker, animation) to the current chat; the one-dict form works too."""
        method, field_name = MEDIA_SHORTCUTS[call.name]
        single = call.args[0] if len(call.args) == 1 and not call.kwargs else None
        if files.is_file(single):
            single = None  # Bot.sendDocument(File(...)): the file, not the one-dict form
        params: dict[str, Any] = dict(single) if type(single) is dict else dict(call.kwargs)
        if type(single) is not dict and call.args:
            if len(call.args) > 1 or field_name in params:
                raise api_error(
                    method, 400, f"{call.name} takes the {field_name}, then keyword arguments"
                )
            params[field_name] = call.args[0]
        if field_name not in params:
            raise api_error(method, 400, f"{call.name} needs the {field_name} to send")
        problem = markup_problem(params.get("reply_markup"))
        if problem is not None:
            raise api_error(method, 400, problem)
        if "chat_id" not in params:
            if self.context.chat_id is None:
                raise api_error(method, 400, "this run has no chat; pass chat_id")
            params["chat_id"] = self.context.chat_id
            for name, value in self.context.route.items():
                params.setdefault(name, value)
        params, multipart = await self._uploads(method, params, call)
        self.tx.external = True
        return await call_telegram(
            self.services, self.context.bot, method, params, multipart=multipart
        )

    async def _send_parts(self, parts: list[str], params: dict[str, Any]) -> JSON:
        """Send a long text as several messages; the reply markup goes with the last one.

        ``reply_parameters`` apply to the first part only. Returns the last message sent.
        """
        self.tx.external = True
        last: JSON = None
        for index, part in enumerate(parts):
            piece = {**params, "text": part}
            if index > 0:
                piece.pop("reply_parameters", None)
            if index < len(parts) - 1:
                piece.pop("reply_markup", None)
            last = await call_telegram(self.services, self.context.bot, "sendMessage", piece)
        return last

    async def inspect(self, call: CallRequest) -> JSON:
        """``Bot.inspect(value)``: send the value, pretty-printed, to the current chat."""
        value = call.args[0] if call.args else call.kwargs.get("value")
        text = json.dumps(value, indent=2, ensure_ascii=False, default=str)[:3900]
        if self.context.chat_id is None:
            return None
        self.tx.external = True
        await call_telegram(
            self.services,
            self.context.bot,
            "sendMessage",
            {
                **self.context.route,
                "chat_id": self.context.chat_id,
                "parse_mode": "HTML",
                "text": f"<pre>{html.escape(text, quote=False)}</pre>",
            },
        )
        return None

    # -- running other commands --
    async def run_command(self, call: CallRequest) -> RunInPlace:
        """``Bot.runCommand(name, options=None)``: run now, in this run, nesting at most 6."""
        name = call.args[0] if call.args else call.kwargs.get("name", call.kwargs.get("command"))
        options = call.args[1] if len(call.args) > 1 else call.kwargs.get("options")
        if not isinstance(name, str):
            raise CapabilityError("Bot.runCommand needs a command name")
        if self.context.depth >= MAX_RUN_COMMAND_DEPTH:
            raise CapabilityError(f"Bot.runCommand nests at most {MAX_RUN_COMMAND_DEPTH} deep")
        command = _require(self.context.bot, name)
        nested = self.context.for_command(
            command, depth=self.context.depth + 1, options=options, params=""
        )
        session = Session(self.services, nested, self.tx)
        if command.answer is not None and nested.chat_id is not None:
            self.tx.external = True
        await send_answer(self.services, nested)
        return RunInPlace(
            self.context.bot.script_of(command),
            nested.globals(),
            session.capabilities(),
            ("ApiError", "HTTPError"),
        )

    async def schedule(self, call: CallRequest) -> JSON:
        """``Bot.run(command=..., user_id=..., chat_id=..., options=..., run_after=0,
        label=None)``."""
        args = dict(call.kwargs)
        if call.args:
            args.setdefault("command", call.args[0])
        name = args.get("command")
        if not isinstance(name, str):
            raise CapabilityError("Bot.run needs command=...")
        _require(self.context.bot, name)
        if len(self.tx.scheduled) >= MAX_SCHEDULED:
            raise CapabilityError(f"a run may schedule at most {MAX_SCHEDULED} runs")
        delay = args.get("run_after", 0)
        if not is_number(delay) or delay < 0:
            raise CapabilityError("run_after must be a number of seconds, 0 or more")
        label = _label(args.get("label"), "Bot.run")
        user = self.context.user if "user_id" not in args else _who(args["user_id"])
        chat = self.context.chat if "chat_id" not in args else _who(args["chat_id"])
        await self._check_run_limits()
        self.tx.scheduled.append(
            ScheduledRun(
                name,
                user,
                chat,
                args.get("options"),
                self.services.clock() + float(delay),
                self.context.generation + 1,
                label,
            )
        )
        return None

    async def broadcast(self, call: CallRequest) -> JSON:
        """``Bot.broadcast(command=..., user_ids=None, options=None)``: run ``command`` once for
        each user (every user who wrote to the bot in private when ``user_ids`` is None), paced
        and resumable, through the queue, once this run commits."""
        args = dict(call.kwargs)
        if call.args:
            args.setdefault("command", call.args[0])
        unknown = sorted(set(args) - {"command", "user_ids", "options"})
        if unknown:
            raise CapabilityError(
                f"Bot.broadcast takes command, user_ids and options, not {unknown}"
            )
        name = args.get("command")
        if type(name) is not str:
            raise CapabilityError("Bot.broadcast needs command=...")
        _require(self.context.bot, name)
        users = args.get("user_ids")
        picked: tuple[int, ...] | None = None
        if users is not None:
            if type(users) is not list or len(users) > MAX_BROADCAST_USERS:
                raise CapabilityError(
                    f"user_ids must be a list of at most {MAX_BROADCAST_USERS} user ids "
                    "(leave it out to reach every user who wrote to the bot)"
                )
            if not all(is_int(u) and 0 < u <= MAX_USER_ID for u in users):
                raise CapabilityError("user_ids must hold user ids (whole numbers above 0)")
            picked = tuple(dict.fromkeys(cast(list[int], users)))
        options = args.get("options")
        size = len(json.dumps(options, ensure_ascii=False).encode())
        if size > MAX_BROADCAST_OPTIONS:
            # Every user's queued run carries a copy: keep the queue's rows small.
            raise CapabilityError(
                f"Bot.broadcast options are {size} bytes as JSON; at most "
                f"{MAX_BROADCAST_OPTIONS} (each user's run carries a copy: keep large data in "
                "a Bot property and pass its name)"
            )
        if len(self.tx.scheduled) >= MAX_SCHEDULED:
            raise CapabilityError(f"a run may schedule at most {MAX_SCHEDULED} runs")
        await self._check_run_limits()
        self.tx.scheduled.append(BroadcastRun(name, picked, options, self.context.generation + 1))
        return None

    # -- labelled runs (issue 11) --
    async def cancel_runs(self, call: CallRequest) -> JSON:
        """``Bot.cancelRuns(label=...)``: cancel this bot's queued runs with that label, not yet
        started (and those this run queued so far); return how many. Done at once, not at the
        run's commit."""
        args = dict(call.kwargs)
        if call.args:
            args.setdefault("label", call.args[0])
        if set(args) != {"label"}:
            raise CapabilityError("Bot.cancelRuns takes label=... only")
        label = _label(args["label"], "Bot.cancelRuns")
        if label is None:
            raise CapabilityError("Bot.cancelRuns needs label=...")
        mine = [run for run in self.tx.scheduled if run.label == label]
        self.tx.scheduled[:] = [run for run in self.tx.scheduled if run.label != label]
        cancelled = await self.services.store.cancel_runs(self.context.bot.id, label=label)
        return cancelled + len(mine)

    async def list_runs(self, call: CallRequest) -> JSON:
        """``Bot.listRuns(label=None, command=None, limit=50, after=0)``: this bot's queued runs
        not finished yet, oldest first: ``[{"id", "command", "run_at", "label", "status"}]``
        (``after``: the last ``id`` seen, for the next page; at most :data:`MAX_LISTED`)."""
        args = dict(call.kwargs)
        if call.args:
            args.setdefault("label", call.args[0])
        unknown = set(args) - {"label", "command", "limit", "after"}
        if unknown:
            raise CapabilityError(f"Bot.listRuns: unknown argument(s) {', '.join(sorted(unknown))}")
        label, command = _label(args.get("label"), "Bot.listRuns"), args.get("command")
        if command is not None and type(command) is not str:
            raise CapabilityError("Bot.listRuns: command must be text")
        limit, after = args.get("limit", 50), args.get("after", 0)
        if not is_int(limit) or not 1 <= limit <= MAX_LISTED:
            raise CapabilityError(f"Bot.listRuns: limit must be 1 to {MAX_LISTED}")
        if not is_int(after) or after < 0:
            raise CapabilityError("Bot.listRuns: after must be a run id (0 or more)")
        runs = await self.services.store.pending_runs(
            self.context.bot.id, label=label, command=command, after=after, limit=limit
        )
        return [
            {
                "id": run.seq,
                "command": run.command,
                "run_at": run.run_after,
                "label": run.label,
                "status": "running" if run.status == "claimed" else "pending",
            }
            for run in runs
        ]

    async def _check_run_limits(self) -> None:
        """Refuse a ``Bot.run`` past the chain's last generation or the bot's pending cap.

        The pending check here is early and friendly; the store checks again, atomically, when
        the run commits (concurrent runs may pass this one together).
        """
        bot, generation = self.context.bot, self.context.generation
        limits = bot.definition.config.runs
        if generation >= limits.max_generations:
            raise CapabilityError(
                f"Bot.run refused: this run is generation {generation} of a chain started by one "
                f"update or click, and runs.max_generations in bot.yaml is "
                f"{limits.max_generations}",
                data={"limit": "runs.max_generations", "value": limits.max_generations},
            )
        queued = await self.services.store.pending_count(bot.id, kind="run")
        mine = len(self.tx.scheduled)
        if queued + mine + 1 > limits.max_pending:
            raise CapabilityError(
                f"Bot.run refused: bot {bot.id!r} has {queued + mine} unfinished scheduled runs "
                f"({mine} of them from this run), and runs.max_pending in bot.yaml is "
                f"{limits.max_pending}",
                data={"limit": "runs.max_pending", "value": limits.max_pending},
            )

    # -- outbound HTTP --
    async def http(self, call: CallRequest) -> Response:
        """``HTTP.get(url, ...)``, ``HTTP.post(url, json=..., data=...)``,
        ``HTTP.request(method, url, ...)``: made by the broker under the bot's ``http:`` rules.

        Every hop is counted against ``http.per_run`` and ``http.per_minute`` and logged as
        metadata (``extra.http`` of the run log). Refusals and failures raise ``HTTPError``.
        """
        policy = self.context.bot.definition.config.http
        hops: list[Hop] = []
        try:
            request: OutboundRequest = build_request(call.method, call.args, call.kwargs, policy)
            self.tx.external = True
            answer = await self.services.outbound.fetch(
                policy,
                request,
                hops=hops,
                before_hop=self._count_request,
                owner=self.context.bot.id,
            )
        except OutboundError as exc:
            raise CapabilityError(
                f"HTTP.{call.method}: {exc.message}",
                kind="HTTPError",
                data={"reason": exc.reason, "host": exc.host},
            ) from None
        finally:
            self.tx.http.extend(hop.as_log() for hop in hops)
        return Response(answer.status, answer.headers, answer.text, answer.url)

    async def _count_request(self, target: object) -> None:
        """Count one request (hop) against ``http.per_run`` and ``http.per_minute``."""
        bot = self.context.bot
        policy = bot.definition.config.http
        if self.tx.http_requests >= policy.per_run:
            raise OutboundError(
                f"a run may make at most {policy.per_run} HTTP requests, redirects included "
                "(http.per_run in bot.yaml)",
                reason="limit",
            )
        self.tx.http_requests += 1
        over = await self.services.store.hit_rates(
            [RateHit(f"http:{bot.id}", policy.per_minute, 60.0, "http")],
            now=self.services.clock(),
        )
        if over is not None:
            raise OutboundError(
                f"bot {bot.id!r} made more than {policy.per_minute} HTTP requests this minute "
                "(http.per_minute in bot.yaml)",
                reason="limit",
            )

    # -- signed links --
    def _link_args(self, call: CallRequest, *, with_user: bool) -> dict[str, Any]:
        allowed = {"command", "options", "params", "redirect", "expires_in", "once"}
        if with_user:
            allowed.add("user_id")
        args: dict[str, Any] = dict(call.kwargs)
        positional = list(call.args)
        if len(positional) == 1 and isinstance(positional[0], dict) and not args:
            args = dict(positional[0])
        elif positional:
            names = ["command", "options", "params", "redirect", "expires_in", "once"]
            if with_user:
                names.insert(0, "user_id")
            if len(positional) > len(names):
                raise CapabilityError("too many arguments for a link")
            for name, value in zip(names, positional, strict=False):
                if name in args:
                    raise CapabilityError(f"{name} given twice")
                args[name] = value
        unknown = set(args) - allowed
        if unknown:
            raise CapabilityError(
                f"unknown link argument(s): {', '.join(sorted(unknown))}; "
                f"links take {', '.join(sorted(allowed))}"
            )
        return args

    def _mint(self, args: dict[str, Any], user_id: int | None) -> str:
        bot = self.context.bot
        name = args.get("command")
        if not isinstance(name, str):
            raise CapabilityError("a link needs the command it runs")
        _require(bot, name)
        try:
            link = make_link(
                name,
                user_id=user_id,
                options=args.get("options"),
                params=args.get("params"),
                redirect=args.get("redirect"),
                expires_in=args.get("expires_in"),
                once=args.get("once", False),
                now=self.services.clock(),
                allow_http_redirects=bot.webhook.allow_http_redirects,
            )
        except LinkError as exc:
            raise CapabilityError(exc.message, kind="LinkError") from None
        return self.services.mint(bot, link)

    async def get_url(self, call: CallRequest) -> JSON:
        """``Webhook.getUrl(command, options=None, params=None, redirect=None, ...)``."""
        if self.context.user_id is None:
            raise CapabilityError("this run has no user: use getUrlFor or getGlobalUrl")
        return self._mint(self._link_args(call, with_user=False), self.context.user_id)

    async def get_url_for(self, call: CallRequest) -> JSON:
        """``Webhook.getUrlFor(user_id=..., command=..., ...)``: a link for a given user."""
        args = self._link_args(call, with_user=True)
        user_id = args.pop("user_id", None)
        if not is_int(user_id):
            raise CapabilityError("getUrlFor needs user_id, a whole number")
        return self._mint(args, user_id)

    async def get_global_url(self, call: CallRequest) -> JSON:
        """``Webhook.getGlobalUrl(command, ...)``: a link with no user (services, cron)."""
        return self._mint(self._link_args(call, with_user=False), None)

    # -- secrets --
    async def get_secret(self, call: CallRequest) -> JSON:
        """``Secrets.get(name, default=None)``: one of this bot's secrets, or ``default``."""
        args = dict(call.kwargs)
        unknown = set(args) - {"name", "default"}
        if unknown or len(call.args) > 2:
            raise CapabilityError("Secrets.get takes the name and, optionally, a default")
        for key, value in zip(("name", "default"), call.args, strict=False):
            if key in args:
                raise CapabilityError(f"Secrets.get: {key} given twice")
            args[key] = value
        name, default = args.get("name"), args.get("default")
        if type(name) is not str or not NAME_PATTERN.fullmatch(name):
            raise CapabilityError(
                "Secrets.get needs a secret's name (letters, digits and _), "
                "as in Secrets.get('STRIPE_KEY')"
            )
        if self.services.secrets is None:
            return default
        value = await self.services.secrets.get(self.context.bot.id, name)
        if value is None:
            return default
        self.context.delivery.revealed[name] = value
        return value


def _text(exc: Exception) -> str:
    """An error's message (a CapabilityError's ``message``, else its text)."""
    return exc.message if isinstance(exc, CapabilityError) else str(exc)


def _require(bot: LiveBot, name: str) -> Command:
    return dispatch.require(bot.definition.commands, name, bot_id=bot.id)


def _label(value: object, where: str) -> str | None:
    """A run label (None when not given), or a CapabilityError saying why it is refused."""
    if value is None:
        return None
    problem = label_problem(value)
    if problem is not None or type(value) is not str:
        raise CapabilityError(f"{where}: {problem}")
    return value


def _who(value: object) -> dict[str, Any] | None:
    if value is None:
        return None
    if not is_int(value):
        raise CapabilityError("user_id and chat_id must be whole numbers")
    return {"id": value}


async def commit(services: Services, bot: LiveBot, tx: Transaction) -> None:
    """Apply a run's writes and enqueue its scheduled runs, all or nothing.

    Raises ConflictError (a property the run read changed meanwhile), NotANumber, or
    QuotaExceeded (or PendingRunsExceeded, past ``runs.max_pending``), and then writes nothing.
    """
    expected = tx.expected()
    if not tx.writes and not tx.scheduled and not expected:
        return
    config = bot.definition.config
    await services.store.commit_run(
        bot.id,
        list(tx.writes.values()),
        [run.queued() for run in tx.scheduled],
        max_bot_bytes=config.properties.max_bot_bytes,
        max_pending_runs=config.runs.max_pending,
        expected=expected,
    )


__all__ = [
    "Context",
    "Delivery",
    "ScheduledRun",
    "Services",
    "Session",
    "Transaction",
    "answer_callback",
    "call_telegram",
    "commit",
]
