"""Which command an update runs: TBL's matching order as a pure function over a prebuilt table.

The order, first match wins:

1. a command name, longest first (``/set name`` beats ``/set``), on the message text or
   callback data; ``/start@MyBot`` counts as ``/start``;
2. an alias, the same way;
3. ``/handle_<update kind>`` (``/handle_callback_query``, ``/handle_my_chat_member``...);
4. ``/inline_query`` for inline queries, ``/channel_update`` for channel posts;
5. ``*``, the fallback, for messages and callback queries.

``group_only`` commands match only in groups and supergroups. The special commands ``@``,
``@@``, ``!`` and ``*`` are never matched by text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Generic, Literal, TypeVar

from runtime.bots.command import AFTER, BEFORE, FALLBACK, ON_ERROR, SPECIAL_NAMES, Command
from runtime.telegram.update import (
    CALLBACK_QUERY,
    CHANNEL_KINDS,
    INLINE_QUERY,
    MESSAGE_KINDS,
    IncomingUpdate,
)
from sandbox import CapabilityError

MatchKind = Literal["name", "alias", "handler", "kind", "fallback"]

GROUP_CHAT_TYPES: Final = frozenset({"group", "supergroup"})
FALLBACK_KINDS: Final = MESSAGE_KINDS | {CALLBACK_QUERY}
"""Update kinds that fall back to ``*``; other kinds run only when a handler names them."""
HANDLER_PREFIX: Final = "/handle_"
INLINE_QUERY_COMMAND: Final = "/inline_query"
CHANNEL_UPDATE_COMMAND: Final = "/channel_update"
MENU_NAME: Final = re.compile(r"/[a-z0-9_]{1,32}")
"""A command Telegram can show in its menu (``BotCommand.command``, with our leading ``/``)."""
MAX_MENU: Final = 100
MAX_MENU_DESCRIPTION: Final = 256


T = TypeVar("T")


def command_key(name: str) -> str:
    """The lookup key of a name: ``/`` names are case-insensitive, others exact."""
    return name.casefold() if name.startswith("/") else name


class NameOwners(Generic[T]):
    """Who owns each command name and alias: one rule, for ``check`` and for dispatch alike."""

    def __init__(self) -> None:
        self._owners: dict[str, T] = {}

    def claim(self, word: str, owner: T) -> T | None:
        """Give ``word`` to ``owner``; if another already has it, return that one instead."""
        key = command_key(word)
        if key in self._owners:
            return self._owners[key]
        self._owners[key] = owner
        return None


@dataclass(frozen=True, slots=True)
class Match:
    """The command an update runs, the text after its name, and which rule matched."""

    command: Command
    params: str
    how: MatchKind


@dataclass(frozen=True, slots=True)
class CommandTable:
    """A bot's commands with their lookups precomputed; build it with :meth:`build`."""

    commands: tuple[Command, ...] = ()
    before: Command | None = None
    after: Command | None = None
    on_error: Command | None = None
    fallback: Command | None = None
    by_name: Mapping[str, Command] = field(
        default_factory=lambda: MappingProxyType({}), repr=False, compare=False
    )
    text_names: Mapping[str, Command] = field(
        default_factory=lambda: MappingProxyType({}), repr=False, compare=False
    )
    aliases: Mapping[str, Command] = field(
        default_factory=lambda: MappingProxyType({}), repr=False, compare=False
    )
    longest_name: int = field(default=0, repr=False, compare=False)
    longest_alias: int = field(default=0, repr=False, compare=False)

    @classmethod
    def build(cls, commands: Iterable[Command]) -> CommandTable:
        """Index ``commands``; raise ``ValueError`` when a name or alias is used twice."""
        ordered = tuple(commands)
        owners: NameOwners[Command] = NameOwners()
        by_name: dict[str, Command] = {}
        aliases: dict[str, Command] = {}
        for command in ordered:
            for word, table in ((command.name, by_name), *((a, aliases) for a in command.aliases)):
                other = owners.claim(word, command)
                if other is not None:
                    raise ValueError(
                        f'"{word}" is used by both {other.path or other.name} '
                        f"and {command.path or command.name}"
                    )
                table[command_key(word)] = command
        text_names = {k: c for k, c in by_name.items() if c.name not in SPECIAL_NAMES}
        return cls(
            commands=ordered,
            before=by_name.get(BEFORE),
            after=by_name.get(AFTER),
            on_error=by_name.get(ON_ERROR),
            fallback=by_name.get(FALLBACK),
            by_name=MappingProxyType(by_name),
            text_names=MappingProxyType(text_names),
            aliases=MappingProxyType(aliases),
            longest_name=max((len(k) for k in text_names), default=0),
            longest_alias=max((len(k) for k in aliases), default=0),
        )


def find(table: CommandTable, name: str) -> Command | None:
    """Return the command named ``name`` exactly (``/`` names case-insensitively), or ``None``."""
    return table.by_name.get(command_key(name))


def require(table: CommandTable, name: str, *, bot_id: str) -> Command:
    """Return a bot's command by exact name, or raise a CapabilityError naming it."""
    command = find(table, name)
    if command is None:
        raise CapabilityError(f"bot {bot_id!r} has no command {name!r}")
    return command


