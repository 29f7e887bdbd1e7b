"""The host's side of one run on one worker: send the script, serve its calls, read its end.

Guarantees: everything the worker says is decoded and checked by :mod:`sandbox.protocol`
before use; a malformed message, a closed socket or the wall-clock limit ends the conversation
with the worker killed (it never serves again); capability handlers see only plain data
(:class:`sandbox.capability.CallRequest`); deferred calls run in order after the script ended
well, and the first refusal fails the run at the script line that made the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Final

from sandbox import protocol
from sandbox.capability import (
    CallRequest,
    Capabilities,
    Handler,
    Response,
    RunInPlace,
    WaitBudget,
    find_handler,
    served,
    serving,
)
from sandbox.compiler import Script
from sandbox.errors import CapabilityError, StopScript, WaitExhausted
from sandbox.jsontypes import JSON
from sandbox.limits import Limits
from sandbox.process import WorkerProcess
from sandbox.protocol import ProtocolViolation
from sandbox.result import CapabilityCall, Frame, LimitBreach, RunResult, ScriptFailure, Status

logger = logging.getLogger(__name__)

LIMIT_NAMES: Final = frozenset(Limits.__dataclass_fields__)
KNOWN_SCRIPTS: Final = 256
EXIT_GRACE: Final = 1.0
CALL_OVERHEAD: Final = 64 * 1024
"""Room for a call's name and JSON punctuation above protocol.MAX_CALL_BYTES."""

HandlerFailed = Callable[[str, Exception], None]
"""Called when a capability handler raised something other than a CapabilityError (a bug)."""


