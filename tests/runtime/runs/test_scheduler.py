"""The scheduler in-process: an injected clock, the real store, pool and processor."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from runtime.bots.folder import load_bot
from runtime.errors import StoreError
from runtime.runs.registry import compile_bot, live_bot
from runtime.runs.scheduler import Scheduler
from runtime.store import MISSING, DueSchedule, SqliteStore
from sandbox import WorkerPool
from tests.support.runtime import MASTER_KEY, TOKEN, Hosted, hosted, wait_until, write_bot

RECORD = (
    '"""\ncommand: daily\n"""\n'
    "Bot.incProperty('runs')\n"
    "Bot.setProperty('seen', {'user': user, 'chat': chat, 'options': options,"
    " 'params': params})\n"
)
SCHEDULE = (
    "schedules:\n"
    "  - cron: '0 9 * * *'\n"
    "    command: daily\n"
    "    timezone: Europe/Berlin\n"
    "    params: morning\n"
    "    options: {n: 1}\n"
)


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


class Clock:
    """A clock the test moves."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def runs_of(lab: Hosted, bot_id: str) -> int:
    value = await lab.store.get_property(bot_id, "bot", "runs")
    return 0 if value is MISSING else int(value)  # type: ignore[arg-type]


async def test_two_processes_looking_at_a_due_schedule_run_it_once_with_a_schedule_trigger(
    pool: WorkerPool, tmp_path: Path
) -> None:
    folder = write_bot(tmp_path / "bots", "clock", {"daily.py": RECORD}, yaml=SCHEDULE)
    async with hosted(pool, tmp_path, [folder]) as lab:
        clock = Clock(at("2026-01-05T07:00"))  # 08:00 in Berlin
        first = Scheduler(lab.registry, lab.store, clock, on_enqueue=lab.processor.wake)
        second = Scheduler(lab.registry, lab.store, clock, on_enqueue=lab.processor.wake)
        assert await first.tick_once() == 0
        assert await second.tick_once() == 0
        (state,) = await lab.store.bot_schedules("clock")
        assert state.due_at == at("2026-01-05T08:00")  # 09:00 Berlin (UTC+1)
        clock.now = at("2026-01-05T08:00:00.5")
        assert await first.tick_once() + await second.tick_once() == 1
        lab.processor.start()
        await wait_until(lambda: runs_of(lab, "clock"), timeout=20, what="the scheduled run")
        await lab.services.runlog.flush()
        (run,) = await lab.store.list_runs("clock")
        assert (run.trigger, run.command, run.status) == ("schedule:daily", "daily", "ok")
        assert (run.user_id, run.chat_id) == (None, None)
        seen = await lab.store.get_property("clock", "bot", "seen")
        assert seen == {"user": None, "chat": None, "options": {"n": 1}, "params": "morning"}
        # The next day's occurrence is next; ticking again now queues nothing.
        assert await first.tick_once() + await second.tick_once() == 0
        (state,) = await lab.store.bot_schedules("clock")
        assert state.due_at == at("2026-01-06T08:00")
        assert await runs_of(lab, "clock") == 1


