"""Builders of realistic Telegram payloads (Updates, users, chats) for tests and benchmarks.

Every object built here uses only field names from the packaged Bot API spec; the tests check
the output with :meth:`runtime.telegram.spec.BotApiSpec.check_object`.
"""

from __future__ import annotations

import functools
import itertools
import json
import re
import time
import zlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, Literal, get_args

from runtime.telegram.spec import load_spec

UpdateKind = Literal[
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "callback_query",
    "inline_query",
    "my_chat_member",
    "chat_member",
]
UPDATE_KINDS: Final = frozenset(get_args(UpdateKind))

DEFAULT_BOT_TOKEN: Final = "123456:TEST-token"
DEFAULT_USER_ID: Final = 1001
DEFAULT_CHANNEL_ID: Final = -1001000000001
SUPERGROUP_PREFIX: Final = "-100"

_CHAT_MEMBER_TYPES: Final = MappingProxyType(
    {
        "creator": "ChatMemberOwner",
        "administrator": "ChatMemberAdministrator",
        "member": "ChatMemberMember",
        "restricted": "ChatMemberRestricted",
        "left": "ChatMemberLeft",
        "kicked": "ChatMemberBanned",
    }
)
_SCALAR_SAMPLES: Final = MappingProxyType(
    {"Integer": 1, "Float": 1.5, "String": "sample", "Boolean": False}
)
_ARRAY_PREFIX: Final = "Array of "
_COMMAND_RE: Final = re.compile(r"/[A-Za-z0-9_]+(@[A-Za-z0-9_]+)?")


def bot_id_for_token(token: str) -> int:
    """The bot's user id as Telegram derives it: the digits before the colon of the token."""
    prefix = token.partition(":")[0]
    return int(prefix) if prefix.isdigit() else zlib.crc32(token.encode()) % 10**9 + 1


def bot_user(token: str = DEFAULT_BOT_TOKEN) -> dict[str, object]:
    """The User object of the bot owning ``token`` (what getMe returns)."""
    bot_id = bot_id_for_token(token)
    return {
        "id": bot_id,
        "is_bot": True,
        "first_name": "Stand-in Bot",
        "username": f"standin_{bot_id}_bot",
        "can_join_groups": True,
        "can_read_all_group_messages": False,
        "supports_inline_queries": False,
    }


def make_user(
    user_id: int = DEFAULT_USER_ID,
    *,
    first_name: str = "Alice",
    username: str | None = None,
    language_code: str | None = "en",
) -> dict[str, object]:
    """A human User object."""
    user: dict[str, object] = {"id": user_id, "is_bot": False, "first_name": first_name}
    if username is not None:
        user["username"] = username
    if language_code is not None:
        user["language_code"] = language_code
    return user


def chat_type_for_id(chat_id: int) -> str:
    """The chat type a numeric chat id implies: private, group, supergroup (``-100…``)."""
    if chat_id > 0:
        return "private"
    return "supergroup" if str(chat_id).startswith(SUPERGROUP_PREFIX) else "group"


def make_chat(
    chat_id: int,
    *,
    chat_type: str | None = None,
    title: str | None = None,
    first_name: str = "Alice",
    username: str | None = None,
) -> dict[str, object]:
    """A Chat object; the type is derived from the id unless given."""
    kind = chat_type or chat_type_for_id(chat_id)
    chat: dict[str, object] = {"id": chat_id, "type": kind}
    if kind == "private":
        chat["first_name"] = first_name
    else:
        chat["title"] = title or f"Test {kind} {abs(chat_id)}"
    if username is not None:
        chat["username"] = username
    return chat


def command_entities(text: str) -> list[dict[str, object]]:
    """The ``bot_command`` entity Telegram adds when a message starts with ``/command``."""
    match = _COMMAND_RE.match(text)
    if match is None:
        return []
    return [{"type": "bot_command", "offset": 0, "length": utf16_len(match.group(0))}]


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units, the unit of Telegram entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def sample_object(
    type_name: str, overrides: Mapping[str, object] | None = None
) -> dict[str, object]:
    """A minimal spec-valid object of ``type_name``: required fields filled with samples.

    Values in ``overrides`` replace samples (and add optional fields) when their name is a field
    of the type. A union type yields a sample of its first object subtype.
    """
    spec = load_spec()
    concrete = concrete_type(type_name)
    result: dict[str, object] = json.loads(_sample_json(concrete))
    fields = spec.type_spec(concrete).fields
    for name, value in (overrides or {}).items():
        if name in fields and value is not None:
            result[name] = value
    return result


def concrete_type(type_name: str) -> str:
    """``type_name``, or for a union its first subtype that is an object type, recursively."""
    spec = load_spec()
    type_spec = spec.type_spec(type_name)
    while type_spec.subtypes:
        # Some unions (RichText) list String or arrays first: take the first object subtype.
        type_spec = spec.type_spec(next(name for name in type_spec.subtypes if spec.has_type(name)))
    return type_spec.name


@functools.cache
def _sample_json(type_name: str) -> str:
    """The JSON of a minimal sample of a concrete type (cached; callers get fresh copies)."""
    return json.dumps(_sample_fields(type_name, frozenset({type_name})))


def _sample_fields(type_name: str, seen: frozenset[str]) -> dict[str, object]:
    """Required fields of ``type_name`` filled with samples, never recursing into ``seen``."""
    return {
        name: _sample_value(field_spec.types[0], name, seen)
        for name, field_spec in load_spec().type_spec(type_name).fields.items()
        if field_spec.required
    }


