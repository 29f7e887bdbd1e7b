"""Benchmark of flood pacing: what reserving a send slot in the store costs each message.

Run it from the project root: ``.venv/bin/python bench/flood.py``. Every send of a bot with
``telegram.flood_limits: true`` reserves its slot with ``Store.reserve_send`` (one transaction
on the store's thread). This prints p50 and p99 per call, and calls per second, for:

- ``baseline: hit_rates``: one link click's rate count, the store write every click pays
  (the same thread, the same unsynced connection, the same shape: a few rows in one
  transaction);
- ``reserve, 30/s, private``: sends to 1,000 private chats in turn at Telegram's 30 a second
  (the clock moves 1/30 s per send: the steady state of a busy bot);
- ``reserve, 30/s, one group``: the same into one group (bot, chat and 20-a-minute windows):
  30 times what the group takes, so most calls find no slot within the 120 s horizon;
- ``reserve, burst of 1000``: 1,000 sends asked for at the same moment (a pile of reservations
  up to 33 s ahead): the worst case, bounded in practice by ``wait_seconds``;
- ``reserve, 3 processes``: three processes reserving at once on one store file, each at 10
  sends a second of its clock (30 a second in all), total calls per second: the cost of
  sharing the windows across processes.

The figures to compare: reserve against the baseline, both measured in this run.
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

from runtime.store import RateHit, SqliteStore, Window  # noqa: E402
from runtime.telegram.flood import limits_for, pause_keys  # noqa: E402

CALLS = 2000
CHILD = """
import asyncio, sys, time
sys.path.insert(0, sys.argv[2])
from runtime.store import SqliteStore, Window
from runtime.telegram.flood import limits_for, pause_keys

async def main():
    store = SqliteStore(sys.argv[1])
    await store.open()
    print("ready", flush=True)
    sys.stdin.readline()
    start = float(sys.argv[4])
    for n in range(int(sys.argv[3])):
        chat = 10_000 + n % 1000
        windows = [Window(l.key, l.count, l.period) for l in limits_for("sendMessage", chat)]
        await store.reserve_send("b3", windows, pause_keys(chat), now=start + n / 10,
                                 horizon=120)
    await store.close()
    print("done", flush=True)

asyncio.run(main())
"""


def windows(chat: int) -> list[Window]:
    """The windows a sendMessage to ``chat`` must fit."""
    return [Window(lim.key, lim.count, lim.period) for lim in limits_for("sendMessage", chat)]


def report(name: str, seconds: list[float]) -> None:
    """Print p50, p99 and the rate of one scenario."""
    ordered = sorted(seconds)
    p50 = statistics.median(ordered) * 1e6
    p99 = ordered[int(len(ordered) * 0.99) - 1] * 1e6
    rate = len(ordered) / sum(ordered)
    print(f"{name:<28} p50 {p50:7.0f} us   p99 {p99:7.0f} us   {rate:8.0f} calls/s")


async def timed(calls: int, make: object) -> list[float]:
    """Time ``calls`` awaits of ``make(n)``."""
    out = []
    for n in range(calls):
        started = time.perf_counter()
        await make(n)  # type: ignore[operator]
        out.append(time.perf_counter() - started)
    return out


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "bench.sqlite3")
        await store.open()
        try:
            report(
                "baseline: hit_rates",
                await timed(
                    CALLS,
                    lambda n: store.hit_rates(
                        [RateHit(f"link:{n % 1000}", 100, 60.0), RateHit("bot:b", 10**6, 60.0)],
                        now=time.time(),
                    ),
                ),
            )
            start = time.time()
            report(
                "reserve, 30/s, private",
                await timed(
                    CALLS,
                    lambda n: store.reserve_send(
                        "b",
                        windows(10_000 + n % 1000),
                        pause_keys(10_000 + n % 1000),
                        now=start + n / 30,
                        horizon=120,
                    ),
                ),
            )
            report(
                "reserve, 30/s, one group",
                await timed(
                    CALLS,
                    lambda n: store.reserve_send(
                        "g", windows(-100), pause_keys(-100), now=start + n / 30, horizon=120
                    ),
                ),
            )
            report(
                "reserve, burst of 1000",
                await timed(
                    1000,
                    lambda n: store.reserve_send(
                        "burst", windows(n), pause_keys(n), now=start, horizon=1e9
                    ),
                ),
            )
        finally:
            await store.close()
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                CHILD,
                str(Path(tmp) / "bench.sqlite3"),
                str(ROOT),
                str(CALLS),
                str(time.time()),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            for _ in range(3)
        ]
        for proc in procs:
            assert proc.stdout is not None
            await proc.stdout.readline()
        started = time.perf_counter()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
        for proc in procs:
            await proc.communicate()
        elapsed = time.perf_counter() - started
        print(f"{'reserve, 3 processes':<28} {3 * CALLS / elapsed:46.0f} calls/s in all")


if __name__ == "__main__":
    asyncio.run(main())
