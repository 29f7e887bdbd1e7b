"""What a worker taken over by its script (or a plain script aiming at the host) cannot do.

Found by a security review of the second wall; each test failed before its fix. They run real
pools with real forked workers. Tests named ``..._escaped_...`` use the pool's test hook
(``escape=``) to stand in for a worker taken over by a script that broke the language policy.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator

import pytest_asyncio

from sandbox import JSON, CallRequest, Limits, Status, WorkerPool, protocol

SPIN_WHEN_IDLE = r"""
import resource, signal
def spin(*args, **kwargs):
    signal.setitimer(signal.ITIMER_PROF, 0)
    resource.setrlimit(resource.RLIMIT_CPU, (86400, 86400))  # raise soft to the 24 h hard
    while True:
        pass
worker.channel.receive = spin  # after sending "done", never read again: burn CPU instead
"""

TAMPER_DONE = r"""
import json
from sandbox import protocol
from sandbox.protocol import frame
original = worker.channel.send
def send(message, _original=original, _patch=request["globals"]["patch"]):
    if type(message) is not protocol.Done:
        return _original(message)
    body = json.dumps(dict(json.loads(protocol.encode(message)), **json.loads(_patch)))
    body = body.replace('"HUGE"', "1" + "0" * 400)  # an int JSON holds and float() cannot
    worker.channel.sock.sendall(frame(body.encode()))
    worker.channel.send = _original
worker.channel.send = send
"""


@pytest_asyncio.fixture
async def hooked_pool() -> AsyncIterator[WorkerPool]:
    """A pool whose workers honour the escape hook (tests only)."""
    async with WorkerPool(2, max_workers=4, test_hooks=True) as pool:
        yield pool


async def _ignore(request: CallRequest) -> JSON:
    return None


async def test_a_scripts_output_and_error_are_storable_utf8(hooked_pool: WorkerPool) -> None:
    """A lone surrogate a script prints or raises does not reach the host as un-encodable text.

    Today it does, and the run log's batch insert (every bot's rows of that moment) fails on it.
    """
    printed = await hooked_pool.run("print(chr(0xD800))", tenant="attacker")
    raised = await hooked_pool.run("raise ValueError(chr(0xDC00))", tenant="attacker")
    assert raised.error is not None
    printed.output.encode("utf-8")
    raised.error.message.encode("utf-8")


async def test_an_escaped_worker_cannot_burn_cpu_after_its_run(hooked_pool: WorkerPool) -> None:
    """A taken-over worker that spins once its run is over is stopped (or idles) within 3 s."""
    result = await hooked_pool.run("x = 1", tenant="attacker", escape=SPIN_WHEN_IDLE)
    assert result.ok and result.worker_pid is not None
    worker = next(w for w in hooked_pool._workers if w.pid == result.worker_pid)
    start = worker.cpu_seconds()
    deadline = time.monotonic() + 3.0
    while worker.alive and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    burnt = worker.cpu_seconds() - start if worker.alive else 0.0
    assert burnt < 0.5, f"an idle worker of the attacker used {burnt:.1f} s of CPU"


async def test_an_escaped_worker_cannot_make_pool_run_raise(hooked_pool: WorkerPool) -> None:
    """A malformed ``done`` message ends the run as crashed, never as an exception in the host."""
    for patch in ('{"cpu": "HUGE"}', '{"deferred": [[["x"], [], {}, 1]]}'):
        result = await hooked_pool.run(
            "x = 1",
            tenant="attacker",
            globals={"patch": patch},
            escape=TAMPER_DONE,
            capabilities={"res.set": _ignore},
            deferred={"res.set": False},
        )
        assert result.status is Status.CRASHED, patch


async def test_an_escaped_worker_cannot_report_a_nan_cpu_time(hooked_pool: WorkerPool) -> None:
    """The CPU time the host reports is finite (the run log's cpu_seconds is REAL NOT NULL)."""
    result = await hooked_pool.run(
        "x = 1", tenant="attacker", globals={"patch": '{"cpu": NaN}'}, escape=TAMPER_DONE
    )
    assert math.isfinite(result.cpu_seconds)


async def test_a_runs_calls_may_not_send_more_than_their_byte_budget(hooked_pool: WorkerPool):
    """Past MAX_RUN_CALL_BYTES of arguments, a run's calls are refused with a clear error."""
    seen: list[int] = []

    async def take(request: CallRequest) -> JSON:
        seen.append(len(request.args[0]))
        return None

    result = await hooked_pool.run(
        "blob = 'x' * 1000000\nfor i in range(12):\n    try:\n        Api.take(blob)\n"
        "    except CapabilityError as e:\n        print(i, e)\n        break\n",
        tenant="attacker",
        capabilities={"Api.*": take},
        exceptions=["CapabilityError"],
    )
    assert result.ok, result.describe()
    assert len(seen) == protocol.MAX_RUN_CALL_BYTES // 1_000_010
    assert "passed 8 MiB" in result.output


OVERSIZED_CALL = r"""
from sandbox.protocol import frame
body = b'{"t":"call","name":"Api.take","args":["' + b"x" * (3 * 1024 * 1024) + b'"],"kwargs":{}}'
worker.channel.sock.sendall(frame(body))
"""


async def test_an_escaped_worker_sending_an_oversized_call_is_killed(hooked_pool: WorkerPool):
    """A call frame beyond what the worker itself allows is a protocol violation."""
    result = await hooked_pool.run("x = 1", tenant="attacker", escape=OVERSIZED_CALL)
    assert result.status is Status.CRASHED
    assert result.worker_pid is not None
    assert result.worker_pid not in {w.pid for w in hooked_pool._workers if w.alive}


RAISE_MEMORY = r"""
import resource
soft, hard = resource.getrlimit(resource.RLIMIT_AS)
try:
    resource.setrlimit(resource.RLIMIT_AS, (hard + 1024 * 1024 * 1024, hard + 1024 * 1024 * 1024))
    request["globals"]["raised"] = "raised"
except (ValueError, OSError):
    request["globals"]["raised"] = "refused"
request["globals"]["room"] = resource.getrlimit(resource.RLIMIT_AS)[1] - worker.baseline
"""


async def test_an_escaped_worker_cannot_raise_its_memory_past_its_tenants_budget(
    hooked_pool: WorkerPool,
) -> None:
    """A tenant's worker has its run budget as hard address-space cap: raising it is refused."""
    limits = Limits(memory_bytes=64 * 1024 * 1024)
    first = await hooked_pool.run("x = 1", tenant="attacker", limits=limits)
    assert first.ok
    probe = await hooked_pool.run(
        "print(raised, room)", tenant="attacker", limits=limits, escape=RAISE_MEMORY
    )
    assert probe.worker_pid == first.worker_pid
    assert probe.output == f"refused {64 * 1024 * 1024}\n", probe.describe()
