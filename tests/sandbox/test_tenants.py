"""The second wall: a worker serves one tenant for life, and tenants share the pool fairly.

These run real pools with real forked workers. The escape test uses the pool's test hook to run
unrestricted code inside a worker, standing in for a script that broke the language policy: it
proves that even then nothing of another tenant's runs is visible from that process.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from sandbox import Limits, Overloaded, Status, WorkerPool

SPY = """
import sandbox.worker as module
if not hasattr(module, "SPY"):
    module.SPY = []
    original = module.Worker.run
    def run(self, request):
        module.SPY.append(repr(request.get("globals")))
        return original(self, request)
    module.Worker.run = run
request["globals"]["seen"] = " ".join(module.SPY)
"""

KILL = """
import os
try:
    os.kill(request["globals"]["victim"], 0)
    request["globals"]["outcome"] = "signalled"
except OSError as exc:
    request["globals"]["outcome"] = type(exc).__name__
"""


@pytest_asyncio.fixture(scope="module")
async def hooked_pool() -> AsyncIterator[WorkerPool]:
    """A pool whose workers honour the escape hook (tests only), with room for three tenants."""
    async with WorkerPool(2, max_workers=4, test_hooks=True) as pool:
        yield pool


async def test_a_worker_never_serves_two_tenants(hooked_pool):
    """Interleaved and concurrent runs of three tenants never share a worker process."""
    pids: dict[str, set[int]] = {"a": set(), "b": set(), "c": set()}

    async def one(tenant: str) -> None:
        result = await hooked_pool.run("x = 1", tenant=tenant)
        assert result.ok and result.worker_pid is not None
        pids[tenant].add(result.worker_pid)

    for _ in range(4):
        await asyncio.gather(*(one(t) for t in "abcabc"))
    assert all(pids.values())
    assert not (pids["a"] & pids["b"] or pids["a"] & pids["c"] or pids["b"] & pids["c"])


async def test_an_escaped_worker_sees_nothing_of_another_tenants_runs(hooked_pool):
    """Code that took over a worker and spies on every run it serves sees only its own tenant."""
    first = await hooked_pool.run(
        "print(seen)", tenant="attacker", globals={"mark": "attacker-1"}, escape=SPY
    )
    assert first.ok, first.describe()
    for i in range(6):
        victim = await hooked_pool.run(
            "print(secret)", tenant="victim", globals={"secret": f"victim-secret-{i}"}
        )
        assert victim.output == f"victim-secret-{i}\n"
    spied = await hooked_pool.run(
        "print(seen)", tenant="attacker", globals={"mark": "attacker-2"}, escape=SPY
    )
    assert spied.ok and spied.worker_pid == first.worker_pid
    assert "attacker-2" in spied.output  # the spy works: it saw its own tenant's run...
    assert "victim-secret" not in spied.output  # ...and nothing of the other tenant's


async def test_an_escaped_worker_cannot_signal_another_tenants_worker(hooked_pool):
    """os.kill on another tenant's worker fails inside an escaped worker; the victim serves on."""
    victim = await hooked_pool.run("x = 1", tenant="victim")
    attack = await hooked_pool.run(
        "print(outcome)", tenant="attacker", globals={"victim": victim.worker_pid}, escape=KILL
    )
    assert attack.output == "PermissionError\n"
    again = await hooked_pool.run("print('alive')", tenant="victim")
    assert again.output == "alive\n" and again.worker_pid == victim.worker_pid


async def test_a_spinning_tenant_leaves_a_worker_for_a_quiet_one():
    """While one tenant's runs spin into their CPU limit, another's trivial run is served fast."""
    spin = Limits(cpu_seconds=1.0, wall_seconds=2.0)
    async with WorkerPool(2, max_workers=4) as pool:
        spinners = [
            asyncio.ensure_future(pool.run("while True:\n    pass", tenant="spin", limits=spin))
            for _ in range(6)
        ]
        deadline = time.monotonic() + 5
        while pool.stats["running"] < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert pool.stats["running"] == 2  # the spinner holds its cap, and no more
        started = time.perf_counter()
        quiet = await asyncio.wait_for(pool.run("print('hi')", tenant="quiet"), timeout=0.5)
        elapsed = time.perf_counter() - started
        assert quiet.output == "hi\n"
        assert not all(task.done() for task in spinners)  # it really ran beside the spinners
        results = await asyncio.gather(*spinners)
    assert all(r.status is Status.LIMIT_EXCEEDED for r in results)
    assert elapsed < 0.5


async def test_one_tenants_full_line_does_not_refuse_another():
    """A tenant whose waiting line is full is refused; another tenant's run is still served."""
    async with WorkerPool(1, max_workers=2, queue_size=4) as pool:
        slow = "import time\nt = time.time()\nwhile time.time() - t < 0.5:\n    pass"
        limits = Limits(cpu_seconds=2.0, wall_seconds=3.0)
        busy = [
            asyncio.ensure_future(pool.run(slow, tenant="busy", limits=limits)) for _ in range(3)
        ]
        deadline = time.monotonic() + 5
        while pool.stats["waiting"] < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert pool.stats["waiting"] == 2
        with pytest.raises(Overloaded):
            await pool.run("x = 1", tenant="busy")
        other = await asyncio.wait_for(pool.run("print('ok')", tenant="other"), timeout=2)
        assert other.output == "ok\n"
        assert all(r.ok for r in await asyncio.gather(*busy))


async def test_the_pool_survives_its_fork_server_dying():
    """If the fork server dies (and its workers with it), the next run gets a new one, whose
    workers take user ids the dead server's workers never had."""
    async with WorkerPool(1) as pool:
        assert (await pool.run("x = 1", tenant="a")).ok
        server = pool._server  # no public handle: killing it is what this test is about
        assert server is not None
        old_uids = {w.uid for w in pool._workers}
        server.process.kill()
        deadline = time.monotonic() + 5
        while server.alive and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert not server.alive
        result = await pool.run("print('back')", tenant="a")
        assert result.output == "back\n", result.describe()
        assert pool._server is not server
        new_uids = {w.uid for w in pool._workers}
        assert not (new_uids & old_uids) - {None}  # never an id an orphan may still hold


@pytest.mark.skipif(os.geteuid() != 0, reason="only a root server moves workers between policies")
async def test_a_long_run_moves_to_the_background_and_a_short_one_comes_back():
    """A run past DEMOTE_AFTER is SCHED_IDLE; the next run of a cool tenant is normal again."""
    async with WorkerPool(1, max_workers=1) as pool:
        script = "import time\nt = time.time()\nwhile time.time() - t < 0.4:\n    pass"
        slow = asyncio.ensure_future(pool.run(script, tenant="a"))
        deadline = time.monotonic() + 5
        policy = None
        while time.monotonic() < deadline and not slow.done():
            busy = [w for w in pool._workers if w.tenant == "a"]
            if busy and (policy := os.sched_getscheduler(busy[0].pid)) == os.SCHED_IDLE:
                break
            await asyncio.sleep(0.01)
        assert policy == os.SCHED_IDLE
        first = await slow
        assert first.ok
        quick = await pool.run("x = 1", tenant="a")
        assert quick.worker_pid == first.worker_pid
        assert os.sched_getscheduler(quick.worker_pid) == os.SCHED_OTHER
