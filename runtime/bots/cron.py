"""Recurring schedules, pure: cron expressions in a time zone, and what to run after downtime.

A schedule names wall-clock times in its time zone (``0 9 * * *`` in ``Europe/Berlin``: 09:00
there, summer and winter). Expressions are evaluated with `croniter` on *naive local* times and
each candidate is turned into an instant with :mod:`zoneinfo` (``fold=0``), so the DST rules
are ours, not the library's:

- a wall time skipped by a spring-forward change (02:30 on the last Sunday of March in Berlin)
  runs at the same offset after the change: 03:30 local, once;
- a wall time that happens twice in a fall-back change (02:30 on the last Sunday of October)
  runs once, the first time;
- two candidates that land on the same instant (02:00 and 03:00 on a spring-forward day) run
  once.

Missed occurrences (:func:`plan`): when a schedule is looked at, every occurrence from its stored
``due_at`` up to now is due. Only the latest of them may run, and only if it is at most
``catch_up`` seconds old (or at most :data:`ON_TIME` old, which counts as on time whatever
``catch_up`` says); the others are skipped and counted, so the caller can log them.

Labels of queued runs (``Bot.run(..., label=...)``) are checked here too (:func:`label_problem`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter

ALIASES: Final = frozenset(
    {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)
ON_TIME: Final = 60.0
"""An occurrence at most this old runs even with ``catch_up: 0`` (the scheduler looks every
``BOTBOX_SCHEDULE_TICK`` seconds and may be a little late)."""
DEFAULT_CATCH_UP: Final = 3600.0
MAX_CATCH_UP: Final = 7 * 86400.0
MAX_SKIPPED_COUNTED: Final = 10_000
"""Skipped occurrences are counted up to this many (then "at least")."""
_MAX_STEPS: Final = 8
"""Candidates tried per :func:`next_after` call before giving up (DST collisions need 2)."""

LABEL: Final = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
"""What ``Bot.run(label=...)`` accepts: 1 to 64 letters, digits, ``_ . : -``."""


class CronError(ValueError):
    """A cron expression or time zone that cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class Cron:
    """A checked cron expression in a time zone."""

    expression: str
    timezone: str = "UTC"

    def zone(self) -> ZoneInfo:
        """The time zone (already known to exist: see :func:`parse_cron`)."""
        return ZoneInfo(self.timezone)


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do with a schedule whose occurrence ``due_at`` has come."""

    run_at: float | None
    """The occurrence to run now (its time), or None when every due occurrence is skipped."""
    next_at: float
    """The first occurrence after now: the schedule's next ``due_at``."""
    skipped: int
    """How many due occurrences are not run (at most :data:`MAX_SKIPPED_COUNTED`)."""
    first_skipped: float | None = None
    last_skipped: float | None = None


def parse_cron(expression: str, timezone: str = "UTC") -> Cron:
    """Check a five-field cron expression (or ``@daily`` and the like) and an IANA time zone."""
    fields = expression.split()
    if not (len(fields) == 5 or (len(fields) == 1 and fields[0].lower() in ALIASES)):
        raise CronError(
            f"cron {expression!r} must have five fields (minute hour day month weekday) "
            "or be one of " + ", ".join(sorted(ALIASES))
        )
    if not croniter.is_valid(expression):
        raise CronError(f"cron {expression!r} is not a valid cron expression")
    if not timezone or timezone != timezone.strip():
        raise CronError(f"timezone {timezone!r} is not an IANA time zone name")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise CronError(
            f"timezone {timezone!r} is not a known IANA time zone (like Europe/Berlin or UTC)"
        ) from None
    cron = Cron(" ".join(fields), timezone)
    try:
        next_after(cron, 0.0)
    except CronError:
        raise CronError(f"cron {expression!r} never occurs") from None
    return cron


def next_after(cron: Cron, after: float) -> float:
    """The first occurrence strictly after ``after`` (Unix seconds), as Unix seconds."""
    zone = cron.zone()
    local = datetime.fromtimestamp(after, zone).replace(tzinfo=None)
    try:
        it = croniter(cron.expression, local)
        for _ in range(_MAX_STEPS):
            candidate: datetime = it.get_next(datetime)
            instant = candidate.replace(tzinfo=zone, fold=0).timestamp()
            if instant > after:
                return instant
    except (CroniterBadDateError, CroniterError, OverflowError, ValueError):
        raise CronError(f"cron {cron.expression!r} has no occurrence after {after}") from None
    raise CronError(f"cron {cron.expression!r} has no occurrence after {after}")


def plan(cron: Cron, due_at: float, now: float, catch_up: float) -> Plan:
    """Decide what a schedule runs when its occurrence ``due_at`` (<= now) is looked at.

    The latest occurrence at or before ``now`` runs if it is at most ``max(catch_up, ON_TIME)``
    seconds old; every other occurrence from ``due_at`` on is skipped (and counted).
    """
    previous: float | None = None
    latest, count = due_at, 1
    current = next_after(cron, due_at)
    while current <= now and count < MAX_SKIPPED_COUNTED:
        previous, latest, count = latest, current, count + 1
        current = next_after(cron, current)
    if current <= now:  # far behind (every minute, weeks down): find the last two from now
        previous, latest = _last_two(cron, now, latest)
    next_at = next_after(cron, max(now, latest))
    runs = now - latest <= max(catch_up, ON_TIME)
    skipped = count - 1 if runs else count
    if skipped == 0:
        return Plan(latest, next_at, 0)
    last = previous if runs else latest
    return Plan(latest if runs else None, next_at, skipped, due_at, last)


def _last_two(cron: Cron, now: float, hint: float) -> tuple[float, float]:
    """The last two occurrences at or before ``now`` (searching the last two days at most)."""
    previous, latest = hint, hint
    current = next_after(cron, max(hint, now - 2 * 86400.0))
    while current <= now:
        previous, latest = latest, current
        current = next_after(cron, current)
    return previous, latest


def label_problem(label: object) -> str | None:
    """Why ``label`` cannot label a queued run, or None."""
    if type(label) is not str:
        return "label must be text"
    if not LABEL.fullmatch(label):
        return "label must be 1 to 64 characters: letters, digits, _ . : -"
    return None


def iso(instant: float, timezone: str = "UTC") -> str:
    """An instant as ISO 8601 text in a time zone (for logs and the admin API)."""
    zone = UTC if timezone == "UTC" else ZoneInfo(timezone)
    return datetime.fromtimestamp(instant, zone).isoformat(timespec="seconds")


__all__ = [
    "DEFAULT_CATCH_UP",
    "LABEL",
    "MAX_CATCH_UP",
    "ON_TIME",
    "Cron",
    "CronError",
    "Plan",
    "iso",
    "label_problem",
    "next_after",
    "parse_cron",
    "plan",
]
