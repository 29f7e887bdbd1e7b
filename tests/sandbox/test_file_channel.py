"""The file channel: a script's File crosses to the host in checked chunks, pulled on demand,
spooled, and counted per run and across the pool; a file for the script comes back the same way.

Real pools, real forked workers. The hostile cases use the pool's test hook (``escape=``) to
stand in for a worker taken over by its script, speaking the protocol wrongly on purpose.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from sandbox import (
    JSON,
    CallRequest,
    FileRefused,
    FileReply,
    Limits,
    Status,
    WorkerPool,
    protocol,
)

MIB = 1024 * 1024
PATTERN = "bytes(range(256)) * (4096 * {mib})"
"""A script expression for ``mib`` MiB of known content (the test builds the same bytes)."""


def pattern(mib: int) -> bytes:
    """The bytes :data:`PATTERN` makes."""
    return bytes(range(256)) * (4096 * mib)


@pytest_asyncio.fixture
async def hooked_pool() -> AsyncIterator[WorkerPool]:
    """A pool whose workers honour the escape hook, with a 24 MiB pool-wide file budget."""
    async with WorkerPool(2, max_workers=4, test_hooks=True, file_budget_bytes=24 * MIB) as pool:
        yield pool


class Keeper:
    """A capability that pulls every File its call names and keeps each one's SHA-256."""

    def __init__(self) -> None:
        self.digests: list[str] = []
        self.failures: list[BaseException] = []

    async def __call__(self, call: CallRequest) -> JSON:
        assert call.files is not None
        refs = [value["$file"]["ref"] for value in call.args if isinstance(value, dict)]
        try:
            for ref in refs:
                blob = await call.files.receive(ref)
                digest = hashlib.sha256()
                for chunk in blob.chunks(MIB):
                    digest.update(chunk)
                self.digests.append(digest.hexdigest())
        except FileRefused:
            raise
        except BaseException as exc:
            self.failures.append(exc)
            raise
        return len(refs)


BIG = Limits(memory_bytes=256 * MIB, cpu_seconds=5.0, wall_seconds=20.0)


@pytest.mark.parametrize("mib", [5, 20])
async def test_a_large_file_reaches_the_host_intact(hooked_pool: WorkerPool, mib: int) -> None:
    keeper = Keeper()
    result = await hooked_pool.run(
        f"return keep(File('a.bin', {PATTERN.format(mib=mib)}))",
        tenant="bot",
        capabilities={"keep": keeper},
        limits=BIG,
        file_bytes=50 * MIB,
    )
    assert result.ok, result.error
    assert result.value == 1
    assert keeper.digests == [hashlib.sha256(pattern(mib)).hexdigest()]
    assert hooked_pool.file_budget.used == 0  # given back when the call was answered
    # The call's arguments named the file; its content never rode in the call.
    (call,) = result.calls
    assert call.args == ({"$file": {"name": "a.bin", "mime": None, "ref": 0, "size": mib * MIB}},)


async def test_a_run_past_its_file_budget_is_refused_with_413(hooked_pool: WorkerPool) -> None:
    keeper = Keeper()
    result = await hooked_pool.run(
        "keep(File('a.bin', b'x' * 3000))\n"
        "try:\n"
        "    keep(File('b.bin', b'y' * 3000))\n"
        "except CapabilityError as e:\n"
        "    return str(e)\n",
        tenant="bot",
        capabilities={"keep": keeper},
        exceptions=("CapabilityError",),
        file_bytes=5000,
    )
    assert result.ok, result.error
    assert result.value == (
        "this run may send at most 5000 bytes of files to the host and 3000 are sent; "
        "a file of 3000 bytes does not fit"
    )
    assert len(keeper.digests) == 1


async def test_the_pool_budget_refuses_a_run_while_another_run_still_works(
    hooked_pool: WorkerPool,
) -> None:
    """One run holds 20 of the pool's 24 MiB; a second run's 8 MiB is refused (503, the
    script sees it), a third run's 2 MiB still goes through; the budget is whole again after."""
    holding, release = asyncio.Event(), asyncio.Event()

    async def hold(call: CallRequest) -> JSON:
        assert call.files is not None
        await call.files.receive(0)
        holding.set()
        await release.wait()
        return None

    keeper = Keeper()
    first = asyncio.create_task(
        hooked_pool.run(
            f"hold(File('a.bin', {PATTERN.format(mib=20)}))",
            tenant="a",
            capabilities={"hold": hold},
            limits=BIG,
        )
    )
    await asyncio.wait_for(holding.wait(), 20)
    assert hooked_pool.file_budget.used == 20 * MIB
    refused = await hooked_pool.run(
        f"try:\n    keep(File('b.bin', {PATTERN.format(mib=8)}))\n"
        "except CapabilityError as e:\n    return str(e)\n",
        tenant="b",
        capabilities={"keep": keeper},
        exceptions=("CapabilityError",),
        limits=BIG,
    )
    assert refused.ok, refused.error
    assert "may hold 24 MiB (BOTBOX_FILE_BUDGET_MB)" in str(refused.value)
    small = await hooked_pool.run(
        f"return keep(File('c.bin', {PATTERN.format(mib=2)}))",
        tenant="b",
        capabilities={"keep": keeper},
        limits=BIG,
    )
    assert small.ok and small.value == 1
    assert keeper.digests == [hashlib.sha256(pattern(2)).hexdigest()]
    release.set()
    assert (await first).ok
    assert hooked_pool.file_budget.used == 0


