"""A Telegram Update, checked and reduced to what dispatch and scripts need.

:func:`parse_update` is pure and strict about everything routing, ordering and storage rely on,
so a bad update is refused at the door (400) and never reaches the queue, where it could fail a
batch or a chat:

- ``update_id``: an integer, 0 to :data:`MAX_ID`; exactly one update kind, an object;
- ``from`` and ``chat`` objects with integer ids of at most 52 significant bits (the Bot API's
  own bound for user and chat ids), user ids positive; ``message_id`` an integer, 0 to
  :data:`MAX_ID`; each present where the packaged Bot API spec says the kind's type requires it
  (a Message without ``chat`` is refused, never run with ``chat = None``); the same for the
  message of a ``callback_query``;
- the text commands match (text, caption, callback data, inline query) a string;
- every string and key anywhere in the update valid Unicode (no lone surrogate: the update is
  stored as UTF-8) and every number finite (the store keeps strict JSON).

It is lenient about the rest: unknown update kinds are accepted (with the same checks on
``from``, ``chat`` and ``message_id`` where present), so a bot keeps working when Telegram adds
one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from runtime.telegram.spec import BotApiSpec, load_spec
from sandbox.jsontypes import is_int

MAX_ID: Final = 2**52 - 1
"""The largest id accepted: the Bot API says user and chat ids have at most 52 significant bits;
update and message ids (plain Integers, 32-bit today) get the same bound, which every JSON client
and the store's signed 64-bit columns hold exactly."""

MESSAGE_KINDS: Final = frozenset(
    {
        "message",
        "edited_message",
        "channel_post",
        "edited_channel_post",
        "business_message",
        "edited_business_message",
    }
)
"""Update kinds whose object is a Message (text or caption is what a script sees)."""

CHANNEL_KINDS: Final = frozenset({"channel_post", "edited_channel_post"})
CALLBACK_QUERY: Final = "callback_query"
INLINE_QUERY: Final = "inline_query"

JsonObject = dict[str, object]


@dataclass(frozen=True, slots=True)
class IncomingUpdate:
    """One Update: its kind, its object, who sent it, where, and the text commands match."""

    update_id: int
    type: str
    request: JsonObject
    user: JsonObject | None
    chat: JsonObject | None
    text: str | None
    message: str | None
    chat_key: str

    @property
    def user_id(self) -> int | None:
        """The sender's id, if the update has a sender."""
        return _id_of(self.user)

    @property
    def chat_id(self) -> int | None:
        """The chat's id, if the update happened in a chat."""
        return _id_of(self.chat)

    @property
    def chat_type(self) -> str | None:
        """The chat's type (private, group, supergroup, channel), if known."""
        kind = self.chat.get("type") if self.chat is not None else None
        return kind if isinstance(kind, str) else None


def parse_update(payload: object) -> IncomingUpdate:
    """Check an Update and reduce it; raise ``ValueError`` saying exactly what is wrong."""
    if not isinstance(payload, dict):
        raise ValueError(f"an update must be a JSON object, not {_kind_of(payload)}")
    update_id = _update_id(payload)
    kinds = sorted(str(key) for key in payload if key != "update_id")
    if any(not isinstance(key, str) for key in payload):
        raise ValueError(f"update {update_id} has a key that is not a string")
    if not kinds:
        raise ValueError(f"update {update_id} has no update kind (such as message)")
    if len(kinds) > 1:
        raise ValueError(f"update {update_id} has more than one kind: {', '.join(kinds)}")
    kind = kinds[0]
    request = payload[kind]
    if not isinstance(request, dict):
        raise ValueError(f"update {update_id}: {kind} must be an object, not {_kind_of(request)}")
    where = f"update {update_id}: {kind}"
    spec = load_spec()
    kind_type = _field_type(spec, "Update", kind)
    user = _entity(request, "from", where, positive=True)
    chat = _entity(request, "chat", where)
    _message_id(request, where)
    callback_message: JsonObject | None = None
    if kind == CALLBACK_QUERY and "message" in request:
        message = request["message"]
        if not isinstance(message, dict):
            raise ValueError(f"{where}.message must be an object, not {_kind_of(message)}")
        callback_message = message
        message_chat = _entity(message, "chat", f"{where}.message")
        _message_id(message, f"{where}.message")
        if chat is None:
            chat = message_chat
    text = _text_of(kind, request, where)
    _require(spec, kind_type, request, where)
    if callback_message is not None:
        message_type = _field_type(spec, kind_type or "", "message")
        _require(spec, message_type, callback_message, f"{where}.message")
    _check_values(payload, f"update {update_id}")
    shown = text if kind in MESSAGE_KINDS or kind == CALLBACK_QUERY else None
    return IncomingUpdate(
        update_id=update_id,
        type=kind,
        request=request,
        user=user,
        chat=chat,
        text=text,
        message=shown,
        chat_key=chat_key(user, chat),
    )


def _update_id(payload: JsonObject) -> int:
    """The update's ``update_id``: an integer, 0 to :data:`MAX_ID`."""
    if "update_id" not in payload:
        raise ValueError("the update has no update_id")
    update_id = payload["update_id"]
    if not is_int(update_id):
        raise ValueError(f"update_id must be an integer, not {_kind_of(update_id)}")
    if update_id < 0:
        raise ValueError(f"update_id must not be negative, got {update_id}")
    if update_id > MAX_ID:
        raise ValueError(f"update_id must be at most {MAX_ID}, got {update_id}")
    return update_id


