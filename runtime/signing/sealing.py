"""Bot secrets at rest: AES-256-GCM with a key derived from the server's master key.

The key is ``HMAC-SHA256(master_key, "bot-secrets" 0 "aes-256-gcm")``: one key for this one
purpose, never stored, never used for anything else (links and webhook secrets derive their own
keys). Each value is sealed with a fresh random 96-bit nonce, and the bot id and the secret's
name are the associated data, so a sealed value copied to another bot or another name (in the
database, by anyone who can write it) does not open: it fails as tampered, never as the other
secret's value.

Layout of a sealed value: one version byte (``1``), the 12-byte nonce, then the ciphertext and
its 16-byte tag. Pure: no I/O; the store keeps the bytes, the CLI and the server hold the key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from runtime.errors import SecretError

VERSION: Final = 1
NONCE_BYTES: Final = 12
NAME_PATTERN: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
MAX_VALUE_CHARS: Final = 16_384
"""The longest secret value (a service account's JSON key fits)."""
MIN_MASKED_CHARS: Final = 8
"""Secrets shorter than this are stored and readable but not masked in the run log: a short
value such as ``1234`` or ``yes`` would mask every ordinary occurrence of those characters."""


def check_name(name: str) -> str:
    """A secret's name (``STRIPE_KEY``): letters, digits and ``_``, 1 to 64, not a digit first."""
    if type(name) is not str or not NAME_PATTERN.fullmatch(name):
        raise SecretError(
            "a secret's name is 1 to 64 letters, digits and _, not starting with a digit"
        )
    return name


def check_value(value: str) -> str:
    """A secret's value: non-empty text of at most :data:`MAX_VALUE_CHARS` characters."""
    if type(value) is not str or not value:
        raise SecretError("a secret's value must be non-empty text")
    if len(value) > MAX_VALUE_CHARS:
        raise SecretError(f"a secret's value is at most {MAX_VALUE_CHARS} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise SecretError("a secret's value must be valid UTF-8 text") from None
    return value


def masked(value: str) -> bool:
    """Whether a value is long enough to be masked in the run log."""
    return len(value) >= MIN_MASKED_CHARS


class SecretBox:
    """Seals and opens bot secrets with the key derived from the master key."""

    def __init__(self, master_key: bytes) -> None:
        key = hmac.new(master_key, b"bot-secrets\x00aes-256-gcm", hashlib.sha256).digest()
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "SecretBox(<key hidden>)"

    @staticmethod
    def _bound(bot_id: str, name: str) -> bytes:
        return b"botbox-secret\x00" + bot_id.encode() + b"\x00" + name.encode()

    def seal(self, bot_id: str, name: str, value: str) -> bytes:
        """The sealed form of ``value``, bound to this bot and this name."""
        check_name(name)
        check_value(value)
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, value.encode("utf-8"), self._bound(bot_id, name))
        return bytes([VERSION]) + nonce + sealed

    def open(self, bot_id: str, name: str, sealed: bytes) -> str:
        """The value sealed for this bot and name; SecretError if it was sealed for another,
        under another master key, or changed."""
        if len(sealed) < 1 + NONCE_BYTES + 16 or sealed[0] != VERSION:
            raise SecretError(f"secret {name!r} of bot {bot_id!r} is not a sealed value")
        nonce, body = sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
        try:
            plain = self._aead.decrypt(nonce, body, self._bound(bot_id, name))
        except InvalidTag:
            raise SecretError(
                f"secret {name!r} of bot {bot_id!r} does not open with this server's master "
                "key (the key changed, or the stored value was altered or moved)"
            ) from None
        return plain.decode("utf-8")
