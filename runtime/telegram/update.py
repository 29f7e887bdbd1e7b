"""A Telegram Update, checked and reduced to what dispatch and scripts need.

:func:`parse_update` is pure and strict about the envelope (``update_id``, exactly one kind,
object-shaped ``from`` and ``chat`` with integer ids) and lenient about the rest: unknown update
kinds are accepted, so a bot keeps working when Telegram adds one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sandbox.jsontypes import is_int

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
    if "update_id" not in payload:
        raise ValueError("the update has no update_id")
    update_id = payload["update_id"]
    if not is_int(update_id):
        raise ValueError(f"update_id must be an integer, not {_kind_of(update_id)}")
    if update_id < 0:
        raise ValueError(f"update_id must not be negative, got {update_id}")
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
    user = _entity(request, "from", where)
    chat = _entity(request, "chat", where)
    if chat is None and kind == CALLBACK_QUERY and "message" in request:
        message = request["message"]
        if not isinstance(message, dict):
            raise ValueError(f"{where}.message must be an object, not {_kind_of(message)}")
        chat = _entity(message, "chat", f"{where}.message")
    text = _text_of(kind, request, where)
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


def _entity(owner: JsonObject, key: str, where: str) -> JsonObject | None:
    """Return ``owner[key]`` when it is an object with an integer id; absent means ``None``."""
    if key not in owner:
        return None
    value = owner[key]
    if not isinstance(value, dict):
        raise ValueError(f"{where}.{key} must be an object, not {_kind_of(value)}")
    if not is_int(value.get("id")):
        raise ValueError(f"{where}.{key}.id must be an integer, not {_kind_of(value.get('id'))}")
    return value


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