async def test_a_file_for_the_script_arrives_in_chunks_intact(hooked_pool: WorkerPool) -> None:
    async def fetch(call: CallRequest) -> FileReply:
        assert call.files is not None
        blob = call.files.spool()
        content = pattern(15)
        for start in range(0, len(content), 100_000):  # written as a download would be
            blob.write(content[start : start + 100_000])
        return FileReply("report.bin", "application/octet-stream", blob)

    result = await hooked_pool.run(
        f"f = fetch()\nreturn [f.name, f.mime, f.size, f.data == {PATTERN.format(mib=15)}]",
        tenant="bot",
        capabilities={"fetch": fetch},
        limits=BIG,
    )
    assert result.ok, result.error
    assert result.value == ["report.bin", "application/octet-stream", 15 * MIB, True]
    assert hooked_pool.file_budget.used == 0


# --- a worker that lies ------------------------------------------------------------------------

LYING_SENDER = r"""
from sandbox import protocol
from sandbox.protocol import CHUNK_HEADER, CHUNK_TAG, HEADER
def send_file(ref, data, sock=worker.channel.sock, mode=request["globals"]["mode"]):
    if mode == "wrong_ref":
        body = CHUNK_HEADER.pack(CHUNK_TAG, ref + 1) + bytes(data[:10])
    elif mode == "more":
        body = CHUNK_HEADER.pack(CHUNK_TAG, ref) + bytes(data) + b"extra"
    elif mode == "empty":
        body = CHUNK_HEADER.pack(CHUNK_TAG, ref)
    elif mode == "json":
        body = protocol.encode(protocol.NeedCode())
    elif mode == "garbage":
        body = b"\x02not a chunk"
    sock.sendall(HEADER.pack(len(body)) + body)
worker.channel.send_file = send_file
"""

FORGED_CALL = r"""
import json
from sandbox.protocol import frame
body = {"t": "call", "name": "keep", "args": [{"$file": {"name": "a", "mime": None, "ref": 3}}],
        "kwargs": {}, "files": [10]}
worker.channel.sock.sendall(frame(json.dumps(body).encode()))
worker.channel.receive()
"""


async def _assert_killed(
    pool: WorkerPool, result: Any, keeper: Keeper, caplog: pytest.LogCaptureFixture, why: str
) -> None:
    assert result.status is Status.CRASHED, result
    assert f"broke the protocol: {why}" in caplog.text
    assert keeper.digests == []
    assert not any(w.pid == result.worker_pid and w.alive for w in pool._workers)
    assert pool.file_budget.used == 0
    after = await pool.run("return 1", tenant="liar")  # the pool serves on, with a new worker
    assert after.ok and after.worker_pid != result.worker_pid


@pytest.mark.parametrize(
    ("mode", "why"),
    [
        ("wrong_ref", "a chunk for File 1 (10 bytes) while File 0 had 100 bytes to come"),
        ("more", "a chunk for File 0 (105 bytes) while File 0 had 100 bytes to come"),
        ("empty", "a file chunk of 5 bytes"),
        ("json", "NeedCode while a file was sent"),
        ("garbage", "frame is not JSON"),
    ],
)
async def test_a_worker_that_sends_a_file_wrongly_is_killed(
    hooked_pool: WorkerPool, mode: str, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    keeper = Keeper()
    result = await hooked_pool.run(
        "keep(File('a.bin', b'x' * 100))",
        tenant="liar",
        globals={"mode": mode},
        capabilities={"keep": keeper},
        escape=LYING_SENDER,
    )
    await _assert_killed(hooked_pool, result, keeper, caplog, why)


async def test_a_worker_naming_a_file_it_did_not_declare_is_killed(
    hooked_pool: WorkerPool, caplog: pytest.LogCaptureFixture
) -> None:
    keeper = Keeper()
    result = await hooked_pool.run(
        "x = 1", tenant="liar", capabilities={"keep": keeper}, escape=FORGED_CALL
    )
    await _assert_killed(hooked_pool, result, keeper, caplog, "a call names File 3 it did not")


async def test_a_chunk_nobody_asked_for_is_a_protocol_violation(
    hooked_pool: WorkerPool, caplog: pytest.LogCaptureFixture
) -> None:
    unasked = (
        "from sandbox.protocol import CHUNK_HEADER, CHUNK_TAG, frame\n"
        "worker.channel.sock.sendall(frame(CHUNK_HEADER.pack(CHUNK_TAG, 0) + b'x'))\n"
        "worker.channel.receive()\n"
    )
    result = await hooked_pool.run("x = 1", tenant="liar", escape=unasked)
    assert result.status is Status.CRASHED
    assert "broke the protocol: unexpected Chunk" in caplog.text
    assert protocol.MAX_CHUNK == MIB  # each chunk at most 1 MiB
