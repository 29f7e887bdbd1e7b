"""Benchmark of the sandbox: what a script run costs, measured against plain Python in one run.

Run it from the project root: ``.venv/bin/python bench/sandbox.py`` (``--quick`` for a smoke run
of a few seconds with far fewer iterations; its figures are noisy).

What is measured, in order:

1. Round trip of the trivial script ``x = 1`` through a real :class:`sandbox.WorkerPool` of 2
   (the script is compiled once; the worker caches its code): sequential latency from one
   client (p50/p90/p99 in µs, runs/s), then throughput with 8 concurrent asyncio clients
   (latency there includes queueing). Both twice: with the pool's defaults, which recycle a
   worker after 10,000 runs (a new interpreter, ~0.1 s of CPU, competing with the runs), and
   with recycling off (``max_runs`` huge), the steady state. Sections 3 and 4 use the latter.
2. The baseline: the same script as a plain ``compile()``d code object run by in-process
   ``exec`` with fresh globals, and the ratio pool p50 / exec p50. Also, for orientation, the
   worker's per-run Python work done in-process: build the run globals the way
   ``sandbox/worker.py`` does, then ``exec`` the policy-compiled code.
3. A loop-heavy script representative of real scripts (a small class with methods, function
   calls, dict updates, list appends, f-strings, ``math`` through its facade, nested loops):
   policy-compiled (:func:`sandbox.compile_script`) and run in-process with the globals a worker
   builds, versus plain ``compile()`` and ``exec`` with normal builtins. Median of several
   repetitions each, and their ratio: the cost of the RestrictedPython guards alone, without
   IPC. The same script through the pool is shown for information.
4. A capability round trip: a script making 50 calls to an async ``"Api.*"`` handler that
   returns its arguments; µs per call = (p50 of that run - p50 of the trivial run) / 50.
5. Cold start: time for ``WorkerPool(2).start()``. Then, on a pool of 1, a ``while True: pass``
   script with ``Limits(cpu_seconds=0.2, wall_seconds=1)`` and the time until a trivial run
   succeeds: the worker's CPU timer stops that script inside the worker, which survives. To time
   a real replacement, a script stuck in C code (``sum(range(10**12))``, which no signal handler
   interrupts) runs with the same limits: the kernel kills the worker (``RLIMIT_CPU``) or the
   host does (wall clock), and the time from that run's result until a trivial run succeeds
   again is the replacement time (a worker forked by the fork server).
6. One worker per tenant: trivial runs of one tenant on its own warm worker, against runs that
   find their worker taken (four tenants, a pool of at most two workers: every run retires
   another tenant's worker and forks a fresh one), and ``ForkServer.fork()`` alone.
7. Noisy neighbour: a quiet tenant's trivial runs (one every 5 ms) alone, then while 8 clients
   of another tenant keep running ``while True: pass`` into a 1 s CPU limit; the goal is the
   quiet p99 beside the spinner under 3x its p99 alone. The baseline is the old behaviour, one
   shared line without tenants (the quiet run waits behind the spinners).
8. Outbound HTTP: ``GET /json`` on a local server (another process, on 127.0.0.2), measured in
   the same run as (a) a direct httpx request with a kept-alive connection, (b) a direct httpx
   request on a new connection each time (what the broker does), (c) the broker alone
   (``runtime.outbound.broker``: URL and address checks, a new connection, the size-capped
   read), and (d) a script's ``r = HTTP.get(url); r.json()`` through the pool (the handler is
   the broker; the trivial run's p50 is subtracted). ``--http-only`` runs this section alone.
9. Script modules (a bot's ``lib/``): trivial runs given one module but not importing it, runs
   importing it (``from lib import quiz``: a constant and three small functions, its body run
   fresh each run), and runs importing it and using the ``Keyboard`` helpers bound as a global
   (``runtime.bots.keyboard``, also a module run on first use); p50 difference against the
   trivial run, the cost of a fresh module per run.

How to read it: the goals table at the end marks each goal PASS or MISS. Latencies are wall
clock (``time.perf_counter_ns``) seen by the asyncio client, so they include the event loop,
the socket, both processes' scheduling and the worker's per-run set-up. On a machine with few
cores the host and 2 workers compete for CPU; the machine facts are printed first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import marshal
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import CodeType
from typing import Any

# Run as ``python bench/sandbox.py``, this file's folder comes first on sys.path and its own
# name would shadow the ``sandbox`` package: put the project root there instead.
ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from sandbox import (  # noqa: E402
    JSON,
    CallRequest,
    Limits,
    Overloaded,
    RunResult,
    Script,
    Status,
    WorkerPool,
    compile_script,
)
from sandbox.guards import RunState, base_builtins  # noqa: E402
from sandbox.modules import ModuleFacade, load_facades  # noqa: E402
from sandbox.worker import script_globals  # noqa: E402

TRIVIAL = "x = 1"
SPIN = "while True:\n    pass\n"
STUCK_IN_C = "total = sum(range(10 ** 12))\n"
CAPABILITY_CALLS = 50
CAPABILITY_SCRIPT = f"for i in range({CAPABILITY_CALLS}):\n    Api.echo(i, 'x', flag=True)\n"
LOOP_ROUNDS = 60
LOOP_HEAVY = f"""\
import math


