"""Denial-of-service scripts: each is stopped by its limit, and the pool keeps serving.

Every attack runs in a dedicated one-worker pool (several of them kill their worker on purpose),
with small limits so the module stays fast. For each: the run ends with the named limit within
the run's wall limit plus one second, and a plain ``print(1)`` right after it is served normally.
"""

from __future__ import annotations

import asyncio
import textwrap
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from sandbox import CallRequest, Limits, RunResult, WorkerPool
from sandbox.result import Status

# A wide gap between CPU and wall limits: a script stuck in C code is killed by SIGXCPU up to
# one CPU second past its budget, which takes longer in wall time when the machine is busy.
FAST = Limits(cpu_seconds=0.5, wall_seconds=5.0)
CPU = frozenset({"cpu_seconds"})
MEMORY = frozenset({"memory_bytes"})
CPU_OR_MEMORY = CPU | MEMORY
RECURSION = frozenset({"recursion_depth"})


@pytest_asyncio.fixture(scope="module")
async def small_pool() -> AsyncIterator[WorkerPool]:
    """A one-worker pool of this module's own, so killed workers never slow other tests."""
    async with WorkerPool(1) as single:
        yield single


async def timed_run(pool: WorkerPool, source: str, **kwargs: object) -> tuple[RunResult, float]:
    """Run dedented ``source`` and return the result with the host-side elapsed seconds."""
    started = time.perf_counter()
    result = await pool.run(textwrap.dedent(source), **kwargs)  # type: ignore[arg-type]
    return result, time.perf_counter() - started


async def assert_pool_still_serves(pool: WorkerPool) -> None:
    """A trivial run right after an attack succeeds."""
    follow_up = await pool.run("print(1)")
    assert follow_up.status is Status.OK, follow_up.describe()
    assert follow_up.output == "1\n"


# (id, script, limits it may end by). Rows accepting two limits say why in a comment.
ATTACKS: list[tuple[str, str, frozenset[str]]] = [
    ("infinite-loop", "while True:\n    pass", CPU),
    (
        "bare-except-swallows-the-limit",
        """
        n = 0
        while True:
            try:
                while True:
                    n += 1
            except:
                n += 1
        """,
        CPU,
    ),
    # CPython raises the power step by step: the CPU budget or the memory cap comes first.
    ("huge-power", "x = 10**10**10", CPU_OR_MEMORY),
    ("huge-string-repeat", "x = 'a' * 10**10", MEMORY),
    ("huge-list-repeat", "x = [0] * 10**9", MEMORY),
    ("huge-bytearray", "x = bytearray(10**10)", MEMORY),
    ("string-doubling-loop", "s = 'x'\nwhile True:\n    s += s", MEMORY),
    ("catastrophic-regex", "import re\nre.match('(a+)+$', 'a' * 40 + 'b')", CPU),
    # The product grows to ~340 MB: the CPU budget or the memory cap, whichever is hit first.
    ("huge-factorial", "import math\nmath.factorial(10**8)", CPU_OR_MEMORY),
    ("deep-recursion", "def f(n):\n    return f(n + 1)\nf(0)", RECURSION),
    (
        "pbkdf2-billion-iterations",
        "import hashlib\nhashlib.pbkdf2_hmac('sha256', b'pw', b'salt', 10**9)",
        CPU,
    ),
    # list() grows without end: memory usually, CPU if the allocator is slow on this machine.
    ("endless-count-into-list", "import itertools\nx = list(itertools.count())", CPU_OR_MEMORY),
    ("repeat-into-list", "import itertools\nx = list(itertools.repeat(1, 10**10))", MEMORY),
    # join() materialises the generator first: memory usually, CPU if generating is slower.
    (
        "join-of-endless-generator",
        "import itertools\nx = ' '.join(str(i) for i in itertools.count())",
        CPU_OR_MEMORY,
    ),
    (
        "nested-generator-bomb",
        "print(sum(1 for a in range(10**6) for b in range(10**6) for c in range(10**6)))",
        CPU,
    ),
    ("json-deep-nesting", "import json\njson.loads('[' * 100000)", RECURSION),
    (
        "repr-of-deeply-nested-list",
        "x = []\nfor i in range(100000):\n    x = [x]\nprint(x)",
        RECURSION,
    ),
    (
        "exception-storm",
        """
        while True:
            try:
                raise ValueError('x')
            except ValueError:
                pass
        """,
        CPU,
    ),
]


@pytest.mark.parametrize(
    ("script", "accepted"),
    [row[1:] for row in ATTACKS],
    ids=[row[0] for row in ATTACKS],
)
async def test_attack_is_stopped_by_its_limit_and_the_pool_recovers(small_pool, script, accepted):
    """The run ends by the expected limit within the wall limit plus 1 s; the next run is OK."""
    result, elapsed = await timed_run(small_pool, script, limits=FAST)
    assert result.status is Status.LIMIT_EXCEEDED, result.describe()
    assert result.breach is not None
    assert result.breach.limit in accepted
    assert result.breach.value == getattr(FAST, result.breach.limit)
    assert elapsed < FAST.wall_seconds + 1.0
    await assert_pool_still_serves(small_pool)


