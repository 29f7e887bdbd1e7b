"""Trying a command: one message, button press or link click run through the whole pipeline
against an emulated Telegram (``run.py try`` and ``POST /api/v1/bots/{id}/try``).

:func:`run_trial` builds the update a real Telegram would send (or the link a real click would
open: minted and verified with the server's real keys), and hands it to the real
:class:`~runtime.runs.pipeline.Runner` (dispatch in TBL order, ``need_reply`` waits, ``@``, the
command, ``!``, ``@@``, ``res``) with the real sandbox pool and the bot's own limits. Only
three things differ from serving:

- Telegram is :class:`~runtime.telegram.emulator.EmulatedTelegram` (checked against the spec,
  answered locally, recorded), and the bot calls it with a dummy token, unpaced;
- the store is the *try store* (``try.sqlite3`` in the data folder, :func:`try_database`)
  unless the caller asks for the real data: a file of its own, so no try can touch real
  properties, waits, rate counters or queue, whatever ids it uses, and deleting it resets
  every try;
- runs queued with ``Bot.run`` are reported, not queued (nothing would run them in the try
  store, and in the real store they would reach the real Telegram), and run records are
  returned, not written to a run log.

And a try has no secrets (``Secrets.get`` reads each as missing, so no report holds one) and
opens no private network to ``HTTP.*`` (its broker has none of ``BOTBOX_HTTP_PRIVATE_NETWORKS``).
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, cast
from urllib.parse import urlsplit

from runtime.bots import dispatch
from runtime.errors import ConfigError, LinkError, NotFound
from runtime.runs.pipeline import RES_DEFERRED, Extras, Runner
from runtime.runs.registry import LiveBot
from runtime.runs.runlog import RunLog
from runtime.runs.session import Context, Services
from runtime.signing.keys import KeyFile
from runtime.signing.links import make_link, verify_link
from runtime.store import (
    MISSING,
    NewRun,
    PropertyRead,
    PropertyWrite,
    RunRecord,
    SqliteStore,
    Store,
    Waiting,
)
from runtime.telegram.emulator import EMULATED_TOKEN, EmulatedTelegram, Emulator
from runtime.telegram.spec import load_spec
from runtime.telegram.update import MAX_ID, parse_update
from runtime.web.webhook import Reply, res_capabilities
from sandbox import JSON, WorkerPool

TRY_DATABASE: Final = "try.sqlite3"
DEFAULT_USER: Final = 111
FAILED_BODY: Final = "the bot's command failed; its author can see why in the run log"
TRY_LINK_SECONDS: Final = 60
"""How long the link a try clicks stays valid: signed with the real keys, it would also open
the real webhook, and a try (unlike ``POST /links``) records no audit entry."""


def try_database(data_dir: Path) -> Path:
    """The try store's file: next to the real one, never the same file."""
    return data_dir / TRY_DATABASE


async def open_try_store(path: Path, *, synchronous: str = "FULL") -> SqliteStore:
    """Open the try store; the first opening creates it, under a lock file.

    Several processes creating one new SQLite file at the same instant (its WAL switch and
    first migration) can leave a connection that sees "file is not a database"; a server never
    meets that (each file is made once), but tries open theirs on demand, concurrently. Once
    the file exists, opens need no lock.
    """
    if not path.exists() or path.stat().st_size == 0:
        await asyncio.to_thread(_create_locked, path, synchronous)
    store = SqliteStore(path, synchronous=synchronous)
    await store.open()
    return store