class Item:
    def __init__(self, name, price, qty):
        self.name = name
        self.price = price
        self.qty = qty

    def total(self):
        return self.price * self.qty


def classify(value):
    if value > 500:
        return "high"
    if value > 100:
        return "mid"
    return "low"


items = []
for i in range(2000):
    items.append(Item(f"item{{i % 97}}", (i * 37) % 1000 / 10, i % 13 + 1))

totals = {{}}
counts = {{}}
lines = []
grand = 0.0
for rnd in range({LOOP_ROUNDS}):
    for item in items:
        value = item.total()
        band = classify(value)
        totals[band] = totals.get(band, 0.0) + value
        counts[item.name] = counts.get(item.name, 0) + 1
        grand += math.sqrt(value)
        if item.qty == 13:
            lines.append(f"{{item.name}}: {{value:.2f}} ({{band}})")

matrix = [[(r * c) % 7 for c in range(60)] for r in range(60)]
trace = 0
for r in range(60):
    for c in range(60):
        if r == c:
            trace += matrix[r][c]
report = "\\n".join(lines[:50])
words = sorted(set(report.split()))
summary = {{"grand": round(grand, 2), "bands": totals, "names": len(counts), "trace": trace}}
"""

GOAL_ROUND_TRIP_US = 200.0
GOAL_LOOP_RATIO = 2.0
GOAL_NOISY_RATIO = 3.0
NOISY_CLIENTS = 8
QUIET_PAUSE = 0.005
SPIN_LIMITS = Limits(cpu_seconds=1.0, wall_seconds=2.0)
LOOP_LIMITS = Limits(cpu_seconds=5.0, wall_seconds=20.0)
KILL_LIMITS = Limits(cpu_seconds=0.2, wall_seconds=1.0)
STEADY_MAX_RUNS = 10**9
SURVIVED_MS = 20.0


@dataclass(frozen=True, slots=True)
class Config:
    """Iteration counts; ``--quick`` shrinks them for a smoke run."""

    warmup: int
    sequential: int
    concurrent_runs: int
    clients: int
    exec_runs: int
    loop_reps: int
    capability_runs: int
    cold_starts: int
    kills: int
    switches: int
    noisy_seconds: float
    min_quiet_clicks: int
    http_runs: int = 300


FULL = Config(
    warmup=500,
    sequential=5000,
    concurrent_runs=10000,
    clients=8,
    exec_runs=20000,
    loop_reps=7,
    capability_runs=300,
    cold_starts=5,
    kills=3,
    switches=300,
    noisy_seconds=8.0,
    min_quiet_clicks=6,
)
QUICK = Config(
    warmup=100,
    sequential=500,
    concurrent_runs=1000,
    clients=8,
    exec_runs=2000,
    loop_reps=3,
    capability_runs=30,
    cold_starts=1,
    kills=1,
    switches=40,
    noisy_seconds=3.0,
    min_quiet_clicks=2,
    http_runs=50,
)


@dataclass(frozen=True, slots=True)
class Latency:
    """Summary of a sample of durations, in microseconds."""

    count: int
    p50: float
    p90: float
    p99: float
    mean: float

    @classmethod
    def of(cls, durations_ns: list[int]) -> Latency:
        """Summarise durations given in nanoseconds."""
        cuts = statistics.quantiles(durations_ns, n=100, method="inclusive")
        return cls(
            count=len(durations_ns),
            p50=statistics.median(durations_ns) / 1000,
            p90=cuts[89] / 1000,
            p99=cuts[98] / 1000,
            mean=statistics.fmean(durations_ns) / 1000,
        )

    def line(self) -> str:
        """Return ``p50 / p90 / p99`` as text."""
        return f"p50 {self.p50:8.1f} µs   p90 {self.p90:8.1f} µs   p99 {self.p99:8.1f} µs"


def heading(title: str) -> None:
    """Print a section heading."""
    print(f"\n== {title}")


def row(label: str, value: str) -> None:
    """Print one labelled figure."""
    print(f"  {label:<46} {value}")


def describe(result: RunResult) -> str:
    """Return ``status (limit or error)`` for a run that did not succeed."""
    if result.breach is not None:
        return f"{result.status.value} ({result.breach.limit})"
    if result.error is not None:
        return f"{result.status.value} ({result.error.message})"
    return result.status.value


class RecycleCounter(logging.Handler):
    """Counts the pool's "recycling worker" log records (a worker replaced after max_runs)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        """Count one record if it announces a recycling."""
        if record.getMessage().startswith("recycling worker"):
            self.count += 1

    @classmethod
    def install(cls) -> RecycleCounter:
        """Attach a counter to the ``sandbox.pool`` logger (INFO records reach only it)."""
        counter = cls()
        logger = logging.getLogger("sandbox.pool")
        logger.setLevel(logging.INFO)
        logger.addHandler(counter)
        return counter


