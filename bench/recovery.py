"""Benchmark of recovery after a crash: how long a restarted server takes to drain its queue.

Run it from the project root: ``.venv/bin/python bench/recovery.py`` (``--updates N`` and
``--rounds N`` to change the size; default 1,000 updates, 2 rounds of each scenario).

Both scenarios end the same way: a server starts (``python run.py serve`` through
``tests.support.server.BotboxServer``, default ``BOTBOX_LEASE_SECONDS`` of 120 s, 2 sandbox
workers) on a data dir whose queue holds the same N acknowledged updates of one bot (``*``:
``Bot.sendMessage(message)``, flood pacing off), in N / 4 chats, 4 updates each, and talks to
the Bot API stand-in (``tests.support.telegram_standin``, in this process). Measured: from the
moment the server process is launched, and from its first ``/health`` 200 ("ready"), until the
queue is empty and every update's message has reached the stand-in.

- ``baseline``: the N updates are written by the store API (what the webhook does before its
  200) into a fresh data dir; no server ever held them. Pure start-up and drain time.
- ``kill -9``: a server is started whose Bot API address is a socket that never answers; the
  first update of four chats is posted, and its run hangs in ``sendMessage`` (the server's four
  queue loops are all held so), then the other updates are posted through the webhook (each
  answered 200, so stored) and the server is killed with SIGKILL. Its four leases are live for
  120 s; before instances and heartbeats, those four chats (16 updates) waited that long.

The goal (issue 8): the kill -9 drain under 5 s, close to the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

# Run as ``python bench/recovery.py``, this file's folder comes first on sys.path and
# ``bench/sandbox.py`` would shadow the ``sandbox`` package: put the project root there instead.
ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from runtime.store import SqliteStore  # noqa: E402
from runtime.telegram.update import parse_update  # noqa: E402
from tests.support.server import BotboxServer  # noqa: E402
from tests.support.telegram_standin import TelegramStandIn  # noqa: E402
from tests.support.updates import make_update  # noqa: E402

BOT_ID: Final = "bench"
TOKEN: Final = "424242:BENCH-token"
PER_CHAT: Final = 4
HELD: Final = 4
"""Updates in flight at the crash: the server's queue loops (2 per sandbox worker, 2 workers)."""
BOT_YAML: Final = (
    f"id: {BOT_ID}\ntoken_env: BENCH_BOT_TOKEN\ntelegram:\n  flood_limits: false\n"
    "limits:\n  wall_seconds: 60\n"
)
ECHO_PY: Final = '"""\ncommand: "*"\n"""\nBot.sendMessage(message)\n'
DRAIN_DEADLINE: Final = 300.0


def write_bot(root: Path) -> Path:
    """The bench bot's folder under ``root``; return the bots dir."""
    folder = root / "bots" / BOT_ID
    folder.mkdir(parents=True)
    (folder / "bot.yaml").write_text(BOT_YAML)
    (folder / "echo.py").write_text(ECHO_PY)
    return root / "bots"


