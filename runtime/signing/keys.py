"""Keys: the server's master key, and the key ring that signs user webhook links.

The master key (``master.key``, 32 random bytes, mode 0600) derives per-bot secrets such as
Telegram's webhook secret. The key ring (``keys.json``, mode 0600) holds link-signing keys, each
``active`` (signs and verifies; exactly one), ``verifying`` (verifies only: the overlap after a
rotation) or ``retired`` (refused). It also holds each bot's link *epoch*: revoking a bot's links
bumps it, and every link signed under an older epoch stops verifying.

Per-bot link keys are derived, never stored: ``HMAC(key, "link" 0 bot_id 0 epoch 0 generation)``.
The *generation* is the bot's identity, recorded in the store when a bot is first seen (see
:mod:`runtime.store.bots`): a new bot that reuses a removed bot's id gets a new one, so it never
accepts the old bot's links. It is given to :class:`KeyFile` once, at start (never read per
click); bots from before generations existed have ``""``, derived without it. Keys never leave
the server process: scripts receive finished URLs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final, Literal

from runtime.errors import ConfigError

KEY_BYTES: Final = 32
KEY_ID: Final = re.compile(r"k[0-9]{1,6}")
KeyState = Literal["active", "verifying", "retired"]
KEY_STATES: Final = ("active", "verifying", "retired")


def load_master_key(path: Path) -> bytes:
    """Return the master key in ``path``, creating a new random one if the file is missing."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        key = secrets.token_bytes(KEY_BYTES)
        _write_private(path, key.hex() + "\n")
        return key
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the master key file {path}: {exc}") from exc
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ConfigError(f"the master key file {path} does not hold a hex key") from None
    if len(key) < 16:
        raise ConfigError(f"the master key in {path} is shorter than 16 bytes")
    return key


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically with mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One link-signing key."""

    id: str
    secret: bytes
    state: KeyState
    created: float


@dataclass(frozen=True, slots=True)
class KeyRing:
    """The link-signing keys, every bot's link epoch and generation (a pure value).

    ``keys`` and ``epochs`` are what ``keys.json`` holds; ``generations`` come from the store.
    """

    keys: tuple[SigningKey, ...]
    epochs: dict[str, int] = field(default_factory=dict)
    generations: Mapping[str, str] = field(default_factory=dict)

    @property
    def active(self) -> SigningKey:
        """The key that signs new links."""
        return next(k for k in self.keys if k.state == "active")

    def find(self, key_id: str) -> SigningKey | None:
        """A key that may verify (active or verifying) by id, or None."""
        for key in self.keys:
            if key.id == key_id and key.state != "retired":
                return key
        return None

    def epoch(self, bot_id: str) -> int:
        """The bot's current link epoch (0 until its links are first revoked)."""
        return self.epochs.get(bot_id, 0)

    def bot_key(self, key: SigningKey, bot_id: str) -> bytes:
        """The per-bot link key derived from ``key`` under the bot's epoch and generation."""
        message = f"link\x00{bot_id}\x00{self.epoch(bot_id)}"
        generation = self.generations.get(bot_id, "")
        if generation:  # "" is a bot from before generations: its links stay as they were
            message += f"\x00{generation}"
        return hmac.new(key.secret, message.encode(), hashlib.sha256).digest()

    def rotated(self, now: float) -> KeyRing:
        """A new active key; the old active key keeps verifying."""
        number = 1 + max(
            (int(k.id.removeprefix("k")) for k in self.keys if k.id.removeprefix("k").isdigit()),
            default=0,
        )
        demoted = tuple(
            replace(k, state="verifying") if k.state == "active" else k for k in self.keys
        )
        fresh = SigningKey(f"k{number}", secrets.token_bytes(KEY_BYTES), "active", now)
        return replace(self, keys=(*demoted, fresh))

    def retired(self, key_id: str) -> KeyRing:
        """The ring with a verifying key retired (its links stop working)."""
        key = next((k for k in self.keys if k.id == key_id), None)
        if key is None:
            raise ConfigError(f"no key {key_id!r}")
        if key.state == "active":
            raise ConfigError(f"key {key_id} is active: rotate first, then retire it")
        return replace(
            self,
            keys=tuple(replace(k, state="retired") if k.id == key_id else k for k in self.keys),
        )

    def revoked(self, bot_id: str) -> KeyRing:
        """The ring with every existing link of ``bot_id`` revoked."""
        return replace(self, epochs={**self.epochs, bot_id: self.epoch(bot_id) + 1})

    def to_json(self) -> str:
        """The ring as the JSON document ``keys.json`` holds."""
        return (
            json.dumps(
                {
                    "keys": [
                        {
                            "id": k.id,
                            "secret": k.secret.hex(),
                            "state": k.state,
                            "created": k.created,
                        }
                        for k in self.keys
                    ],
                    "epochs": self.epochs,
                },
                indent=2,
            )
            + "\n"
        )

    @classmethod
    def from_json(cls, text: str, *, where: str = "keys.json") -> KeyRing:
        """Parse ``keys.json``; raise ConfigError naming what is wrong."""
        try:
            data = json.loads(text)
            keys = tuple(
                SigningKey(
                    str(k["id"]), bytes.fromhex(k["secret"]), k["state"], float(k["created"])
                )
                for k in data["keys"]
            )
            epochs = {str(b): int(e) for b, e in data.get("epochs", {}).items()}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"{where} is not a valid key ring: {exc!r}") from None
        if any(not KEY_ID.fullmatch(k.id) for k in keys):
            raise ConfigError(f"{where}: a key id is not like k1, k2, ...")
        ids = [k.id for k in keys]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ConfigError(f"{where}: key id {', '.join(repeated)} is used twice")
        if any(k.state not in KEY_STATES for k in keys):
            raise ConfigError(f"{where}: a key state is not one of {', '.join(KEY_STATES)}")
        if sum(k.state == "active" for k in keys) != 1:
            raise ConfigError(f"{where} must have exactly one active key")
        if any(len(k.secret) < 16 for k in keys):
            raise ConfigError(f"{where}: a key is shorter than 16 bytes")
        return cls(keys, epochs)

    @classmethod
    def new(cls, now: float) -> KeyRing:
        """A ring with one fresh active key."""
        return cls((SigningKey("k1", secrets.token_bytes(KEY_BYTES), "active", now),))


