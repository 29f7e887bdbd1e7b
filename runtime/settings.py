"""Server settings: one frozen value built from ``BOTBOX_*`` environment variables.

Nothing else in botbox reads ``os.environ`` for configuration (bot tokens are read from the
variable each bot's ``bot.yaml`` names, in :mod:`runtime.runs.registry`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from runtime.errors import ConfigError, Problem

PREFIX: Final = "BOTBOX_"
PROJECT_ROOT: Final = Path(__file__).resolve().parent.parent
PACKAGED_DEMO: Final = Path(__file__).resolve().parent / "demo"
"""Where an installed wheel holds the demo bot (setup.py copies ``commands/`` there)."""


def demo_folder() -> Path:
    """The demo bot's folder: the wheel's copy if installed from one, else ``commands/``."""
    return PACKAGED_DEMO if PACKAGED_DEMO.is_dir() else PROJECT_ROOT / "commands"


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true or false")


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError("expected a port number from 0 to 65535")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("expected a whole number of 1 or more")
    return value


def _url(text: str) -> str:
    parts = urlsplit(text.strip())
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError("expected an absolute http(s) URL")
    return text.strip().rstrip("/")


def _sync(text: str) -> str:
    value = text.strip().upper()
    if value not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
        raise ValueError("expected OFF, NORMAL, FULL or EXTRA")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 < value <= 86400:
        raise ValueError("expected seconds, more than 0 and at most 86400")
    return value


def _days(text: str) -> float:
    value = float(text)
    if not 2 <= value <= 3650:
        raise ValueError("expected days, from 2 (Telegram redelivers for a day) to 3650")
    return value


LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _log_level(text: str) -> str:
    value = text.strip().upper()
    if value not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}")
    return value


def _optional_path(text: str) -> Path | None:
    return Path(text) if text.strip() else None


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the server is configured with. Build it with :meth:`from_env`."""

    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = ""
    data_dir: Path = Path("data")
    bots_dir: Path | None = None
    demo: bool = True
    demo_dir: Path = field(default_factory=demo_folder)
    telegram_api: str = "https://api.telegram.org"
    sandbox_workers: int = 0
    sandbox_max_workers: int = 0
    sandbox_queue: int = 0
    server_workers: int = 1
    sqlite_synchronous: str = "FULL"
    store_path: Path | None = None
    master_key_file: Path | None = None
    log_level: str = "INFO"
    lease_seconds: float = 120.0
    retention_days: float = 14.0
    schedule_tick: float = 1.0
    """Seconds between two looks at the recurring schedules (``BOTBOX_SCHEDULE_TICK``)."""

    @property
    def base_url(self) -> str:
        """The public base URL links are made with (``BOTBOX_PUBLIC_URL`` or host:port)."""
        return self.public_url or f"http://{self.host}:{self.port}"

    @property
    def database(self) -> Path:
        """The SQLite file (``BOTBOX_STORE_PATH``, default ``data/botbox.sqlite3``)."""
        return self.store_path or self.data_dir / "botbox.sqlite3"

    @property
    def key_file(self) -> Path:
        """The master signing key file (``BOTBOX_MASTER_KEY_FILE``, default in data dir)."""
        return self.master_key_file or self.data_dir / "master.key"

    @property
    def keys_file(self) -> Path:
        """The link-signing key ring (``keys.json`` in the data directory)."""
        return self.data_dir / "keys.json"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Build settings from ``BOTBOX_*`` keys; raise ConfigError naming every bad key."""
        parsers: dict[str, Callable[[str], Any]] = {
            "host": str.strip,
            "port": _port,
            "public_url": _url,
            "data_dir": Path,
            "bots_dir": _optional_path,
            "demo": _bool,
            "demo_dir": Path,
            "telegram_api": _url,
            "sandbox_workers": _positive,
            "sandbox_max_workers": _positive,
            "sandbox_queue": _positive,
            "server_workers": _positive,
            "sqlite_synchronous": _sync,
            "store_path": _optional_path,
            "master_key_file": _optional_path,
            "log_level": _log_level,
            "lease_seconds": _seconds,
            "retention_days": _days,
            "schedule_tick": _seconds,
        }
        known = {PREFIX + f.name.upper(): f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        problems: list[Problem] = []
        for key, raw in env.items():
            if not key.startswith(PREFIX):
                continue
            name = known.get(key)
            if name is None:
                problems.append(Problem(f"unknown setting {key}", file="environment"))
                continue
            try:
                values[name] = parsers[name](raw)
            except ValueError as exc:
                problems.append(Problem(f"{key}={raw!r}: {exc}", file="environment"))
        if problems:
            raise ConfigError(problems)
        return cls(**values)

    @classmethod
    def from_os_env(cls) -> Settings:
        """Build settings from this process's environment (the one place that reads it)."""
        return cls.from_env(os.environ)
