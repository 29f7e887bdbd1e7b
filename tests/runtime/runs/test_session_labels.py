"""Labelled runs from scripts: ``Bot.run(label=)``, ``Bot.listRuns``, ``Bot.cancelRuns``, through
the real store, pool and processor."""

from __future__ import annotations

from collections.abc import Awaitable
from pathlib import Path

from runtime.store import MISSING
from sandbox import WorkerPool
from tests.support.runtime import hosted, wait_until, write_bot

PLAN = (
    '"""\ncommand: /plan\n"""\n'
    "for i in range(3):\n"
    "    Bot.run(command='remind', run_after=1.5, label='reminder-42', options=i)\n"
)
CANCEL = (
    '"""\ncommand: /cancel\n"""\n'
    "listed = Bot.listRuns(label='reminder-42')\n"
    "n = Bot.cancelRuns(label='reminder-42')\n"
    "Bot.run(command='remind', run_after=2.5, label='control', options='control')\n"
    "Bot.setProperty('result', {'listed': [[r['command'], r['label'], r['status']]"
    " for r in listed], 'cancelled': n, 'after': Bot.listRuns(label='reminder-42'),"
    " 'mine': Bot.cancelRuns('control')})\n"
    "Bot.run(command='remind', run_after=2.5, label='control', options='control')\n"
)
REMIND = (
    '"""\ncommand: remind\n"""\n'
    'Bot.setProperty("ran", (Bot.getProperty("ran") or []) + [options])\n'
)
BAD = (
    '"""\ncommand: /bad\n"""\n'
    "errors = []\n"
    "for label in ['', 'has space', 'x' * 65, 7]:\n"
    "    try:\n"
    "        Bot.run(command='remind', label=label)\n"
    "    except Exception as e:\n"
    "        errors.append(str(e))\n"
    "try:\n"
    "    Bot.listRuns(limit=1000)\n"
    "except Exception as e:\n"
    "    errors.append(str(e))\n"
    "Bot.setProperty('errors', errors)\n"
)


async def is_set(value: Awaitable[object]) -> bool:
    return await value is not MISSING


async def test_three_labelled_runs_are_listed_cancelled_and_none_of_them_runs(
    pool: WorkerPool, tmp_path: Path
) -> None:
    files = {"plan.py": PLAN, "cancel.py": CANCEL, "remind.py": REMIND}
    folders = [
        write_bot(tmp_path / "bots", "mine", files),
        write_bot(tmp_path / "bots", "theirs", files),
    ]
    async with hosted(pool, tmp_path, folders) as lab:
        lab.processor.start()
        await lab.post("mine", 1, "/plan", chat=7)
        await lab.post("theirs", 1, "/plan", chat=7)

        async def planned() -> bool:
            return len(await lab.store.pending_runs("mine", label="reminder-42")) == 3

        await wait_until(planned, timeout=20, what="three labelled runs")
        await lab.post("mine", 2, "/cancel", chat=7)

        async def result() -> object:
            return await lab.store.get_property("mine", "bot", "result")

        await wait_until(lambda: is_set(result()), timeout=20, what="the cancel")
        assert await result() == {
            "listed": [["remind", "reminder-42", "pending"]] * 3,
            "cancelled": 3,
            "after": [],
            "mine": 1,  # a run this run queued itself, before its commit
        }

        async def control_ran() -> object:
            return await lab.store.get_property("mine", "bot", "ran")

        # The control run was due after the cancelled ones: once it ran, they would have too.
        await wait_until(lambda: is_set(control_ran()), timeout=20, what="the control run")
        assert await control_ran() == ["control"]
        # The other bot's runs with the same label were not touched: all three run.

        async def theirs_ran() -> bool:
            ran = await lab.store.get_property("theirs", "bot", "ran")
            return ran is not MISSING and len(ran) == 3  # type: ignore[arg-type]

        await wait_until(theirs_ran, timeout=20, what="the other bot's runs")


async def test_bad_labels_and_limits_are_refused_with_a_clear_error(
    pool: WorkerPool, tmp_path: Path
) -> None:
    folder = write_bot(tmp_path / "bots", "strict", {"bad.py": BAD, "remind.py": REMIND})
    async with hosted(pool, tmp_path, [folder]) as lab:
        lab.processor.start()
        await lab.post("strict", 1, "/bad", chat=7)

        async def errors() -> object:
            return await lab.store.get_property("strict", "bot", "errors")

        await wait_until(lambda: is_set(errors()), timeout=20, what="the errors")
        found = await errors()
        assert isinstance(found, list) and len(found) == 5
        assert all("label must be" in e for e in found[:4]), found
        assert "limit must be 1 to 100" in found[4]
        assert await lab.store.pending_runs("strict") == []
