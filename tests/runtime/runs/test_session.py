"""Bot.run's limits, through a real runner and processor: generations, the pending cap, commits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from runtime.store import MISSING, NewRun, SqliteStore, Versioned
from sandbox import WorkerPool
from tests.support.runtime import Hosted, hosted, wait_until, write_bot

ERROR = (
    '"""\ncommand: "!"\n"""\nBot.sendMessage(f"failed: {error[\'type\']}: {error[\'message\']}")\n'
)
NOOP = '"""\ncommand: noop\n"""\nBot.setProperty("noop_ran", True)\n'
HOP = (
    '"""\ncommand: /hop\n"""\ng = options or 0\nBot.setProperty(f"hop{g}", True)\n'
    "try:\n    Bot.run(command='/hop', options=g + 1)\n"
    "except Exception as e:\n    Bot.sendMessage(f'stopped at {g}: {e}')\n"
)
BURST = (
    '"""\ncommand: /burst\n"""\ndone = 0\ntry:\n    for i in range(20):\n'
    "        Bot.run(command='noop', run_after=3600)\n        done += 1\n"
    "except Exception as e:\n    Bot.sendMessage(f'queued {done}: {e.limit}={e.value}: {e}')\n"
)
RACE = (
    '"""\ncommand: /race\n"""\nBot.run(command="noop", run_after=3600)\n'
    'Bot.setProperty("mine", True)\nBot.getProperty("race")\n'
)


class RacingStore(SqliteStore):
    """A store on which reading the property ``race`` lets a rival fill the bot's cap of 5 first.

    The rival is a second store on the same file, as another server process would be: it lands
    its runs between the script's ``Bot.run`` check and the script's commit.
    """

    async def read_property(self, bot_id: str, scope: str, name: str) -> Versioned:
        """Let the rival commit when the script reads ``race``; then read as usual."""
        if name == "race":
            rival = SqliteStore(self.path)
            await rival.open()
            try:
                await rival.commit_run(
                    bot_id,
                    [],
                    [NewRun("rival", {"command": "noop"}, run_after=1e12)] * 5,
                    max_bot_bytes=1000,
                    max_pending_runs=5,
                )
            finally:
                await rival.close()
        return await super().read_property(bot_id, scope, name)


@pytest.fixture
async def lab(pool: WorkerPool, tmp_path: Path) -> AsyncIterator[Hosted]:
    """Bots `chain` (3 generations) and `capped` (5 pending runs), processed in-process."""
    folders = [
        write_bot(
            tmp_path / "bots",
            "chain",
            {"hop.py": HOP, "error.py": ERROR},
            yaml="runs:\n  max_generations: 3\n",
        ),
        write_bot(
            tmp_path / "bots",
            "capped",
            {"burst.py": BURST, "noop.py": NOOP, "race.py": RACE, "error.py": ERROR},
            yaml="runs:\n  max_pending: 5\n",
        ),
    ]
    async with hosted(pool, tmp_path, folders, store_class=RacingStore) as running:
        running.processor.start()
        yield running


async def pending(lab: Hosted, bot_id: str, n: int) -> bool:
    """Whether the bot has exactly ``n`` unfinished scheduled runs."""
    return await lab.store.pending_count(bot_id, kind="run") == n


async def texts(lab: Hosted, n: int) -> list[str]:
    """Wait for ``n`` sendMessage calls; return their texts."""
    await wait_until(
        lambda: len(lab.telegram.calls_to("sendMessage")) >= n, timeout=20, what=f"{n} messages"
    )
    return [str(call.params["text"]) for call in lab.telegram.calls_to("sendMessage")]


async def test_a_chain_stops_at_its_last_generation_with_an_error_naming_the_limit(
    lab: Hosted,
) -> None:
    """/hop reschedules itself: generations 0 to 3 run, and generation 3's Bot.run is refused."""
    await lab.post("chain", 1, "/hop", chat=11)
    (text,) = await texts(lab, 1)
    assert text == (
        "stopped at 3: Bot.run refused: this run is generation 3 of a chain started by one "
        "update or click, and runs.max_generations in bot.yaml is 3"
    )
    for g in range(4):
        assert await lab.store.get_property("chain", "bot", f"hop{g}") is True
    await wait_until(lambda: pending(lab, "chain", 0), timeout=10, what="the chain to drain")
    assert await lab.store.get_property("chain", "bot", "hop4") is MISSING


async def test_bot_run_past_the_pending_cap_raises_naming_the_bot_yaml_key(lab: Hosted) -> None:
    """With runs.max_pending 5, the sixth Bot.run raises; later runs of the bot get none in."""
    await lab.post("capped", 1, "/burst", chat=21)
    (first,) = await texts(lab, 1)
    assert first == (
        "queued 5: runs.max_pending=5: Bot.run refused: bot 'capped' has 5 unfinished scheduled "
        "runs (5 of them from this run), and runs.max_pending in bot.yaml is 5"
    )
    await wait_until(lambda: pending(lab, "capped", 5), timeout=10, what="5 runs queued")
    await lab.post("capped", 2, "/burst", chat=22)
    second = (await texts(lab, 2))[1]
    assert second.startswith("queued 0: runs.max_pending=5: Bot.run refused: bot 'capped' has 5")
    assert await lab.store.pending_count("capped", kind="run") == 5


async def test_a_commit_refused_by_the_cap_writes_nothing_and_reports_the_error(
    lab: Hosted,
) -> None:
    """A rival fills the cap between Bot.run's check and the commit: the run fails whole."""
    await lab.post("capped", 1, "/race", chat=31)
    (text,) = await texts(lab, 1)
    assert text == (
        "failed: PendingRunsExceeded: bot 'capped' has 5 unfinished scheduled runs; 1 more would "
        "pass its limit of 5 (runs.max_pending in bot.yaml)"
    )
    assert await lab.store.get_property("capped", "bot", "mine") is MISSING
    assert await lab.store.pending_count("capped", kind="run") == 5
