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
    version: int = 0
    """The stored version this is (0: loaded straight from a folder, as tests do)."""
    modules: Mapping[str, Script] = field(default_factory=dict)
    """The bot's shared modules (``lib/*.py``), compiled, by module name (``lib.quiz``)."""

    @property
    def id(self) -> str:
        """The bot's id (its URL segment and data partition)."""
        return self.definition.config.id

    @property
    def tenant(self) -> str:
        """The sandbox pool's tenant: a worker that ran one version never runs another."""
        return f"{self.id}@{self.version}"

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


def compile_modules(definition: BotDefinition, cache: ScriptCache) -> dict[str, Script]:
    """Compile a bot's shared modules (``lib/*.py``); raise BotFolderError listing every error."""
    modules: dict[str, Script] = {}
    problems: list[Problem] = []
    for module in definition.modules:
        script = cache.compile(module.source, filename=module.path)
        for issue in script.issues:
            problems.append(Problem(f"{issue.kind}: {issue.message}", module.path, issue.line))
        modules[module.name] = script
    if problems:
        raise BotFolderError(problems)
    return modules


def live_bot(
    definition: BotDefinition,
    scripts: Mapping[str, Script],
    *,
    env: Mapping[str, str],
    master_key: bytes,
    version: int = 0,
    modules: Mapping[str, Script] | None = None,
) -> LiveBot:
    """A loaded bot with its token (from ``env``) and derived webhook secret."""
    bot_id = definition.config.id
    return LiveBot(
        definition,
        scripts,
        env.get(definition.config.token_env) or None,
        derive_secret(master_key, "telegram-webhook-secret", bot_id),
        definition.config.webhook,
        definition.config.telegram.get("flood_limits", True) is True,
        version,
        dict(modules or {}),
    )


class Registry:
    """Every bot this server process serves, by id, and the bots that failed to load.

    It changes while the server runs (hot reload, :mod:`runtime.runs.reload`): a run holds the
    :class:`LiveBot` it started with, so it finishes on that version.
    """

    def __init__(self) -> None:
        self._bots: dict[str, LiveBot] = {}
        self.refused: dict[str, list[Problem]] = {}
        """Per bot id: the problems of its latest refused deploy, while it is not fixed. A bot
        here and not served never loaded (*failed*); one also served runs an older version."""
        self.disabled: dict[str, str] = {}
        """Per disabled bot id: its webhook secret (a disabled bot serves nothing; its webhook
        acknowledges updates and drops them)."""

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
                modules = compile_modules(definition, cache)
            except ConfigError as exc:
                problems.extend(exc.problems)
                continue
            bot_id = definition.config.id
            if bot_id in registry._bots:
                first = registry._bots[bot_id].definition.folder
                message = f"bot id {bot_id!r} is already used by {first}"
                problems.append(Problem(message, str(folder / "bot.yaml")))
                continue
            bot = live_bot(definition, scripts, env=env, master_key=master_key, modules=modules)
            if bot.token is None:
                logger.warning(
                    "bot %s has no token: set %s to let it talk to Telegram",
                    bot_id,
                    definition.config.token_env,
                )
            registry._bots[bot_id] = bot
        if problems:
            raise ConfigError(problems)
        return registry

    def add(self, bot: LiveBot) -> None:
        """Add one bot, or replace the version served (used by tests and by the loader)."""
        self._bots[bot.id] = bot

    def remove(self, bot_id: str) -> LiveBot | None:
        """Stop serving a bot (runs in flight finish); return what was served, if anything."""
        self.refused.pop(bot_id, None)
        return self._bots.pop(bot_id, None)

    @property
    def failed(self) -> list[str]:
        """The ids of bots that failed to load and serve no version, sorted."""
        return sorted(bot_id for bot_id in self.refused if bot_id not in self._bots)

    @property
    def stale(self) -> list[str]:
        """The ids of bots whose latest change was refused (they serve an older version)."""
        return sorted(bot_id for bot_id in self.refused if bot_id in self._bots)

    def get(self, bot_id: str) -> LiveBot:
        """Return a bot by id, or raise NotFound."""
        try:
            return self._bots[bot_id]
        except KeyError:
            raise NotFound(f"no bot {bot_id!r} on this server") from None

    def find(self, bot_id: str) -> LiveBot | None:
        """Return a bot by id, or None."""
        return self._bots.get(bot_id)

    def __iter__(self) -> Iterator[LiveBot]:
        return iter(self._bots.values())

    def __len__(self) -> int:
        return len(self._bots)

    @property
    def ids(self) -> list[str]:
        """Every bot id."""
        return list(self._bots)


# bot_folders lives in runtime.bots.folder; named here too for the web layer's import.
__all__ = [
    "LiveBot",
    "Registry",
    "bot_folders",
    "compile_bot",
    "compile_modules",
    "derive_secret",
    "live_bot",
]
