"""Properties under concurrency, through a real runner, processor, pool and store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from runtime.runs.pipeline import MAX_ATTEMPTS
from runtime.store import MISSING, PropertyWrite, SqliteStore, Versioned
from sandbox import WorkerPool
from tests.runtime.store.test_contract import commit_writes
from tests.support.runtime import Hosted, hosted, wait_until, write_bot

COUNT = '"""\ncommand: /count\n"""\nBot.setProperty("runs", Bot.getProperty("runs", 0) + 1)\n'
ERROR = (
    '"""\ncommand: "!"\n"""\nBot.setProperty("last_error", error["type"])\n'
    "Bot.sendMessage(f\"failed: {error['type']}: {error['message']}\")\n"
)
QUIET = '"""\ncommand: /quiet\n"""\nBot.setProperty("mine", Bot.getProperty("race", 0) + 1)\n'
LOUD = (
    '"""\ncommand: /loud\n"""\nv = Bot.getProperty("race", 0)\nBot.sendMessage(f"saw {v}")\n'
    'Bot.setProperty("mine", v + 1)\n'
)
INC = '"""\ncommand: /inc\n"""\nBot.incProperty("hits")\nUser.incProperty("mine", by=2)\n'
CHAT = (
    '"""\ncommand: /chat\n"""\nChat.setProperty("topic", "cats")\nChat.incProperty("n")\n'
    "Bot.sendMessage(f\"{Chat.getProperty('topic')} {Chat.getProperty('n')}\")\n"
)
LIST = (
    '"""\ncommand: /list\n"""\nnames, after = [], None\nwhile True:\n'
    '    page = User.getPropertyNames(prefix="k", after=after, limit=2)\n'
    '    names += page["names"]\n    after = page["next"]\n    if after is None:\n        break\n'
    'Bot.sendMessage(",".join(names))\n'
)
CAS = (
    '"""\ncommand: /cas\n"""\nv = Bot.getPropertyVersion("seat")\n'
    'a = Bot.setProperty("seat", "me", if_version=v)\n'
    'b = Bot.setProperty("seat", "x", if_version=v + 1)\n'
    'Bot.sendMessage(f"{v} {a} {b}")\n'
)


class RacingStore(SqliteStore):
    """A store on which reading ``race`` lets a rival process write it first, ``rivals`` times."""

    rivals = 0

    async def read_property(self, bot_id: str, scope: str, name: str) -> Versioned:
        """Read as usual; then let the rival (a second store on the file) bump ``race``."""
        seen = await super().read_property(bot_id, scope, name)
        if name == "race" and RacingStore.rivals > 0:
            RacingStore.rivals -= 1
            rival = SqliteStore(self.path)
            await rival.open()
            try:
                await rival.commit_run(
                    bot_id,
                    [PropertyWrite("bot", "race", add=10)],
                    [],
                    max_bot_bytes=10**6,
                    max_pending_runs=5,
                )
            finally:
                await rival.close()
        return seen


@pytest.fixture
async def lab(pool: WorkerPool, tmp_path: Path) -> AsyncIterator[Hosted]:
    """Bot `counter`, processed in-process by eight concurrent loops."""
    files = {"count.py": COUNT, "error.py": ERROR, "quiet.py": QUIET, "loud.py": LOUD}
    files |= {"inc.py": INC, "chat.py": CHAT, "list.py": LIST, "cas.py": CAS}
    folders = [write_bot(tmp_path / "bots", "counter", files)]
    RacingStore.rivals = 0
    async with hosted(pool, tmp_path, folders, concurrency=8, store_class=RacingStore) as running:
        running.processor.start()
        yield running


async def finished(lab: Hosted, bot_id: str, n: int) -> bool:
    """Whether ``n`` runs of the bot's commands were logged."""
    await lab.services.runlog.flush()
    return len(await lab.store.list_runs(bot_id, limit=1000)) >= n


async def test_46_overlapping_read_modify_write_runs_lose_no_update(lab: Hosted) -> None:
    """46 runs of get+1/set in 46 chats at once: the property ends at exactly 46."""
    for n in range(46):
        await lab.post("counter", n + 1, "/count", chat=100 + n)
    await wait_until(lambda: finished(lab, "counter", 46), timeout=60, what="46 runs")
    assert await lab.store.get_property("counter", "bot", "runs") == 46
    assert await lab.store.get_property("counter", "bot", "last_error") is MISSING


async def texts(lab: Hosted, n: int) -> list[str]:
    """Wait for ``n`` sendMessage calls; return their texts."""
    await wait_until(
        lambda: len(lab.telegram.calls_to("sendMessage")) >= n, timeout=20, what=f"{n} messages"
    )
    return [str(call.params["text"]) for call in lab.telegram.calls_to("sendMessage")]


