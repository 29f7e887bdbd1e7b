"""Carrying out updates and runs: dispatch, the ``@`` / command / ``!`` / ``@@`` pipeline,
``answer`` and ``need_reply``, commits, and the run log.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Final

from runtime.bots import dispatch, keyboard
from runtime.bots.command import Command
from runtime.errors import ConflictError, NotANumber, QuotaExceeded
from runtime.runs.registry import LiveBot
from runtime.runs.secrets import NO_MASK, Masker
from runtime.runs.session import (
    Context,
    Services,
    Session,
    Transaction,
    answer_callback,
    commit,
    send_answer,
)
from runtime.store import QueuedItem, RunRecord, Waiting
from runtime.telegram import files
from runtime.telegram.update import IncomingUpdate, parse_update
from sandbox import (
    JSON,
    CallRequest,
    CapabilityError,
    FileReply,
    Handler,
    Response,
    RunInPlace,
    RunResult,
    ScriptFailure,
    Status,
    StopScript,
)

logger = logging.getLogger(__name__)

MAX_LOGGED_ARGS: Final = 1000
REPLY_KINDS: Final = frozenset({"message", "business_message"})
BROADCAST_CHUNK: Final = 30
BROADCAST_PERIOD: Final = 1.0
"""A broadcast queues 30 runs a second: Telegram's limit for one bot."""
BROADCAST_BACKLOG: Final = 90
"""A broadcast waits while its bot has more unfinished runs than this (or runs.max_pending/2)."""
"""Update kinds that answer a ``need_reply`` wait (a button press or an edit does not)."""
MAX_ATTEMPTS: Final = 10
"""How many times a run whose reads went stale is tried in all before it fails."""
RES_DEFERRED: Final = MappingProxyType(
    {
        "res.json": True,
        "res.text": True,
        "res.html": True,
        "res.redirect": True,
        "res.status": False,
        "res.set": False,
    }
)
"""``res`` answers nothing a script needs, so its calls skip the round trip to the server and
are applied when the script ends (a body or a redirect ends it); a bad one fails the run."""
RES_IGNORED: Final = MappingProxyType(dict.fromkeys(RES_DEFERRED, False))
"""``res`` in a run not started by a link click: every call does nothing (and ends nothing),
so one command serves chat and links; the run log notes each call."""
MODULE_GLOBALS: Final = ("settings",)
"""The JSON globals a bot's ``lib/`` modules see (besides capabilities and ``Keyboard``)."""


@dataclass(frozen=True, slots=True)
class Extras:
    """Capabilities one kind of trigger adds to every run of its pipeline (``res`` for clicks).

    ``deferred`` maps those that answer nothing to whether they end the script (see
    :meth:`sandbox.WorkerPool.run`).
    """

    handlers: Mapping[str, Handler]
    deferred: Mapping[str, bool] = field(default_factory=dict)
    on_error: Extras | None = None
    """What the ``!`` command gets instead (a click's error page: a ``res`` of its own)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a pipeline did: the main command's result (None when it had no code)."""

    result: RunResult | None

    @property
    def ok(self) -> bool:
        """True unless the main command failed."""
        return self.result is None or self.result.ok


def error_global(command: Command, result: RunResult) -> dict[str, JSON]:
    """The ``error`` global the ``!`` command sees."""
    failure = result.error
    return {
        "command": command.name,
        "status": str(result.status),
        "type": failure.type if failure else "LimitExceeded",
        "message": failure.message if failure else result.describe(),
        "line": failure.line if failure else None,
        "file": failure.file if failure else None,
    }


def _calls_for_log(result: RunResult, masker: Masker = NO_MASK) -> list[JSON]:
    logged: list[JSON] = []
    for call in result.calls:
        given: JSON = {"args": list(call.args), "kwargs": call.kwargs}
        params = json.dumps(masker.value(given), ensure_ascii=False, default=str)
        if '"$file"' in params:  # a file's content is not logged: its name, type and size are
            params = json.dumps(masker.value(files.for_log(given)), ensure_ascii=False, default=str)
        if call.name.startswith("HTTP."):
            # URLs, headers and bodies may carry secrets: extra.http has the metadata.
            params = '"(not logged: see extra.http)"'
        entry: dict[str, JSON] = {
            "name": call.name,
            "ok": call.ok,
            "error": None if call.error is None else masker.text(call.error),
            "seconds": round(call.seconds, 6),
            "params": params[:MAX_LOGGED_ARGS],
        }
        if call.line is not None:
            entry["line"] = call.line
        logged.append(entry)
    return logged


