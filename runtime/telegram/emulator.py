"""An emulated Telegram for ``run.py try`` and ``POST /api/v1/bots/{id}/try``.

:class:`EmulatedTelegram` is a :class:`~runtime.telegram.client.TelegramClient` that never
opens a connection: every call is checked against the packaged Bot API spec exactly as a real
one is (so an author sees the same refusals), then answered by :class:`Emulator` with a result
shaped by the method's return type in the spec (a ``Message`` echoing what was sent, with a
message id counted per chat; ``True``; a minimal object of the right type...). Every call,
refused or answered, is recorded in order in :attr:`EmulatedTelegram.calls`.

Pure apart from the clock: no I/O, no network, no token ever leaves the process.
"""

from __future__ import annotations

import json
import time
import zlib
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from runtime.errors import ApiError, CallRefused, TelegramError, TransportError
from runtime.telegram.client import TelegramClient
from runtime.telegram.spec import BotApiSpec, load_spec
from sandbox import JSON

EMULATED_TOKEN: Final = "0:emulated"  # noqa: S105 - a placeholder, no secret
"""The token an emulated bot calls with (never a real one)."""
BOT_ID: Final = 1_000_000_001
"""The emulated bot's own user id."""
_ARRAY: Final = "Array of "
_SCALARS: Final[Mapping[str, JSON]] = {
    "Integer": 1,
    "Int": 1,
    "Float": 0.0,
    "Float number": 0.0,
    "String": "",
    "Boolean": True,
    "True": True,
}
_STRING_RESULTS: Final[Mapping[str, str]] = {
    "exportChatInviteLink": "https://t.me/+emulatedInviteLink",
    "createInvoiceLink": "https://t.me/$emulatedInvoice",
}
_ECHOED: Final = (
    "message_thread_id",
    "business_connection_id",
    "text",
    "entities",
    "caption",
    "caption_entities",
    "has_spoiler",
)
_MAX_DEPTH: Final = 6


@dataclass(frozen=True, slots=True)
class EmulatedCall:
    """One Bot API call a bot made: its method and parameters, and what it got back."""

    method: str
    params: dict[str, Any]
    ok: bool
    result: JSON = None
    error: str | None = None

    def as_dict(self) -> dict[str, JSON]:
        """The call as plain JSON."""
        return {
            "method": self.method,
            "params": self.params,
            "ok": self.ok,
            "result": self.result,
            "error": self.error,
        }


def chat_for(chat_id: object) -> dict[str, JSON]:
    """The Chat a ``chat_id`` names: a user (positive), a group, a supergroup or a channel."""
    if type(chat_id) is int:
        if chat_id > 0:
            return {"id": chat_id, "type": "private", "first_name": f"User {chat_id}"}
        kind = "supergroup" if chat_id <= -(10**12) else "group"
        return {"id": chat_id, "type": kind, "title": f"Chat {chat_id}"}
    name = str(chat_id).removeprefix("@") or "channel"
    numeric = -(10**12 + zlib.crc32(name.encode()))
    return {"id": numeric, "type": "channel", "title": name, "username": name}