def updates(n: int) -> list[dict[str, object]]:
    """N updates in N / 4 chats; the first ``HELD`` are the first of their chats."""
    chats = max(1, n // PER_CHAT)
    return [
        make_update(
            update_id=i + 1,
            user_id=i % chats + 1,
            chat_id=i % chats + 1,
            text=f"m{i}",
            bot_token=TOKEN,
        )
        for i in range(n)
    ]


def server(data: Path, bots: Path, api: str) -> BotboxServer:
    """A server (not started) for the bench bot."""
    env = {"BENCH_BOT_TOKEN": TOKEN, "BOTBOX_SANDBOX_WORKERS": "2"}
    return BotboxServer(data, telegram_api=api, env=env, bots_dir=bots, demo=False)


@contextmanager
def silent_api() -> Iterator[str]:
    """A Bot API address that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1024)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


async def enqueue_directly(data: Path, items: list[dict[str, object]]) -> None:
    """Store the updates as the webhook does before answering 200."""
    store = SqliteStore(data / "botbox.sqlite3")
    await store.open()
    try:
        for payload in items:
            update = parse_update(payload)
            await store.enqueue(
                BOT_ID, "update", update.chat_key, payload, update_id=update.update_id
            )
    finally:
        await store.close()


def crash_with_pending(data: Path, bots: Path, items: list[dict[str, object]]) -> None:
    """Post every update to a server whose Bot API hangs, its loops held; then kill -9 it."""
    with silent_api() as api:
        doomed = server(data, bots, api)
        doomed.start()
        try:
            for payload in items[:HELD]:
                assert doomed.post_update(payload, bot_id=BOT_ID).status_code == 200
            wait_claimed(data, HELD)
            for payload in items[HELD:]:
                assert doomed.post_update(payload, bot_id=BOT_ID).status_code == 200
            pending = doomed.client.get("/health").json()["pending"]
            assert pending == len(items), f"{len(items) - pending} were handled before the crash"
            doomed.stop(signal.SIGKILL)
        finally:
            doomed.close()


def wait_claimed(data: Path, n: int, timeout: float = 30.0) -> None:
    """Wait until ``n`` queue items are claimed (their runs hang in the Bot API call)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sqlite3.connect(data / "botbox.sqlite3") as conn:
            (claimed,) = conn.execute(
                "SELECT COUNT(*) FROM queue WHERE status = 'claimed'"
            ).fetchone()
        if claimed >= n:
            return
        time.sleep(0.05)
    raise TimeoutError(f"{n} items were not claimed within {timeout} s")


def drain(data: Path, bots: Path, standin: TelegramStandIn, n: int) -> tuple[float, float]:
    """Start a server on ``data``; return seconds from launch and from ready until drained."""
    standin.clear()
    restarted = server(data, bots, standin.base_url)
    launched = time.monotonic()
    restarted.start()
    ready = time.monotonic()
    try:
        deadline = launched + DRAIN_DEADLINE
        while time.monotonic() < deadline:
            sent = len(standin.calls_to("sendMessage"))
            if sent >= n and restarted.client.get("/health").json()["pending"] == 0:
                done = time.monotonic()
                return done - launched, done - ready
            time.sleep(0.02)
        raise TimeoutError(f"not drained within {DRAIN_DEADLINE} s")
    finally:
        restarted.close()


def main() -> None:
    """Run the scenarios, alternating, and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--updates", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    items = updates(args.updates)
    results: dict[str, list[tuple[float, float]]] = {"baseline": [], "kill -9": []}
    with (
        tempfile.TemporaryDirectory(prefix="botbox-recovery-") as tmp,
        TelegramStandIn(tokens={TOKEN}) as standin,
    ):
        for round_ in range(args.rounds):
            for scenario, figures_of in results.items():
                work = Path(tmp) / f"{scenario.replace(' ', '')}-{round_}"
                bots = write_bot(work)
                data = work / "data"
                data.mkdir()
                if scenario == "baseline":
                    asyncio.run(enqueue_directly(data, items))
                else:
                    crash_with_pending(data, bots, items)
                figures = drain(data, bots, standin, len(items))
                figures_of.append(figures)
                print(
                    f"  .. {scenario} #{round_ + 1}: launch->drained {figures[0]:.2f} s, "
                    f"ready->drained {figures[1]:.2f} s",
                    flush=True,
                )
    print(
        f"\nDrain of {len(items)} acknowledged updates ({len(items) // PER_CHAT} chats), "
        f"lease {120} s, {HELD} in flight at the crash; median of {args.rounds}:"
    )
    print(f"  {'scenario':<10} {'launch->drained':>16} {'ready->drained':>15}")
    for scenario, rounds in results.items():
        launch = statistics.median(r[0] for r in rounds)
        ready = statistics.median(r[1] for r in rounds)
        print(f"  {scenario:<10} {launch:>14.2f} s {ready:>13.2f} s")
    extra = statistics.median(r[1] for r in results["kill -9"]) - statistics.median(
        r[1] for r in results["baseline"]
    )
    print(f"  kill -9 costs {extra:+.2f} s over the baseline (goal: kill -9 under 5 s)")


if __name__ == "__main__":
    main()
