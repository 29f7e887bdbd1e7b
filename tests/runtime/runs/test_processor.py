"""The queue processor, in-process with a real store and pool: fairness, retries, give-ups."""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
import time
from pathlib import Path

import pytest

from runtime.errors import NotFound, StoreError
from runtime.runs.pipeline import Runner
from runtime.runs.processor import Processor
from runtime.runs.registry import LiveBot
from runtime.runs.session import Services
from runtime.store import Instance, QueuedItem, SqliteStore
from runtime.telegram.update import chat_key
from sandbox import Overloaded, WorkerPool
from tests.support.runtime import hosted, store_path, wait_until, write_bot

BACKLOG = 1000
WORK = '"""\ncommand: work\n"""\ndone = options\n'
PING = '"""\ncommand: /ping\n"""\nBot.sendMessage("pong")\n'


async def test_one_bots_due_backlog_does_not_delay_another_bots_update(
    pool: WorkerPool, tmp_path: Path
) -> None:
    """Bot B's update is answered while bot A's 1,000 due runs (1,000 chats) are mostly queued."""
    folders = [
        write_bot(tmp_path / "bots", "busy", {"work.py": WORK}),
        write_bot(tmp_path / "bots", "quiet", {"ping.py": PING}),
    ]
    async with hosted(pool, tmp_path, folders) as lab:
        for n in range(BACKLOG):
            who = {"id": n + 1}
            payload = {"command": "work", "user": who, "chat": who, "options": n}
            await lab.store.enqueue("busy", "run", chat_key(who, who), payload)
        lab.processor.start()

        async def busy_started() -> bool:
            return await lab.store.pending_count("busy") < BACKLOG

        await wait_until(busy_started, timeout=10, what="bot A's backlog to start")
        await lab.post("quiet", 1, "/ping", chat=7)
        await wait_until(
            lambda: lab.telegram.calls_to("sendMessage"), timeout=10, what="bot B's reply"
        )
        left = await lab.store.pending_count("busy")
        # Claimed oldest-first across bots, B's update would wait for all 1,000 runs (left == 0).
        assert left >= BACKLOG // 2, f"bot B was answered only after {BACKLOG - left} of A's runs"
        assert lab.telegram.calls_to("sendMessage")[0].params["text"] == "pong"


class ScriptedRunner(Runner):
    """A runner whose ``handle_item`` raises the next of ``faults`` (None: it succeeds).

    Its clock moves an hour on each time it is read, so an item put back for later (at most
    32 s, or an Overloaded's retry_after) is due at the next claim.
    """

    def __init__(self, services: Services, faults: list[BaseException | None]) -> None:
        super().__init__(services)
        self.faults = faults
        self.calls: list[int] = []
        self.shift = 0.0

    def clock(self) -> float:
        """The real time, moved an hour on per reading."""
        self.shift += 3600
        return time.time() + self.shift

    async def handle_item(self, bot: LiveBot, item: QueuedItem) -> None:
        """Record the attempt and raise the next fault (if any)."""
        self.calls.append(item.attempts)
        fault = self.faults.pop(0) if self.faults else None
        if fault is not None:
            raise fault


def queue_rows(tmp_path: Path) -> list[tuple[str, int]]:
    """Every queue row's status and attempts, read straight from the store file."""
    with sqlite3.connect(store_path(tmp_path)) as db:
        return db.execute("SELECT status, attempts FROM queue ORDER BY seq").fetchall()


async def run_scripted(
    pool: WorkerPool, tmp_path: Path, faults: list[BaseException | None], calls: int
) -> ScriptedRunner:
    """Queue one run for bot ``quiet``; process it with a scripted runner until ``calls``."""
    folder = write_bot(tmp_path / "bots", "quiet", {"ping.py": PING})
    async with hosted(pool, tmp_path, [folder]) as lab:
        runner = ScriptedRunner(lab.services, faults)
        services = dataclasses.replace(lab.services, clock=runner.clock)
        processor = Processor(lab.registry, services, runner, concurrency=1, owner="test")
        await lab.store.enqueue("quiet", "run", "c:1", {"command": "/ping"})
        processor.start()
        try:
            await wait_until(
                lambda: len(runner.calls) >= calls and queue_rows(tmp_path)[0][0] != "claimed",
                timeout=10,
                what=f"{calls} attempts",
            )
        finally:
            await processor.stop()
    return runner


