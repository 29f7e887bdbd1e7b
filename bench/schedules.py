"""Benchmark of the scheduler's store work: what one tick costs with many bots and schedules.

Run it from the project root: ``.venv/bin/python bench/schedules.py``. On a fresh store file
it syncs ``BOTS`` bots with ``PER_BOT`` schedules each (``* * * * *``), then times:

- ``due, none due``: one ``due_schedules`` read of every bot when nothing is due (what every
  process does every ``BOTBOX_SCHEDULE_TICK`` most of the time);
- ``advance + enqueue``: advancing one due schedule and enqueuing its run (one transaction),
  per occurrence, when every schedule is due at once;
- ``sync, unchanged``: re-syncing one bot whose version changed but schedules did not.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runtime.store import NewRun, ScheduleSync, SqliteStore  # noqa: E402

BOTS = 1000
PER_BOT = 5


def ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered) * 1000:.3f} ms, p99 {p99 * 1000:.3f} ms"


async def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        store = SqliteStore(Path(folder) / "bench.sqlite3", synchronous="NORMAL")
        await store.open()
        ids = [f"bot-{n}" for n in range(BOTS)]
        entries = [ScheduleSync(f"s{k}", "* * * * *|UTC", "tick", 1000.0) for k in range(PER_BOT)]
        for bot_id in ids:
            await store.sync_schedules(bot_id, 1, entries)
        idle = []
        for _ in range(200):
            started = time.perf_counter()
            await store.due_schedules(ids, now=999.0)
            idle.append(time.perf_counter() - started)
        print(f"due, none due ({BOTS} bots x {PER_BOT}): {ms(idle)}")
        advance = []
        due = await store.due_schedules(ids, now=1000.0)
        for row in due:
            run = NewRun("global", {"command": "tick", "trigger": "schedule:s"}, row.due_at)
            started = time.perf_counter()
            await store.advance_schedule(row, next_at=1060.0, run=run, max_pending=10**6)
            advance.append(time.perf_counter() - started)
        print(f"advance + enqueue ({len(due)} due): {ms(advance)}")
        resync = []
        for n, bot_id in enumerate(ids[:200]):
            started = time.perf_counter()
            await store.sync_schedules(bot_id, 2 + n, entries)
            resync.append(time.perf_counter() - started)
        print(f"sync, unchanged ({PER_BOT} schedules): {ms(resync)}")
        await store.close()


if __name__ == "__main__":
    asyncio.run(main())
