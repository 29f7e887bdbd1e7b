"""The worker pool: concurrency, overload, crashes, recycling and shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from sandbox import CallRequest, Limits, Overloaded, PoolClosed, Status, WorkerPool


async def test_many_concurrent_runs_all_complete_with_their_own_results():
    """Runs queued beyond the worker count finish, each with its own output."""
    async with WorkerPool(2) as pool:
        results = await asyncio.gather(
            *(pool.run(f"print({i} * 2)", globals={}) for i in range(60))
        )
    assert [r.output for r in results] == [f"{i * 2}\n" for i in range(60)]


async def test_runs_do_not_block_the_event_loop():
    """While a script burns CPU in a worker, the host's event loop keeps serving."""
    async with WorkerPool(1) as pool:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        task = asyncio.create_task(ticker())
        result = await pool.run(
            "import time\nt = time.monotonic()\nwhile time.monotonic() - t < 0.3:\n    pass\n"
        )
        task.cancel()
    assert result.ok
    assert ticks >= 5


async def stats_reach(pool: WorkerPool, timeout: float = 10.0, **expected: int) -> None:
    """Wait until the pool's stats show ``expected`` (say ``running=1``); fail after timeout."""
    deadline = time.monotonic() + timeout
    while any(pool.stats[name] != value for name, value in expected.items()):
        assert time.monotonic() < deadline, f"pool stats {pool.stats}, expected {expected}"
        await asyncio.sleep(0.005)


async def test_a_full_queue_refuses_at_once_with_overloaded():
    """When every worker is busy and the queue is full, the next caller gets Overloaded."""
    async with WorkerPool(1, queue_size=1) as pool:
        release = asyncio.Event()

        async def wait(call: CallRequest) -> None:
            await release.wait()

        busy = asyncio.create_task(pool.run("block()", capabilities={"block": wait}))
        await stats_reach(pool, running=1)
        queued = asyncio.create_task(pool.run("print('queued')"))
        await stats_reach(pool, running=1, waiting=1)
        with pytest.raises(Overloaded) as refused:
            await pool.run("print('refused')")
        assert refused.value.retry_after > 0
        release.set()
        assert (await busy).ok
        assert (await queued).output == "queued\n"


async def test_a_worker_killed_mid_run_gives_a_clean_crash_and_is_replaced():
    """Killing a worker from outside ends its run as crashed; the pool keeps serving."""
    async with WorkerPool(1) as pool:
        started = asyncio.Event()

        async def mark(call: CallRequest) -> None:
            started.set()

        run = asyncio.create_task(
            pool.run(
                "mark()\nwhile True:\n    pass\n",
                capabilities={"mark": mark},
                limits=Limits(cpu_seconds=5, wall_seconds=10),
            )
        )
        await started.wait()
        victim = next(iter(pool._workers))
        os.kill(victim.pid, signal.SIGKILL)
        result = await run
        assert result.status is Status.CRASHED
        assert "SIGKILL" in result.error.message
        after = await pool.run("print('still here')")
    assert after.output == "still here\n"


async def test_a_worker_breaking_its_wall_limit_is_killed_and_replaced():
    """A run blocked past the wall limit ends as limit_exceeded and the next run works."""
    async with WorkerPool(1) as pool:

        async def forever(call: CallRequest) -> None:
            await asyncio.sleep(60)

        old = next(iter(pool._workers)).pid
        result = await pool.run(
            "wait()",
            capabilities={"wait": forever},
            limits=Limits(cpu_seconds=0.5, wall_seconds=0.5),
        )
        assert result.status is Status.LIMIT_EXCEEDED
        assert result.breach.limit == "wall_seconds"
        assert 0.5 <= result.wall_seconds < 1.5
        after = await pool.run("print('next')")
        assert after.output == "next\n"
        assert next(iter(pool._workers)).pid != old
        assert pool.stats["restarts"] == 1  # counted for /metrics