def match(
    table: CommandTable, update: IncomingUpdate, *, bot_username: str | None = None
) -> Match | None:
    """Return the command ``update`` runs, in TBL's order, or ``None`` when nothing matches."""
    chat_type = update.chat_type
    if update.message is not None:
        found = _match_text(table, update.message, chat_type, bot_username)
        if found is not None:
            return found
    params = update.text or ""
    handler = table.by_name.get(command_key(HANDLER_PREFIX + update.type))
    if handler is not None and _allowed(handler, chat_type):
        return Match(handler, params, "handler")
    kind_name = _kind_command(update.type)
    if kind_name is not None:
        command = table.by_name.get(kind_name)
        if command is not None and _allowed(command, chat_type):
            return Match(command, params, "kind")
    fallback = table.fallback
    if fallback is not None and update.type in FALLBACK_KINDS and _allowed(fallback, chat_type):
        return Match(fallback, params, "fallback")
    return None


def is_command_text(
    table: CommandTable, text: str, update: IncomingUpdate, *, bot_username: str | None = None
) -> bool:
    """True when ``text`` would run a command by name or alias (it cancels a need_reply wait)."""
    return _match_text(table, text, update.chat_type, bot_username) is not None


def update_types(table: CommandTable, known: Iterable[str]) -> tuple[str, ...]:
    """The update kinds some command of ``table`` handles, sorted: Telegram's ``allowed_updates``.

    Named commands (not the kind ones) and aliases, matched on text and callback data, and ``*``
    take messages, edits, channel and business posts and callback queries; ``/handle_<kind>``
    its kind; ``/inline_query`` and ``/channel_update`` theirs. Only kinds in ``known`` (the Bot
    API's Update fields) are returned.
    """
    kinds: set[str] = set()
    named = any(not _is_kind_name(key) for key in table.text_names)
    if named or table.aliases or table.fallback is not None:
        kinds |= FALLBACK_KINDS
    for key in table.by_name:
        if key.startswith(HANDLER_PREFIX):
            kinds.add(key.removeprefix(HANDLER_PREFIX))
    if INLINE_QUERY_COMMAND in table.by_name:
        kinds.add(INLINE_QUERY)
    if CHANNEL_UPDATE_COMMAND in table.by_name:
        kinds |= CHANNEL_KINDS
    return tuple(sorted(kinds & frozenset(known)))


def menu(table: CommandTable) -> list[dict[str, str]]:
    """The ``setMyCommands`` list: each ``/name`` command with a ``description`` Telegram accepts.

    Special, ``/handle_*``, ``/inline_query`` and ``/channel_update`` commands are left out, and
    so are names Telegram refuses (1-32 lowercase letters, digits, underscores); descriptions
    are cut to 256 characters, the list to 100 commands.
    """
    found: list[dict[str, str]] = []
    for command in table.commands:
        name = command.name.casefold()
        description = command.description.strip()
        if not description or not MENU_NAME.fullmatch(name) or _is_kind_name(name):
            continue
        found.append({"command": name[1:], "description": description[:MAX_MENU_DESCRIPTION]})
    return found[:MAX_MENU]


def _is_kind_name(key: str) -> bool:
    """True for ``/handle_*``, ``/inline_query`` and ``/channel_update``: named for a kind."""
    return key.startswith(HANDLER_PREFIX) or key in {INLINE_QUERY_COMMAND, CHANNEL_UPDATE_COMMAND}


def _kind_command(update_type: str) -> str | None:
    if update_type == INLINE_QUERY:
        return INLINE_QUERY_COMMAND
    if update_type in CHANNEL_KINDS:
        return CHANNEL_UPDATE_COMMAND
    return None


def _allowed(command: Command, chat_type: str | None) -> bool:
    return not command.group_only or chat_type in GROUP_CHAT_TYPES


def _match_text(
    table: CommandTable, text: str, chat_type: str | None, bot_username: str | None
) -> Match | None:
    """Rules 1 and 2: a name, else an alias, longest first."""
    text = strip_bot_username(text, bot_username)
    found = _lookup(table.text_names, table.longest_name, text, chat_type)
    if found is not None:
        return Match(found[0], found[1], "name")
    found = _lookup(table.aliases, table.longest_alias, text, chat_type)
    if found is not None:
        return Match(found[0], found[1], "alias")
    return None


def _lookup(
    index: Mapping[str, Command], longest: int, text: str, chat_type: str | None
) -> tuple[Command, str] | None:
    """Try each prefix of ``text`` that ends at whitespace or the end, longest first.

    Only prefixes up to the longest key are tried, so a long message costs no more than a short
    one. A casefolded key is never shorter than the text it came from, so the bound is safe.
    """
    if not index:
        return None
    size = len(text)
    ends = [size] if size <= longest else []
    ends.extend(i for i in range(min(size - 1, longest), 0, -1) if text[i].isspace())
    for end in ends:
        command = index.get(command_key(text[:end]))
        if command is not None and _allowed(command, chat_type):
            return command, text[end:].strip()
    return None


def strip_bot_username(text: str, bot_username: str | None) -> str:
    """Turn ``/start@MyBot rest`` into ``/start rest`` when the username is this bot's.

    With ``bot_username`` ``None`` any ``@username`` suffix of a leading ``/command`` is removed.
    """
    if not text.startswith("/"):
        return text
    end = next((i for i, char in enumerate(text) if char.isspace()), len(text))
    at = text.find("@", 0, end)
    if at <= 1:
        return text
    suffix = text[at + 1 : end]
    if not suffix or not all(char.isascii() and (char.isalnum() or char == "_") for char in suffix):
        return text
    if bot_username is not None and suffix.casefold() != bot_username.lstrip("@").casefold():
        return text
    return text[:at] + text[end:]
