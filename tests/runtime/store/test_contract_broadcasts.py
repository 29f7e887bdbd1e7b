"""The Store contract for broadcasts: known users, steps that queue each user's run exactly
once (even when a step is handled twice, or by racing processes), and backpressure.
Runs against every store of ``test_contract.STORE_FACTORIES``."""

from __future__ import annotations

from pathlib import Path

from runtime.store import QueuedItem, Store
from tests.runtime.store.children import at_once

BOT = "bot-a"
NOW = 1_000_000.0


def spec(users: list[int] | None, command: str = "/news") -> dict[str, object]:
    """The payload of a broadcast's first step, as ``Bot.broadcast`` commits it."""
    return {"broadcast": {"command": command, "users": users, "options": None, "generation": 1}}


async def start(store: Store, users: list[int] | None) -> QueuedItem:
    """Enqueue a broadcast's first step and claim it."""
    await store.enqueue(BOT, "run", "broadcast", spec(users))
    item = await store.claim("w", now=NOW, lease_seconds=30)
    assert item is not None and item.chat_key == "broadcast"
    return item


async def drain(store: Store, *, now: float = NOW + 3600) -> tuple[list[int], list[QueuedItem]]:
    """Claim and finish every item: return the users of the runs and the broadcast steps."""
    users, steps = [], []
    while (item := await store.claim("w", now=now, lease_seconds=30)) is not None:
        assert isinstance(item.payload, dict)
        if "from_broadcast" in item.payload:
            users.append(item.payload["user"]["id"])  # type: ignore[index]
        elif "broadcast_id" in item.payload:
            steps.append(item)
        await store.finish(item, "w")
    return users, steps


async def test_users_who_write_in_private_become_known_users(store: Store) -> None:
    """A private chat's update records its user once; groups and runs record nobody."""
    await store.enqueue(BOT, "update", "chat:11", {}, update_id=1)
    await store.enqueue(BOT, "update", "chat:11", {}, update_id=2)
    await store.enqueue(BOT, "update", "chat:-100", {}, update_id=3)
    await store.enqueue(BOT, "update", "user:12", {}, update_id=4)
    await store.enqueue(BOT, "run", "chat:13", {})
    await drain(store)
    item = await start(store, None)
    step = await store.drive_broadcast(
        BOT, item.seq, item.payload, now=NOW + 10**6, chunk=10, period=1.0, max_backlog=100
    )  # type: ignore[arg-type]
    assert (step.queued, step.done) == (1, True)


async def test_a_list_broadcast_queues_each_user_once_in_chunks(store: Store) -> None:
    """Chunks of two: the first step queues 5 and 6 and the next step; a repeated step queues
    nothing; the last queues 7 and finishes."""
    item = await start(store, [5, 6, 7])
    first = await store.drive_broadcast(
        BOT, item.seq, item.payload, now=NOW, chunk=2, period=1.0, max_backlog=100
    )  # type: ignore[arg-type]
    again = await store.drive_broadcast(
        BOT, item.seq, item.payload, now=NOW, chunk=2, period=1.0, max_backlog=100
    )  # type: ignore[arg-type]
    assert (first.queued, first.done, again.queued) == (2, False, 0)
    await store.finish(item, "w")
    users, steps = await drain(store, now=NOW + 0.5)
    assert sorted(users) == [5, 6] and steps == []  # the next step waits one period
    (step_item,) = [await store.claim("w", now=NOW + 1.5, lease_seconds=30)]
    assert step_item is not None
    last = await store.drive_broadcast(
        BOT, step_item.seq, step_item.payload, now=NOW + 1.5, chunk=2, period=1.0, max_backlog=100
    )  # type: ignore[arg-type]
    repeat = await store.drive_broadcast(
        BOT, step_item.seq, step_item.payload, now=NOW + 1.5, chunk=2, period=1.0, max_backlog=100
    )  # type: ignore[arg-type]
    assert (last.queued, last.done, repeat.queued) == (1, True, 0)
    await store.finish(step_item, "w")
    users, steps = await drain(store)
    assert users == [7] and steps == []
    (progress,) = await store.broadcasts(BOT)
    assert (progress.id, progress.total, progress.queued) == (item.seq, 3, 3)
    assert progress.finished_at == NOW + 1.5


