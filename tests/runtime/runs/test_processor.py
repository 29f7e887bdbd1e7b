"""The queue processor, in-process with a real store and pool: fairness between bots."""

from __future__ import annotations

from pathlib import Path

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