class KeyFile:
    """The key ring on disk, re-read when the file changes (so CLI rotations reach servers)."""

    def __init__(
        self,
        path: Path,
        *,
        check_every: float = 1.0,
        generations: Mapping[str, str] | None = None,
    ) -> None:
        self.path = path
        self.check_every = check_every
        self.generations: Mapping[str, str] = dict(generations or {})
        self._ring: KeyRing | None = None
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0

    def load(self) -> KeyRing:
        """Read the ring (with the bots' generations), creating the file if it does not exist."""
        if not self.path.exists():
            _write_private(self.path, KeyRing.new(time.time()).to_json())
        try:
            stat = self.path.stat()
            ring = KeyRing.from_json(self.path.read_text(encoding="utf-8"), where=str(self.path))
        except OSError as exc:
            raise ConfigError(f"cannot read the key ring {self.path}: {exc}") from exc
        ring = replace(ring, generations=self.generations)
        self._ring, self._stamp = ring, (stat.st_mtime_ns, stat.st_size)
        self._checked = time.monotonic()
        return ring

    def set_generation(self, bot_id: str, generation: str) -> None:
        """Use ``generation`` for ``bot_id`` from now on (a bot that appeared or came back)."""
        if self.generations.get(bot_id) == generation:
            return
        self.generations = {**self.generations, bot_id: generation}
        if self._ring is not None:
            self._ring = replace(self._ring, generations=self.generations)

    def current(self) -> KeyRing:
        """The ring, re-read at most every ``check_every`` seconds if the file changed."""
        now = time.monotonic()
        if self._ring is None:
            return self.load()
        if now - self._checked >= self.check_every:
            self._checked = now
            try:
                stat = self.path.stat()
            except OSError:
                return self._ring
            if (stat.st_mtime_ns, stat.st_size) != self._stamp:
                return self.load()
        return self._ring

    def save(self, ring: KeyRing) -> None:
        """Write the ring (atomically, mode 0600)."""
        _write_private(self.path, ring.to_json())
        self._ring = None
