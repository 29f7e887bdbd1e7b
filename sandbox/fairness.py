"""Sharing the pool between tenants: per-tenant caps, round robin, and heat for limit-breakers.

Pure bookkeeping, no processes (the pool does the I/O). The rules:

- A tenant runs on at most ``size`` workers at once, and at most its fair share of the pool's
  ``max_workers`` when others are active (``max_workers // active tenants``, at least one).
- A tenant whose runs keep breaking limits (CPU, wall clock, memory, crashes) is *hot*: its share
  drops to half the pool (at least one worker) until its heat decays (half-life
  :data:`HEAT_HALF_LIFE` seconds), so a spinner cannot hold the workers others need.
- Waiting runs are served round robin between tenants, first come first served within one.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Final, Generic, TypeVar

HEAT_HALF_LIFE: Final = 10.0
"""Seconds for a tenant's heat (count of recent limit breaches) to halve."""
HOT: Final = 1.5
"""Heat at which a tenant is throttled."""

T = TypeVar("T")


class FairShare(Generic[T]):
    """Caps, waiting lines and heat per tenant."""

    def __init__(
        self, *, size: int, max_workers: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.size = size
        self.max_workers = max_workers
        self.clock = clock
        self.busy: Counter[str] = Counter()
        self.lines: dict[str, deque[asyncio.Future[T]]] = {}
        self.turn: deque[str] = deque()
        self.heat: dict[str, tuple[float, float]] = {}

    def cap(self, tenant: str) -> int:
        """How many workers ``tenant`` may hold right now."""
        if self.lines:
            active = len(self.busy.keys() | self.lines.keys() | {tenant})
        else:  # the common case, on every run: nobody waits
            active = len(self.busy) + (tenant not in self.busy)
        cap = min(self.size, max(1, self.max_workers // active))
        if self.heat and self.is_hot(tenant):
            cap = min(cap, max(1, self.size // 2))
        return cap

    def under_cap(self, tenant: str) -> bool:
        """True if ``tenant`` may start one more run."""
        held = self.busy[tenant]
        return held == 0 or held < self.cap(tenant)  # every tenant may hold one

    def started(self, tenant: str) -> None:
        """Count a run of ``tenant`` as holding a worker."""
        self.busy[tenant] += 1

    def finished(self, tenant: str) -> None:
        """A run of ``tenant`` gave its worker back."""
        self.busy[tenant] -= 1
        if self.busy[tenant] <= 0:
            del self.busy[tenant]

    def waiting(self, tenant: str | None = None) -> int:
        """Runs waiting, of one tenant or of all."""
        if tenant is not None:
            return len(self.lines.get(tenant, ()))
        return sum(len(line) for line in self.lines.values())

    def wait(self, tenant: str, future: asyncio.Future[T]) -> None:
        """Put a run of ``tenant`` in its line."""
        line = self.lines.setdefault(tenant, deque())
        if not line:
            self.turn.append(tenant)
        line.append(future)

    def leave(self, tenant: str, future: asyncio.Future[T]) -> None:
        """Take a run out of its line (it was cancelled)."""
        line = self.lines.get(tenant)
        if line is not None and future in line:
            line.remove(future)
            if not line:
                self._drop(tenant)

    def next(self, can_serve: Callable[[str], bool]) -> tuple[str, asyncio.Future[T]] | None:
        """The next run to serve: round robin over tenants under their cap that ``can_serve``."""
        if not self.turn:
            return None
        for _ in range(len(self.turn)):
            tenant = self.turn[0]
            self.turn.rotate(-1)
            line = self.lines[tenant]
            while line and line[0].done():
                line.popleft()
            if not line:
                self._drop(tenant)
                continue
            if self.under_cap(tenant) and can_serve(tenant):
                future = line.popleft()
                if not line:
                    self._drop(tenant)
                return tenant, future
        return None

    def record(self, tenant: str, *, breached: bool) -> None:
        """Warm ``tenant`` up by one if its run broke a limit."""
        if breached:
            self.heat[tenant] = (self.current_heat(tenant) + 1.0, self.clock())

    def current_heat(self, tenant: str) -> float:
        """The tenant's heat now, decayed since its last breach."""
        value, at = self.heat.get(tenant, (0.0, 0.0))
        if not value:
            return 0.0
        decayed = value * math.pow(0.5, (self.clock() - at) / HEAT_HALF_LIFE)
        if decayed < 0.05:
            del self.heat[tenant]
            return 0.0
        return decayed

    def is_hot(self, tenant: str) -> bool:
        """True while the tenant is throttled for breaking limits."""
        return bool(self.heat) and self.current_heat(tenant) >= HOT

    def _drop(self, tenant: str) -> None:
        self.lines.pop(tenant, None)
        if tenant in self.turn:
            self.turn.remove(tenant)