async def test_workers_are_recycled_after_max_runs():
    """After max_runs runs a worker is replaced by a fresh process."""
    async with WorkerPool(1, max_runs=3) as pool:
        pids = set()
        for _ in range(7):
            assert (await pool.run("x = 1")).ok
            pids |= {w.pid for w in pool._workers}
            await asyncio.sleep(0)
        assert pool.stats["restarts"] == 0  # recycling is not a restart
    assert len(pids) >= 3


async def test_workers_are_recycled_when_their_memory_grows():
    """A worker whose peak memory passed max_rss_bytes is replaced after its run."""
    async with WorkerPool(1, max_rss_bytes=60 * 1024 * 1024) as pool:
        old = next(iter(pool._workers)).pid
        assert (await pool.run("x = 'a' * (80 * 1024 * 1024)\nprint(len(x))")).ok
        assert (await pool.run("print(1)")).ok
        for _ in range(400):  # the replacement starts first; the old worker then stops
            if old not in {w.pid for w in pool._workers}:
                break
            await asyncio.sleep(0.05)
        assert old not in {w.pid for w in pool._workers}
        assert pool.stats["workers"] == 1


async def test_close_waits_for_running_scripts_then_refuses_new_ones():
    """Shutdown lets a running script finish, stops the workers and refuses later runs."""
    pool = WorkerPool(1)
    await pool.start()
    running = asyncio.create_task(pool.run("x = 0\nfor i in range(200000):\n    x += i\nprint(x)"))
    deadline = time.monotonic() + 10
    while pool.stats["running"] == 0 and not running.done():  # the run has reached its worker
        assert time.monotonic() < deadline, "the run never started"
        await asyncio.sleep(0.001)
    await pool.close()
    assert (await running).output == f"{sum(range(200000))}\n"
    assert pool.stats["workers"] == 0
    with pytest.raises(PoolClosed):
        await pool.run("print(1)")


async def test_a_pool_that_was_never_started_refuses_runs():
    """Running on a pool that was not started is an error, not a hang."""
    with pytest.raises(PoolClosed):
        await WorkerPool(1).run("x = 1")


async def test_code_is_resent_when_a_worker_forgot_it(pool):
    """After more distinct scripts than the caches hold, an early script still runs."""
    first = pool.compile("print('first')")
    assert (await pool.run(first)).output == "first\n"
    for i in range(600):
        assert (await pool.run(f"x = {i}")).ok
    assert (await pool.run(first)).output == "first\n"


async def test_the_pool_reports_how_workers_are_isolated(pool):
    """The isolation report names each step the workers took."""
    assert set(pool.isolation) == {"network", "filesystem", "user", "rlimits", "syscalls"}
    if os.geteuid() == 0:  # tests and CI run as root here, where every step is available
        assert pool.isolation["network"] == "namespace"
        assert pool.isolation["filesystem"] == "empty chroot"
        assert pool.isolation["user"] == "own uid per worker"


async def test_invalid_global_names_are_refused_before_running(pool):
    """Host globals must be plain identifiers: an underscore name could shadow a guard."""
    with pytest.raises(ValueError, match="_getattr_"):
        await pool.run("x = 1", globals={"_getattr_": 1})


async def test_a_cancelled_run_never_leaks_into_the_next_one():
    """A caller cancelled mid-run (a client hung up) does not leave its worker half-way."""
    async with WorkerPool(1) as pool:
        entered = asyncio.Event()

        async def slow(call: CallRequest) -> str:
            entered.set()
            await asyncio.sleep(0.5)
            return "first run's answer"

        async def mine(call: CallRequest) -> str:
            return "second run's answer"

        first = asyncio.create_task(pool.run("print(ask())", capabilities={"ask": slow}))
        await entered.wait()
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        second = await pool.run("print(ask())", capabilities={"ask": mine})
        assert second.ok, second.describe()
        assert second.output == "second run's answer\n"
