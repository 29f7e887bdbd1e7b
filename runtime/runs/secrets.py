"""Bot secrets: storing them (CLI and admin API), reading them in runs, masking them in the log.

Secrets are set by an admin or an author of the bot (``run.py secrets set BOT NAME``, or
``PUT /api/v1/bots/{bot_id}/secrets/{name}``), sealed with :class:`SecretBox` (AES-GCM, a key
derived from the master key, bound to the bot and the name) and kept in the store's
``bot_secret`` table: never in ``bot.yaml``, never in a version. Nothing reads a value back out
but a run of that same bot, through ``Secrets.get(name)``.

Masking (:class:`Masker`, pure): before a run is recorded, every occurrence of one of the bot's
secret values in its printed output, the arguments and errors of its capability calls, and its
error message is replaced by ``[secret NAME]``. Output is masked as one text, so a value printed
in pieces (``print(key[:4], end="")``, ``print(key[4:])``) is still caught when the pieces are
adjacent. What masking cannot catch: a value the script transformed (reversed, encoded,
upper-cased, spaced out, split across separate calls), and values shorter than
:data:`~runtime.signing.sealing.MIN_MASKED_CHARS`, which are not masked at all.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from runtime.errors import SecretError
from runtime.signing.sealing import SecretBox, check_name, check_value, masked
from runtime.store import SecretInfo, Store

logger = logging.getLogger(__name__)

CACHE_SECONDS: Final = 2.0
"""How long a process masks with the bot's secrets it read last: a secret set through another
process is masked in this one's run log within this time (the run that read it masks at once)."""


@dataclass(frozen=True, slots=True)
class Masker:
    """Replaces secret values in text by ``[secret NAME]`` (longest values first)."""

    secrets: Mapping[str, str] = field(default_factory=dict)
    """name -> value, for every secret masked."""
    pattern: re.Pattern[str] | None = None
    spellings: Mapping[str, str] = field(default_factory=dict)
    """Each spelling of a value (as it is, and as JSON escapes it) -> the secret's name."""

    @classmethod
    def of(cls, secrets: Mapping[str, str]) -> Masker:
        """A masker for these secrets (name -> value); values too short are left alone."""
        kept = {name: value for name, value in sorted(secrets.items()) if masked(value)}
        spellings: dict[str, str] = {}
        for name, value in kept.items():
            spellings.setdefault(value, name)
            # The value as JSON writes it inside a string (quotes, backslashes, controls).
            spellings.setdefault(json.dumps(value, ensure_ascii=False)[1:-1], name)
            spellings.setdefault(json.dumps(value)[1:-1], name)
        if not spellings:
            return cls()
        alternatives = sorted(spellings, key=len, reverse=True)
        pattern = re.compile("|".join(re.escape(text) for text in alternatives))
        return cls(kept, pattern, spellings)

    def __bool__(self) -> bool:
        return self.pattern is not None

    def with_values(self, extra: Mapping[str, str]) -> Masker:
        """This masker plus more secrets (those a run read, perhaps newer than a cache)."""
        if all(self.secrets.get(name) == value for name, value in extra.items()):
            return self
        return Masker.of({**self.secrets, **extra})

    def text(self, text: str) -> str:
        """``text`` with every secret value replaced."""
        if self.pattern is None or not text:
            return text
        return self.pattern.sub(lambda match: f"[secret {self.spellings[match.group()]}]", text)

    def value(self, value: Any) -> Any:
        """A JSON value with every string (and dict key) masked."""
        if self.pattern is None:
            return value
        if type(value) is str:
            return self.text(value)
        if type(value) is list or type(value) is tuple:
            return [self.value(item) for item in value]
        if type(value) is dict:
            return {self.text(str(key)): self.value(item) for key, item in value.items()}
        return value


NO_MASK: Final = Masker()


@dataclass(slots=True)
class Rekeyed:
    """What :meth:`BotSecrets.rekey` did: ``bot/NAME`` of each secret sealed again, and of each
    that opened with neither key; how many already opened with the current key."""

    resealed: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    current: int = 0


class BotSecrets:
    """The secrets of every bot, for the server (runs) and for admins (CLI and API)."""

    def __init__(
        self, store: Store, box: SecretBox, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.store = store
        self.box = box
        self.clock = clock
        self._cache: dict[str, tuple[float, Masker]] = {}

    # -- admins --
    async def put(self, bot_id: str, name: str, value: str, *, now: float) -> bool:
        """Seal and store a secret; True if it is new. SecretError for a bad name or value."""
        sealed = self.box.seal(bot_id, check_name(name), check_value(value))
        created = await self.store.put_secret(bot_id, name, sealed, now=now)
        self._cache.pop(bot_id, None)
        return created

    async def delete(self, bot_id: str, name: str) -> bool:
        """Delete a secret; False if the bot has none of that name."""
        deleted = await self.store.delete_secret(bot_id, check_name(name))
        self._cache.pop(bot_id, None)
        return deleted

    async def names(self, bot_id: str) -> list[SecretInfo]:
        """A bot's secrets: names and when each was set."""
        return await self.store.list_secrets(bot_id)

    async def rekey(self, old: SecretBox, *, now: float) -> Rekeyed:
        """Seal again with this box every secret that opens only with ``old`` (after the master
        key was replaced). Secrets that already open are left alone; those that open with
        neither are counted in ``unreadable`` and left as they are."""
        done = Rekeyed()
        for bot_id in await self.store.secret_bots():
            for name, sealed in sorted((await self.store.sealed_secrets(bot_id)).items()):
                try:
                    self.box.open(bot_id, name, sealed)
                    done.current += 1
                    continue
                except SecretError:
                    pass
                try:
                    value = old.open(bot_id, name, sealed)
                except SecretError:
                    done.unreadable.append(f"{bot_id}/{name}")
                    continue
                await self.store.put_secret(
                    bot_id, name, self.box.seal(bot_id, name, value), now=now
                )
                done.resealed.append(f"{bot_id}/{name}")
            self._cache.pop(bot_id, None)
        return done

    # -- runs --
    async def get(self, bot_id: str, name: str) -> str | None:
        """One secret's value for a run of this bot (read from the store now), or None.

        A value that does not open (the master key changed, the row was altered or copied from
        another bot or name) is logged and read as missing.
        """
        sealed = (await self.store.sealed_secrets(bot_id, [name])).get(name)
        if sealed is None:
            return None
        try:
            return self.box.open(bot_id, name, sealed)
        except SecretError as exc:
            logger.error("%s", exc)
            return None

    async def masker(self, bot_id: str, extra: Mapping[str, str] | None = None) -> Masker:
        """The masker for a bot's run log: every secret it has (re-read every
        :data:`CACHE_SECONDS`), plus ``extra`` (the values the run itself read)."""
        now = self.clock()
        cached = self._cache.get(bot_id)
        if cached is None or now - cached[0] > CACHE_SECONDS:
            values: dict[str, str] = {}
            for name, sealed in (await self.store.sealed_secrets(bot_id)).items():
                try:
                    values[name] = self.box.open(bot_id, name, sealed)
                except SecretError:
                    continue
            cached = (now, Masker.of(values)) if values else (now, NO_MASK)
            self._cache[bot_id] = cached
        return cached[1].with_values(extra) if extra else cached[1]


__all__ = ["NO_MASK", "BotSecrets", "Masker", "Rekeyed"]
