"""The worker process: receives compiled scripts from the host and runs them, one at a time.

Forked by the fork server (:mod:`sandbox.zygote`), which itself started from a clean interpreter
(``python -I``), never from the host: a worker holds no key, token, socket or database handle of
the host's, and it has never run anyone's code before its first run. It serves one tenant (bot)
for its whole life: the pool never hands it another's run. Everything a script asks of the
outside world is a capability call: a JSON message to the host, answered by the host.

The worker is assumed compromised by any script it has run: the host trusts nothing it says
beyond well-formed, size-capped JSON, and kills it on any protocol violation.
"""

from __future__ import annotations

import decimal
import gc
import json
import marshal
import resource
import signal
import socket
import sys
import time
import traceback
import types
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Final

from sandbox import isolation, protocol
from sandbox.files import File, from_host
from sandbox.guards import LimitExceeded, RunState, ScriptReturn, base_builtins, make_guards
from sandbox.modules import ModuleFacade, load_facades, make_import, random_facade
from sandbox.plain import NotPlain, to_plain
from sandbox.protocol import HEADER, frame

CODE_CACHE_SIZE: Final = 512
MAX_NESTING: Final = 16
MAX_MESSAGE: Final = 2000
CPU_REARM_SECONDS: Final = 0.05


class Channel:
    """The worker's end of the socket: blocking, framed reads and writes."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def send(self, message: protocol.WorkerMessage) -> None:
        """Send one message to the host."""
        self.sock.sendall(frame(protocol.encode(message)))

    def receive(self) -> Any:
        """Receive one marshal message from the host, or ``None`` when the host has gone."""
        header = self._exactly(HEADER.size)
        if header is None:
            return None
        (size,) = HEADER.unpack(header)
        body = self._exactly(size)
        return None if body is None else marshal.loads(body)  # noqa: S302 - from the host

    def _exactly(self, size: int) -> bytes | None:
        chunks = bytearray()
        while len(chunks) < size:
            chunk = self.sock.recv(size - len(chunks))
            if not chunk:
                return None
            chunks += chunk
        return bytes(chunks)


class RefusedCall(Exception):
    """Base of the errors a script sees when a host capability refuses a call (the host's side
    is :class:`sandbox.errors.CapabilityError`; each kind, such as ``ApiError``, is a subclass)."""

    def __init__(self, message: str, kind: str, data: Mapping[str, Any]) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        for key, value in data.items():
            setattr(self, key, value)


class Capability:
    """A host capability as the script sees it: a plain function."""

    __slots__ = ("_cap_invoke", "_cap_name")

    def __init__(self, name: str, invoke: Callable[[str, tuple[Any, ...], dict[str, Any]], Any]):
        self._cap_name = name
        self._cap_invoke = invoke

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._cap_invoke(self._cap_name, args, kwargs)

    def __repr__(self) -> str:
        return f"<capability {self._cap_name}>"


class Response:
    """A response a capability answered with (``HTTP.get``...): read-only attributes ``status``,
    ``ok``, ``headers``, ``text``, ``url``, and ``json()``. Built here from plain data; the
    script gets copies of the containers, so changing them changes nothing else."""

    __slots__ = ("_headers", "_status", "_text", "_url")

    def __init__(self, fields: Mapping[str, Any]) -> None:
        self._status = fields["status"]
        self._headers = dict(fields["headers"])
        self._text = fields["text"]
        self._url = fields["url"]

    @property
    def status(self) -> int:
        """The HTTP status code."""
        return self._status  # type: ignore[no-any-return]

    @property
    def ok(self) -> bool:
        """True for a status from 200 to 299."""
        return 200 <= self._status <= 299  # type: ignore[no-any-return]

    @property
    def headers(self) -> dict[str, str]:
        """The response headers, by lower-case name (a fresh copy each time)."""
        return dict(self._headers)

    @property
    def text(self) -> str:
        """The body, decoded as text."""
        return self._text  # type: ignore[no-any-return]

    @property
    def url(self) -> str:
        """The URL that answered (after redirects)."""
        return self._url  # type: ignore[no-any-return]

    def json(self) -> Any:
        """The body parsed as JSON (``json.JSONDecodeError``, a ``ValueError``, if it is not)."""
        return json.loads(self._text)

    def __repr__(self) -> str:
        return f"<Response {self._status}>"


class Namespace:
    """A group of capabilities (``Api``, ``User``...): attributes are capabilities."""

    __slots__ = ("_ns_invoke", "_ns_members", "_ns_name", "_ns_wildcard")

    def __init__(
        self,
        name: str,
        members: frozenset[str],
        wildcard: bool,
        invoke: Callable[[str, tuple[Any, ...], dict[str, Any]], Any],
    ) -> None:
        self._ns_name = name
        self._ns_members = members
        self._ns_wildcard = wildcard
        self._ns_invoke = invoke

    def __getattr__(self, attr: str) -> Capability:
        if attr.startswith("_") or not (self._ns_wildcard or attr in self._ns_members):
            offered = ", ".join(sorted(self._ns_members)) or "nothing"
            raise AttributeError(f"{self._ns_name} has no {attr!r} (it offers: {offered})")
        return Capability(f"{self._ns_name}.{attr}", self._ns_invoke)

    def __repr__(self) -> str:
        return f"<{self._ns_name}>"


class LazyModule:
    """A global bound to a script module (``bind``): imported on its first attribute read.

    Scripts that never use it pay nothing; those that do get the run's fresh module.
    """

    __slots__ = ("_lazy_modules", "_lazy_name")

    def __init__(self, modules: ScriptModules, name: str) -> None:
        self._lazy_modules = modules
        self._lazy_name = name

    def __getattr__(self, attr: str) -> Any:
        module = self._lazy_modules.find(self._lazy_name)
        return getattr(module, attr)

    def __repr__(self) -> str:
        return f"<module {self._lazy_name}>"


class ScriptModules:
    """The script modules of one run (``modules`` in the run request): policy-compiled code the
    host sent, imported on first use and fresh for every run, so no run sees another's state.

    Packages (``lib`` for ``lib.quiz``) are plain namespaces made here. A module sees the
    builtins, the capabilities and exception classes of the run, the JSON globals the host
    named in ``module_globals`` and the ``bind`` globals, never the run's other data. While a
    module's body runs, capability calls are refused (an import has no side effects), a
    circular import is an ImportError naming the cycle, and a top-level ``return`` is refused.
    """

    def __init__(self, worker: Worker, state: RunState, request: dict[str, Any]) -> None:
        self.worker = worker
        self.state = state
        self.request = request
        self.table: dict[str, Any] = request.get("modules") or {}
        self._packages: dict[str, ModuleFacade] | None = None
        self._globals: dict[str, Any] | None = None
        self.loaded: dict[str, ModuleFacade] = {}
        self.importing: list[str] = []
        self.bound = {
            name: LazyModule(self, module) for name, module in (request.get("bind") or {}).items()
        }

    @property
    def packages(self) -> dict[str, ModuleFacade]:
        """The packages of this run's modules (made at the first import: most runs import none)."""
        if self._packages is None:
            self._packages = {}
            for name in self.table:
                parts = name.split(".")
                for end in range(1, len(parts)):
                    package = ".".join(parts[:end])
                    if package not in self._packages:
                        self._packages[package] = _package(package)
        return self._packages

    def names(self) -> list[str]:
        """Every module of this run, sorted."""
        return sorted(self.table)

    def is_package(self, name: str) -> bool:
        """True if ``name`` is a package (``lib`` for ``lib.quiz``)."""
        return name in self.packages

    def find(self, name: str) -> ModuleFacade | None:
        """The package or module ``name`` (its body run now, once per run), or None."""
        package = self.packages.get(name)
        if package is not None:
            return package
        module = self.loaded.get(name)
        if module is not None:
            return module
        entry = self.table.get(name)
        if entry is None:
            return None
        if name in self.importing:
            chain = " -> ".join([*self.importing[self.importing.index(name) :], name])
            raise ImportError(
                f"circular import: {chain}; move what both need into a module of its own"
            )
        key, filename, error = entry
        if key is None:
            raise ImportError(error)
        module = types.ModuleType(f"<script module {name}>")
        namespace = module.__dict__
        if self._globals is None:  # built once per run, copied into each module
            self._globals = self.worker.module_globals(self.state, self.request, self)
        namespace.update(self._globals)
        namespace["__name__"] = name
        self.importing.append(name)
        try:
            exec(self.worker.codes[key], namespace)  # noqa: S102 - policy-compiled, as a script
        except ScriptReturn:
            raise ImportError(f"{filename}: a module cannot end with a top-level return") from None
        finally:
            self.importing.pop()
        self.loaded[name] = module
        parent, _, leaf = name.rpartition(".")
        if parent:
            self.packages[parent].__dict__[leaf] = module
        return module

    def clear(self) -> None:
        """Empty every module of the run (their finalizers run now, within the run)."""
        for module in (*self.loaded.values(), *(self._packages or {}).values()):
            module.__dict__.clear()
        self.loaded.clear()
        self.bound.clear()
        if self._globals is not None:
            self._globals.clear()