def expect_ok(result: RunResult, what: str) -> None:
    """Fail loudly if a run that should succeed did not."""
    if result.status is not Status.OK:
        raise RuntimeError(f"{what} did not run: {result}")


def compiled(source: str) -> Script:
    """Compile under the policy, failing loudly on any issue."""
    script = compile_script(source)
    if not script.ok:
        raise RuntimeError(f"benchmark script does not compile: {script.issues}")
    return script


# --- in-process execution, as a worker would do it -------------------------------------------


class WorkerGlobals:
    """Builds run globals the way ``sandbox.worker.Worker._globals`` does (no capabilities)."""

    def __init__(self) -> None:
        self.facades: dict[str, ModuleFacade] = load_facades()
        self.builtins: dict[str, Any] = base_builtins()

    def build(self) -> dict[str, Any]:
        """Return fresh globals for one run: guards bound to a new ``RunState``."""
        state = RunState(output_limit=Limits().output_bytes)
        return script_globals(state, self.builtins, self.facades)


def time_exec(code: CodeType, make_globals: Callable[[], dict[str, Any]], runs: int) -> list[int]:
    """Time ``exec(code, make_globals())`` ``runs`` times (globals built inside the timing)."""
    durations: list[int] = []
    clock = time.perf_counter_ns
    for _ in range(runs):
        started = clock()
        exec(code, make_globals())
        durations.append(clock() - started)
    return durations


def median_exec_ms(code: CodeType, make_globals: Callable[[], dict[str, Any]], reps: int) -> float:
    """Median time of ``exec`` in ms over ``reps`` repetitions (globals built outside)."""
    durations: list[int] = []
    for _ in range(reps):
        run_globals = make_globals()
        started = time.perf_counter_ns()
        exec(code, run_globals)
        durations.append(time.perf_counter_ns() - started)
    return statistics.median(durations) / 1e6


# --- pool measurements -------------------------------------------------------------------------


async def sequential(pool: WorkerPool, script: Script, runs: int, **options: Any) -> list[int]:
    """Run ``script`` ``runs`` times one after another; return each round trip in ns."""
    durations: list[int] = []
    clock = time.perf_counter_ns
    for _ in range(runs):
        started = clock()
        result = await pool.run(script, **options)
        durations.append(clock() - started)
        expect_ok(result, "benchmark script")
    return durations


async def concurrent(
    pool: WorkerPool, script: Script, runs: int, clients: int
) -> tuple[list[int], float]:
    """Run ``script`` ``runs`` times from ``clients`` concurrent tasks; return latencies, secs."""
    durations: list[int] = []
    remaining = runs
    clock = time.perf_counter_ns

    async def client() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = clock()
            result = await pool.run(script)
            durations.append(clock() - started)
            expect_ok(result, "trivial script")

    started = clock()
    await asyncio.gather(*(client() for _ in range(clients)))
    return durations, (clock() - started) / 1e9


