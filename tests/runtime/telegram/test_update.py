"""Parsing Updates: the kind, who and where, the text commands see, and malformed envelopes."""

from __future__ import annotations

import pytest

from runtime.telegram.update import IncomingUpdate, parse_update, reply_route
from tests.support.updates import UpdateKind, make_update

USER = 1001
GROUP = -1002003004005
CHAT: dict[str, object] = {"id": USER, "type": "private"}
USER_OBJ: dict[str, object] = {"id": USER, "is_bot": False, "first_name": "A"}
MESSAGE: dict[str, object] = {"message_id": 1, "date": 0, "chat": CHAT}
MAX_ID = 2**52 - 1


@pytest.mark.parametrize(
    ("kind", "chat_id", "text", "message", "chat_key"),
    [
        ("message", None, "/start now", "/start now", f"chat:{USER}"),
        ("edited_message", GROUP, "/start now", "/start now", f"chat:{GROUP}"),
        ("channel_post", None, "/start now", "/start now", "chat:-1001000000001"),
        ("edited_channel_post", None, "/start now", "/start now", "chat:-1001000000001"),
        ("callback_query", GROUP, "vote:1", "vote:1", f"chat:{GROUP}"),
        ("inline_query", None, "/start now", None, f"user:{USER}"),
        ("my_chat_member", GROUP, None, None, f"chat:{GROUP}"),
        ("chat_member", GROUP, None, None, f"chat:{GROUP}"),
    ],
    ids=[
        "message",
        "edited-message",
        "channel-post",
        "edited-channel-post",
        "callback-query",
        "inline-query",
        "my-chat-member",
        "chat-member",
    ],
)
def test_each_kind_gives_its_text_message_and_chat_key(
    kind: UpdateKind, chat_id: int | None, text: str | None, message: str | None, chat_key: str
) -> None:
    """Each update kind yields the text, the script's ``message`` and the ordering key."""
    payload = make_update(
        kind, update_id=7, user_id=USER, chat_id=chat_id, text="/start now", data="vote:1"
    )
    update = parse_update(payload)
    assert update.update_id == 7
    assert update.type == kind
    assert update.request is payload[kind]
    assert update.text == text
    assert update.message == message
    assert update.chat_key == chat_key


def test_a_message_gives_its_sender_and_chat() -> None:
    """``user`` is the ``from`` object and ``chat`` the message's chat."""
    update = parse_update(make_update(update_id=1, user_id=USER, chat_id=GROUP, text="hi"))
    assert update.user is not None
    assert update.chat is not None
    assert (update.user_id, update.chat_id, update.chat_type) == (USER, GROUP, "supergroup")


def test_a_channel_post_has_a_chat_but_no_user() -> None:
    """Channel posts come from the channel: no ``from``."""
    update = parse_update(make_update("channel_post", update_id=1))
    assert update.user is None
    assert update.chat_type == "channel"


def test_a_callback_querys_chat_is_the_chat_of_its_message() -> None:
    """The chat of a button press is the chat of the message holding the button."""
    update = parse_update(make_update("callback_query", update_id=1, chat_id=GROUP, data="ok"))
    assert update.chat_id == GROUP
    assert update.user_id == USER


def test_a_callback_on_an_inline_message_has_no_chat() -> None:
    """Buttons under inline messages carry no message, so runs are ordered per user."""
    payload = make_update("callback_query", update_id=1, data="ok")
    query = payload["callback_query"]
    assert isinstance(query, dict)
    del query["message"]
    query["inline_message_id"] = "abc"
    update = parse_update(payload)
    assert (update.chat, update.text, update.chat_key) == (None, "ok", f"user:{USER}")


def test_a_caption_is_the_text_of_a_message_without_text() -> None:
    """A photo's caption is matched like text."""
    payload = make_update(update_id=1, text="x")
    message = payload["message"]
    assert isinstance(message, dict)
    del message["text"]
    message["caption"] = "/rate 5"
    assert parse_update(payload).message == "/rate 5"


def test_a_message_without_text_or_caption_has_no_text() -> None:
    """A sticker or a photo without caption has no text."""
    payload = make_update(update_id=1, text="x")
    message = payload["message"]
    assert isinstance(message, dict)
    del message["text"]
    message["sticker"] = {"file_id": "s"}
    update = parse_update(payload)
    assert (update.text, update.message) == (None, None)


