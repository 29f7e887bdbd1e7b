"""The bots one server hosts: their folders loaded, scripts compiled, tokens looked up.

Tokens come from the environment variable each ``bot.yaml`` names; they stay in the server
process (never in a sandbox worker) and never appear in logs.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from runtime.bots.command import Command
from runtime.bots.folder import BotDefinition, bot_folders, load_bot
from runtime.errors import BotFolderError, ConfigError, NotFound, Problem
from runtime.signing.links import WebhookSettings
from sandbox import Script, ScriptCache

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class LiveBot:
    """A bot as the server runs it: definition, compiled scripts, token, and whether its sends
    are paced to Telegram's flood limits (``telegram.flood_limits`` in bot.yaml)."""

    definition: BotDefinition
    scripts: Mapping[str, Script]
    token: str | None
    webhook_secret: str
    webhook: WebhookSettings = field(default_factory=WebhookSettings)
    paced: bool = True

    @property
    def id(self) -> str:
        """The bot's id (its URL segment and data partition)."""
        return self.definition.config.id

    def script_of(self, command: Command) -> Script:
        """Return the compiled script of one of this bot's commands."""
        return self.scripts[command.name]


def derive_secret(master_key: bytes, purpose: str, bot_id: str) -> str:
    """Derive a per-bot secret for ``purpose`` from the master key (hex, 64 characters)."""
    message = f"{purpose}\x00{bot_id}".encode()
    return hmac.new(master_key, message, hashlib.sha256).hexdigest()


def compile_bot(definition: BotDefinition, cache: ScriptCache) -> dict[str, Script]:
    """Compile every command of a bot; raise BotFolderError listing every compile error."""
    scripts: dict[str, Script] = {}
    problems: list[Problem] = []
    for command in definition.commands.commands:
        script = cache.compile(command.source, filename=command.path, first_line=command.first_line)
        for issue in script.issues:
            problems.append(Problem(f"{issue.kind}: {issue.message}", command.path, issue.line))
        scripts[command.name] = script
    if problems:
        raise BotFolderError(problems)
    return scripts


class Registry:
    """Every bot the server hosts, by id."""

    def __init__(self) -> None:
        self._bots: dict[str, LiveBot] = {}

    @classmethod
    def load(
        cls,
        folders: list[Path],
        *,
        env: Mapping[str, str],
        master_key: bytes,
        cache: ScriptCache,
    ) -> Registry:
        """Load every bot folder; raise ConfigError listing every problem of every bot."""
        registry = cls()
        problems: list[Problem] = []
        for folder in folders:
            try:
                definition = load_bot(folder)
                scripts = compile_bot(definition, cache)
            except ConfigError as exc:
                problems.extend(exc.problems)
                continue
            bot_id = definition.config.id
            if bot_id in registry._bots:
                first = registry._bots[bot_id].definition.folder
                message = f"bot id {bot_id!r} is already used by {first}"
                problems.append(Problem(message, str(folder / "bot.yaml")))
                continue
            token = env.get(definition.config.token_env) or None
            if token is None:
                logger.warning(
                    "bot %s has no token: set %s to let it talk to Telegram",
                    bot_id,
                    definition.config.token_env,
                )
            registry._bots[bot_id] = LiveBot(
                definition,
                scripts,
                token,
                derive_secret(master_key, "telegram-webhook-secret", bot_id),
                definition.config.webhook,
                paced=definition.config.telegram.get("flood_limits", True) is True,
            )
        if problems:
            raise ConfigError(problems)
        return registry

    def add(self, bot: LiveBot) -> None:
        """Add one bot (used by tests and by the loader)."""
        self._bots[bot.id] = bot

    def get(self, bot_id: str) -> LiveBot:
        """Return a bot by id, or raise NotFound."""
        try:
            return self._bots[bot_id]
        except KeyError:
            raise NotFound(f"no bot {bot_id!r} on this server") from None

    def __iter__(self) -> Iterator[LiveBot]:
        return iter(self._bots.values())

    def __len__(self) -> int:
        return len(self._bots)

    @property
    def ids(self) -> list[str]:
        """Every bot id."""
        return list(self._bots)


# bot_folders lives in runtime.bots.folder; named here too for the web layer's import.
__all__ = ["LiveBot", "Registry", "bot_folders", "compile_bot", "derive_secret"]