async def last_run(lab: Hosted, command: str) -> dict[str, object]:
    """The logged run of ``command`` (waits for it): its status, error and extra."""
    found: list[object] = []

    async def logged() -> bool:
        await lab.services.runlog.flush()
        found[:] = [r for r in await lab.store.list_runs("counter") if r.command == command]
        return bool(found)

    await wait_until(logged, timeout=20, what=f"a run of {command}")
    record = found[0]
    return {"status": record.status, "error": record.error, **record.extra}  # type: ignore[attr-defined]


async def test_a_run_whose_read_went_stale_is_re_run_transparently(lab: Hosted) -> None:
    """A rival writes ``race`` after /quiet read it: the commit is refused, the run runs again."""
    RacingStore.rivals = 1
    await lab.post("counter", 1, "/quiet", chat=5)
    run = await last_run(lab, "/quiet")
    assert run["status"] == "ok" and run["retries"] == 1
    assert await lab.store.get_property("counter", "bot", "mine") == 11
    assert lab.telegram.calls_to("sendMessage") == []


async def test_a_stale_run_that_already_called_telegram_fails_with_conflict_error(
    lab: Hosted,
) -> None:
    """/loud sent a message before its commit was refused: ConflictError, seen by `!`, no write."""
    RacingStore.rivals = 1
    await lab.post("counter", 1, "/loud", chat=5)
    saw, failed = await texts(lab, 2)
    assert saw == "saw 0"
    assert failed.startswith("failed: ConflictError: property 'race' (bot) changed while this run")
    assert (await last_run(lab, "!"))["status"] == "ok"  # `!` committed by then
    assert await lab.store.get_property("counter", "bot", "mine") is MISSING
    assert await lab.store.get_property("counter", "bot", "last_error") == "ConflictError"
    run = await last_run(lab, "/loud")
    assert run["status"] == "script_error" and run["retries"] == 0


async def test_a_run_that_keeps_losing_gives_up_after_the_last_attempt(lab: Hosted) -> None:
    """With a rival on every read, /quiet is tried MAX_ATTEMPTS times, then fails ConflictError."""
    RacingStore.rivals = MAX_ATTEMPTS
    await lab.post("counter", 1, "/quiet", chat=5)
    run = await last_run(lab, "/quiet")
    assert run["retries"] == MAX_ATTEMPTS - 1
    assert run["error"]["type"] == "ConflictError"  # type: ignore[index]
    assert await lab.store.get_property("counter", "bot", "mine") is MISSING


async def test_46_overlapping_increments_with_inc_property_never_conflict(lab: Hosted) -> None:
    """46 runs of Bot.incProperty and User.incProperty at once: 46 hits, no retry at all."""
    for n in range(46):
        await lab.post("counter", n + 1, "/inc", chat=100 + n % 2)
    await wait_until(lambda: finished(lab, "counter", 46), timeout=60, what="46 runs")
    assert await lab.store.get_property("counter", "bot", "hits") == 46
    assert await lab.store.get_property("counter", "user:100", "mine") == 46
    runs = await lab.store.list_runs("counter", limit=100)
    assert {run.extra["retries"] for run in runs} == {0}


async def test_chat_properties_are_per_chat_and_see_the_runs_own_writes(lab: Hosted) -> None:
    """Chat.setProperty/incProperty/getProperty write the current chat's scope only."""
    await lab.post("counter", 1, "/chat", chat=7)
    assert await texts(lab, 1) == ["cats 1"]
    assert (await last_run(lab, "/chat"))["status"] == "ok"  # committed by then
    assert await lab.store.get_property("counter", "chat:7", "n") == 1
    assert await lab.store.get_property("counter", "chat:8", "n") is MISSING


async def test_property_names_page_through_a_users_properties_by_prefix(lab: Hosted) -> None:
    """User.getPropertyNames pages of 2 with ``next``: every name with the prefix, in order."""
    await commit_writes(
        lab.store,
        "counter",
        [PropertyWrite("user:9", name, 1) for name in ("k3", "k1", "x", "k2", "k10", "k4")],
        max_bot_bytes=10**6,
    )
    await lab.post("counter", 1, "/list", chat=9)
    assert await texts(lab, 1) == ["k1,k10,k2,k3,k4"]


async def test_set_property_if_version_sets_only_at_the_version_read(lab: Hosted) -> None:
    """getPropertyVersion is 0 when unset; if_version=0 sets, a wrong version returns False."""
    await lab.post("counter", 1, "/cas", chat=9)
    assert await texts(lab, 1) == ["0 True False"]
    assert (await last_run(lab, "/cas"))["status"] == "ok"  # committed by then
    assert await lab.store.get_property("counter", "bot", "seat") == "me"