def _entity(
    owner: JsonObject, key: str, where: str, *, positive: bool = False
) -> JsonObject | None:
    """Return ``owner[key]`` when it is an object with a valid id; absent means ``None``."""
    if key not in owner:
        return None
    value = owner[key]
    if not isinstance(value, dict):
        raise ValueError(f"{where}.{key} must be an object, not {_kind_of(value)}")
    entity_id = value.get("id")
    if not is_int(entity_id):
        raise ValueError(f"{where}.{key}.id must be an integer, not {_kind_of(entity_id)}")
    if abs(entity_id) > MAX_ID:
        raise ValueError(
            f"{where}.{key}.id must be an integer of at most 52 significant bits, got {entity_id}"
        )
    if positive and entity_id <= 0:
        raise ValueError(f"{where}.{key}.id must be a positive integer, got {entity_id}")
    return value


def _message_id(owner: JsonObject, where: str) -> None:
    """Check ``owner["message_id"]``, if present (and not null): an integer, 0 to MAX_ID."""
    value = owner.get("message_id")
    if value is None:
        return
    if not is_int(value):
        raise ValueError(f"{where}.message_id must be an integer, not {_kind_of(value)}")
    if value < 0:
        raise ValueError(f"{where}.message_id must not be negative, got {value}")
    if value > MAX_ID:
        raise ValueError(f"{where}.message_id must be at most {MAX_ID}, got {value}")


_ROUTING_FIELDS: Final = ("chat", "message_id", "from")
"""The fields routing and replies rely on; each must be present where the spec requires it."""


def _field_type(spec: BotApiSpec, type_name: str, field: str) -> str | None:
    """The (first) Bot API type of ``type_name.field``, or None when the spec does not know it."""
    owner = spec.types.get(type_name)
    known = owner.fields.get(field) if owner is not None else None
    return known.types[0] if known is not None and known.types else None


def _is_required(spec: BotApiSpec, type_name: str, field: str) -> bool:
    """Whether every variant of ``type_name`` requires ``field`` (a union: every subtype)."""
    type_spec = spec.types.get(type_name)
    if type_spec is None:
        return False
    if type_spec.subtypes:
        return all(_is_required(spec, sub, field) for sub in type_spec.subtypes)
    known = type_spec.fields.get(field)
    return known is not None and known.required


def _require(spec: BotApiSpec, type_name: str | None, value: JsonObject, where: str) -> None:
    """Refuse ``value`` if it lacks a routing field its Bot API type requires."""
    if type_name is None:
        return
    for field in _ROUTING_FIELDS:
        if value.get(field) is None and _is_required(spec, type_name, field):
            raise ValueError(f"{where} has no {field}, which a {type_name} always has")


def _check_values(payload: JsonObject, where: str) -> None:
    """Refuse lone surrogates in any string or key, and non-finite numbers, anywhere.

    Iterative, so a deeply nested update cannot exhaust the stack here.
    """
    stack: list[tuple[object, str]] = [(payload, "")]
    while stack:
        value, path = stack.pop()
        if type(value) is str:
            bad = _lone_surrogate(value)
            if bad is not None:
                raise ValueError(
                    f"{where}: {path} is not valid Unicode (a lone surrogate at index {bad})"
                )
        elif type(value) is float:
            if not math.isfinite(value):
                raise ValueError(f"{where}: {path} must be a finite number, not {value}")
        elif isinstance(value, dict):
            for key, item in value.items():
                if type(key) is str and _lone_surrogate(key) is not None:
                    owner = path or "the update"
                    raise ValueError(f"{where}: {owner} has a key that is not valid Unicode")
                stack.append((item, f"{path}.{key}" if path else str(key)))
        elif isinstance(value, list):
            stack.extend((item, f"{path}[{index}]") for index, item in enumerate(value))


def _lone_surrogate(text: str) -> int | None:
    """The index of the first lone surrogate in ``text`` (not encodable as UTF-8), or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


def _text_of(kind: str, request: JsonObject, where: str) -> str | None:
    """The text commands match: message text or caption, callback data, inline query."""
    if kind in MESSAGE_KINDS:
        keys: tuple[str, ...] = ("text", "caption")
    elif kind == CALLBACK_QUERY:
        keys = ("data",)
    elif kind == INLINE_QUERY:
        keys = ("query",)
    else:
        return None
    for key in keys:
        value = request.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise ValueError(f"{where}.{key} must be a string, not {_kind_of(value)}")
        return value
    return None


def chat_key(user: JsonObject | None, chat: JsonObject | None) -> str:
    """The key that orders runs: per chat, else per user, else one global queue."""
    if chat is not None:
        return f"chat:{chat['id']}"
    if user is not None:
        return f"user:{user['id']}"
    return "global"


def _id_of(entity: JsonObject | None) -> int | None:
    value = entity.get("id") if entity is not None else None
    return value if is_int(value) else None


def _kind_of(value: object) -> str:
    """Name a JSON value's type the way an API client would recognise it."""
    if value is None:
        return "null"
    names = {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "an array",
    }
    return names.get(type(value), "an object" if isinstance(value, dict) else type(value).__name__)


def reply_route(kind: str | None, request: object) -> dict[str, int | str]:
    """Where a reply to an update goes besides its chat: its forum topic and business connection.

    A message in a forum topic (``is_topic_message``) gives ``message_thread_id``; a business
    message gives ``business_connection_id``; a callback query looks at its message. Pure.
    """
    message = (
        request.get("message") if kind == CALLBACK_QUERY and type(request) is dict else request
    )
    if type(message) is not dict:
        return {}
    route: dict[str, int | str] = {}
    thread = message.get("message_thread_id")
    if message.get("is_topic_message") is True and is_int(thread):
        route["message_thread_id"] = thread
    connection = message.get("business_connection_id")
    if type(connection) is str and connection:
        route["business_connection_id"] = connection
    return route
