"""Benchmark of the queue's claim: how long one claim + finish takes on the SQLite store.

Run it from the project root: ``.venv/bin/python bench/claim.py``. Each scenario fills a fresh
store file (in a temporary dir), then times ``claim`` followed by ``finish`` (one worker, so the
figure is the store's cost, not the processor's) and prints p50 and p99 per claim:

- ``1 bot, idle``: one ready update at a time (the common case);
- ``1 bot, 10k ready``: a deep backlog of updates across 1,000 chats;
- ``100 bots x 100 ready``: many bots, each with a backlog;
- ``1k far-future runs + 1 bot``: a bot whose runs wait for their time (``run_after``), beside
  another bot's ready updates: each claim scans past the waiting runs;
- ``1k due runs (cap) + 4 in flight``: a bot at its pending-runs cap with four items leased
  (as four processor loops would hold), while other bots' updates arrive.

The baseline is an empty claim (nothing ready) on the same file.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runtime.store import SqliteStore  # noqa: E402

NOW = 1_000_000.0
Fill = Callable[[SqliteStore], Awaitable[None]]


async def one_ready(store: SqliteStore) -> None:
    """Nothing queued beforehand: the loop enqueues one update before each claim."""


async def updates(store: SqliteStore, bots: int, per_bot: int, chats: int) -> None:
    """Ready updates for ``bots`` bots, spread over ``chats`` chats each."""
    for b in range(bots):
        for n in range(per_bot):
            await store.enqueue(f"bot{b}", "update", f"c{n % chats}", {"n": n}, update_id=n)


async def far_future(store: SqliteStore) -> None:
    """1,000 runs of one bot due in an hour, then ready updates of another bot."""
    for n in range(1000):
        await store.enqueue("later", "run", f"c{n}", {}, run_after=NOW + 3600)
    await updates(store, 1, 2000, 100)


async def capped_and_leased(store: SqliteStore) -> None:
    """1,000 due runs of one bot (four leased), and ready updates of ten other bots."""
    for n in range(1000):
        await store.enqueue("busy", "run", f"c{n}", {})
    for n in range(4):
        await store.claim(f"loop{n}", now=NOW, lease_seconds=3600, bot_ids=["busy"])
    await updates(store, 10, 200, 50)


async def measure(fill: Fill, claims: int, *, refill: bool = False) -> list[float]:
    """Fill a fresh store, then time ``claims`` claim + finish pairs; return seconds each."""
    with tempfile.TemporaryDirectory() as work:
        store = SqliteStore(Path(work) / "bench.sqlite3", synchronous="OFF")
        await store.open()
        try:
            await fill(store)
            times: list[float] = []
            for n in range(claims):
                if refill:
                    await store.enqueue("bot0", "update", "c", {}, update_id=10**6 + n)
                start = time.perf_counter()
                item = await store.claim("w", now=NOW, lease_seconds=60)
                if item is not None:
                    await store.finish(item, "w")
                times.append(time.perf_counter() - start)
            return times
        finally:
            await store.close()


def row(label: str, times: list[float]) -> None:
    """Print p50 and p99 of one scenario in microseconds."""
    ordered = sorted(times)
    p50 = statistics.median(ordered) * 1e6
    p99 = ordered[int(len(ordered) * 0.99) - 1] * 1e6
    print(f"{label:<36} p50 {p50:8.0f} us   p99 {p99:8.0f} us   ({len(times)} claims)")


async def main() -> None:
    """Run every scenario and print its figures."""
    print(f"SQLite store, synchronous=OFF, Python {sys.version.split()[0]}")
    row("baseline: empty claim", await measure(one_ready, 500))
    row("1 bot, idle", await measure(one_ready, 500, refill=True))
    row("1 bot, 10k ready", await measure(lambda s: updates(s, 1, 10_000, 1000), 1000))
    row("100 bots x 100 ready", await measure(lambda s: updates(s, 100, 100, 100), 1000))
    row("1k far-future runs + 1 bot", await measure(far_future, 1000))
    row("1k due runs (cap) + 4 in flight", await measure(capped_and_leased, 1000))


if __name__ == "__main__":
    asyncio.run(main())