def _create_locked(path: Path, synchronous: str) -> None:
    """Create and migrate the store at ``path`` while holding ``path.lock`` (one process)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = os.open(path.with_name(path.name + ".lock"), os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists() and path.stat().st_size > 0:
            return  # made meanwhile by another process

        async def create() -> None:
            store = SqliteStore(path, synchronous=synchronous)
            await store.open()
            await store.close()

        asyncio.run(create())
    finally:
        os.close(lock)  # releases the lock


@dataclass(frozen=True, slots=True)
class TrialRequest:
    """What to try: a message text, a button press (``callback``) or a link click (``click``)."""

    text: str | None = None
    callback: str | None = None
    click: str | None = None
    user_id: int = DEFAULT_USER
    chat_id: int | None = None
    """A group's id (negative); None: the user's private chat."""
    params: dict[str, str] = field(default_factory=dict)
    options: JSON = None
    real_data: bool = False

    def check(self) -> None:
        """Raise ConfigError unless exactly one trigger is given and the ids are possible."""
        given = [self.text is not None, self.callback is not None, self.click is not None]
        if sum(given) != 1:
            raise ConfigError("give exactly one of a message text, --callback or --click")
        if not 0 < self.user_id <= MAX_ID:
            raise ConfigError(f"the user id must be from 1 to {MAX_ID}")
        if self.chat_id is not None and not -MAX_ID <= self.chat_id < 0:
            raise ConfigError(
                "the chat is a group's id (negative); leave it out for the user's private chat"
            )
        if (self.params or self.options is not None) and self.click is None:
            raise ConfigError("params and options go with a link click (--click)")


@dataclass(frozen=True, slots=True)
class PropertyChange:
    """One property a try changed: its value before and after (None: not set)."""

    scope: str
    name: str
    before: JSON
    after: JSON


@dataclass(slots=True)
class Trial:
    """What a try did: the Bot API calls, the runs, the property changes, the click's answer."""

    bot_id: str
    version: int
    source: str
    data: str
    """``try`` (the try store) or ``real``."""
    trigger: dict[str, JSON]
    calls: list[dict[str, JSON]] = field(default_factory=list)
    runs: list[dict[str, JSON]] = field(default_factory=list)
    properties: list[PropertyChange] = field(default_factory=list)
    scheduled: list[dict[str, JSON]] = field(default_factory=list)
    waiting: str | None = None
    """The ``need_reply`` command the next message of this user in this chat answers."""
    replied: str | None = None
    """The ``need_reply`` command this message answered (its script ran with it)."""
    response: dict[str, JSON] | None = None
    """For a click: what the browser got (status, content type, headers, body, location)."""
    matched: bool = True
    """False when no command matched the update (nothing ran)."""

    @property
    def ok(self) -> bool:
        """True unless a run failed (or a click was answered with a 5xx)."""
        failed = any(run["status"] != "ok" for run in self.runs)
        status = (self.response or {}).get("status")
        return not failed and not (type(status) is int and status >= 500)

    def as_json(self) -> dict[str, JSON]:
        """The whole trial as one JSON document (``--json`` and the API)."""
        return {
            "ok": self.ok,
            "bot": self.bot_id,
            "version": self.version,
            "source": self.source,
            "data": self.data,
            "trigger": self.trigger,
            "matched": self.matched,
            "calls": list(self.calls),
            "runs": list(self.runs),
            "properties": [
                {"scope": c.scope, "name": c.name, "before": c.before, "after": c.after}
                for c in self.properties
            ],
            "scheduled": list(self.scheduled),
            "waiting": self.waiting,
            "replied": self.replied,
            "response": self.response,
        }


class _Recorder:
    """A store that passes everything through, and notes what a try committed: property
    changes (values before and after), scheduled runs (kept, not queued) and waits."""

    def __init__(self, inner: Store, trial: Trial) -> None:
        self._inner = inner
        self._trial = trial

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def commit_run(
        self,
        bot_id: str,
        writes: Sequence[PropertyWrite],
        runs: Sequence[NewRun],
        *,
        max_bot_bytes: int,
        max_pending_runs: int,
        expected: Sequence[PropertyRead] = (),
    ) -> None:
        # Read just before the commit: a run that read a property commits only if it is still
        # at the version read, so its "before" is exact; a blind write's is the latest seen.
        before = [await self._value(bot_id, w.scope, w.name) for w in writes]
        await self._inner.commit_run(
            bot_id,
            writes,
            [],
            max_bot_bytes=max_bot_bytes,
            max_pending_runs=max_pending_runs,
            expected=expected,
        )
        for write, old in zip(writes, before, strict=True):
            new = await self._after(bot_id, write, old)
            self._trial.properties.append(PropertyChange(write.scope, write.name, old, new))
        for run in runs:
            payload = run.payload if isinstance(run.payload, dict) else {}
            spec = payload.get("broadcast")
            if isinstance(spec, dict):  # Bot.broadcast: reported as one item, users not listed
                payload = {**spec, "broadcast": True}
            self._trial.scheduled.append(
                {
                    "command": payload.get("command"),
                    "options": payload.get("options"),
                    "run_after": run.run_after,
                    **({"broadcast": True} if payload.get("broadcast") is True else {}),
                }
            )

    async def set_waiting(self, waiting: Waiting) -> None:
        await self._inner.set_waiting(waiting)
        self._trial.waiting = waiting.command

    async def take_waiting(self, bot_id: str, chat_id: int, user_id: int) -> Waiting | None:
        waiting = await self._inner.take_waiting(bot_id, chat_id, user_id)
        if waiting is not None:
            self._trial.replied = waiting.command
        return waiting

    async def _after(self, bot_id: str, write: PropertyWrite, before: JSON) -> JSON:
        """The value the write left: exact for a set or a delete; an add's is computed."""
        if write.delete:
            return None
        if write.add is None:
            return write.value
        base = 0 if before is None else before
        if type(base) in (int, float) and type(write.add) in (int, float):
            return base + write.add  # type: ignore[operator]
        return await self._value(bot_id, write.scope, write.name)

    async def _value(self, bot_id: str, scope: str, name: str) -> JSON:
        value = (await self._inner.read_property(bot_id, scope, name)).value
        return None if value is MISSING else cast(JSON, value)


