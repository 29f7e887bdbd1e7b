"""Telegram's flood limits, as data: which sliding windows a Bot API call must fit.

Telegram allows a bot about 30 messages a second overall, about one a second in one chat, and
about 20 a minute in one group or channel (its FAQ, "My bot is hitting limits, how do I avoid
this?"). A call that posts into a chat belongs to the bot's window, its chat's, and for a group
its group's; other calls are not paced. When Telegram still answers 429, ``retry_after`` pauses
what the call was about: its chat (or the whole bot for a call without a chat).

The windows are reserved in the store (:meth:`runtime.store.Store.reserve_send`), so every
server process shares them; the time a run waits for them is a paced wait
(:class:`sandbox.WaitBudget`): it counts against ``limits.wait_seconds``, not the wall clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

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
BOT_KEY: Final = "bot"


@dataclass(frozen=True, slots=True)
class Limit:
    """One window a call must fit: ``rate`` under ``key`` (for the store's reservations)."""

    key: str
    count: int
    period: float


def is_sending(method: str) -> bool:
    """True for methods that post a message into a chat (the ones Telegram rate-limits)."""
    return method.startswith(SENDING_PREFIXES)


def is_group(chat_id: object) -> bool:
    """True for a group, supergroup or channel id (negative, or a ``@channel`` username)."""
    text = str(chat_id)
    return text.startswith(("-", "@"))


def _chat(chat_id: object) -> int | str | None:
    """A chat id fit to key a window (anything else is refused by the spec check later)."""
    if type(chat_id) is int or (type(chat_id) is str and 0 < len(chat_id) <= 64):
        return chat_id
    return None


def chat_key(chat_id: object) -> str:
    """The key of one chat's window and pause."""
    return f"chat:{chat_id}"


def limits_for(method: str, chat_id: object) -> tuple[Limit, ...]:
    """The windows a call must fit before it is made (none for calls that send nothing)."""
    if not is_sending(method):
        return ()
    found = [Limit(BOT_KEY, GLOBAL_RATE.count, GLOBAL_RATE.period)]
    chat_id = _chat(chat_id)
    if chat_id is not None:
        found.append(Limit(chat_key(chat_id), CHAT_RATE.count, CHAT_RATE.period))
        if is_group(chat_id):
            found.append(Limit(f"group:{chat_id}", GROUP_RATE.count, GROUP_RATE.period))
    return tuple(found)


def pause_keys(chat_id: object) -> tuple[str, ...]:
    """The pauses that hold a call to ``chat_id``: the bot's and its chat's."""
    chat_id = _chat(chat_id)
    return (BOT_KEY,) if chat_id is None else (BOT_KEY, chat_key(chat_id))


def pause_key(chat_id: object) -> str:
    """What a 429 for a call to ``chat_id`` pauses: that chat, or the bot without a chat."""
    chat_id = _chat(chat_id)
    return BOT_KEY if chat_id is None else chat_key(chat_id)