async def test_huge_output_is_capped_and_ends_the_run(small_pool):
    """Printing forever breaks ``output_bytes``, and the output kept is at most that long."""
    limits = Limits(cpu_seconds=0.5, wall_seconds=5.0, output_bytes=4096)
    result, elapsed = await timed_run(
        small_pool, "while True:\n    print('x' * 100)", limits=limits
    )
    assert result.status is Status.LIMIT_EXCEEDED
    assert result.breach is not None and result.breach.limit == "output_bytes"
    assert 4000 <= len(result.output.encode()) <= 4096
    assert set(result.output) <= {"x", "\n"}
    assert elapsed < limits.wall_seconds + 1.0
    await assert_pool_still_serves(small_pool)


async def test_capability_call_flood_breaks_capability_calls(small_pool):
    """Calling a trivial capability 10 000 times stops at the ``capability_calls`` limit."""
    served = 0

    async def ping(request: CallRequest) -> int:
        nonlocal served
        served += 1
        return 1

    limits = Limits(cpu_seconds=0.5, wall_seconds=5.0, capability_calls=50)
    result, elapsed = await timed_run(
        small_pool, "for i in range(10000):\n    ping()", capabilities={"ping": ping}, limits=limits
    )
    assert result.status is Status.LIMIT_EXCEEDED
    assert result.breach is not None and result.breach.limit == "capability_calls"
    assert served == 50
    assert len(result.calls) == 50
    assert elapsed < limits.wall_seconds + 1.0
    await assert_pool_still_serves(small_pool)


async def test_slow_capability_breaks_wall_seconds_and_the_worker_is_replaced(small_pool):
    """A handler slower than the wall limit ends the run, and a fresh worker takes over."""

    async def stall(request: CallRequest) -> int:
        await asyncio.sleep(10)
        return 1

    limits = Limits(cpu_seconds=0.5, wall_seconds=1.0)
    result, elapsed = await timed_run(
        small_pool, "stall()", capabilities={"stall": stall}, limits=limits
    )
    assert result.status is Status.LIMIT_EXCEEDED
    assert result.breach is not None and result.breach.limit == "wall_seconds"
    assert result.breach.value == 1.0
    assert elapsed < limits.wall_seconds + 1.0
    await assert_pool_still_serves(small_pool)
    after = {worker.pid for worker in small_pool._workers}  # the pool has no public pid list
    assert result.worker_pid is not None and after and result.worker_pid not in after


async def test_int_to_str_conversion_limit_stops_huge_number_printing(small_pool):
    """``str(10**100000)`` fails fast with ValueError (CPython's int-str digit limit)."""
    result, elapsed = await timed_run(small_pool, "print(str(10**100000))", limits=FAST)
    assert result.status is Status.SCRIPT_ERROR
    assert result.error is not None and result.error.type == "ValueError"
    assert "4300" in result.error.message
    assert result.output == ""
    assert elapsed < 2.0
    await assert_pool_still_serves(small_pool)


async def test_oversized_capability_argument_is_refused_without_crashing(small_pool):
    """A 5 MB capability argument fails as a script error or limit, never as a crashed worker."""

    async def ping(request: CallRequest) -> int:
        return 1

    result, elapsed = await timed_run(
        small_pool, "ping('x' * 5_000_000)", capabilities={"ping": ping}, limits=FAST
    )
    assert result.status in (Status.SCRIPT_ERROR, Status.LIMIT_EXCEEDED), result.describe()
    assert elapsed < FAST.wall_seconds + 1.0
    await assert_pool_still_serves(small_pool)


async def test_leftover_finalizer_cannot_burn_the_next_runs_cpu(small_pool):
    """A generator's endless ``finally`` left behind by one run does not stop the next run."""
    attacker = """
    def held():
        try:
            yield 1
        finally:
            while True:
                pass
    paused = held()
    next(paused)
    """
    first, _ = await timed_run(small_pool, attacker, limits=FAST)
    # The attacker's own run may pay for its finalizer (cpu_seconds) or never run it; either
    # way the cost must stay with the attacker.
    assert first.status in (Status.OK, Status.LIMIT_EXCEEDED), first.describe()
    victim = "junk = [[i] for i in range(200000)]\nprint('victim done')"
    for _ in range(3):
        result, elapsed = await timed_run(small_pool, victim, limits=FAST)
        assert result.status is Status.OK, result.describe()
        assert result.output == "victim done\n"
        assert elapsed < FAST.wall_seconds + 1.0


def test_attack_corpus_is_large_and_ids_are_unique():
    """The corpus keeps at least 14 table rows, each with its own id."""
    ids = [row[0] for row in ATTACKS]
    assert len(ids) >= 14
    assert len(set(ids)) == len(ids)