async def echo(request: CallRequest) -> JSON:
    """The trivial capability: return the call's arguments."""
    return {"args": list(request.args), "kwargs": request.kwargs}


async def cold_starts(count: int, size: int) -> list[float]:
    """Start and close a pool ``count`` times; return each start time in ms."""
    times: list[float] = []
    for _ in range(count):
        pool = WorkerPool(size)
        started = time.perf_counter_ns()
        await pool.start()
        times.append((time.perf_counter_ns() - started) / 1e6)
        await pool.close()
    return times


async def limit_then_trivial(pool: WorkerPool, source: str) -> tuple[RunResult, float, float]:
    """Run ``source`` under ``KILL_LIMITS``; return its result, its ms, and ms to a trivial run."""
    started = time.perf_counter_ns()
    result = await pool.run(source, limits=KILL_LIMITS)
    ended = time.perf_counter_ns()
    expect_ok(await pool.run(TRIVIAL), "trivial script after a limit breach")
    recovered = time.perf_counter_ns()
    return result, (ended - started) / 1e6, (recovered - ended) / 1e6


# --- the benchmark -----------------------------------------------------------------------------


def machine_facts() -> None:
    """Print what the figures were measured on."""
    heading("machine")
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    row("cpu count (os / usable)", f"{os.cpu_count()} / {affinity}")
    row("python", f"{platform.python_implementation()} {platform.python_version()}")
    row("platform", platform.platform())


async def section_round_trip(config: Config, trivial: Script, figures: dict[str, float]) -> None:
    """Section 1: the trivial script through a default pool and a pool that never recycles."""
    heading(f"1. trivial script {TRIVIAL!r} through WorkerPool (pool size 2)")
    recycles = RecycleCounter.install()
    async with WorkerPool(2) as pool:
        row("isolation", ", ".join(f"{k}={v}" for k, v in pool.isolation.items()))
        await sequential(pool, trivial, config.warmup)
        recycles.count = 0
        seq = Latency.of(await sequential(pool, trivial, config.sequential))
        figures["round_trip_p50"] = seq.p50
        row(f"(a) 1 client, {seq.count} runs, default pool", seq.line())
        row(
            "    throughput; workers recycled meanwhile",
            f"{1e6 / seq.mean:8.0f} runs/s; {recycles.count} (max_runs=10,000 by default)",
        )
        recycles.count = 0
        latencies, seconds = await concurrent(pool, trivial, config.concurrent_runs, config.clients)
        par = Latency.of(latencies)
        row(f"(b) {config.clients} clients, {par.count} runs, default pool", par.line())
        row(
            "    throughput; workers recycled meanwhile",
            f"{par.count / seconds:8.0f} runs/s; {recycles.count}",
        )
    async with WorkerPool(2, max_runs=STEADY_MAX_RUNS) as steady:
        await sequential(steady, trivial, config.warmup)
        seq = Latency.of(await sequential(steady, trivial, config.sequential))
        figures["steady_p50"] = seq.p50
        row(f"(a') 1 client, {seq.count} runs, never recycled", seq.line())
        row("    throughput", f"{1e6 / seq.mean:8.0f} runs/s")
        latencies, seconds = await concurrent(
            steady, trivial, config.concurrent_runs, config.clients
        )
        par = Latency.of(latencies)
        row(f"(b') {config.clients} clients, {par.count} runs, never recycled", par.line())
        row("    throughput", f"{par.count / seconds:8.0f} runs/s")


def section_baseline(config: Config, trivial: Script, figures: dict[str, float]) -> None:
    """Section 2: the trivial script by in-process ``exec``."""
    heading("2. baseline: same script by in-process exec")
    plain = Latency.of(time_exec(compile(TRIVIAL, "<plain>", "exec"), dict, config.exec_runs))
    row("plain compile() + exec, fresh globals", f"p50 {plain.p50:8.2f} µs")
    row(
        "ratio pool p50 / exec p50 (default pool)",
        f"{figures['round_trip_p50'] / plain.p50:8.0f} x",
    )
    row("ratio pool p50 / exec p50 (never recycled)", f"{figures['steady_p50'] / plain.p50:8.0f} x")
    code = marshal.loads(trivial.code or b"")
    policy = Latency.of(time_exec(code, WorkerGlobals().build, config.exec_runs))
    row("worker-style globals build + policy exec", f"p50 {policy.p50:8.2f} µs")