class _Collected(RunLog):
    """A run log that keeps a try's records in memory and writes nothing anywhere."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.records: list[RunRecord] = []

    def add(self, record: RunRecord) -> None:
        self.records.append(record)


def user_for(user_id: int) -> dict[str, JSON]:
    """The emulated user."""
    return {"id": user_id, "is_bot": False, "first_name": f"User {user_id}", "language_code": "en"}


def chat_of(request: TrialRequest) -> dict[str, JSON]:
    """The emulated chat: the user's private chat, or the group ``--chat`` names."""
    chat_id = request.chat_id if request.chat_id is not None else request.user_id
    if chat_id > 0:
        return {"id": chat_id, "type": "private", "first_name": f"User {chat_id}"}
    kind = "supergroup" if chat_id <= -(10**12) else "group"
    return {"id": chat_id, "type": kind, "title": f"Chat {chat_id}"}


def make_update(request: TrialRequest, *, now: float, bot_user: dict[str, JSON]) -> dict[str, Any]:
    """The update Telegram would send for a message text or a button press."""
    update_id = int(now * 1000) % MAX_ID
    message_id = int(now * 1000) % 2**31
    user, chat = user_for(request.user_id), chat_of(request)
    if request.callback is not None:
        return {
            "update_id": update_id,
            "callback_query": {
                "id": f"try-{update_id}",
                "from": user,
                "chat_instance": f"try-{chat['id']}",
                "data": request.callback,
                "message": {
                    "message_id": message_id,
                    "date": int(now),
                    "chat": chat,
                    "from": bot_user,
                    "text": "",
                },
            },
        }
    text = request.text or ""
    message: dict[str, Any] = {
        "message_id": message_id,
        "date": int(now),
        "chat": chat,
        "from": user,
        "text": text,
    }
    if text.startswith("/"):
        length = len(text.split(maxsplit=1)[0]) if text.strip() else 1
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
    return {"update_id": update_id, "message": message}


async def run_trial(
    bot: LiveBot,
    request: TrialRequest,
    *,
    pool: WorkerPool,
    store: Store,
    keys: KeyFile,
    base_url: str,
    source: str,
    clock: Callable[[], float] = time.time,
) -> Trial:
    """Run one try of ``bot`` (see the module's docstring).

    Raises ConfigError for a request that cannot be tried (two triggers, a bad option or link
    param, text the webhook would refuse) and NotFound for a click on a command the bot lacks.
    """
    request.check()
    config = bot.definition.config
    emulator = Emulator(
        load_spec(),
        username=config.username or f"{bot.id}_bot",
        name=config.name or bot.id,
        clock=clock,
    )
    telegram = EmulatedTelegram(emulator)
    trial = Trial(bot.id, bot.version, source, "real" if request.real_data else "try", {})
    runlog = _Collected(store)
    services = Services(
        pool, cast(Store, _Recorder(store, trial)), telegram, keys, base_url, runlog, clock
    )
    emulated = replace(bot, token=EMULATED_TOKEN, paced=False)
    runner = Runner(services)
    try:
        if request.click is not None:
            await _click(runner, services, emulated, request, trial)
        else:
            await _update(runner, emulated, request, trial, emulator, clock())
    finally:
        await telegram.close()
        await services.outbound.close()
    trial.calls = [call.as_dict() for call in telegram.calls]
    trial.runs = [_run_of(bot, record) for record in runlog.records]
    return trial