def res_notes(context: Context, result: RunResult) -> list[str]:
    """What the run log says about ``res``: calls ignored outside a click, and the line where
    a ``res`` call ended the script."""
    notes: list[str] = []
    clicked = context.update_type == "webhook"
    for call in result.calls:
        if call.name not in RES_DEFERRED:
            continue
        where = f" at line {call.line}" if call.line is not None else ""
        if not clicked:
            notes.append(f"{call.name}{where} ignored: this run was not started by a link")
        elif RES_DEFERRED[call.name] and call.ok:
            notes.append(f"{call.name}{where} ended the script")
    return notes


async def _ignore(call: CallRequest) -> JSON:
    """A ``res`` call in a run not started by a link: nothing to answer."""
    return None


IGNORED_RES: Final = Extras(dict.fromkeys(RES_DEFERRED, _ignore), RES_IGNORED)


def _error_for_log(
    failure: ScriptFailure | None, result: RunResult, masker: Masker = NO_MASK
) -> JSON:
    if failure is None:
        return (
            None
            if result.breach is None
            else {"type": "LimitExceeded", "message": result.breach.describe()}
        )
    return masker.value(failure.as_dict())  # type: ignore[no-any-return]


def _failed(result: RunResult | None, exc: Exception) -> RunResult:
    """The run's result turned into a failure with ``exc`` (what ``!`` and the log see)."""
    failure = ScriptFailure(type(exc).__name__, str(exc))
    if result is None:
        return RunResult(Status.SCRIPT_ERROR, error=failure)
    return replace(result, status=Status.SCRIPT_ERROR, error=failure, returned=False)


def _holding(handler: Handler, tx: Transaction, held: list[tuple[Handler, CallRequest]]) -> Handler:
    """A deferred capability (``res.*``) that, once the run has read properties, is held back
    until the reads are known to be current; a run that read nothing applies it at once."""

    async def hold(call: CallRequest) -> JSON | RunInPlace | Response | FileReply:
        if not tx.reads:
            return await handler(call)
        held.append((handler, call))
        return None

    return hold


async def _stale(services: Services, bot_id: str, tx: Transaction) -> ConflictError | None:
    """The conflict of the first property the run read that changed since, if any."""
    for (scope, name), seen in tx.reads.items():
        now = (await services.store.read_property(bot_id, scope, name)).version
        if now != seen.version:
            return ConflictError(scope, name, seen.version, now)
    return None


async def _apply_held(result: RunResult, held: list[tuple[Handler, CallRequest]]) -> RunResult:
    """Apply held deferred calls in order, as the pool would have; the first refusal fails."""
    for handler, call in held:
        try:
            await handler(call)
        except StopScript:
            pass
        except CapabilityError as exc:
            return replace(
                result,
                status=Status.SCRIPT_ERROR,
                error=ScriptFailure(exc.kind, exc.message),
                returned=False,
            )
    return result


def _question(context: Context) -> Waiting | None:
    """The wait a ``need_reply`` command starts instead of running its script, if it asks."""
    user_id, chat_id = context.user_id, context.chat_id
    if not context.command.need_reply or context.update_type == "webhook":
        return None
    if user_id is None or chat_id is None:
        return None
    return Waiting(context.bot.id, chat_id, user_id, context.command.name)


