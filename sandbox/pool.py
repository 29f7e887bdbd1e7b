"""A pool of warm worker processes serving runs to an asyncio host without blocking it.

Guarantees: a worker serves one tenant (bot) for its whole life: a run of another tenant gets a
worker freshly forked from the fork server (:mod:`sandbox.forkserver`), which never ran code, so
nothing one tenant's code leaves in a process (patched classes, module state, even a worker
taken over after a policy escape) reaches another's runs. Tenants share the workers fairly
(:mod:`sandbox.fairness`): at most ``max_workers`` processes, no tenant above ``size`` or its
share while others wait, limit-breakers throttled. Each run is in its own worker process; at most
``queue_size`` callers wait for a worker, and the next caller gets :class:`Overloaded` at once;
every run ends within its wall-clock limit (the worker is killed if it must be, and replaced); a
worker that crashed or was killed never serves another run; workers are recycled after
``max_runs`` runs or when their peak memory passes ``max_rss_bytes``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, Final

from sandbox.blobs import DEFAULT_FILE_BUDGET, FileBudget
from sandbox.capability import Capabilities
from sandbox.compiler import Script, ScriptCache
from sandbox.conversation import (
    DEFAULT_FILE_BYTES,
    Conversation,
    RunFiles,
    check_globals,
    module_entry,
)
from sandbox.errors import Overloaded, PoolClosed, WorkerStartError
from sandbox.fairness import FairShare
from sandbox.forkserver import ForkServer
from sandbox.jsontypes import JSON
from sandbox.limits import MIB, Limits
from sandbox.modules import check_module_names
from sandbox.process import WorkerProcess, log_isolation
from sandbox.result import RunResult, Status

logger = logging.getLogger(__name__)

HEAVY_LIMITS: Final = frozenset({"cpu_seconds", "wall_seconds", "memory_bytes"})
HANDLER_LOG_PERIOD: Final = 60.0
IDLE_CHECK: Final = 1.0
"""Seconds between two reads of every idle worker's CPU time."""
IDLE_CPU_SLACK: Final = 0.1
"""CPU seconds an idle worker may use between two checks (a finalizer, the interpreter)."""
DEMOTE_AFTER: Final = 0.05
"""Seconds after which a run still going moves to the background (``SCHED_IDLE``): it then
uses only CPU that no short run wants, and a click of any bot preempts it at once."""