async def test_an_item_that_fails_unexpectedly_is_retried_then_given_up_after_five_attempts(
    pool: WorkerPool, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug in handling retries the item with a backoff; the fifth failure marks it failed."""
    faults: list[BaseException | None] = [RuntimeError("bug")] * 5
    with caplog.at_level(logging.ERROR, logger="runtime.serverlog"):
        runner = await run_scripted(pool, tmp_path, faults, 5)
    assert runner.calls == [1, 2, 3, 4, 5]
    assert queue_rows(tmp_path) == [("failed", 5)]
    assert "bot quiet: queue item 1 (attempt 1) failed" in caplog.messages


async def test_an_item_that_fails_once_is_retried_and_then_done(
    pool: WorkerPool, tmp_path: Path
) -> None:
    """One unexpected failure, then success: the item is done after its second attempt."""
    runner = await run_scripted(pool, tmp_path, [RuntimeError("bug"), None], 2)
    assert runner.calls == [1, 2]
    assert queue_rows(tmp_path) == [("done", 2)]


async def test_an_overloaded_pool_puts_the_item_back_for_later(
    pool: WorkerPool, tmp_path: Path
) -> None:
    """Overloaded is no failure: six in a row do not give the item up; the seventh try runs."""
    faults: list[BaseException | None] = [Overloaded(2.0)] * 6
    runner = await run_scripted(pool, tmp_path, faults, 7)
    assert runner.calls == [1, 2, 3, 4, 5, 6, 7]
    assert queue_rows(tmp_path) == [("done", 7)]


async def test_an_item_of_a_bot_no_longer_hosted_is_dropped_as_failed(
    pool: WorkerPool, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A claimed item whose bot left the registry is marked failed, with a warning."""
    faults: list[BaseException | None] = [NotFound("no bot 'quiet' on this server")]
    with caplog.at_level(logging.WARNING, logger="runtime.runs.processor"):
        runner = await run_scripted(pool, tmp_path, faults, 1)
    assert runner.calls == [1]
    assert queue_rows(tmp_path) == [("failed", 1)]
    assert caplog.messages == ["dropping a queue item of unknown bot quiet"]


class FlakyStore(SqliteStore):
    """A real SQLite store whose claims fail while ``failing`` is set, as a locked disk would."""

    failing = False
    failed = 0

    async def claim(self, owner: str, **kwargs: object) -> QueuedItem | None:  # type: ignore[override]
        """Fail like the disk went away, or claim for real."""
        if self.failing:
            type(self).failed += 1
            raise StoreError("SQLite store 'botbox.sqlite3': disk I/O error")
        return await super().claim(owner, **kwargs)  # type: ignore[arg-type]


async def test_a_failing_store_makes_the_loops_back_off_report_it_and_carry_on(
    pool: WorkerPool, tmp_path: Path
) -> None:
    """While claims fail the loops back off and problems() says why; then they work again."""
    folders = [write_bot(tmp_path / "bots", "quiet", {"ping.py": PING})]
    FlakyStore.failing, FlakyStore.failed = True, 0
    async with hosted(pool, tmp_path, folders, store_class=FlakyStore) as lab:
        lab.processor.start()
        await wait_until(
            lambda: FlakyStore.failed >= 8, timeout=10, what="every loop to fail twice"
        )
        problems = lab.processor.problems()
        assert len(problems) == lab.processor.concurrency
        assert all("StoreError: " in p and "disk I/O error" in p for p in problems), problems
        # Backing off: 4 loops failing for 0.5 s + 1 s do not claim hundreds of times.
        assert FlakyStore.failed < 40
        FlakyStore.failing = False
        await lab.post("quiet", 1, "/ping", chat=7)
        await wait_until(
            lambda: lab.telegram.calls_to("sendMessage"), timeout=15, what="the ping's reply"
        )
        await wait_until(
            lambda: not lab.processor.problems(), timeout=15, what="every loop to recover"
        )


async def test_a_processor_marks_its_instance_stopped_so_its_leases_are_free(
    pool: WorkerPool, tmp_path: Path
) -> None:
    """A cleanly stopped processor's instance is not live; a new one sees it gone at once."""
    folders = [write_bot(tmp_path / "bots", "quiet", {"ping.py": PING})]
    async with hosted(pool, tmp_path, folders) as lab:
        lab.processor.start()
        host = lab.processor.instance.host
        now = lab.services.clock

        async def registered() -> bool:
            return [i.instance_id for i in await lab.store.live_instances(host, now=now())] == [
                lab.processor.owner
            ]

        await wait_until(registered, timeout=10, what="the instance to register")
        assert lab.processor.problems() == []
        await lab.processor.stop()
        assert await lab.store.live_instances(host, now=now()) == []


async def test_an_instance_of_this_host_whose_process_is_gone_is_reaped(
    pool: WorkerPool, tmp_path: Path
) -> None:
    """An instance whose pid is gone (kill -9) is marked stopped by the next heartbeat's reap."""
    folders = [write_bot(tmp_path / "bots", "quiet", {"ping.py": PING})]
    async with hosted(pool, tmp_path, folders) as lab:
        me = lab.processor.instance
        now = lab.services.clock()
        dead = Instance("dead", me.host, 2**22 + 1, "1")  # past pid_max by default: no process
        alive = Instance("sibling", me.host, me.pid, me.started)
        for other in (dead, alive):
            await lab.store.register_instance(other, now=now, alive_until=now + 60)
        assert await lab.processor.heartbeat.reap() == ["dead"]
        live = await lab.store.live_instances(me.host, now=now)
        assert [i.instance_id for i in live] == ["sibling"]