class Runner:
    """Runs commands for bots and records every run."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def handle_item(self, bot: LiveBot, item: QueuedItem) -> None:
        """Carry out one queue item: a Telegram update or a scheduled run."""
        if item.kind == "update":
            raw = item.payload if isinstance(item.payload, dict) else None
            await self.handle_update(
                bot, parse_update(item.payload), f"update:{item.update_id}", raw=raw
            )
            return
        payload = item.payload if isinstance(item.payload, dict) else {}
        if "broadcast" in payload or "broadcast_id" in payload:
            await self.drive_broadcast(bot, item, payload)
            return
        name = payload.get("command")
        command = dispatch.find(bot.definition.commands, name) if isinstance(name, str) else None
        if command is None:
            logger.warning("bot %s: scheduled command %r no longer exists", bot.id, name)
            return
        user, chat = payload.get("user"), payload.get("chat")
        generation = payload.get("generation")
        trigger, params = payload.get("trigger"), payload.get("params")
        source = payload.get("from_broadcast")
        if type(source) is int:
            trigger = f"broadcast:{source}"
        elif not (type(trigger) is str and trigger.startswith("schedule:")):
            # A recurring schedule's run says which schedule (runtime/runs/scheduler.py).
            trigger = f"run:{item.seq}"
        context = Context(
            bot,
            command,
            str(trigger),
            user=user if isinstance(user, dict) else None,
            chat=chat if isinstance(chat, dict) else None,
            options=payload.get("options"),
            params=params if type(params) is str else "",
            # Items queued before generations were counted have none: they start a new chain.
            generation=generation if type(generation) is int and generation > 0 else 0,
        )
        await self.run_pipeline(context)

    async def drive_broadcast(
        self, bot: LiveBot, item: QueuedItem, payload: dict[str, JSON]
    ) -> None:
        """One step of a broadcast: queue the runs of its next users (see
        :mod:`runtime.store.broadcasts`), paced to Telegram's 30 messages a second."""
        limits = bot.definition.config.runs
        backlog = max(1, min(BROADCAST_BACKLOG, limits.max_pending // 2))
        # At most the backlog (this step's item included), a chunk and the next step: never
        # past runs.max_pending, which the bot's Bot.run and schedules also count on.
        chunk = max(1, min(BROADCAST_CHUNK, limits.max_pending - backlog - 1))
        step = await self.services.store.drive_broadcast(
            bot.id,
            item.seq,
            payload,
            now=self.services.clock(),
            chunk=chunk,
            period=BROADCAST_PERIOD,
            max_backlog=backlog,
        )
        if step.queued:
            logger.debug(
                "bot %s: broadcast %d queued %d runs", bot.id, step.broadcast_id, step.queued
            )

    async def handle_update(
        self,
        bot: LiveBot,
        update: IncomingUpdate,
        trigger: str,
        *,
        raw: dict[str, Any] | None = None,
    ) -> None:
        """Dispatch one update to its command (or its ``need_reply`` wait) and run it."""
        table = bot.definition.commands
        store = self.services.store
        command: Command | None = None
        params = ""
        replying = False
        user_id, chat_id = update.user_id, update.chat_id
        if user_id is not None and chat_id is not None:
            if update.text is not None and dispatch.is_command_text(
                table, update.text, update, bot_username=bot.definition.config.username
            ):
                await store.clear_waiting(bot.id, chat_id, user_id)
            elif update.type in REPLY_KINDS:
                # Any next message answers, text or not (a photo, a contact: message is None).
                waiting = await store.take_waiting(bot.id, chat_id, user_id)
                if waiting is not None:
                    command = dispatch.find(table, waiting.command)
                    replying = command is not None
        if command is None:
            match = dispatch.match(table, update, bot_username=bot.definition.config.username)
            if match is None:
                return
            command, params = match.command, match.params
        context = Context(
            bot,
            command,
            trigger,
            user=update.user,
            chat=update.chat,
            update=raw,
            update_type=update.type,
            request=update.request,
            message=update.message,
            params=params,
        )
        await self.run_pipeline(context, replying=replying)
        await answer_callback(self.services, context)

    async def run_pipeline(
        self, context: Context, *, extras: Extras | None = None, replying: bool = False
    ) -> Outcome:
        """Run ``@``, the answer, the command, ``!`` on failure, then ``@@``.

        A ``need_reply`` command only sends its answer and waits (when the run has a user and a
        chat and is not a link click): its script runs on the user's next message, which
        ``replying`` marks, without sending the answer or waiting again.
        """
        table = context.bot.definition.commands
        error_extras = None if extras is None else extras.on_error
        if table.before is not None:
            before = await self.run_one(context.for_command(table.before), extras)
            if not before.ok:
                await self.on_error(context.for_command(table.before), before, error_extras)
                return Outcome(before)
            if before.returned:
                return Outcome(None)  # `@` returned: the command does not run
        # A failed answer fails the command (logged, ``!`` has run): no script, no wait.
        result = None if replying else await self._answer(context, error_extras)
        question = None if replying else _question(context)
        if result is None and question is not None:
            await self.services.store.set_waiting(question)
        elif result is None and context.command.has_code:
            result = await self.run_one(context, extras)
            if not result.ok:
                await self.on_error(context, result, error_extras)
        if table.after is not None:
            await self.run_one(context.for_command(table.after), extras)
        return Outcome(result)

    async def _answer(self, context: Context, error_extras: Extras | None) -> RunResult | None:
        """Send the command's answer; if it fails, log the command as failed and run ``!``."""
        started = self.services.clock()
        try:
            await send_answer(self.services, context)
        except CapabilityError as exc:
            result = RunResult(Status.SCRIPT_ERROR, error=ScriptFailure(exc.kind, exc.message))
            await self.record(context, result, started)
            await self.on_error(context, result, error_extras)
            return result
        return None

    async def on_error(
        self, context: Context, result: RunResult, extras: Extras | None = None
    ) -> None:
        """Run the bot's ``!`` command with the ``error`` global, if it has one (with
        ``extras``: a click's ``!`` answers the browser with a ``res`` of its own)."""
        handler = context.bot.definition.commands.on_error
        if handler is None or context.command is handler:
            return
        error = error_global(context.command, result)
        masker = await self.masker(context)
        if masker:
            error["message"] = masker.text(str(error["message"]))
        await self.run_one(context.for_command(handler, error=error), extras)

    async def run_one(self, context: Context, extras: Extras | None = None) -> RunResult:
        """Run one command's script, commit its writes if it succeeded, and log the run.

        A commit refused because a property the run read changed meanwhile (``ConflictError``)
        re-runs the script from the start, up to ``MAX_ATTEMPTS`` times in all, as long as the
        run did nothing outside the store (no Telegram call, no ``res`` applied); otherwise the
        run fails with ``ConflictError`` and writes nothing.
        """
        started = self.services.clock()
        retries = 0
        while True:
            tx = Transaction()
            outcome = await self._attempt(context, extras, tx)
            if isinstance(outcome, RunResult):
                result = outcome
                break
            if retries + 1 >= MAX_ATTEMPTS or tx.external:
                result = _failed(tx.result, outcome)
                break
            retries += 1
            # Jitter, so runs that collided do not collide again in lockstep (not a secret).
            await self.services.sleep(random.uniform(0, 0.002 * 2 ** min(retries, 6)))  # noqa: S311
        await self.record(context, result, started, retries, http=tx.http)
        return result

    async def _attempt(
        self, context: Context, extras: Extras | None, tx: Transaction
    ) -> RunResult | ConflictError:
        """One try of a run: its result, or the ConflictError that refused it."""
        bot = context.bot
        session = Session(self.services, context, tx)
        capabilities = session.capabilities()
        held: list[tuple[Handler, CallRequest]] = []
        if extras is None:
            extras = IGNORED_RES
            capabilities.update(extras.handlers)
        else:
            capabilities.update(extras.handlers)
            for name in extras.deferred:
                if name in extras.handlers:
                    capabilities[name] = _holding(extras.handlers[name], tx, held)
        result = await self.services.pool.run(
            bot.script_of(context.command),
            tenant=bot.tenant,
            globals=context.globals(),
            capabilities=capabilities,
            exceptions=("ApiError", "HTTPError"),
            limits=bot.definition.config.limits,
            deferred=extras.deferred,
            file_bytes=bot.definition.config.files.max_upload_bytes,
            modules={**bot.modules, keyboard.MODULE: keyboard.script()},
            module_globals=MODULE_GLOBALS,
            bind={keyboard.GLOBAL: keyboard.MODULE},
        )
        tx.result = result
        if not result.ok:
            return result
        if held:
            # res is applied (and so seen by the browser) before the commit: first make sure
            # the reads are still current, so a stale run re-runs instead of failing.
            stale = await _stale(self.services, bot.id, tx)
            if stale is not None:
                return stale
            tx.external = True
            result = await _apply_held(result, held)
            tx.result = result
            if not result.ok:
                return result
        try:
            await commit(self.services, bot, tx)
        except ConflictError as exc:
            return exc
        except (QuotaExceeded, NotANumber) as exc:
            return _failed(result, exc)
        return result

    async def masker(self, context: Context) -> Masker:
        """What hides the bot's secrets in this run's log and in the ``error`` of ``!``."""
        secrets = self.services.secrets
        if secrets is None:
            return NO_MASK
        return await secrets.masker(context.bot.id, context.delivery.revealed)

    async def record(
        self,
        context: Context,
        result: RunResult,
        started: float,
        retries: int = 0,
        *,
        http: list[JSON] | None = None,
    ) -> None:
        """Append a run to the run log (written behind, in batches), secrets masked."""
        masker = await self.masker(context)
        self.services.runlog.add(
            RunRecord(
                bot_id=context.bot.id,
                command=context.command.name,
                trigger=context.trigger,
                user_id=context.user_id,
                chat_id=context.chat_id,
                status=str(result.status),
                started_at=started,
                cpu_seconds=result.cpu_seconds,
                wall_seconds=result.wall_seconds,
                output=masker.text(result.output),
                calls=_calls_for_log(result, masker),
                error=_error_for_log(result.error, result, masker),
                extra={
                    "breach": result.breach.limit if result.breach else None,
                    "depth": context.depth,
                    "worker_pid": result.worker_pid,
                    "generation": context.generation,
                    "retries": retries,
                    "version": context.bot.version,
                    # Hops' hosts: a host may be named after a secret (a private hook's).
                    **({"http": masker.value(http)} if http else {}),
                    **_notes(res_notes(context, result)),
                },
            )
        )


def _notes(notes: list[str]) -> dict[str, JSON]:
    return {"notes": list(notes)} if notes else {}


__all__ = ["RES_DEFERRED", "Extras", "Outcome", "Runner", "error_global", "res_notes"]