class Emulator:
    """Answers valid Bot API calls as Telegram would, in shape (see the module's docstring)."""

    def __init__(
        self,
        spec: BotApiSpec,
        *,
        username: str = "emulated_bot",
        name: str = "Emulated bot",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.spec = spec
        self.clock = clock
        self.me: dict[str, JSON] = {
            "id": BOT_ID,
            "is_bot": True,
            "first_name": name,
            "username": username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
        self.chats: dict[int, dict[str, JSON]] = {}
        """Chats known from the emulated update (their full objects are echoed back)."""
        self._message_ids: defaultdict[object, int] = defaultdict(int)

    def know_chat(self, chat: Mapping[str, Any] | None) -> None:
        """Remember a chat of the emulated update, so results carry its real shape."""
        if chat is not None and type(chat.get("id")) is int:
            self.chats[chat["id"]] = dict(chat)

    def start_after(self, chat_id: int, message_id: int) -> None:
        """Number the bot's next messages in ``chat_id`` after ``message_id``."""
        self._message_ids[chat_id] = max(self._message_ids[chat_id], message_id)

    def answer(self, method: str, params: Mapping[str, Any]) -> JSON:
        """The ``result`` of a call the spec accepted; raises ApiError where Telegram would."""
        spec = self.spec.methods[method]
        if method in {"sendMessage", "editMessageText"} and params.get("text") == "":
            raise ApiError(method, 400, "Bad Request: message text is empty")
        if method == "getMe":
            return dict(self.me)
        if method in _STRING_RESULTS:
            return _STRING_RESULTS[method]
        if method == "getChat":
            return {**self._sample("ChatFullInfo", 0), **self._chat(params.get("chat_id"))}
        returns = spec.returns
        if "Message" in returns:
            if "Boolean" in returns and params.get("inline_message_id") is not None:
                return True
            return self._message(method, params)
        first = returns[0] if returns else "Boolean"
        if first == "Array of Message":
            media = params.get("media")
            count = len(media) if isinstance(media, list) else 1
            return [self._message(method, params) for _ in range(max(count, 1))]
        if first == "MessageId":
            return {"message_id": self._next_id(params.get("chat_id"))}
        if first == "Array of MessageId":
            ids = params.get("message_ids")
            count = len(ids) if isinstance(ids, list) else 1
            return [{"message_id": self._next_id(params.get("chat_id"))} for _ in range(count)]
        if first == "Integer":
            return 1
        return self._value(first, 0)

    def _chat(self, chat_id: object) -> dict[str, JSON]:
        if type(chat_id) is int and chat_id in self.chats:
            return dict(self.chats[chat_id])
        return chat_for(chat_id)

    def _next_id(self, chat_id: object) -> int:
        key = self._chat(chat_id)["id"]
        self._message_ids[key] += 1
        return self._message_ids[key]

    def _message(self, method: str, params: Mapping[str, Any]) -> dict[str, JSON]:
        """A Message for a send/edit/forward/stop call, echoing what was sent."""
        chat_id = params.get("chat_id", params.get("from_chat_id"))
        chat = self._chat(chat_id) if chat_id is not None else chat_for(BOT_ID)
        editing = method.startswith(("edit", "stop", "set"))
        given = params.get("message_id")
        now = int(self.clock())
        message: dict[str, JSON] = {
            "message_id": given if editing and type(given) is int else self._next_id(chat["id"]),
            "from": dict(self.me),
            "chat": chat,
            "date": now,
        }
        if editing:
            message["edit_date"] = now
        for name in _ECHOED:
            if params.get(name) is not None:
                message[name] = params[name]
        if method in {"sendMessage", "editMessageText"}:
            message.setdefault("text", "")
        markup = params.get("reply_markup")
        if isinstance(markup, Mapping) and "inline_keyboard" in markup:
            message["reply_markup"] = dict(markup)
        content = _content_field(method)
        fields = self.spec.type_spec("Message").fields
        if content is not None and content in fields:
            message[content] = self._value(fields[content].types[0], 1)
        return message

    def _value(self, type_str: str, depth: int) -> JSON:
        """A plausible value of one spec type string (objects: their required fields)."""
        if type_str.startswith(_ARRAY):
            return []
        if type_str in _SCALARS:
            return _SCALARS[type_str]
        if not self.spec.has_type(type_str) or depth > _MAX_DEPTH:
            return {}
        return self._sample(type_str, depth)

    def _sample(self, type_name: str, depth: int) -> dict[str, JSON]:
        type_spec = self.spec.type_spec(type_name)
        while type_spec.subtypes:
            objects = [name for name in type_spec.subtypes if self.spec.has_type(name)]
            if not objects:
                return {}
            type_spec = self.spec.type_spec(objects[0])
        sample: dict[str, JSON] = {}
        for name, field_spec in type_spec.fields.items():
            if field_spec.required:
                if name in {"user", "from"} and "User" in field_spec.types:
                    sample[name] = dict(self.me)
                elif name == "chat" and "Chat" in field_spec.types:
                    sample[name] = chat_for(BOT_ID)
                else:
                    sample[name] = self._value(field_spec.types[0], depth + 1)
        return sample


def _content_field(method: str) -> str | None:
    """The Message field a ``send<Kind>`` call fills (``sendPhoto``: ``photo``)."""
    if not method.startswith("send") or method in {"sendMessage", "sendMediaGroup"}:
        return None
    kind = method.removeprefix("send")
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in kind).lstrip("_")
    return snake


class EmulatedTelegram(TelegramClient):
    """A Telegram client answered by an :class:`Emulator`: checked like the real one, recorded,
    never sent anywhere."""

    def __init__(self, emulator: Emulator | None = None, *, spec: BotApiSpec | None = None) -> None:
        spec = spec or (emulator.spec if emulator is not None else load_spec())
        super().__init__("http://emulated.invalid", spec=spec)
        self.emulator = emulator or Emulator(spec)
        self.calls: list[EmulatedCall] = []

    async def download(self, token: str, file_path: str, *, max_bytes: int) -> bytes:
        """Emulated files have no content: a try never downloads anything."""
        raise TransportError("the emulated Telegram has no file content to download")

    async def call(
        self,
        token: str,
        method: str,
        params: Mapping[str, Any],
        *,
        timeout: float | None = None,
        multipart: bool = False,
    ) -> JSON:
        """Check the call against the spec, then answer it from the emulator (and record it).

        A multipart call's file parts are recorded by ``str`` (name, type and size), never sent.
        """
        # What would go on the wire: JSON, without the parameters that are None.
        sent = json.loads(
            json.dumps(
                {key: value for key, value in params.items() if value is not None}, default=str
            )
        )
        try:
            name = self.check(method, params)
            result = self.emulator.answer(name, sent)
        except CallRefused as exc:
            self.calls.append(EmulatedCall(method, sent, False, error="; ".join(exc.problems)))
            raise
        except TelegramError as exc:
            self.calls.append(EmulatedCall(method, sent, False, error=str(exc)))
            raise
        self.calls.append(EmulatedCall(name, sent, True, result=result))
        return result


__all__ = ["EMULATED_TOKEN", "EmulatedCall", "EmulatedTelegram", "Emulator", "chat_for"]
