"""The queue processor, in-process with a real store and pool: fairness between bots."""

from __future__ import annotations

from pathlib import Path

from runtime.errors import StoreError
from runtime.store import Instance, QueuedItem, SqliteStore
from runtime.telegram.update import chat_key
from sandbox import WorkerPool
from tests.support.runtime import hosted, wait_until, write_bot

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
