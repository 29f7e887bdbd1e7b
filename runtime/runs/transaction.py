"""A run's transaction: its buffered property writes and scheduled runs, the versions of the
properties it read, and whether it has done anything outside the store (then it cannot re-run).

At commit the store checks that every property the run read still has the version it read
(:meth:`Transaction.expected`); if not, the commit is refused with ``ConflictError`` and writes
nothing. Together with re-running such runs from the start (``Runner.run_one``) this makes
runs of a bot behave as if executed one at a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, cast

from runtime.store import MISSING, NewRun, PropertyRead, PropertyWrite, Store, Versioned
from runtime.telegram.update import chat_key
from sandbox import JSON, CapabilityError, RunResult


@dataclass(frozen=True, slots=True)
class ScheduledRun:
    """A ``Bot.run`` request, enqueued when the run that asked for it commits."""

    command: str
    user: dict[str, Any] | None
    chat: dict[str, Any] | None
    options: JSON
    run_after: float
    generation: int = 1
    label: str | None = None

    def queued(self) -> NewRun:
        """The queue item that carries this run (its generation travels in the payload)."""
        payload: dict[str, JSON] = {
            "command": self.command,
            "user": self.user,
            "chat": self.chat,
            "options": self.options,
            "generation": self.generation,
        }
        return NewRun(chat_key(self.user, self.chat), payload, self.run_after, self.label)


@dataclass(frozen=True, slots=True)
class BroadcastRun:
    """A ``Bot.broadcast`` request: the queue item that fans ``command`` out to users (every
    known user when ``users`` is None), enqueued when the run that asked for it commits."""

    command: str
    users: tuple[int, ...] | None
    options: JSON
    generation: int = 1
    label: str | None = None
    """Broadcasts carry no label (``Bot.cancelRuns`` never matches one)."""

    def queued(self) -> NewRun:
        """The first step of the broadcast (see :mod:`runtime.store.broadcasts`)."""
        spec: dict[str, JSON] = {
            "command": self.command,
            "users": None if self.users is None else list(self.users),
            "options": self.options,
            "generation": self.generation,
        }
        return NewRun("broadcast", {"broadcast": spec})


@dataclass(slots=True)
class Transaction:
    """A run's buffered property writes and scheduled runs (all or nothing), the versions of
    the properties it read (checked at commit), and whether it did anything outside the store.
    """

    writes: dict[tuple[str, str], PropertyWrite] = field(default_factory=dict)
    scheduled: list[ScheduledRun | BroadcastRun] = field(default_factory=list)
    reads: dict[tuple[str, str], Versioned] = field(default_factory=dict)
    external: bool = False
    """True once the run called Telegram (or had ``res`` applied): it can no longer re-run."""
    result: RunResult | None = None
    """The script's result, once it ended."""
    http: list[JSON] = field(default_factory=list)
    """The HTTP requests the run made (``HTTP.*``), one entry per hop: metadata for the log."""
    http_requests: int = 0
    """HTTP requests (hops) counted against ``http.per_run``."""

    def write(self, change: PropertyWrite) -> None:
        """Buffer a write: a later set or delete replaces an earlier one, adds combine."""
        key = (change.scope, change.name)
        pending = self.writes.get(key)
        if change.add is not None and pending is not None:
            if pending.add is not None:
                change = replace(change, add=pending.add + change.add)
            elif pending.delete:
                change = PropertyWrite(change.scope, change.name, change.add)
            else:
                change = PropertyWrite(change.scope, change.name, _plus(pending.value, change))
        self.writes[key] = change

    async def versioned(self, store: Store, bot_id: str, scope: str, name: str) -> Versioned:
        """The stored value and version, read once per run and remembered for the commit."""
        seen = self.reads.get((scope, name))
        if seen is None:
            seen = await store.read_property(bot_id, scope, name)
            self.reads[(scope, name)] = seen
        return seen

    async def read(self, store: Store, bot_id: str, scope: str, name: str) -> JSON | object:
        """Read a property, seeing this run's own writes first."""
        pending = self.writes.get((scope, name))
        if pending is not None and pending.add is None:
            return MISSING if pending.delete else pending.value
        value = (await self.versioned(store, bot_id, scope, name)).value
        if pending is not None:
            return _plus(0 if value is MISSING else value, pending)
        return value

    def expected(self) -> list[PropertyRead]:
        """The versions the commit must find: every property read, unless one read alone
        with nothing written (a single read is consistent by itself)."""
        if len(self.reads) == 1 and not self.writes and not self.scheduled:
            return []
        return [PropertyRead(s, n, seen.version) for (s, n), seen in self.reads.items()]


def _plus(value: object, change: PropertyWrite) -> JSON:
    """``value + change.add`` for incProperty, refused unless value is a number."""
    if not (type(value) is int or type(value) is float) or change.add is None:
        raise CapabilityError(
            f"incProperty: property {change.name!r} does not hold a number", kind="NotANumber"
        )
    total = cast(float, value) + change.add
    if type(total) is float and not math.isfinite(total):
        raise CapabilityError(f"incProperty: property {change.name!r} would not stay finite")
    return total


__all__ = ["BroadcastRun", "ScheduledRun", "Transaction"]
