"""The runaway-chain incident, replayed against a real server: a command scheduling itself."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from pathlib import Path

from tests.e2e.conftest import DEMO_TOKEN
from tests.support.server import BotboxServer
from tests.support.telegram_standin import TelegramStandIn
from tests.support.updates import make_update

MAX_PENDING = 50
MAX_GENERATIONS = 2
FLOOD = (
    '"""\ncommand: /flood\n"""\ng = options or 0\ntry:\n    for i in range(20):\n'
    "        Bot.run(command='/flood', options=g + 1)\n"
    "except Exception as e:\n    pass\n"
)


def queued_runs(database: Path) -> list[tuple[int | None, str | None]]:
    """Every scheduled run ever enqueued (until pruned): its generation and when it finished."""
    conn = sqlite3.connect(database)
    try:
        rows = conn.execute("SELECT payload, finished_at FROM queue WHERE kind = 'run'").fetchall()
    finally:
        conn.close()
    return [(json.loads(payload).get("generation"), finished) for payload, finished in rows]


def watch_pending(server: BotboxServer, *, until: int | None, timeout: float) -> int:
    """Sample /health until pending reaches ``until`` (None: until it is empty); return the peak."""
    peak, deadline = 0, time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = int(server.client.get("/health").json()["pending"])
        peak = max(peak, pending)
        if (until is not None and pending >= until) or (until is None and pending == 0):
            return peak
        time.sleep(0.02)
    raise TimeoutError(f"pending did not reach {until} within {timeout} s (peak {peak})")


def test_a_self_scheduling_command_stays_bounded_and_ends_across_a_restart(tmp_path: Path):
    """One /flood (20 Bot.run per run) keeps the queue within the cap, crash or not, and ends."""
    folder = tmp_path / "bots" / "flood"
    folder.mkdir(parents=True)
    (folder / "bot.yaml").write_text(
        "id: flood\ntoken_env: DEMO_BOT_TOKEN\ntelegram:\n  flood_limits: false\n"
        f"runs:\n  max_pending: {MAX_PENDING}\n  max_generations: {MAX_GENERATIONS}\n"
    )
    (folder / "flood.py").write_text(FLOOD)
    with TelegramStandIn(tokens={DEMO_TOKEN}) as telegram:
        server = BotboxServer(
            tmp_path / "data",
            telegram_api=telegram.base_url,
            bots_dir=tmp_path / "bots",
            demo=False,
            env={"DEMO_BOT_TOKEN": DEMO_TOKEN, "BOTBOX_LEASE_SECONDS": "1"},
        )
        server.start()
        try:
            update = make_update(
                update_id=1, user_id=5, chat_id=5, text="/flood", bot_token=DEMO_TOKEN
            )
            assert server.post_update(update, bot_id="flood").status_code == 200
            peak = watch_pending(server, until=MAX_PENDING // 2, timeout=30)
            server.stop(signal.SIGKILL)
            server.start()
            peak = max(peak, watch_pending(server, until=None, timeout=60))
        finally:
            server.close()
    runs = queued_runs(tmp_path / "data" / "botbox.sqlite3")
    assert peak <= MAX_PENDING + 1  # the one update counts too, while it runs
    assert {generation for generation, _ in runs} <= {1, 2}
    assert all(finished is not None for _, finished in runs)
    assert 20 <= len(runs) <= 20 + 20 * 20