def _sample_value(type_str: str, field_name: str, seen: frozenset[str]) -> object:
    """A plausible value of one spec type string."""
    if type_str.startswith(_ARRAY_PREFIX):
        inner = type_str.removeprefix(_ARRAY_PREFIX)
        if inner in _SCALAR_SAMPLES or _concrete_type_or_none(inner) in seen:
            return []
        return [_sample_value(inner, field_name, seen)]
    if type_str == "String" and field_name.endswith(("file_id", "file_unique_id")):
        return f"standin-{field_name.replace('_', '-')}-{zlib.crc32(field_name.encode())}"
    if type_str in _SCALAR_SAMPLES:
        return _SCALAR_SAMPLES[type_str]
    spec = load_spec()
    if spec.has_type(type_str):
        # A union admitting a plain scalar (RichText admits String) is sampled as that scalar.
        scalar = next((t for t in spec.type_spec(type_str).subtypes if t in _SCALAR_SAMPLES), None)
        if scalar is not None:
            return _SCALAR_SAMPLES[scalar]
    concrete = _concrete_type_or_none(type_str)
    if concrete is None or concrete in seen:
        return {}
    return _sample_fields(concrete, seen | {concrete})


def _concrete_type_or_none(type_str: str) -> str | None:
    """:func:`concrete_type` for a type string that may not name a type."""
    return concrete_type(type_str) if load_spec().has_type(type_str) else None


def make_chat_member(status: str, user: Mapping[str, object]) -> dict[str, object]:
    """A ChatMember object with ``status`` (creator, administrator, member, …) for ``user``."""
    type_name = _CHAT_MEMBER_TYPES.get(status)
    if type_name is None:
        known = ", ".join(_CHAT_MEMBER_TYPES)
        raise ValueError(f"unknown chat member status {status!r}; use one of {known}")
    member = sample_object(type_name, {"status": status, "user": dict(user)})
    if "until_date" in member:
        member["until_date"] = 0
    return member


def make_update(
    kind: UpdateKind = "message",
    *,
    update_id: int,
    user_id: int = DEFAULT_USER_ID,
    chat_id: int | None = None,
    text: str | None = None,
    data: str | None = None,
    message_id: int = 1,
    date: int | None = None,
    first_name: str = "Alice",
    username: str | None = None,
    language_code: str | None = "en",
    chat_type: str | None = None,
    old_status: str = "left",
    new_status: str = "member",
    bot_token: str = DEFAULT_BOT_TOKEN,
) -> dict[str, object]:
    """A realistic Update of ``kind``.

    ``chat_id`` defaults to the user's private chat (a channel id for channel posts). ``text`` is
    the message text (the inline query for inline_query, the bot message's text for
    callback_query); ``data`` is the callback data. Chat member updates go from ``old_status``
    to ``new_status`` (for the bot in my_chat_member, for the user in chat_member).
    """
    if kind not in UPDATE_KINDS:
        raise ValueError(f"unknown update kind {kind!r}; use one of {sorted(UPDATE_KINDS)}")
    when = int(time.time()) if date is None else date
    user = make_user(user_id, first_name=first_name, username=username, language_code=language_code)
    is_channel = kind in {"channel_post", "edited_channel_post"}
    if chat_id is None:
        chat_id = DEFAULT_CHANNEL_ID if is_channel else user_id
    chat = make_chat(
        chat_id,
        chat_type=chat_type or ("channel" if is_channel else None),
        first_name=first_name,
        username=username if chat_id == user_id else None,
    )
    update: dict[str, object] = {"update_id": update_id}
    if kind in {"message", "edited_message", "channel_post", "edited_channel_post"}:
        message = _message(message_id, when, chat, text if text is not None else "hello")
        if is_channel:
            message["sender_chat"] = chat
        else:
            message["from"] = user
        if kind.startswith("edited_"):
            message["edit_date"] = when
        update[kind] = message
    elif kind == "callback_query":
        callback_data = data if data is not None else "button"
        message = _message(message_id, when, chat, text if text is not None else "Choose:")
        message["from"] = bot_user(bot_token)
        message["reply_markup"] = {
            "inline_keyboard": [[{"text": callback_data, "callback_data": callback_data}]]
        }
        update[kind] = {
            "id": str(update_id * 1000 + user_id % 1000),
            "from": user,
            "message": message,
            "chat_instance": str(zlib.crc32(str(chat_id).encode())),
            "data": callback_data,
        }
    elif kind == "inline_query":
        update[kind] = {
            "id": str(update_id * 1000 + user_id % 1000),
            "from": user,
            "query": text or "",
            "offset": "",
            "chat_type": chat_type or "sender",
        }
    else:
        member_user = bot_user(bot_token) if kind == "my_chat_member" else user
        update[kind] = {
            "chat": chat,
            "from": user,
            "date": when,
            "old_chat_member": make_chat_member(old_status, member_user),
            "new_chat_member": make_chat_member(new_status, member_user),
        }
    return update


def _message(
    message_id: int, date: int, chat: Mapping[str, object], text: str
) -> dict[str, object]:
    """A Message with text (and a bot_command entity for ``/commands``)."""
    message: dict[str, object] = {
        "message_id": message_id,
        "date": date,
        "chat": dict(chat),
        "text": text,
    }
    entities = command_entities(text)
    if entities:
        message["entities"] = entities
    return message


def update_ids() -> itertools.count[int]:
    """A fresh counter of update ids starting at 1, handy with ``make_update``."""
    return itertools.count(1)