async def _update(
    runner: Runner,
    bot: LiveBot,
    request: TrialRequest,
    trial: Trial,
    emulator: Emulator,
    now: float,
) -> None:
    raw = make_update(request, now=now, bot_user=emulator.me)
    try:
        update = parse_update(raw)
    except ValueError as exc:  # what the webhook would refuse (a lone surrogate in the text)
        raise ConfigError(f"not a Telegram update: {exc}") from None
    chat = chat_of(request)
    emulator.know_chat(chat)
    message = raw.get("message") or raw["callback_query"]["message"]
    emulator.start_after(cast(int, chat["id"]), cast(int, message["message_id"]))
    trial.trigger = {"kind": update.type, "update": raw}
    found = dispatch.match(
        bot.definition.commands, update, bot_username=bot.definition.config.username
    )
    await runner.handle_update(bot, update, f"try:update:{raw['update_id']}", raw=raw)
    trial.matched = found is not None or trial.replied is not None


async def _click(
    runner: Runner, services: Services, bot: LiveBot, request: TrialRequest, trial: Trial
) -> None:
    name = request.click or ""
    command = dispatch.find(bot.definition.commands, name)
    if command is None:
        raise NotFound(f"bot {bot.id!r} has no command {name!r} to click")
    now = services.clock()
    try:
        link = make_link(
            command.name,
            user_id=request.user_id,
            options=request.options,
            params=request.params,
            expires_in=TRY_LINK_SECONDS,
            now=now,
            allow_http_redirects=bot.webhook.allow_http_redirects,
        )
        url = services.mint(bot, link)
        # The same check a real click passes: signature (real keys), expiry, options.
        link = verify_link(services.keys.current(), bot.id, urlsplit(url).query, now=now)
        options = link.parsed_options()
    except LinkError as exc:
        raise ConfigError(f"the link cannot be made: {exc.message}") from None
    trial.trigger = {"kind": "click", "command": command.name, "link": url}
    user = {"id": request.user_id}
    context = Context(
        bot,
        command,
        "try:click",
        user=user,
        chat={"id": request.user_id, "type": "private"},
        update_type="webhook",
        request={
            "method": "GET",
            "path": urlsplit(url).path,
            "query": dict(link.params),
            "headers": {"user-agent": "botbox try"},
            "client_ip": "127.0.0.1",
            "json": None,
            "form": None,
            "body": None,
        },
        params=dict(link.params),
        options=options,
    )
    reply, error_reply = Reply(), Reply()
    outcome = await runner.run_pipeline(
        context,
        extras=Extras(
            res_capabilities(reply),
            RES_DEFERRED,
            on_error=Extras(res_capabilities(error_reply), RES_DEFERRED),
        ),
    )
    trial.response = _response(outcome.ok, reply, link.redirect, error_reply)


def _response(
    ok: bool, reply: Reply, redirect: str | None, error_reply: Reply | None = None
) -> dict[str, JSON]:
    """What the browser would get, as handle_click answers it."""
    if not ok:
        if error_reply is not None and (
            error_reply.body is not None or error_reply.location is not None
        ):
            # The bot's `!` command wrote its own error page (500 unless it set a status).
            if error_reply.location is None and error_reply.status is None:
                error_reply.status = 500
            return _response(True, error_reply, None)
        return _answer(500, "text/plain; charset=utf-8", FAILED_BODY)
    if reply.location is not None:
        answer = _answer(reply.status or 303, None, None, location=reply.location)
    elif reply.body is not None or reply.status is not None:
        body = (reply.body or b"").decode("utf-8", "replace")
        answer = _answer(reply.status or 200, reply.content_type, body)
    elif redirect is not None:
        return _answer(303, None, None, location=redirect)
    else:
        return _answer(200, "application/json", '{"ok": true}')
    answer["headers"] = dict(reply.headers)
    return answer


def _answer(
    status: int, content_type: str | None, body: str | None, *, location: str | None = None
) -> dict[str, JSON]:
    return {
        "status": status,
        "content_type": content_type,
        "headers": {},
        "body": body,
        "location": location,
    }