async def test_every_user_means_those_known_when_it_started(store: Store) -> None:
    """A user who first writes after the broadcast started is not in it."""
    for n, user in enumerate([21, 22, 23]):
        await store.enqueue(BOT, "update", f"chat:{user}", {}, update_id=n + 1)
    await drain(store)
    item = await start(store, None)
    await store.drive_broadcast(
        BOT, item.seq, item.payload, now=NOW + 10**7, chunk=2, period=1.0, max_backlog=100
    )  # type: ignore[arg-type]
    await store.finish(item, "w")
    await store.enqueue(BOT, "update", "chat:24", {}, update_id=9)
    users: list[int] = []
    while True:
        got, steps = await drain(store, now=NOW + 10**8)
        users += got
        if not steps:
            break
        for step in steps:  # drain finished them: re-drive the payload as a new claim would
            await store.drive_broadcast(
                BOT, step.seq, step.payload, now=NOW + 10**8, chunk=2, period=0.0, max_backlog=100
            )  # type: ignore[arg-type]
    assert sorted(users) == [21, 22, 23]


async def test_a_bot_with_a_backlog_holds_its_broadcast_back(store: Store) -> None:
    """Over max_backlog unfinished runs: nothing queued, the same step comes again later."""
    for n in range(3):
        await store.enqueue(BOT, "run", f"chat:{n}", {"command": "/x"}, run_after=NOW + 10**6)
    item = await start(store, [1, 2])
    held = await store.drive_broadcast(
        BOT, item.seq, item.payload, now=NOW, chunk=10, period=1.0, max_backlog=2
    )  # type: ignore[arg-type]
    assert (held.queued, held.done) == (0, False)
    (progress,) = await store.broadcasts(BOT)
    assert progress.queued == 0


CHILD_DRIVER = """
import asyncio, json, sys
ARG = sys.argv[1]
{opener}

async def main():
    await store.open()
    print("ready", flush=True)
    sys.stdin.readline()
    users, idle = [], 0
    while idle < 20:
        item = await store.claim(sys.argv[2], now=2e9, lease_seconds=60)
        if item is None:
            idle += 1
            await asyncio.sleep(0.01)
            continue
        idle = 0
        if "from_broadcast" in item.payload:
            users.append(item.payload["user"]["id"])
        else:
            await store.drive_broadcast("bot-a", item.seq, item.payload, now=1e9, chunk=7,
                                        period=0.0, max_backlog=10**6)
        await store.finish(item, sys.argv[2])
    await store.close()
    print(json.dumps(users), flush=True)

asyncio.run(main())
"""


async def test_three_processes_driving_one_broadcast_queue_each_user_exactly_once(
    store: Store, backend: str, tmp_path: Path
) -> None:
    """Three processes claim and drive a 100-user broadcast: 100 runs, each user once."""
    await store.enqueue(BOT, "run", "broadcast", spec(list(range(1, 101))))
    users: list[int] = []
    for result in await at_once(backend, tmp_path, CHILD_DRIVER, [[f"p{n}"] for n in range(3)]):
        users += result  # type: ignore[arg-type]
    assert sorted(users) == list(range(1, 101))


async def test_a_broadcasts_steps_are_neither_listed_nor_cancelled_as_queued_runs(
    store: Store,
) -> None:
    """Bot.listRuns and GET /scheduled list runs (a step has no command), and cancelling by id
    never deletes a step: that would stop the broadcast half way, never finished."""
    first_seq = await store.enqueue(BOT, "run", "broadcast", spec([5, 6, 7]))
    assert await store.pending_runs(BOT) == []
    assert await store.cancel_runs(BOT, seq=first_seq) == 0
    item = await store.claim("w", now=NOW, lease_seconds=30)
    assert item is not None and item.seq == first_seq
    await store.drive_broadcast(
        BOT, item.seq, item.payload, now=NOW, chunk=2, period=1.0, max_backlog=100
    )  # type: ignore[arg-type]
    await store.finish(item, "w")
    listed = await store.pending_runs(BOT)
    assert [run.command for run in listed] == ["/news", "/news"]  # the users' runs, not the step
    cancelled = [await store.cancel_runs(BOT, seq=seq) for seq in range(first_seq, first_seq + 9)]
    assert sum(cancelled) == 2  # the two users' runs; the next step (queued too) is kept
    users, steps = await drain(store, now=NOW + 1.5)
    assert users == [] and len(steps) == 1  # the next step survived every cancel
