"""The store contract for recurring schedules and labelled runs (issue 11): every store advances
each occurrence once, across processes, and cancels only what no one has claimed."""

from __future__ import annotations

import asyncio
from pathlib import Path

from runtime.store import NewRun, ScheduleSync, Store
from tests.runtime.store.children import at_once
from tests.runtime.store.test_contract import STORE_FACTORIES

BOT, OTHER = "bot-a", "bot-b"
DAILY = ScheduleSync("daily", "0 9 * * *|UTC", "report", 100.0)


def run_of(command: str, label: str | None = None, at: float = 0.0) -> NewRun:
    return NewRun("global", {"command": command}, at, label)


async def test_a_synced_schedule_is_due_at_its_first_occurrence(store: Store) -> None:
    assert await store.sync_schedules(BOT, 1, [DAILY])
    assert await store.due_schedules([BOT], now=99.0) == []
    (due,) = await store.due_schedules([BOT], now=100.0)
    assert (due.bot_id, due.name, due.command, due.due_at) == (BOT, "daily", "report", 100.0)
    assert await store.due_schedules([OTHER], now=1e9) == []


async def test_advancing_enqueues_the_run_once_and_a_second_advance_is_taken(
    store: Store,
) -> None:
    await store.sync_schedules(BOT, 1, [DAILY])
    (due,) = await store.due_schedules([BOT], now=100.0)
    run = run_of("report", at=100.0)
    assert await store.advance_schedule(due, next_at=200.0, run=run, max_pending=10) == "enqueued"
    assert await store.advance_schedule(due, next_at=200.0, run=run, max_pending=10) == "taken"
    assert await store.pending_count(BOT, kind="run") == 1
    (state,) = await store.bot_schedules(BOT)
    assert (state.due_at, state.last_run_at) == (200.0, 100.0)


async def test_advancing_without_a_run_skips_and_a_full_queue_drops_the_occurrence(
    store: Store,
) -> None:
    await store.sync_schedules(BOT, 1, [DAILY])
    (due,) = await store.due_schedules([BOT], now=100.0)
    assert await store.advance_schedule(due, next_at=200.0, run=None, max_pending=10) == "skipped"
    await store.commit_run(
        BOT, [], [run_of("x")], max_bot_bytes=10**6, max_pending_runs=10, expected=()
    )
    (due,) = await store.due_schedules([BOT], now=200.0)
    outcome = await store.advance_schedule(due, next_at=300.0, run=run_of("r"), max_pending=1)
    assert outcome == "full"
    assert await store.pending_count(BOT, kind="run") == 1
    assert (await store.bot_schedules(BOT))[0].due_at == 300.0


async def test_a_new_version_keeps_unchanged_schedules_restarts_changed_and_drops_removed(
    store: Store,
) -> None:
    hourly = ScheduleSync("hourly", "0 * * * *|UTC", "tick", 100.0)
    await store.sync_schedules(BOT, 1, [DAILY, hourly])
    (due,) = [d for d in await store.due_schedules([BOT], now=100.0) if d.name == "daily"]
    await store.advance_schedule(due, next_at=500.0, run=None, max_pending=10)
    changed = ScheduleSync("hourly", "30 * * * *|UTC", "tock", 130.0)
    again = ScheduleSync("daily", DAILY.spec, DAILY.command, 150.0)
    assert await store.sync_schedules(BOT, 2, [again, changed])
    states = {s.name: (s.spec, s.command, s.due_at) for s in await store.bot_schedules(BOT)}
    assert states == {
        "daily": (DAILY.spec, "report", 500.0),  # unchanged: keeps its next occurrence
        "hourly": ("30 * * * *|UTC", "tock", 130.0),  # changed: starts again
    }
    assert await store.sync_schedules(BOT, 3, [])
    assert await store.bot_schedules(BOT) == []


async def test_an_older_version_never_overwrites_a_newer_ones_schedules(store: Store) -> None:
    """A process that has not loaded version 2 yet syncs version 1: nothing changes."""
    await store.sync_schedules(BOT, 2, [])
    assert not await store.sync_schedules(BOT, 1, [DAILY])
    assert await store.bot_schedules(BOT) == []


async def test_a_stale_row_with_another_spec_is_not_advanced(store: Store) -> None:
    await store.sync_schedules(BOT, 1, [DAILY])
    (due,) = await store.due_schedules([BOT], now=100.0)
    await store.sync_schedules(BOT, 2, [ScheduleSync("daily", "0 10 * * *|UTC", "report", 90.0)])
    assert await store.advance_schedule(due, next_at=200.0, run=None, max_pending=9) == "taken"