class Conversation:
    """One run of ``script`` on ``worker``: ``await Conversation(...).run()``."""

    def __init__(
        self,
        worker: WorkerProcess,
        script: Script,
        request: dict[str, Any],
        capabilities: Capabilities,
        limits: Limits,
        on_handler_failure: HandlerFailed,
        modules: Mapping[str, Script] | None = None,
    ) -> None:
        self.worker = worker
        self.script = script
        self.request = request
        self.limits = limits
        self.on_handler_failure = on_handler_failure
        self.calls: list[CapabilityCall] = []
        self.stack = [capabilities]
        self.scripts = {script.filename: script}
        self.modules = dict(modules or {})
        for module in self.modules.values():
            self.scripts.setdefault(module.filename, module)
        self.started = 0.0
        self.call_bytes = 0
        self.budget: WaitBudget | None = None

    async def run(self) -> RunResult:
        """Run the script to its end (or the worker's) and return how it went."""
        worker, script, request, limits = self.worker, self.script, self.request, self.limits
        worker.runs += 1
        if script.key not in worker.known:
            request["code"] = script.code
            if len(worker.known) >= KNOWN_SCRIPTS:
                worker.known.clear()  # the worker evicts too; a miss costs one NeedCode
            worker.known.add(script.key)
        self._module_code(every=False)
        self.started = time.perf_counter()
        try:
            worker.send(protocol.run(request))
            async with asyncio.timeout(limits.wall_seconds) as deadline:

                def extend(seconds: float) -> None:
                    when = deadline.when()
                    if when is not None:
                        deadline.reschedule(when + seconds)

                self.budget = WaitBudget(limits.wait_seconds, extend)
                while True:
                    message = await worker.receive()
                    if type(message) is protocol.Call:
                        await self._serve_call(message)
                    elif type(message) is protocol.NestedDone and len(self.stack) > 1:
                        self.stack.pop()
                    elif type(message) is protocol.Done:
                        return await self._run_deferred(self._checked(message), message)
                    elif type(message) is protocol.NeedCode:
                        request["code"] = script.code
                        self._module_code(every=True)
                        worker.send(protocol.run(request))
                    else:
                        raise ProtocolViolation(f"unexpected {type(message).__name__}")
        except TimeoutError:
            return await self._kill(LimitBreach("wall_seconds", limits.wall_seconds))
        except (asyncio.IncompleteReadError, ConnectionError, ProtocolViolation) as exc:
            if isinstance(exc, ProtocolViolation):
                logger.warning("worker %s broke the protocol: %s", worker.pid, exc)
            return await self._kill(None)

    def _module_code(self, *, every: bool) -> None:
        """Put the code of this run's modules the worker may not hold into the request."""
        codes = {
            module.key: module.code
            for module in self.modules.values()
            if module.code is not None and (every or module.key not in self.worker.known)
        }
        self.request.pop("module_code", None)
        if codes:
            self.request["module_code"] = codes
            self.worker.known.update(codes)

    @property
    def waited(self) -> float:
        """Seconds this run spent in paced waits so far."""
        return 0.0 if self.budget is None else self.budget.waited

    async def _kill(self, breach: LimitBreach | None) -> RunResult:
        worker = self.worker
        cpu = worker.cpu_seconds()
        if breach is None:
            # The socket closed: the worker is dying on its own (SIGXCPU, a crash). Let it
            # finish dying so its exit signal tells us why, instead of killing it ourselves.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(EXIT_GRACE):
                    await worker.wait()
        worker.kill()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(EXIT_GRACE * 5):
                await worker.wait()
        wall = time.perf_counter() - self.started
        cause = worker.death_cause()
        if breach is None and cause is not None:
            breach = LimitBreach(cause, getattr(self.limits, cause))
        worker.killed_by_host = True
        common: dict[str, Any] = {
            "cpu_seconds": cpu,
            "wall_seconds": wall,
            "waited_seconds": self.waited,
            "calls": tuple(self.calls),
            "worker_pid": worker.pid,
        }
        if breach is not None:
            return RunResult(Status.LIMIT_EXCEEDED, breach=breach, **common)
        failure = ScriptFailure("WorkerCrashed", worker.describe_exit())
        return RunResult(Status.CRASHED, error=failure, **common)

    async def _serve_call(self, call: protocol.Call) -> None:
        """Serve one capability call and send the worker its answer."""
        name, args, kwargs = call.name, call.args, call.kwargs
        size = self.worker.last_frame_size
        if size > protocol.MAX_CALL_BYTES + CALL_OVERHEAD:
            raise ProtocolViolation(f"a call of {size} bytes")  # the worker caps its own calls
        self.call_bytes += size
        if self.call_bytes > protocol.MAX_RUN_CALL_BYTES:
            limit = protocol.MAX_RUN_CALL_BYTES // (1024 * 1024)
            message = f"the arguments of this run's calls passed {limit} MiB"
            self.calls.append(CapabilityCall(name, (), {}, False, 0.0, message))
            self.worker.send(protocol.err("CapabilityError", message, {}))
            return
        if len(self.calls) >= self.limits.capability_calls:
            self.worker.send(protocol.limit("capability_calls"))
            return
        handler = find_handler(self.stack[-1], name)
        started = time.perf_counter()
        error: str | None
        if handler is None:
            error = f"{name} is not available to this script"
            reply = protocol.err("CapabilityError", error, {})
        else:
            reply, error = await self._call_handler(handler, CallRequest(name, tuple(args), kwargs))
        self.calls.append(
            CapabilityCall(
                name, tuple(args), kwargs, error is None, time.perf_counter() - started, error
            )
        )
        self.worker.send(reply)

    async def _call_handler(
        self, handler: Handler, request: CallRequest
    ) -> tuple[protocol.HostMessage, str | None]:
        """Call a handler with this run's wait budget; return the reply and the error, if any."""
        error: str | None = None
        token = serving(self.budget)
        try:
            value = await handler(request)
            reply, error = self._reply(value)
        except CapabilityError as exc:
            error = exc.message
            reply = protocol.err(exc.kind, exc.message, exc.data)
        except StopScript as exc:
            reply = protocol.stop(exc.value)
        except WaitExhausted as exc:
            error = str(exc)
            reply = protocol.limit("wait_seconds")
        except Exception as exc:
            self.on_handler_failure(request.name, exc)
            error = f"{request.name} failed inside the host"
            reply = protocol.err("CapabilityError", error, {})
        finally:
            served(token)
        return reply, error

    def _reply(
        self, value: JSON | RunInPlace | Response
    ) -> tuple[protocol.HostMessage, str | None]:
        """The message answering a handler's value, and the error to record (if any)."""
        if isinstance(value, RunInPlace):
            reply = self._nested(value)
            if reply[0] == protocol.ERR:
                return reply, str(reply[2])
            self.stack.append(value.capabilities)
            self.scripts.setdefault(value.script.filename, value.script)
            return reply, None
        if isinstance(value, Response):
            return protocol.response(value.fields()), None
        return protocol.ret(value), None

    async def _run_deferred(self, result: RunResult, done: protocol.Done) -> RunResult:
        """Run the handlers of deferred calls, in order; the first refusal fails the run."""
        if not result.ok or not done.deferred:
            return result
        allowed: Mapping[str, bool] = self.request["deferred"]
        calls = list(result.calls)
        for item in done.deferred:
            if item.name not in allowed:
                raise ProtocolViolation(f"{item.name[:40]!r} is not a deferred capability")
            handler = find_handler(self.stack[0], item.name)
            started = time.perf_counter()
            error: str | None = None
            failure: ScriptFailure | None = None
            breach: LimitBreach | None = None
            token = serving(self.budget)
            try:
                if handler is None:
                    raise CapabilityError(f"{item.name} is not available to this script")
                await handler(CallRequest(item.name, tuple(item.args), item.kwargs))
            except StopScript:
                pass
            except CapabilityError as exc:
                error = exc.message
                failure = ScriptFailure(exc.kind, exc.message, item.line)
            except WaitExhausted as exc:
                error = str(exc)
                breach = LimitBreach("wait_seconds", self.limits.wait_seconds)
            finally:
                served(token)
            calls.append(
                CapabilityCall(
                    item.name,
                    tuple(item.args),
                    item.kwargs,
                    error is None,
                    time.perf_counter() - started,
                    error,
                    item.line,
                )
            )
            if breach is not None:
                return replace(
                    result,
                    status=Status.LIMIT_EXCEEDED,
                    breach=breach,
                    calls=tuple(calls),
                    returned=False,
                    value=None,
                )
            if failure is not None:
                return replace(
                    result,
                    status=Status.SCRIPT_ERROR,
                    error=failure,
                    calls=tuple(calls),
                    returned=False,
                    value=None,
                )
        return replace(result, calls=tuple(calls))

    def _nested(self, run: RunInPlace) -> protocol.HostMessage:
        failure = run.script.failure()
        if failure is not None:
            return protocol.err(failure.type, failure.describe(), {})
        names = check_globals(run.globals, run.capabilities)
        self.worker.known.add(run.script.key)
        return protocol.exec_nested(
            {
                "key": run.script.key,
                "code": run.script.code,
                "filename": run.script.filename,
                "globals": dict(run.globals),
                "capabilities": names,
                "exceptions": list(run.exceptions),
            }
        )

    def _checked(self, done: protocol.Done) -> RunResult:
        """:meth:`_finish`, with any surprise in the worker's data a protocol violation."""
        try:
            return self._finish(done)
        except (ValueError, TypeError, OverflowError, KeyError) as exc:
            raise ProtocolViolation(f"unusable done message: {exc}") from exc

    def _finish(self, done: protocol.Done) -> RunResult:
        self.worker.maxrss_kib = done.maxrss_kib
        common: dict[str, Any] = {
            "worker_pid": self.worker.pid,
            "output": done.output[: self.limits.output_bytes],
            "calls": tuple(self.calls),
            "cpu_seconds": done.cpu,
            "wall_seconds": time.perf_counter() - self.started,
            "waited_seconds": self.waited,
        }
        if done.breach is not None and done.breach in LIMIT_NAMES:
            breach = LimitBreach(done.breach, getattr(self.limits, done.breach))
            return RunResult(Status.LIMIT_EXCEEDED, **common, breach=breach)
        if done.failure is not None:
            return RunResult(Status.SCRIPT_ERROR, error=self._failure(done.failure), **common)
        return RunResult(Status.OK, returned=done.returned, value=done.value, **common)

    def _failure(self, failure: protocol.Failure) -> ScriptFailure:
        frames = []
        for line, function, filename in failure.traceback:
            source = self.scripts.get(filename)
            text = source.line_text(line) if source is not None else ""
            frames.append(Frame(line, function, text, filename))
        # A failure inside a script module names its file (lib/quiz.py:3).
        where = frames[-1].file if frames and frames[-1].line == failure.line else ""
        file = where if where and where != self.script.filename else None
        return ScriptFailure(failure.type, failure.message, failure.line, None, tuple(frames), file)


def module_entry(module: Script) -> list[Any]:
    """A script module as the worker's run request carries it: key, filename, and the compile
    error a worker raises as ImportError when it cannot be imported."""
    failure = module.failure()
    if failure is None:
        return [module.key, module.filename, ""]
    return [None, module.filename, f"{module.filename}: {failure.describe()}"]


def check_globals(values: Mapping[str, JSON], capabilities: Capabilities) -> list[str]:
    """Refuse global names that are not identifiers or start with ``_``; return the sorted
    capability names."""
    for name in values:
        if not name.isidentifier() or name.startswith("_"):
            raise ValueError(f"global name {name!r} must be an identifier not starting with _")
    return sorted(capabilities)