async def test_after_downtime_the_latest_missed_occurrence_runs_once_and_older_are_logged(
    pool: WorkerPool, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    yaml = "schedules:\n  - cron: '*/10 * * * *'\n    command: daily\n    catch_up: 900\n"
    folder = write_bot(tmp_path / "bots", "late", {"daily.py": RECORD}, yaml=yaml)
    async with hosted(pool, tmp_path, [folder]) as lab:
        clock = Clock(at("2026-01-05T07:55"))
        scheduler = Scheduler(lab.registry, lab.store, clock)
        await scheduler.tick_once()
        clock.now = at("2026-01-05T09:05")  # down from 07:55: 08:00 ... 09:00 were missed
        with caplog.at_level(logging.WARNING, logger="runtime.runs.scheduler"):
            assert await scheduler.tick_once() == 1
        (item,) = await lab.store.pending_runs("late")
        assert item.run_after == at("2026-01-05T09:00")
        (line,) = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
        assert "skipped 6 occurrence(s) from 2026-01-05T08:00:00+00:00 to 2026-01-05T08:50" in line
        assert "running the one of 2026-01-05T09:00:00+00:00" in line
        clock.now = at("2026-01-05T12:00")  # 09:10 ... 12:00: 12:00 is on time, runs
        assert await scheduler.tick_once() == 1
        clock.now = at("2026-01-05T14:00:30")  # 12:10 ... 14:00 missed, 14:00 is 30 s old
        assert await scheduler.tick_once() == 1
        clock.now = at("2026-01-06T01:20")  # 14:10 ... 01:20 missed; 01:20 is on time: runs
        assert await scheduler.tick_once() == 1
        assert len(await lab.store.pending_runs("late")) == 4


async def test_a_new_version_changes_and_removes_schedules_without_a_restart(
    pool: WorkerPool, tmp_path: Path
) -> None:
    folder = write_bot(tmp_path / "bots", "vers", {"daily.py": RECORD}, yaml=SCHEDULE)
    async with hosted(pool, tmp_path, [folder]) as lab:
        clock = Clock(at("2026-01-05T07:00"))
        scheduler = Scheduler(lab.registry, lab.store, clock)
        await scheduler.tick_once()
        assert [s.spec for s in await lab.store.bot_schedules("vers")] == [
            "0 9 * * *|Europe/Berlin"
        ]

        def deploy(version: int, yaml: str) -> None:
            (folder / "bot.yaml").write_text(
                "id: vers\ntoken_env: TEST_TOKEN\ntelegram:\n  flood_limits: false\n" + yaml
            )
            definition = load_bot(folder)
            scripts = compile_bot(definition, pool.cache)
            lab.registry.add(
                live_bot(
                    definition,
                    scripts,
                    env={"TEST_TOKEN": TOKEN},
                    master_key=MASTER_KEY,
                    version=version,
                )
            )

        deploy(2, SCHEDULE.replace("0 9 * * *", "30 7 * * *"))  # 07:30 Berlin passed: tomorrow
        await scheduler.tick_once()
        (state,) = await lab.store.bot_schedules("vers")
        assert (state.spec, state.due_at) == ("30 7 * * *|Europe/Berlin", at("2026-01-06T06:30"))
        # A process still on version 1 changes nothing.
        old = Scheduler(lab.registry, lab.store, clock)
        deploy(1, SCHEDULE)
        await old.tick_once()
        assert [s.spec for s in await lab.store.bot_schedules("vers")] == [
            "30 7 * * *|Europe/Berlin"
        ]
        deploy(3, "")
        await scheduler.tick_once()
        assert await lab.store.bot_schedules("vers") == []
        clock.now = at("2026-01-06T12:00")
        assert await scheduler.tick_once() == 0
        assert await lab.store.pending_runs("vers") == []


class FlakyStore(SqliteStore):
    """A real SQLite store whose due-schedule reads fail while ``failing`` is set."""

    failing = False
    failed = 0

    async def due_schedules(self, bot_ids: Sequence[str], *, now: float) -> list[DueSchedule]:
        """Fail like a locked disk, or read for real."""
        if self.failing:
            type(self).failed += 1
            raise StoreError("SQLite store 'botbox.sqlite3': database is locked")
        return await super().due_schedules(bot_ids, now=now)


async def test_a_failing_store_makes_the_scheduler_back_off_report_it_and_carry_on(
    pool: WorkerPool, tmp_path: Path
) -> None:
    folder = write_bot(tmp_path / "bots", "flaky", {"daily.py": RECORD}, yaml=SCHEDULE)
    FlakyStore.failing, FlakyStore.failed = True, 0
    async with hosted(pool, tmp_path, [folder], store_class=FlakyStore) as lab:
        clock = Clock(at("2026-01-05T07:00"))
        scheduler = Scheduler(lab.registry, lab.store, clock, tick=0.01)
        scheduler.start()
        try:
            await wait_until(lambda: FlakyStore.failed >= 2, timeout=10, what="two failures")
            (problem,) = scheduler.problems()
            assert problem.startswith("scheduler: StoreError: ") and "locked" in problem
            assert FlakyStore.failed < 10  # backing off (0.5 s, then 1 s), not every 10 ms
            FlakyStore.failing = False
            clock.now = at("2026-01-05T08:00:01")
            await wait_until(lambda: scheduler.enqueued == 1, timeout=10, what="the run queued")
            assert scheduler.problems() == []
        finally:
            await scheduler.stop()
        assert scheduler.problems() == []
