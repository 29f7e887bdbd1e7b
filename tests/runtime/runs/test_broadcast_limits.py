"""A broadcast's steps, driven by the runner on a real store, against the bot's own limits."""

from __future__ import annotations

from pathlib import Path

from sandbox import WorkerPool
from tests.support.runtime import hosted, write_bot

NEWS = '"""\ncommand: news\n"""\nBot.sendMessage("news")\n'


async def test_a_broadcast_never_queues_past_the_bots_runs_max_pending(
    pool: WorkerPool, tmp_path: Path
) -> None:
    """With runs.max_pending 8, no step leaves more than 8 unfinished runs queued (its own item
    included), however many users are left: the bot's Bot.run and schedules keep working."""
    folder = write_bot(
        tmp_path / "bots", "few", {"news.py": NEWS}, yaml="runs:\n  max_pending: 8\n"
    )
    async with hosted(pool, tmp_path, [folder]) as lab:
        bot = lab.registry.get("few")
        spec = {"command": "news", "users": list(range(1, 41)), "options": None, "generation": 1}
        await lab.store.enqueue("few", "run", "broadcast", {"broadcast": spec})
        now, users = lab.services.clock(), []
        for _ in range(500):  # as a processor would, the user's runs finished unrun
            now += 10.0
            item = await lab.store.claim("t", now=now, lease_seconds=30)
            if item is None:
                break
            if item.chat_key == "broadcast":
                await lab.runner.handle_item(bot, item)
                assert await lab.store.pending_count("few", kind="run") <= 8
            else:
                users.append(item.payload["user"]["id"])  # type: ignore[call-overload,index]
            await lab.store.finish(item, "t")
        assert sorted(users) == list(range(1, 41))  # every user still gets the run, once