def _run_of(bot: LiveBot, record: RunRecord) -> dict[str, JSON]:
    """One run as a try reports it: the run log's entry, its error with file and line."""
    error = record.error
    if isinstance(error, dict):
        error = dict(error)
        error["file"] = _file_of(bot, record.command, error)
    return {
        "command": record.command,
        "status": record.status,
        "output": record.output,
        "error": error,
        "calls": list(record.calls),
        "cpu_seconds": round(record.cpu_seconds, 6),
        "wall_seconds": round(record.wall_seconds, 6),
        "retries": record.extra.get("retries", 0),
        "trigger": record.trigger,
    }


def _file_of(bot: LiveBot, command_name: str, error: dict[str, JSON]) -> JSON:
    """The file an error is in: its innermost traceback frame's, else the command's file."""
    frames = error.get("traceback")
    if isinstance(frames, list):
        for frame in reversed(frames):
            if isinstance(frame, dict) and isinstance(frame.get("file"), str) and frame["file"]:
                return frame["file"]
    command = dispatch.find(bot.definition.commands, command_name)
    return None if command is None or not command.path else command.path


__all__ = [
    "DEFAULT_USER",
    "PropertyChange",
    "Trial",
    "TrialRequest",
    "make_update",
    "open_try_store",
    "print_trial",
    "report_lines",
    "run_trial",
    "try_database",
]


MAX_SHOWN: Final = 2000
"""How many characters of an output, a parameter list or a body the text report shows."""


def _short(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + " ..."


def report_lines(trial: Trial) -> list[str]:
    """The trial as an author reads it (``run.py try`` without ``--json``)."""
    lines = [f"bot {trial.bot_id} ({trial.source}), data: {trial.data}"]
    trigger = trial.trigger
    if trigger.get("kind") == "click":
        lines.append(f"click: {trigger.get('command')} -> {trigger.get('link')}")
    else:
        lines.append(f"update: {_short(trigger.get('update'))}")
    if trial.replied is not None:
        lines.append(f"this message answered the wait of {trial.replied}")
    if not trial.matched:
        lines.append("no command matched: nothing ran")
    lines.append(f"Bot API calls ({len(trial.calls)}):")
    for number, call in enumerate(trial.calls, 1):
        verdict = "ok" if call["ok"] else f"refused: {call['error']}"
        lines.append(f"  {number}. {call['method']} {_short(call['params'])} -> {verdict}")
    lines.append(f"runs ({len(trial.runs)}):")
    for run in trial.runs:
        lines.extend(_run_lines(run))
    if trial.properties:
        lines.append("property changes:")
        lines.extend(
            f"  {c.scope} {c.name}: {_short(c.before)} -> {_short(c.after)}"
            for c in trial.properties
        )
    lines.extend(f"scheduled (not run by the emulator): {_short(r)}" for r in trial.scheduled)
    if trial.waiting is not None:
        lines.append(f"waiting: the next message in this chat answers {trial.waiting}")
    if trial.response is not None:
        lines.extend(_response_lines(trial.response))
    lines.append("ok" if trial.ok else "failed")
    return lines


def _run_lines(run: dict[str, JSON]) -> list[str]:
    lines = [f"  {run['command']}: {run['status']} ({run['wall_seconds']} s)"]
    output = run["output"]
    if isinstance(output, str) and output:
        lines.extend(f"    | {line}" for line in _short(output).rstrip("\n").splitlines())
    error = run["error"]
    if isinstance(error, dict):
        where = [str(error["file"])] if error.get("file") else []
        if error.get("line") is not None:
            where.append(f"line {error['line']}")
        prefix = ", ".join(where) + ": " if where else ""
        lines.append(f"    error: {prefix}{error.get('type')}: {error.get('message')}")
    return lines


def _response_lines(response: dict[str, JSON]) -> list[str]:
    lines = [f"response: {response['status']} {response.get('content_type') or ''}".rstrip()]
    if response.get("location"):
        lines.append(f"  location: {response['location']}")
    headers = response.get("headers")
    if isinstance(headers, dict):
        lines.extend(f"  {name}: {value}" for name, value in headers.items())
    if response.get("body"):
        lines.append(f"  {_short(response['body'])}")
    return lines


def print_trial(trial: Trial) -> None:
    """Print :func:`report_lines`."""
    print("\n".join(report_lines(trial)))
