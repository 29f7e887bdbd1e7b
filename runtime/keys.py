"""The server's master key: read from its file, or created there (mode 0600) on first start.

Per-bot secrets (the Telegram webhook secret, link-signing keys) are derived from it with
HMAC-SHA256, so nothing per bot needs to be stored or configured.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Final

from runtime.errors import ConfigError

KEY_BYTES: Final = 32


def load_master_key(path: Path) -> bytes:
    """Return the master key in ``path``, creating a new random one if the file is missing."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(KEY_BYTES)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(key.hex() + "\n")
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
