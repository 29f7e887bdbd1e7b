"""Recurring schedules (``schedules:`` in bot.yaml): every process looks, one enqueues.

Each server process runs one :class:`Scheduler`. Every ``tick`` seconds it

1. syncs the schedules of each bot it serves whose version (or schedules) it has not synced yet
   (:meth:`Store.sync_schedules`: an older version never overwrites a newer one's, an unchanged
   schedule keeps its next occurrence, a removed one is deleted), so a new version's schedules
   take effect within a tick of being loaded, without a restart;
2. reads the due schedules of those bots and, for each, decides with
   :func:`runtime.bots.cron.plan` which occurrence runs (the latest one, if at most
   ``catch_up`` seconds old) and which are skipped (logged), then advances the schedule and
   enqueues the run in one store transaction (:meth:`Store.advance_schedule`). Another process
   that advanced it first wins; this one changes nothing. So each occurrence runs once however
   many processes share the store.

The queued item is an ordinary ``run`` item (payload ``trigger: "schedule:<name>"``, no user, no
chat), carried out by the processor like a ``Bot.run``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Final

from runtime.bots.config import Schedule
from runtime.bots.cron import iso, next_after, plan
from runtime.errors import StoreError
from runtime.runs.registry import LiveBot, Registry
from runtime.store import DueSchedule, NewRun, ScheduleSync, Store
from sandbox import JSON

logger = logging.getLogger(__name__)

TRIGGER_PREFIX: Final = "schedule:"
FIRST_BACKOFF: Final = 0.5
MAX_BACKOFF: Final = 10.0


def scheduled_run(schedule: Schedule, occurrence: float) -> NewRun:
    """The queue item one occurrence of a schedule runs as (ready at once)."""
    payload: dict[str, JSON] = {
        "command": schedule.command,
        "user": None,
        "chat": None,
        "options": schedule.options,
        "params": schedule.params,
        "generation": 0,
        "trigger": TRIGGER_PREFIX + schedule.name,
        "occurrence": occurrence,
    }
    return NewRun("global", payload, occurrence)


class Scheduler:
    """Looks at the schedules of the bots in ``registry`` every ``tick`` seconds."""

    def __init__(
        self,
        registry: Registry,
        store: Store,
        clock: Callable[[], float],
        *,
        tick: float = 1.0,
        on_enqueue: Callable[[], None] | None = None,
    ) -> None:
        self.registry = registry
        self.store = store
        self.clock = clock
        self.tick = tick
        self.on_enqueue = on_enqueue
        self.enqueued = 0
        self._synced: dict[str, tuple[int, tuple[Schedule, ...]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()
        self._problem: str | None = None

    def start(self) -> None:
        """Start the loop (one per process)."""
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        """Stop the loop (an occurrence being advanced finishes: it is one transaction)."""
        self._stopped.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def problems(self) -> list[str]:
        """Why the loop is down right now (for ``/health``)."""
        found = [] if self._problem is None else [f"scheduler: {self._problem}"]
        if self._task is not None and self._task.done() and not self._stopped.is_set():
            found.append("scheduler ended")
        return found

    async def _loop(self) -> None:
        failures = 0
        while not self._stopped.is_set():
            try:
                await self.tick_once()
            except Exception as exc:
                failures += 1
                if self._problem is None:
                    if isinstance(exc, StoreError):
                        logger.warning("scheduler: %s; backing off", exc)
                    else:
                        logger.exception("scheduler failed; backing off")
                self._problem = f"{type(exc).__name__}: {exc}"
                await self._pause(min(FIRST_BACKOFF * 2.0 ** (failures - 1), MAX_BACKOFF))
                continue
            if failures:
                failures = 0
                self._problem = None
                logger.info("scheduler: working again")
            await self._pause(self.tick)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopped.wait()

    async def tick_once(self) -> int:
        """Sync what changed, then advance every due schedule once; how many runs it queued."""
        now = self.clock()
        bots = list(self.registry)
        for bot in bots:
            await self._sync(bot, now)
        for gone in set(self._synced) - set(self.registry.ids):
            del self._synced[gone]
        ids = [bot.id for bot in bots if bot.definition.config.schedules]
        queued = 0
        for due in await self.store.due_schedules(ids, now=now):
            owner = self.registry.find(due.bot_id)
            if owner is not None and await self._advance(owner, due, now):
                queued += 1
        if queued:
            self.enqueued += queued
            if self.on_enqueue is not None:
                self.on_enqueue()
        return queued

    async def _sync(self, bot: LiveBot, now: float) -> None:
        schedules = bot.definition.config.schedules
        key = (bot.version, schedules)
        if self._synced.get(bot.id) == key:
            return
        entries = [
            ScheduleSync(s.name, s.spec(), s.command, next_after(s.cron, now)) for s in schedules
        ]
        await self.store.sync_schedules(bot.id, bot.version, entries)
        self._synced[bot.id] = key

    async def _advance(self, bot: LiveBot, due: DueSchedule, now: float) -> bool:
        schedule = next((s for s in bot.definition.config.schedules if s.name == due.name), None)
        if schedule is None or schedule.spec() != due.spec:
            return False  # another version's row: the next sync replaces or deletes it
        decided = plan(schedule.cron, due.due_at, now, schedule.catch_up)
        run = None if decided.run_at is None else scheduled_run(schedule, decided.run_at)
        outcome = await self.store.advance_schedule(
            due,
            next_at=decided.next_at,
            run=run,
            max_pending=bot.definition.config.runs.max_pending,
        )
        if outcome == "taken":
            return False
        if decided.skipped and decided.first_skipped is not None:
            logger.warning(
                "bot %s: schedule %r skipped %d occurrence(s) from %s to %s (older than its "
                "catch_up of %.0f s: the server was not running)%s",
                bot.id,
                schedule.name,
                decided.skipped,
                iso(decided.first_skipped),
                iso(decided.last_skipped or decided.first_skipped),
                schedule.catch_up,
                "" if decided.run_at is None else f"; running the one of {iso(decided.run_at)}",
            )
        if outcome == "full":
            logger.warning(
                "bot %s: schedule %r did not run at %s: the bot has runs.max_pending (%d) "
                "runs queued",
                bot.id,
                schedule.name,
                iso(due.due_at),
                bot.definition.config.runs.max_pending,
            )
        return outcome == "enqueued"


__all__ = ["TRIGGER_PREFIX", "Scheduler", "scheduled_run"]