def test_unknown_update_kinds_are_accepted() -> None:
    """A kind this code has never heard of still parses, so new Telegram kinds do not break bots."""
    update = parse_update({"update_id": 3, "future_thing": {"from": {"id": 5}, "x": 1}})
    assert (update.type, update.text, update.message, update.chat_key) == (
        "future_thing",
        None,
        None,
        "user:5",
    )


def test_an_update_with_neither_user_nor_chat_is_ordered_globally() -> None:
    """Poll updates and the like share one global queue."""
    update = parse_update({"update_id": 0, "poll": {"id": "p", "question": "?"}})
    assert update == IncomingUpdate(
        0, "poll", {"id": "p", "question": "?"}, None, None, None, None, "global"
    )


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ([1, 2], "must be a JSON object, not an array"),
        ("update", "must be a JSON object, not a string"),
        ({"message": {}}, "has no update_id"),
        ({"update_id": "1", "message": {}}, "update_id must be an integer, not a string"),
        ({"update_id": True, "message": {}}, "update_id must be an integer, not a boolean"),
        ({"update_id": 1.0, "message": {}}, "update_id must be an integer, not a number"),
        ({"update_id": -1, "message": {}}, "must not be negative"),
        ({"update_id": 1}, "has no update kind"),
        ({"update_id": 1, "message": {}, "poll": {}}, "more than one kind: message, poll"),
        ({"update_id": 1, "message": "hi"}, "message must be an object, not a string"),
        ({"update_id": 1, "message": {"from": 5}}, "message.from must be an object"),
        ({"update_id": 1, "message": {"from": {"id": "5"}}}, "message.from.id must be an integer"),
        ({"update_id": 1, "message": {"from": {}}}, "message.from.id must be an integer, not null"),
        ({"update_id": 1, "message": {"chat": []}}, "message.chat must be an object, not an array"),
        ({"update_id": 1, "message": {"chat": {"id": None}}}, "message.chat.id must be an integer"),
        (
            {"update_id": 1, "callback_query": {"message": 3}},
            "callback_query.message must be an object",
        ),
        (
            {"update_id": 1, "callback_query": {"message": {"chat": {"id": 1.5}}}},
            "callback_query.message.chat.id must be an integer",
        ),
        ({"update_id": 1, "message": {"text": 5}}, "message.text must be a string, not a number"),
        (
            {"update_id": 1, "callback_query": {"data": ["x"]}},
            "callback_query.data must be a string",
        ),
        ({"update_id": 1, 2: {}}, "a key that is not a string"),
        ({"update_id": 2**63, "poll": {}}, "update_id must be at most 4503599627370495"),
        ({"update_id": 2**52, "poll": {}}, "update_id must be at most 4503599627370495"),
        (
            {"update_id": 1, "message": {"message_id": 1, "chat": {"id": 2**70, "type": "x"}}},
            "message.chat.id must be an integer of at most 52 significant bits",
        ),
        (
            {"update_id": 1, "message": {"message_id": 1, "chat": {"id": -(2**52), "type": "x"}}},
            "message.chat.id must be an integer of at most 52 significant bits",
        ),
        (
            {"update_id": 1, "message": {**MESSAGE, "from": {"id": 2**70}}},
            "message.from.id must be an integer of at most 52 significant bits",
        ),
        (
            {"update_id": 1, "message": {**MESSAGE, "from": {"id": 0}}},
            "message.from.id must be a positive integer",
        ),
        (
            {"update_id": 1, "message": {**MESSAGE, "message_id": 2**63}},
            "message.message_id must be at most 4503599627370495",
        ),
        (
            {"update_id": 1, "message": {**MESSAGE, "message_id": -1}},
            "message.message_id must not be negative",
        ),
        (
            {"update_id": 1, "message": {**MESSAGE, "message_id": "1"}},
            "message.message_id must be an integer, not a string",
        ),
        ({"update_id": 1, "message": {"message_id": 1, "text": "hi"}}, "message has no chat"),
        ({"update_id": 1, "message": {**MESSAGE, "message_id": None}}, "message has no message_id"),
        ({"update_id": 1, "message": {"chat": CHAT}}, "message has no message_id"),
        ({"update_id": 1, "edited_message": {"message_id": 1}}, "edited_message has no chat"),
        (
            {"update_id": 1, "callback_query": {"id": "q", "data": "x"}},
            "callback_query has no from",
        ),
        (
            {"update_id": 1, "callback_query": {"from": USER_OBJ, "message": {"message_id": 1}}},
            "callback_query.message has no chat",
        ),
        ({"update_id": 1, "my_chat_member": {"from": USER_OBJ}}, "my_chat_member has no chat"),
        ({"update_id": 1, "message": {**MESSAGE, "text": "\ud800"}}, "message.text"),
        (
            {"update_id": 1, "message": {**MESSAGE, "text": "a\udfffb"}},
            "is not valid Unicode (a lone surrogate at index 1)",
        ),
        (
            {"update_id": 1, "message": {**MESSAGE, "from": {"id": 5, "first_name": "\ud800"}}},
            "message.from.first_name is not valid Unicode",
        ),
        (
            {"update_id": 1, "message": {**MESSAGE, "entities": [{"type": "\udc00"}]}},
            "message.entities[0].type is not valid Unicode",
        ),
        (
            {"update_id": 1, "message": {**MESSAGE, "\ud800": 1}},
            "message has a key that is not valid Unicode",
        ),
        (
            {"update_id": 1, "message": {**MESSAGE, "location": {"latitude": float("nan")}}},
            "message.location.latitude must be a finite number",
        ),
    ],
    ids=[
        "array",
        "string",
        "no-update-id",
        "string-update-id",
        "boolean-update-id",
        "float-update-id",
        "negative-update-id",
        "no-kind",
        "two-kinds",
        "kind-not-object",
        "from-not-object",
        "from-id-string",
        "from-without-id",
        "chat-not-object",
        "chat-id-null",
        "callback-message-not-object",
        "callback-chat-id-float",
        "text-not-string",
        "data-not-string",
        "non-string-key",
        "update-id-2-63",
        "update-id-2-52",
        "chat-id-2-70",
        "chat-id-minus-2-52",
        "user-id-2-70",
        "user-id-zero",
        "message-id-2-63",
        "message-id-negative",
        "message-id-string",
        "message-without-chat",
        "message-id-null",
        "message-without-message-id",
        "edited-message-without-chat",
        "callback-without-from",
        "callback-message-without-chat",
        "chat-member-without-chat",
        "lone-surrogate-text",
        "lone-low-surrogate-inside-text",
        "lone-surrogate-first-name",
        "lone-surrogate-in-array",
        "lone-surrogate-key",
        "nan",
    ],
)
def test_malformed_updates_are_refused_with_a_precise_message(
    payload: object, fragment: str
) -> None:
    """Each malformed envelope raises ValueError saying exactly what is wrong."""
    with pytest.raises(ValueError) as caught:
        parse_update(payload)
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("payload", "user_id", "chat_id"),
    [
        ({"update_id": MAX_ID, "poll": {"id": "p"}}, None, None),
        (
            {"update_id": 0, "message": {**MESSAGE, "from": {"id": MAX_ID}, "message_id": 0}},
            MAX_ID,
            USER,
        ),
        ({"update_id": 1, "message": {**MESSAGE, "chat": {"id": -MAX_ID}}}, None, -MAX_ID),
        ({"update_id": 1, "message": {**MESSAGE, "text": "😀 \u00e9"}}, None, USER),
        ({"update_id": 1, "message": {**MESSAGE, "location": {"latitude": 1.5}}}, None, USER),
        ({"update_id": 1, "future_thing": {"x": 2**70}}, None, None),
    ],
    ids=["max-update-id", "max-user-id", "min-chat-id", "emoji-text", "float", "future-kind-big"],
)
def test_values_at_the_edges_of_the_bot_api_ranges_are_accepted(
    payload: dict[str, object], user_id: int | None, chat_id: int | None
) -> None:
    """Ids of 52 significant bits, message id 0, astral characters and floats all parse."""
    update = parse_update(payload)
    assert (update.user_id, update.chat_id) == (user_id, chat_id)


def test_reply_route_carries_a_forum_topic_and_a_business_connection() -> None:
    """Topic messages give message_thread_id, business messages their connection; else nothing."""
    topic = {"message_thread_id": 7, "is_topic_message": True, "business_connection_id": "c"}
    assert reply_route("message", topic) == {"message_thread_id": 7, "business_connection_id": "c"}
    assert reply_route("callback_query", {"message": topic})["message_thread_id"] == 7
    # A reply thread in a group without topics is not a topic: it is not carried.
    assert reply_route("message", {"message_thread_id": 7}) == {}
    assert reply_route("message", {"message_thread_id": "7", "is_topic_message": True}) == {}
    assert reply_route(None, None) == {}