class WorkerPool:
    """Keeps warm workers and runs scripts on them: ``await pool.run(script, tenant="bot")``."""

    def __init__(
        self,
        size: int | None = None,
        *,
        limits: Limits | None = None,
        queue_size: int | None = None,
        max_workers: int | None = None,
        tenant_queue_size: int | None = None,
        max_runs: int = 10_000,
        max_rss_bytes: int = 384 * MIB,
        max_memory_bytes: int = 1024 * MIB,
        start_timeout: float = 30.0,
        cache: ScriptCache | None = None,
        debug: bool = False,
        test_hooks: bool = False,
        file_budget_bytes: int = DEFAULT_FILE_BUDGET,
    ) -> None:
        self.size = size or os.cpu_count() or 2
        self.file_budget = FileBudget(file_budget_bytes)
        """Bytes of files all runs may hold in the host at once (uploads and downloads)."""
        self.max_workers = max(self.size, max_workers or self.size * 2)
        self.limits = limits or Limits()
        self.queue_size = self.size * 64 if queue_size is None else queue_size
        self.tenant_queue_size = (
            max(1, self.queue_size // 2) if tenant_queue_size is None else tenant_queue_size
        )
        self.max_runs = max_runs
        self.max_rss_bytes = max_rss_bytes
        self.max_memory_bytes = max_memory_bytes
        self.start_timeout = start_timeout
        self.cache = cache or ScriptCache()
        self.debug = debug
        self.test_hooks = test_hooks
        self.isolation: dict[str, str] = {}
        self.share: FairShare[WorkerProcess] = FairShare(
            size=self.size, max_workers=self.max_workers
        )
        self._server: ForkServer | None = None
        self._server_lock = asyncio.Lock()
        self._idle: dict[str | None, list[WorkerProcess]] = {}
        self._workers: set[WorkerProcess] = set()
        self._starting = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._running = 0
        self._switches = 0
        self._restarts = 0
        self._started = False
        self._closed = False
        self._drained = asyncio.Event()
        self._limit_tables: dict[Limits, dict[str, float | int]] = {}
        self._handler_failures: dict[str, tuple[float, int]] = {}
        self._busy: set[WorkerProcess] = set()
        self._sweeper: asyncio.Future[None] | None = None
        self._uids: set[int] = set()  # worker user ids in use, across fork servers

    async def __aenter__(self) -> WorkerPool:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Start the fork server and ``size`` fresh workers; raise :class:`WorkerStartError`."""
        if self._started:
            return
        self._started = True
        try:
            workers = await asyncio.gather(*(self._fork() for _ in range(self.size)))
        except WorkerStartError:
            await self.close()
            raise
        for worker in workers:
            self._idle.setdefault(None, []).append(worker)
        self.isolation = dict(workers[0].isolation)
        log_isolation(self.isolation)
        self._sweeper = asyncio.ensure_future(self._sweep())

    async def close(self, timeout: float = 5.0) -> None:
        """Stop taking runs, let running ones finish (up to ``timeout``), stop every worker."""
        self._closed = True
        for line in self.share.lines.values():
            for future in line:
                if not future.done():
                    future.set_exception(PoolClosed("the worker pool was closed"))
        if self._running:
            self._drained.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._drained.wait()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(
            *(w.stop(timeout) for w in list(self._workers)), return_exceptions=True
        )
        self._workers.clear()
        self._idle.clear()
        if self._server is not None:
            await self._server.close(timeout)

    @property
    def stats(self) -> dict[str, int]:
        """Counts for monitoring: workers, idle, running, waiting, tenants, forks, switches,
        restarts (workers lost in a run: killed by the host or crashed, then replaced)."""
        return {
            "workers": len(self._workers),
            "idle": sum(len(idle) for idle in self._idle.values()),
            "running": self._running,
            "waiting": self.share.waiting(),
            "tenants": len({w.tenant for w in self._workers if w.tenant is not None}),
            "forks": self._server.forks if self._server is not None else 0,
            "switches": self._switches,
            "restarts": self._restarts,
        }

    def compile(self, source: str, *, filename: str = "<script>", first_line: int = 1) -> Script:
        """Compile through the pool's cache (see :func:`sandbox.compiler.compile_script`)."""
        return self.cache.compile(source, filename=filename, first_line=first_line)

    async def run(
        self,
        script: Script | str,
        *,
        tenant: str | None = None,
        globals: Mapping[str, JSON] | None = None,
        capabilities: Capabilities | None = None,
        exceptions: Iterable[str] = (),
        limits: Limits | None = None,
        deferred: Mapping[str, bool] | None = None,
        modules: Mapping[str, Script] | None = None,
        module_globals: Iterable[str] = (),
        bind: Mapping[str, str] | None = None,
        escape: str | None = None,
        file_bytes: int = DEFAULT_FILE_BYTES,
    ) -> RunResult:
        """Run one script in a worker of ``tenant`` and return how it went.

        ``tenant`` names whose code this is (a bot): a worker serves one tenant for its whole
        life, and workers are shared fairly between tenants (:mod:`sandbox.fairness`).
        ``globals`` are JSON values the script sees as global names; ``capabilities`` are the
        host functions it may call; ``exceptions`` names capability error kinds to expose as
        global exception classes (for ``except ApiError:``). Raises :class:`Overloaded` when the
        queue (or this tenant's part of it) is full and :class:`PoolClosed` after :meth:`close`.

        ``deferred`` names capabilities that answer nothing the script needs (``res.set``):
        the worker records their calls and returns ``None`` at once, without a round trip, and
        the host runs their handlers, in order, once the script ended well. A name mapped to
        True also ends the script (``res.json``). A deferred handler's CapabilityError fails
        the run, naming the script line that made the call.

        ``modules`` are this run's *script modules*: name (``lib.quiz``) to compiled script.
        The script imports them (``import lib.quiz``, ``from lib import quiz``) under the same
        policy; each module's body runs at its first import in a run, fresh for every run, and
        may not call capabilities (see :class:`sandbox.worker.ScriptModules`). A module sees the
        capabilities, the exception classes, the globals named in ``module_globals`` and the
        ``bind`` globals: each binds a global name to a module, imported on first use.
        Modules whose filename starts with ``<`` stay out of tracebacks (the platform's own).

        ``file_bytes`` caps the File content the run may send to the host through the file
        channel (``CallRequest.files``), all calls together; the pool's ``file_budget_bytes``
        caps the bytes of files all runs hold at once.

        ``escape`` is for tests of the second wall only: unrestricted code the worker runs
        before the script, as if the script had escaped the policy (pools made with
        ``test_hooks=True``).
        """
        if self._closed or not self._started:
            raise PoolClosed("the worker pool is not running")
        if isinstance(script, str):
            script = self.compile(script)
        if not script.ok:
            return RunResult(Status.COMPILE_ERROR, error=script.failure())
        limits = limits or self.limits
        names = check_globals(globals or {}, capabilities or {})
        module_table = dict(modules or {})
        check_module_names(module_table)
        bound = dict(bind or {})
        for name, module in bound.items():
            if not name.isidentifier() or name.startswith("_") or module not in module_table:
                raise ValueError(f"bind {name!r}: an identifier naming one of the modules")
        request: dict[str, Any] = {
            "key": script.key,
            "code": None,
            "filename": script.filename,
            "limits": self._limit_table(limits),
            "capabilities": names,
            "exceptions": list(exceptions),
            "globals": dict(globals or {}),
            "deferred": dict(deferred or {}),
            "lock_memory": tenant is not None,
        }
        if module_table:
            request["modules"] = {
                name: module_entry(module) for name, module in module_table.items()
            }
            request["module_globals"] = [str(name) for name in module_globals]
            request["bind"] = bound
        if escape is not None and self.test_hooks:
            request["escape"] = escape
        owner = tenant or ""
        worker = await self._acquire(owner)
        if worker.memory_cap is None:
            worker.memory_cap = limits.memory_bytes
        elif limits.memory_bytes > worker.memory_cap:
            worker.retiring_after_run = True  # its hard cap is lower: a fresh one next time
        self._running += 1
        result: RunResult | None = None
        worker.set_background(self.share.is_hot(owner))
        worker.run_started = time.monotonic()
        self._busy.add(worker)
        try:
            result = await Conversation(
                worker,
                script,
                request,
                capabilities or {},
                limits,
                self._log_handler_failure,
                module_table,
                RunFiles(worker, file_bytes, self.file_budget),
            ).run()
            return result
        except asyncio.CancelledError:
            # The caller gave up mid-run (a client hung up). The worker may still be inside
            # the script or waiting for a capability's answer: it must never serve another
            # run in that state, so it is killed and replaced.
            worker.kill()
            raise
        finally:
            self._busy.discard(worker)
            self._running -= 1
            self.share.record(owner, breached=result is not None and _breached(result))
            self._release(owner, worker)
            if self._closed and not self._running:
                self._drained.set()

    async def _sweep(self) -> None:
        """Watch the workers, twenty times a second, for as long as the pool runs.

        Runs still going after DEMOTE_AFTER move to the background: heavy runs yield the CPU to
        short ones (of any tenant), as in a multi-level feedback queue (one task, cheaper than
        a timer per run). Once a second, every idle worker's CPU time is read: a worker that
        used CPU while it had no run is running code of its own (a script that escaped the
        policy) and is killed.
        """
        next_idle_check = 0.0
        while not self._closed:
            await asyncio.sleep(DEMOTE_AFTER / 2)
            now = time.monotonic()
            due = now - DEMOTE_AFTER
            for worker in list(self._busy):
                if worker.run_started <= due:
                    worker.set_background(True)
            if now >= next_idle_check:
                next_idle_check = now + IDLE_CHECK
                self._check_idle_cpu()

    def _check_idle_cpu(self) -> None:
        for idle in list(self._idle.values()):
            for worker in list(idle):
                used = worker.cpu_seconds()
                if worker.idle_cpu is None:
                    worker.idle_cpu = used
                elif used - worker.idle_cpu > IDLE_CPU_SLACK:
                    logger.warning(
                        "worker %s of %s used %.2f s of CPU while idle: killed",
                        worker.pid,
                        worker.tenant or "no tenant",
                        used - worker.idle_cpu,
                    )
                    idle.remove(worker)
                    worker.kill()

    def _limit_table(self, limits: Limits) -> dict[str, float | int]:
        table = self._limit_tables.get(limits)
        if table is None:
            table = self._limit_tables[limits] = limits.as_dict()
        return table

    # --- handing out workers --------------------------------------------------------------

    async def _acquire(self, tenant: str) -> WorkerProcess:
        """A worker that has only ever served ``tenant`` (or nobody), waiting fairly if need be."""
        if (
            not self.share.waiting(tenant)
            and self.share.under_cap(tenant)
            and self._can_serve(tenant)
        ):
            self.share.started(tenant)
            worker = self._take_idle(tenant)
            if worker is not None:
                return worker
            try:
                return await self._take(tenant)
            except BaseException:
                self.share.finished(tenant)
                self._dispatch()
                raise
        if self.share.waiting() >= self.queue_size or (
            self.share.waiting(tenant) >= self.tenant_queue_size
        ):
            raise Overloaded(
                f"all workers this bot may use are busy and {self.share.waiting()} runs are "
                "waiting",
                retry_after=1.0,
            )
        future: asyncio.Future[WorkerProcess] = asyncio.get_running_loop().create_future()
        self.share.wait(tenant, future)
        try:
            return await future
        except asyncio.CancelledError:
            self.share.leave(tenant, future)
            if future.done() and not future.cancelled() and future.exception() is None:
                self._release(tenant, future.result())  # handed over just as we gave up
            raise

    def _can_serve(self, tenant: str) -> bool:
        """True if a worker for ``tenant`` is idle or one may be forked (or swapped) now."""
        if self._idle.get(tenant) or self._idle.get(None):
            return True
        if len(self._workers) + self._starting < self.max_workers:
            return True
        return any(idle for owner, idle in self._idle.items() if owner not in (None, tenant))

    def _take_idle(self, tenant: str) -> WorkerProcess | None:
        """``tenant``'s own idle worker, else a fresh one bound to it now, else ``None``."""
        own = self._idle.get(tenant)
        while own:
            worker = own.pop()
            if worker.alive:
                worker.idle_cpu = None
                return worker
        fresh = self._idle.get(None)
        while fresh:
            worker = fresh.pop()
            if worker.alive:
                worker.idle_cpu = None
                worker.tenant = tenant
                self._top_up()
                return worker
        return None

    async def _take(self, tenant: str) -> WorkerProcess:
        """Hand ``tenant`` its own idle worker, a fresh one, or a newly forked one."""
        worker = self._take_idle(tenant)
        if worker is not None:
            return worker
        if len(self._workers) + self._starting >= self.max_workers:
            self._retire_oldest_idle(tenant)
        self._switches += 1
        worker = await self._fork()
        worker.tenant = tenant
        return worker

    def _release(self, tenant: str, worker: WorkerProcess) -> None:
        self.share.finished(tenant)
        if worker.alive and not worker.killed_by_host:
            if (
                worker.runs >= self.max_runs
                or worker.maxrss_kib * 1024 > self.max_rss_bytes
                or worker.retiring_after_run
            ):
                logger.info(
                    "recycling worker %s after %s runs (peak rss %s KiB)",
                    worker.pid,
                    worker.runs,
                    worker.maxrss_kib,
                )
                self._retire(worker)
            else:
                worker.idle_since = time.monotonic()
                self._idle.setdefault(tenant, []).append(worker)
        else:  # killed by the host (a limit, a hung-up caller) or crashed: replaced by a fork
            self._restarts += 1
        self._dispatch()

    def _dispatch(self) -> None:
        """Serve waiting runs, round robin between tenants, while workers allow."""
        if self._closed:
            return
        while True:
            chosen = self.share.next(self._can_serve)
            if chosen is None:
                return
            tenant, future = chosen
            self.share.started(tenant)
            worker = self._take_idle(tenant)
            if worker is None:
                self._spawn(self._hand_over(tenant, future))  # a fork: not here, in a task
            else:
                future.set_result(worker)

    async def _hand_over(self, tenant: str, future: asyncio.Future[WorkerProcess]) -> None:
        try:
            worker = await self._take(tenant)
        except BaseException as exc:
            self.share.finished(tenant)
            if not future.done():
                future.set_exception(exc)
            self._dispatch()
            if not isinstance(exc, Exception):
                raise
            return
        if future.done():  # the waiter gave up meanwhile
            self._release(tenant, worker)
        else:
            future.set_result(worker)

    def _retire_oldest_idle(self, tenant: str) -> None:
        """Stop the longest-idle worker of another tenant to make room for a fresh one."""
        candidates = [
            worker
            for owner, idle in self._idle.items()
            if owner not in (None, tenant)
            for worker in idle
        ]
        if candidates:
            self._retire(min(candidates, key=lambda w: w.idle_since))

    def _retire(self, worker: WorkerProcess) -> None:
        idle = self._idle.get(worker.tenant)
        if idle is not None and worker in idle:
            idle.remove(worker)
        self._workers.discard(worker)
        self._spawn(worker.stop(1.0))

    def _top_up(self) -> None:
        """Keep one fresh worker ready while there is room, so a new tenant need not wait."""
        if (
            not self._closed
            and not self._idle.get(None)
            and len(self._workers) + self._starting < self.max_workers
        ):
            self._spawn(self._fork_fresh())

    async def _fork_fresh(self) -> None:
        try:
            worker = await self._fork()
        except WorkerStartError:
            logger.exception("cannot fork a fresh worker")
            return
        self._idle.setdefault(None, []).append(worker)
        self._dispatch()

    async def _fork(self) -> WorkerProcess:
        """Fork a worker from the fork server (starting a new server if it died)."""
        self._starting += 1
        try:
            server = await self._fork_server()
            worker = await server.fork(timeout=self.start_timeout)
        finally:
            self._starting -= 1
        worker.idle_since = time.monotonic()
        self._workers.add(worker)
        self._spawn(self._watch(worker))
        return worker

    async def _fork_server(self) -> ForkServer:
        async with self._server_lock:
            server = self._server
            if server is None or not server.alive:
                if server is not None:
                    logger.warning("the fork server died; starting a new one")
                    await server.close(1.0)
                server = self._server = await ForkServer.start(
                    max_memory=self.max_memory_bytes,
                    timeout=self.start_timeout,
                    debug=self.debug,
                    test_hooks=self.test_hooks,
                    uids=self._uids,
                )
            return server

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch(self, worker: WorkerProcess) -> None:
        await worker.wait()
        self._workers.discard(worker)
        idle = self._idle.get(worker.tenant)
        if idle is not None and worker in idle:
            idle.remove(worker)
        if not self._closed:
            self._top_up()
            self._dispatch()

    def _log_handler_failure(self, name: str, exc: Exception) -> None:
        """Log a capability handler's bug with its traceback, at most once a minute per name
        (a script can call a failing capability at will; the run log has every failure)."""
        now = time.monotonic()
        last, suppressed = self._handler_failures.get(name, (-HANDLER_LOG_PERIOD, 0))
        if now - last < HANDLER_LOG_PERIOD:
            self._handler_failures[name] = (last, suppressed + 1)
            return
        self._handler_failures[name] = (now, 0)
        note = f" ({suppressed} more since the last line)" if suppressed else ""
        logger.error("capability %s failed inside the host%s", name, note, exc_info=exc)


def _breached(result: RunResult) -> bool:
    """True for runs that cost the pool a lot: a CPU, wall or memory breach, or a crash."""
    if result.status is Status.CRASHED:
        return True
    return result.breach is not None and result.breach.limit in HEAVY_LIMITS