def _package(name: str) -> ModuleFacade:
    package = types.ModuleType(f"<script package {name}>")

    def missing(attr: str) -> Any:
        raise AttributeError(f"{name}.{attr} is not imported: write `import {name}.{attr}`")

    package.__dict__["__getattr__"] = missing
    return package


class Worker:
    """The run loop of one worker process."""

    def __init__(
        self,
        channel: Channel,
        baseline: int,
        facades: Mapping[str, Any] | None = None,
        *,
        test_hooks: bool = False,
    ) -> None:
        self.channel = channel
        self.baseline = baseline
        self.test_hooks = test_hooks
        self.codes: OrderedDict[str, Any] = OrderedDict()
        self.facades = dict(facades) if facades is not None else load_facades()
        self.builtins = base_builtins()
        self.error_classes: dict[str, type[RefusedCall]] = {}
        self.state: RunState | None = None
        self.in_script = False
        self.in_io = False
        self.cpu_pending = False
        self.cpu_soft = 0
        self.memory_soft = 0
        self.memory_locked = False
        self.depth = 0
        self.nesting = 0
        self.filenames: set[str] = set()
        self.request: dict[str, Any] = {}
        self.modules: ScriptModules | None = None
        signal.signal(signal.SIGPROF, self._on_cpu_limit)

    def serve(self) -> None:
        """Serve run requests until the host closes the socket or says ``exit``."""
        while True:
            message = self.channel.receive()
            if message is None or message[0] == protocol.EXIT:
                return
            if message[0] == protocol.RUN:
                self.run(message[1])

    def run(self, request: dict[str, Any]) -> None:
        """Run one script and send its ``done`` message."""
        key = request["key"]
        if request.get("code") is not None:
            self.codes[key] = marshal.loads(request["code"])  # noqa: S302 - from the host
        for module_key, module_code in (request.get("module_code") or {}).items():
            self.codes[module_key] = marshal.loads(module_code)  # noqa: S302 - from the host
        while len(self.codes) > CODE_CACHE_SIZE:
            self.codes.popitem(last=False)
        code = self.codes.get(key)
        modules = request.get("modules") or {}
        if code is None or any(
            entry[0] is not None and entry[0] not in self.codes for entry in modules.values()
        ):
            self.channel.send(protocol.NeedCode())
            return
        self.codes.move_to_end(key)
        for entry in modules.values():
            if entry[0] is not None:
                self.codes.move_to_end(entry[0])
        if self.test_hooks and request.get("escape"):
            # Tests only (the fork server was started with --test-hooks): unrestricted code,
            # standing in for a script that found a way out of the language policy.
            exec(request["escape"], {"worker": self, "request": request})  # noqa: S102
        limits = request["limits"]
        state = RunState(output_limit=limits["output_bytes"])
        self.state = state
        self.request = request
        self.filenames = {request["filename"]}
        self.filenames.update(
            entry[1] for entry in modules.values() if not entry[1].startswith("<")
        )
        self.modules = ScriptModules(self, state, request) if modules else None
        run_globals = self._globals(state, request)
        self.depth = self.depth or _stack_depth()
        started_cpu, started = time.process_time(), time.perf_counter()
        failure, returned, value = self._execute(code, run_globals, state, limits)
        self.state = None
        self.modules = None
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self.channel.send(
            protocol.Done(
                output="".join(state.output),
                failure=failure,
                breach=state.breach,
                returned=returned,
                value=value,
                cpu=time.process_time() - started_cpu,
                wall=time.perf_counter() - started,
                maxrss_kib=usage.ru_maxrss,
                deferred=tuple(state.deferred),
            )
        )

    def _arm(self, limits: dict[str, Any]) -> None:
        """Set the kernel and interpreter limits for one run."""
        self.cpu_soft = isolation.limit_cpu(limits["cpu_seconds"], self.cpu_soft)
        memory_soft = self.baseline + limits["memory_bytes"]
        if self.baseline and self.request.get("lock_memory") and not self.memory_locked:
            # The first run of a worker bound to one tenant: its budget becomes the hard cap.
            isolation.lock_memory(memory_soft)
            self.memory_locked = True
            self.memory_soft = memory_soft
        elif memory_soft != self.memory_soft and self.baseline:
            isolation.limit_memory(memory_soft)
            self.memory_soft = memory_soft
        sys.setrecursionlimit(self.depth + limits["recursion_depth"] + 10)
        signal.setitimer(signal.ITIMER_PROF, limits["cpu_seconds"], CPU_REARM_SECONDS)

    def _execute(
        self, code: Any, run_globals: dict[str, Any], state: RunState, limits: dict[str, Any]
    ) -> tuple[protocol.Failure | None, bool, Any]:
        """Run the code under its limits; return (failure, returned, value)."""
        failure: protocol.Failure | None = None
        returned, value = False, None
        decimal.setcontext(decimal.Context())  # a suspended `with localcontext()` cannot leak
        try:
            self._arm(limits)
            self.in_script = True
            try:
                try:
                    exec(code, run_globals)  # noqa: S102 - the whole point: policy-compiled code
                except ScriptReturn as stop:
                    returned, value = True, _json_value(stop.value)
                except LimitExceeded as exc:
                    state.breach = state.breach or exc.limit
                except MemoryError:
                    state.breach = state.breach or "memory_bytes"
                except RecursionError:
                    state.breach = state.breach or "recursion_depth"
                except BaseException as exc:
                    failure = _describe(exc, self.filenames)
                # Finalizers of what the script left (a suspended generator's `finally`) run
                # now, inside this run's limits, rather than during a later run of another bot.
                run_globals.clear()
                if self.modules is not None:
                    self.modules.clear()
                gc.collect()
            finally:
                state.closed = True
                self.in_script = False
                signal.setitimer(signal.ITIMER_PROF, 0)
                sys.setrecursionlimit(1000)
        except LimitExceeded as exc:
            state.breach = state.breach or exc.limit
        except BaseException:  # a limit hit while cleaning up after the script
            state.breach = state.breach or "cpu_seconds"
        return failure, returned, value

    def _globals(self, state: RunState, request: dict[str, Any]) -> dict[str, Any]:
        run_globals = self._capability_globals(state, request)
        run_globals.update(request.get("globals", {}))
        return run_globals

    def module_globals(
        self, state: RunState, request: dict[str, Any], modules: ScriptModules
    ) -> dict[str, Any]:
        """Fresh globals for a script module: capabilities, exception classes, ``bind``
        globals and the JSON globals named in ``module_globals``."""
        module_globals = self._capability_globals(state, request)
        data = request.get("globals", {})
        for name in request.get("module_globals", ()):
            if name in data:
                module_globals[name] = data[name]
        return module_globals

    def _capability_globals(self, state: RunState, request: dict[str, Any]) -> dict[str, Any]:
        run_globals = script_globals(state, self.builtins, self.facades, self.modules)
        invoke = self._invoker(
            state, request["limits"]["capability_calls"], request.get("deferred", {})
        )
        groups: dict[str, set[str]] = {}
        for name in request.get("capabilities", ()):
            space, dot, member = name.partition(".")
            if dot:
                groups.setdefault(space, set()).add(member)
            else:
                run_globals[name] = Capability(name, invoke)
        for space, members in groups.items():
            run_globals[space] = Namespace(
                space, frozenset(members - {"*"}), "*" in members, invoke
            )
        for kind in request.get("exceptions", ()):
            run_globals[kind] = self._error_class(kind)
        if self.modules is not None:
            run_globals.update(self.modules.bound)
        return run_globals

    def _answer(self, state: RunState, reply: Any) -> Any:
        """Turn the host's reply to a capability call into a value or an exception."""
        if reply is None:
            raise SystemExit(0)
        if reply[0] == protocol.RET:
            return from_host(reply[1])
        if reply[0] == protocol.RESP:
            return Response(reply[1])
        if reply[0] == protocol.LIMIT:
            state.exceed(reply[1])
        if reply[0] == protocol.STOP:
            raise ScriptReturn(reply[1])
        if reply[0] == protocol.EXEC:
            return self._run_nested(state, reply[1])
        kind, message, data = reply[1], reply[2], reply[3]
        raise self._error_class(kind)(message, kind, data)

    def _run_nested(self, state: RunState, nested: dict[str, Any]) -> Any:
        """Run a script the host asked for in place of a capability's answer (see RunInPlace)."""
        if self.nesting >= MAX_NESTING:
            raise RecursionError(f"scripts may nest at most {MAX_NESTING} deep")
        code = marshal.loads(nested["code"])  # noqa: S302 - from the host
        request = dict(self.request, **nested)
        run_globals = self._globals(state, request)
        self.filenames.add(nested["filename"])
        self.nesting += 1
        try:
            exec(code, run_globals)  # noqa: S102 - policy-compiled code, as in run()
        except ScriptReturn as stop:
            return stop.value
        finally:
            self.nesting -= 1
            self.in_io = True
            try:
                self.channel.send(protocol.NestedDone())
            finally:
                self.in_io = False
        return None

    def _error_class(self, kind: str) -> type[RefusedCall]:
        cls = self.error_classes.get(kind)
        if cls is None:
            cls = type(kind, (RefusedCall,), {"__module__": "script"})
            self.error_classes[kind] = cls
        return cls

    def _invoker(
        self, state: RunState, max_calls: int, deferred: Mapping[str, bool]
    ) -> Callable[[str, tuple[Any, ...], dict[str, Any]], Any]:
        def invoke(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            if state.closed:
                raise RuntimeError("this run has ended; its capabilities are gone")
            if self.modules is not None and self.modules.importing:
                raise ImportError(
                    f"{name}() was called while {self.modules.importing[-1]} was being "
                    "imported: a module may not use capabilities at import time; "
                    "call them from a function"
                )
            if state.calls >= max_calls:
                state.exceed("capability_calls")
            state.calls += 1
            # Plain data, made here under this run's limits: the host never sees (or calls)
            # an object of the script's, and what it checks is what it sends.
            try:
                plain_args = to_plain(args, where="argument")
                plain_kwargs = to_plain(kwargs, where="argument")
            except NotPlain as exc:
                raise TypeError(f"{name}(): {exc}") from None
            payload = protocol.encode(protocol.Call(name, plain_args, plain_kwargs))
            if len(payload) > protocol.MAX_CALL_BYTES:
                raise ValueError(
                    f"arguments of {name}() are {len(payload)} bytes; "
                    f"the limit is {protocol.MAX_CALL_BYTES}"
                )
            ends_script = deferred.get(name)
            if ends_script is not None:
                # Answered by the host after the script: no round trip now (WorkerPool.run).
                # Frame 2 is the script's line: 0 is this function, 1 Capability.__call__.
                line = sys._getframe(2).f_lineno
                state.deferred.append(protocol.Deferred(name, plain_args, plain_kwargs, line))
                if ends_script:
                    raise ScriptReturn(None)
                return None
            self.in_io = True
            try:
                self.channel.sock.sendall(frame(payload))
                reply = self.channel.receive()
            finally:
                self.in_io = False
            if self.cpu_pending:
                self.cpu_pending = False
                state.exceed("cpu_seconds")
            return self._answer(state, reply)

        return invoke

    def _on_cpu_limit(self, signum: int, frame_: object) -> None:
        state = self.state
        if state is None or not self.in_script:
            return
        if self.in_io:
            self.cpu_pending = True
            return
        state.exceed("cpu_seconds")


def script_globals(
    state: RunState,
    builtins: Mapping[str, Any],
    facades: Mapping[str, Any],
    modules: ScriptModules | None = None,
) -> dict[str, Any]:
    """Fresh globals for one script: its own builtins, guards bound to ``state``, imports."""
    guards = make_guards(state)
    run_builtins = dict(builtins)
    for name in ("getattr", "hasattr", "setattr"):
        run_builtins[name] = guards.pop(name)
    run_builtins["__import__"] = make_import(facades, {"random": random_facade}, modules)
    run_globals: dict[str, Any] = {"__builtins__": run_builtins, "__name__": "script"}
    run_globals["File"] = File
    run_globals.update(guards)
    return run_globals


def _stack_depth() -> int:
    frame_ = sys._getframe()
    depth = 0
    while frame_ is not None:
        depth += 1
        frame_ = frame_.f_back  # type: ignore[assignment]
    return depth


def _json_value(value: object) -> Any:
    """A returned value as plain data, or its ``repr`` (called inside the run's limits)."""
    try:
        return to_plain(value)
    except NotPlain:
        return _truncate(_exact_str(repr(value)))


def _exact_str(text: object) -> str:
    """``text`` as a plain ``str``, read through ``str``'s own slot (``repr`` may return a
    subclass)."""
    return str.__str__(text) if issubclass(type(text), str) else "<unprintable>"


def _truncate(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def _describe(exc: BaseException, filenames: set[str]) -> protocol.Failure:
    frames = [
        (lineno, frame_.f_code.co_name, frame_.f_code.co_filename)
        for frame_, lineno in traceback.walk_tb(exc.__traceback__)
        if frame_.f_code.co_filename in filenames
    ]
    try:
        message = _exact_str(str(exc))
    except Exception:
        message = "<unprintable error>"
    line = getattr(exc, "lineno", None) if isinstance(exc, SyntaxError) else None
    if type(line) is not int:  # a script's SyntaxError subclass may set anything there
        line = frames[-1][0] if frames else None
    return protocol.Failure(
        _exact_str(type(exc).__name__), _truncate(message), line, tuple(frames[-20:])
    )
