"""Telegram's flood limits, respected in one place instead of in every script.

Telegram allows a bot about 30 messages a second overall, about one a second in one chat, and
about 20 a minute in one group. :class:`FloodGate` spaces a bot's sends to fit, and when Telegram
still answers 429 with ``retry_after``, pauses the whole bot for that long. The gate lives in one
server process; with several processes each keeps its own (documented in the admin guide).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

SENDING_PREFIXES: Final = ("send", "forward", "copy")


@dataclass(frozen=True, slots=True)
class SendRate:
    """At most ``count`` events per ``period`` seconds."""

    count: int
    period: float

    @property
    def interval(self) -> float:
        """Seconds between two events at the steady rate."""
        return self.period / self.count


GLOBAL_RATE: Final = SendRate(30, 1.0)
CHAT_RATE: Final = SendRate(1, 1.0)
GROUP_RATE: Final = SendRate(20, 60.0)
BURST: Final = 3


class _Bucket:
    """A token bucket: ``take`` returns how long to wait before the event may happen."""

    __slots__ = ("burst", "next_free", "rate")

    def __init__(self, rate: SendRate, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self.next_free = 0.0

    def take(self, now: float) -> float:
        earliest = max(self.next_free, now - (self.burst - 1) * self.rate.interval)
        self.next_free = earliest + self.rate.interval
        return max(0.0, earliest - now)


def is_sending(method: str) -> bool:
    """True for methods that post a message into a chat (the ones Telegram rate-limits)."""
    return method.startswith(SENDING_PREFIXES)


class FloodGate:
    """Spaces one bot's Bot API calls to fit Telegram's limits."""

    def __init__(
        self, *, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep, enabled: bool = True
    ) -> None:
        self.enabled = enabled
        self._clock = clock
        self._sleep = sleep
        self._global = _Bucket(GLOBAL_RATE, GLOBAL_RATE.count)
        self._chats: dict[str, _Bucket] = {}
        self._paused_until = 0.0

    def delay(self, method: str, chat_id: object, *, is_group: bool = False) -> float:
        """Reserve a slot for a call and return how many seconds to wait before making it."""
        now = self._clock()
        wait = max(0.0, self._paused_until - now)
        if not is_sending(method) or not self.enabled:
            return wait
        wait = max(wait, self._global.take(now))
        if chat_id is not None:
            key = str(chat_id)
            bucket = self._chats.get(key)
            if bucket is None:
                rate = GROUP_RATE if is_group or key.startswith("-") else CHAT_RATE
                bucket = self._chats[key] = _Bucket(rate, BURST)
                if len(self._chats) > 10_000:
                    self._forget_idle(now)
            wait = max(wait, bucket.take(now))
        return wait

    async def wait(self, method: str, chat_id: object, *, is_group: bool = False) -> None:
        """Sleep until the call may be made."""
        delay = self.delay(method, chat_id, is_group=is_group)
        if delay > 0:
            await self._sleep(delay)

    def pause(self, seconds: float) -> None:
        """Hold every call of this bot for ``seconds`` (Telegram said ``retry_after``)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    def _forget_idle(self, now: float) -> None:
        for key in [k for k, b in self._chats.items() if b.next_free < now]:
            del self._chats[key]