async def section_loop(config: Config, pool: WorkerPool, figures: dict[str, float]) -> None:
    """Section 3: the loop-heavy script under the policy versus plain ``exec``."""
    heading(f"3. loop-heavy script, median of {config.loop_reps} repetitions")
    script = compiled(LOOP_HEAVY)
    plain_code = compile(LOOP_HEAVY, "<plain>", "exec")
    plain_ms = median_exec_ms(plain_code, lambda: {"__name__": "script"}, config.loop_reps)
    policy_code = marshal.loads(script.code or b"")
    policy_ms = median_exec_ms(policy_code, WorkerGlobals().build, config.loop_reps)
    figures["loop_ratio"] = policy_ms / plain_ms
    row("plain compile() + exec", f"{plain_ms:8.1f} ms")
    row("policy compile + worker globals, in-process", f"{policy_ms:8.1f} ms")
    row("ratio policy / plain", f"{policy_ms / plain_ms:8.2f} x")
    pool_ms = statistics.median(
        await sequential(pool, script, config.loop_reps, limits=LOOP_LIMITS)
    )
    row(
        "through the pool (info, includes IPC)",
        f"{pool_ms / 1e6:8.1f} ms  ({pool_ms / 1e6 / plain_ms:.2f} x)",
    )


async def section_capability(config: Config, pool: WorkerPool, trivial: Script) -> None:
    """Section 4: cost of one capability call, from runs with and without 50 calls."""
    heading(f"4. capability round trip ({CAPABILITY_CALLS} calls to an 'Api.*' echo)")
    script = compiled(CAPABILITY_SCRIPT)
    options: dict[str, Any] = {"capabilities": {"Api.*": echo}}
    await sequential(pool, script, max(config.warmup // 10, 5), **options)
    base = Latency.of(await sequential(pool, trivial, config.capability_runs))
    calls = Latency.of(await sequential(pool, script, config.capability_runs, **options))
    row(f"run with {CAPABILITY_CALLS} calls", calls.line())
    row(
        f"per call ((p50 - trivial p50) / {CAPABILITY_CALLS})",
        f"{(calls.p50 - base.p50) / CAPABILITY_CALLS:8.1f} µs",
    )


LIB_QUIZ = """
PROMPT = "two plus two?"
ANSWERS = {"4": True}


def check(answer):
    return ANSWERS.get(answer, False)


def ask(name):
    return name + ", " + PROMPT


def score(answers):
    return sum(1 for answer in answers if check(answer))
"""
IMPORT_ONE = "from lib import quiz\nx = quiz.check('4')"
WITH_KEYBOARD = (
    "from lib import quiz\nx = Keyboard.inline([[('Yes', 'vote yes'), ('No', 'vote no')]])"
)


async def section_modules(config: Config) -> None:
    """Section 8: a run importing one script module (fresh per run) against a run importing none."""
    heading("9. script modules (a bot's lib/, fresh in every run)")
    from runtime.bots import keyboard  # noqa: PLC0415 - the runtime's helpers, as it binds them

    modules = {
        "lib.quiz": compile_script(LIB_QUIZ, filename="lib/quiz.py"),
        keyboard.MODULE: keyboard.script(),
    }
    options: dict[str, Any] = {"modules": modules, "bind": {keyboard.GLOBAL: keyboard.MODULE}}
    trivial = compiled(TRIVIAL)
    importing, with_keyboard = compiled(IMPORT_ONE), compiled(WITH_KEYBOARD)
    async with WorkerPool(2, max_runs=STEADY_MAX_RUNS) as pool:
        await sequential(pool, importing, max(config.warmup // 10, 5), **options)
        await sequential(pool, with_keyboard, max(config.warmup // 10, 5), **options)
        bare = Latency.of(await sequential(pool, trivial, config.capability_runs))
        given = Latency.of(await sequential(pool, trivial, config.capability_runs, **options))
        one = Latency.of(await sequential(pool, importing, config.capability_runs, **options))
        both = Latency.of(await sequential(pool, with_keyboard, config.capability_runs, **options))
    row("trivial run, no modules", bare.line())
    row("trivial run, modules given, none imported", given.line())
    row("run importing lib.quiz", one.line())
    row("run importing lib.quiz and using Keyboard", both.line())
    row("import of one module (p50 - trivial p50)", f"{one.p50 - bare.p50:8.1f} µs")
    row("lib.quiz + Keyboard (p50 - trivial p50)", f"{both.p50 - bare.p50:8.1f} µs")


async def section_start(config: Config) -> None:
    """Section 5: pool start, a CPU-limit breach, and the replacement of a killed worker."""
    heading("5. cold start and worker replacement")
    starts = await cold_starts(config.cold_starts, 2)
    row(f"WorkerPool(2).start(), {len(starts)}x", f"median {statistics.median(starts):6.0f} ms")
    async with WorkerPool(1) as single:
        expect_ok(await single.run(TRIVIAL), "trivial script")
        result, spin_ms, after_ms = await limit_then_trivial(single, SPIN)
        row("'while True: pass', pool of 1", f"{describe(result)} after {spin_ms:.0f} ms")
        fate = "so the worker survived" if after_ms < SURVIVED_MS else "a replacement worker"
        row("    then a trivial run", f"{after_ms:6.1f} ms later ({fate})")
        replacements: list[float] = []
        for _ in range(config.kills):
            result, stuck_ms, after_ms = await limit_then_trivial(single, STUCK_IN_C)
            replacements.append(after_ms)
    row(f"{STUCK_IN_C.strip()!r}, pool of 1", f"{describe(result)} after {stuck_ms:.0f} ms")
    row(
        f"    replacement: result -> trivial ok, {len(replacements)}x",
        f"median {statistics.median(replacements):6.0f} ms",
    )


async def section_switch(config: Config, figures: dict[str, float]) -> None:
    """Section 6: what a worker costs when the pool must switch it to another tenant."""
    heading("6. one worker per tenant: the cost of a switch")
    async with WorkerPool(2, max_workers=2, max_runs=STEADY_MAX_RUNS) as pool:
        trivial = compiled(TRIVIAL)
        for _ in range(config.warmup):
            expect_ok(await pool.run(trivial, tenant="a"), "warm-up")
        own = Latency.of(await sequential(pool, trivial, config.switches, tenant="a"))
        row("same tenant (its own warm worker)", own.line())
        clock = time.perf_counter_ns
        switched: list[int] = []
        tenants = ["t0", "t1", "t2", "t3"]  # four tenants, two workers: every run switches
        for i in range(config.switches):
            started = clock()
            expect_ok(await pool.run(trivial, tenant=tenants[i % 4]), "switch run")
            switched.append(clock() - started)
        switch = Latency.of(switched)
        row("a tenant whose worker was taken (fork + run)", switch.line())
        row("    switches (forks) counted by the pool", str(pool.stats["switches"]))
        server = pool._server  # the fork alone, without a run
        assert server is not None
        forks: list[int] = []
        for _ in range(min(config.switches, 50)):
            started = clock()
            worker = await server.fork()
            forks.append(clock() - started)
            await worker.stop(1.0)
        row("ForkServer.fork() alone (until the worker is ready)", Latency.of(forks).line())
    figures["switch_p50_ms"] = switch.p50 / 1000
    figures["fork_p50_ms"] = Latency.of(forks).p50 / 1000


async def quiet_clicks(
    pool: WorkerPool, seconds: float, tenant: str | None, at_least: int
) -> list[int]:
    """A quiet tenant's trivial runs, one every few ms for ``seconds`` (and at least
    ``at_least`` of them); their latencies."""
    trivial = compiled(TRIVIAL)
    durations: list[int] = []
    clock = time.perf_counter_ns
    until = time.monotonic() + seconds
    while time.monotonic() < until or len(durations) < at_least:
        started = clock()
        expect_ok(await pool.run(trivial, tenant=tenant), "quiet run")
        durations.append(clock() - started)
        await asyncio.sleep(QUIET_PAUSE)
    return durations


async def with_spinner(
    pool: WorkerPool, seconds: float, quiet: str | None, spinner: str | None, at_least: int
) -> list[int]:
    """Quiet clicks while ``NOISY_CLIENTS`` clients keep running a CPU spinner."""
    spin = compiled(SPIN)
    stop = asyncio.Event()

    async def spinner_client() -> None:
        while not stop.is_set():
            with contextlib.suppress(Overloaded):
                await pool.run(spin, tenant=spinner, limits=SPIN_LIMITS)

    clients = [asyncio.ensure_future(spinner_client()) for _ in range(NOISY_CLIENTS)]
    await asyncio.sleep(0.3)  # let the spinners take what they can first
    try:
        return await quiet_clicks(pool, seconds, quiet, at_least)
    finally:
        stop.set()
        await asyncio.gather(*clients)


async def section_noisy(config: Config, figures: dict[str, float]) -> None:
    """Section 7: a quiet tenant beside one whose every run spins into its CPU limit."""
    heading(f"7. noisy neighbour: {NOISY_CLIENTS} clients spinning into a 1 s CPU limit")
    seconds = config.noisy_seconds
    async with WorkerPool(2, max_runs=STEADY_MAX_RUNS) as pool:
        alone = Latency.of(await quiet_clicks(pool, seconds, "quiet", 2))
        row("quiet tenant alone", alone.line())
        noisy = Latency.of(await with_spinner(pool, seconds, "quiet", "spinner", 2))
        row("quiet tenant beside the spinner (tenants)", noisy.line())
    async with WorkerPool(2, max_runs=STEADY_MAX_RUNS) as shared:
        old = Latency.of(await with_spinner(shared, 0, None, None, config.min_quiet_clicks))
        row(f"baseline: one shared line, {old.count} clicks (before)", old.line())
    figures["quiet_p99_ms"] = alone.p99 / 1000
    figures["noisy_p99_ms"] = noisy.p99 / 1000
    figures["shared_p99_ms"] = old.p99 / 1000


ORIGIN = """
import sys
from tests.support.origin import Origin
server = Origin("127.0.0.2")
print(server.port, flush=True)
server.server.serve_forever()
"""


async def interleaved(calls: dict[str, Callable[[], Any]], runs: int) -> dict[str, Latency]:
    """Await each call in turn, ``runs`` rounds (after a few warm-up rounds), so load from
    elsewhere on the machine falls on all of them alike; return each one's latencies."""
    for _ in range(min(10, runs)):
        for call in calls.values():
            await call()
    durations: dict[str, list[int]] = {name: [] for name in calls}
    clock = time.perf_counter_ns
    for _ in range(runs):
        for name, call in calls.items():
            started = clock()
            await call()
            durations[name].append(clock() - started)
    return {name: Latency.of(values) for name, values in durations.items()}


async def section_http(config: Config, figures: dict[str, float]) -> None:
    """Section 8: HTTP.get to a local server against a direct httpx request, same run."""
    import httpx  # noqa: PLC0415 - only this section needs the runtime's HTTP stack

    from runtime.outbound.broker import Broker, Hop  # noqa: PLC0415
    from runtime.outbound.policy import HttpPolicy, parse_patterns  # noqa: PLC0415
    from runtime.outbound.request import OutboundRequest  # noqa: PLC0415
    from sandbox import Response  # noqa: PLC0415

    heading(f"8. outbound HTTP: GET /json on a local server, {config.http_runs} requests each")
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-c", ORIGIN, cwd=ROOT, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert server.stdout is not None
        port = int((await server.stdout.readline()).decode())
        url = f"http://127.0.0.2:{port}/json"
        policy = HttpPolicy(allow=parse_patterns(["127.0.0.2"]), ports=frozenset({port}))
        broker = Broker()

        async def http_get(call: CallRequest) -> Response:
            hops: list[Hop] = []
            request = OutboundRequest("GET", str(call.args[0]))
            answer = await broker.fetch(policy, request, hops=hops)
            return Response(answer.status, answer.headers, answer.text, answer.url)

        script = compiled(f"r = HTTP.get({url!r})\nr.json()\n")
        trivial = compiled(TRIVIAL)
        options: dict[str, Any] = {"capabilities": {"HTTP.get": http_get}}
        fresh_limits = httpx.Limits(max_keepalive_connections=0)
        async with (
            httpx.AsyncClient() as kept,
            httpx.AsyncClient(limits=fresh_limits) as fresh,
            WorkerPool(2, max_runs=STEADY_MAX_RUNS) as pool,
        ):
            figures_by = await interleaved(
                {
                    "direct": lambda: kept.get(url),
                    "new_conn": lambda: fresh.get(url),
                    "broker": lambda: broker.fetch(policy, OutboundRequest("GET", url), hops=[]),
                    "script": lambda: pool.run(script, **options),
                    "trivial": lambda: pool.run(trivial),
                },
                config.http_runs,
            )
        await broker.close()
    finally:
        server.terminate()
        await server.wait()
    direct, new_conn = figures_by["direct"], figures_by["new_conn"]
    brokered, scripted, base = figures_by["broker"], figures_by["script"], figures_by["trivial"]
    row("(a) direct httpx, kept-alive connection", direct.line())
    row("(b) direct httpx, new connection each time", new_conn.line())
    row("(c) broker.fetch (checks, new connection)", brokered.line())
    row("(d) script HTTP.get + json() through the pool", scripted.line())
    row("    trivial run on the same pool", base.line())
    row(
        "HTTP.get over direct, kept alive (d - trivial - a)",
        f"{scripted.p50 - base.p50 - direct.p50:8.1f} µs  "
        f"({(scripted.p50 - base.p50) / direct.p50:.2f} x)",
    )
    row(
        "HTTP.get over direct, new conn. (d - trivial - b)",
        f"{scripted.p50 - base.p50 - new_conn.p50:8.1f} µs  "
        f"({(scripted.p50 - base.p50) / new_conn.p50:.2f} x)",
    )
    row(
        "broker over direct httpx, new connection (c - b)", f"{brokered.p50 - new_conn.p50:8.1f} µs"
    )
    figures["http_direct_p50"] = direct.p50
    figures["http_script_p50"] = scripted.p50 - base.p50


async def bench(config: Config) -> dict[str, float]:
    """Run every measurement, print each section, and return the figures the goals need."""
    trivial = compiled(TRIVIAL)
    figures: dict[str, float] = {}
    await section_round_trip(config, trivial, figures)
    section_baseline(config, trivial, figures)
    async with WorkerPool(2, max_runs=STEADY_MAX_RUNS) as pool:
        await section_loop(config, pool, figures)
        await section_capability(config, pool, trivial)
    await section_start(config)
    await section_switch(config, figures)
    await section_noisy(config, figures)
    await section_http(config, figures)
    await section_modules(config)
    return figures


def goals(figures: dict[str, float]) -> None:
    """Print the goals table with PASS/MISS verdicts."""
    heading("goals")
    checks = [
        (
            "trivial round trip p50, default pool",
            f"{figures['round_trip_p50']:.1f} µs",
            f"< {GOAL_ROUND_TRIP_US:.0f} µs",
            figures["round_trip_p50"] < GOAL_ROUND_TRIP_US,
        ),
        (
            "trivial round trip p50, never recycled",
            f"{figures['steady_p50']:.1f} µs",
            f"< {GOAL_ROUND_TRIP_US:.0f} µs",
            figures["steady_p50"] < GOAL_ROUND_TRIP_US,
        ),
        (
            "loop-heavy ratio (policy / plain exec)",
            f"{figures['loop_ratio']:.2f} x",
            f"< {GOAL_LOOP_RATIO:g}",
            figures["loop_ratio"] < GOAL_LOOP_RATIO,
        ),
        (
            "quiet p99 beside a spinner / alone",
            f"{figures['noisy_p99_ms'] / figures['quiet_p99_ms']:.2f} x",
            f"< {GOAL_NOISY_RATIO:g}",
            figures["noisy_p99_ms"] < GOAL_NOISY_RATIO * figures["quiet_p99_ms"],
        ),
    ]
    print(f"  {'metric':<40} {'measured':>12}  {'goal':<10} verdict")
    for name, value, goal, ok in checks:
        print(f"  {name:<40} {value:>12}  {goal:<10} {'PASS' if ok else 'MISS'}")


def main() -> None:
    """Parse the command line and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="few iterations, a smoke run")
    parser.add_argument("--http-only", action="store_true", help="section 8 (outbound HTTP) only")
    parser.add_argument("--modules", action="store_true", help="only section 9 (script modules)")
    args = parser.parse_args()
    config = QUICK if args.quick else FULL
    started = time.perf_counter()
    machine_facts()
    print(f"  {'mode':<46} {'quick' if args.quick else 'full'}")
    if args.http_only:
        asyncio.run(section_http(config, {}))
        return
    if args.modules:
        asyncio.run(section_modules(config))
        return
    figures = asyncio.run(bench(config))
    goals(figures)
    print(f"\n  (benchmark took {time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