async def test_labelled_runs_are_listed_and_cancelled_only_for_their_bot(store: Store) -> None:
    runs = [run_of("remind", "r-1", 50.0), run_of("remind", "r-1", 60.0), run_of("other", "r-2")]
    await store.commit_run(BOT, [], runs, max_bot_bytes=10**6, max_pending_runs=10, expected=())
    await store.commit_run(
        OTHER, [], [run_of("remind", "r-1")], max_bot_bytes=10**6, max_pending_runs=10
    )
    listed = await store.pending_runs(BOT, label="r-1")
    assert [(r.command, r.run_after, r.label, r.status) for r in listed] == [
        ("remind", 50.0, "r-1", "pending"),
        ("remind", 60.0, "r-1", "pending"),
    ]
    assert [r.label for r in await store.pending_runs(BOT, command="other")] == ["r-2"]
    page = await store.pending_runs(BOT, limit=2)
    assert len(page) == 2
    rest = await store.pending_runs(BOT, after=page[-1].seq)
    assert [r.label for r in rest] == ["r-2"]
    assert await store.cancel_runs(BOT, label="r-1") == 2
    assert await store.cancel_runs(BOT, label="r-1") == 0
    assert await store.pending_count(BOT, kind="run") == 1
    assert await store.pending_count(OTHER, kind="run") == 1  # another bot's: untouched
    (left,) = await store.pending_runs(BOT)
    assert await store.cancel_runs(OTHER, seq=left.seq) == 0  # not OTHER's run
    assert await store.cancel_runs(BOT, seq=left.seq) == 1
    assert await store.cancel_runs(BOT) == 0  # neither label nor seq: nothing


async def test_a_claimed_run_is_neither_cancelled_nor_counted(store: Store) -> None:
    await store.commit_run(
        BOT, [], [run_of("a", "x"), run_of("b", "x")], max_bot_bytes=10**6, max_pending_runs=10
    )
    item = await store.claim("me", now=1.0, lease_seconds=30.0)
    assert item is not None
    assert await store.cancel_runs(BOT, label="x") == 1
    (running,) = await store.pending_runs(BOT, label="x")
    assert (running.seq, running.status) == (item.seq, "claimed")
    await store.finish(item, "me")
    assert await store.pending_runs(BOT, label="x") == []


async def test_cancel_racing_claims_never_both_runs_and_reports_cancelled(
    backend: str, tmp_path: Path
) -> None:
    """Two connections: one claims as fast as it can, the other cancels: every run is either
    claimed or counted cancelled, never both, never neither."""
    total = 300
    first = STORE_FACTORIES[backend](tmp_path)
    second = STORE_FACTORIES[backend](tmp_path)
    await first.open()
    await second.open()
    try:
        runs = [run_of("r", "race") for _ in range(total)]
        await first.commit_run(BOT, [], runs, max_bot_bytes=10**6, max_pending_runs=total)
        claimed: list[int] = []

        async def claim_all() -> None:
            # Runs of one chat key go one at a time: each is finished before the next claim.
            while True:
                item = await first.claim("claimer", now=1.0, lease_seconds=30.0)
                if item is None:
                    return
                claimed.append(item.seq)
                await first.finish(item, "claimer")

        async def cancel_soon() -> int:
            deadline = asyncio.get_running_loop().time() + 10
            while len(claimed) < 20:
                assert asyncio.get_running_loop().time() < deadline, "the claimer never started"
                await asyncio.sleep(0.001)
            return await second.cancel_runs(BOT, label="race")

        _, cancelled = await asyncio.gather(claim_all(), cancel_soon())
        assert claimed and cancelled
        assert len(set(claimed)) == len(claimed)
        assert len(claimed) + cancelled == total
        assert await first.pending_count(BOT) == 0
    finally:
        await first.close()
        await second.close()


CHILD_SCHEDULER = """
import asyncio, json, sys
from runtime.store import NewRun
ARG = sys.argv[1]
{opener}

async def main():
    await store.open()
    print("ready", flush=True)
    sys.stdin.readline()
    mine = []
    for k in range(int(sys.argv[2])):
        now = 100.0 + 60.0 * k
        for due in await store.due_schedules(["bot-a"], now=now):
            run = NewRun("global", {{"command": "c", "occurrence": due.due_at}}, due.due_at)
            outcome = await store.advance_schedule(
                due, next_at=due.due_at + 60.0, run=run, max_pending=10**6
            )
            if outcome == "enqueued":
                mine.append(due.due_at)
    await store.close()
    print(json.dumps(mine), flush=True)

asyncio.run(main())
"""


async def test_three_processes_advancing_one_schedule_run_each_occurrence_once(
    backend: str, store: Store, tmp_path: Path
) -> None:
    """Three real processes look at the same schedule at the same moments: every occurrence is
    enqueued exactly once in all."""
    occurrences = 150
    await store.sync_schedules(BOT, 1, [ScheduleSync("m", "* * * * *|UTC", "c", 100.0)])
    got: list[float] = []
    for result in await at_once(backend, tmp_path, CHILD_SCHEDULER, [[str(occurrences)]] * 3):
        got += result  # type: ignore[arg-type]
    assert sorted(got) == [100.0 + 60.0 * k for k in range(occurrences)]
    assert await store.pending_count(BOT, kind="run") == occurrences
