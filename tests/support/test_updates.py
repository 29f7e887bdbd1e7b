"""Tests that the Update builders produce payloads valid per the packaged Bot API spec."""

from __future__ import annotations

import pytest

from runtime.telegram.spec import load_spec
from tests.support.updates import (
    UPDATE_KINDS,
    UpdateKind,
    bot_user,
    make_chat_member,
    make_update,
    sample_object,
    update_ids,
)

SPEC = load_spec()
KINDS: tuple[UpdateKind, ...] = tuple(sorted(UPDATE_KINDS))


@pytest.mark.parametrize("kind", KINDS, ids=KINDS)
def test_every_update_kind_is_valid_per_the_spec(kind: UpdateKind) -> None:
    """Each kind builds an Update whose every field name and type matches the spec."""
    update = make_update(kind, update_id=1, user_id=42, text="/start now", data="yes")
    assert SPEC.check_object("Update", update) == ()
    assert set(update) == {"update_id", kind}


@pytest.mark.parametrize(
    "status",
    ["creator", "administrator", "member", "restricted", "left", "kicked"],
    ids=["creator", "administrator", "member", "restricted", "left", "kicked"],
)
def test_every_chat_member_status_is_valid(status: str) -> None:
    """A my_chat_member update into any status is a valid ChatMemberUpdated."""
    update = make_update("my_chat_member", update_id=1, chat_id=-100555, new_status=status)
    assert SPEC.check_object("Update", update) == ()
    assert update["my_chat_member"]["new_chat_member"]["status"] == status  # type: ignore[index]


def test_command_messages_carry_a_bot_command_entity() -> None:
    """A /command message has the bot_command entity Telegram adds."""
    message = make_update(update_id=1, text="/start@my_bot hi")["message"]
    assert message["entities"] == [{"type": "bot_command", "offset": 0, "length": 13}]  # type: ignore[index]
    plain = make_update(update_id=2, text="hello")["message"]
    assert "entities" not in plain  # type: ignore[operator]


def test_callback_query_carries_data_and_the_bots_message() -> None:
    """A callback query holds the data and a bot message with the pressed inline button."""
    query = make_update("callback_query", update_id=1, data="vote:1")["callback_query"]
    assert query["data"] == "vote:1"  # type: ignore[index]
    assert query["message"]["from"] == bot_user()  # type: ignore[index]


def test_channel_posts_have_a_sender_chat_and_no_from() -> None:
    """Channel posts come from the channel itself, not a user."""
    post = make_update("channel_post", update_id=1)["channel_post"]
    assert post["chat"]["type"] == "channel"  # type: ignore[index]
    assert post["sender_chat"] == post["chat"]  # type: ignore[index]
    assert "from" not in post  # type: ignore[operator]


def test_group_chat_ids_give_group_chats() -> None:
    """Negative ids are groups, -100… ids supergroups, positive ids private chats."""
    chat_types = [
        make_update(update_id=1, chat_id=chat_id)["message"]["chat"]["type"]  # type: ignore[index]
        for chat_id in (5, -5, -1005)
    ]
    assert chat_types == ["private", "group", "supergroup"]


def test_unknown_kind_and_status_are_refused() -> None:
    """Builders raise ValueError for kinds and statuses Telegram does not have."""
    with pytest.raises(ValueError, match="unknown update kind"):
        make_update("poll", update_id=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown chat member status"):
        make_chat_member("owner", bot_user())


def test_sample_objects_are_valid_for_every_type() -> None:
    """sample_object builds a spec-valid instance of every Bot API type with fields."""
    broken = {
        name: problems
        for name in SPEC.types
        if (problems := SPEC.check_object(name, sample_object(name)))
    }
    assert broken == {}


def test_update_ids_counts_from_one() -> None:
    """update_ids yields 1, 2, 3, …"""
    ids = update_ids()
    assert [next(ids), next(ids), next(ids)] == [1, 2, 3]
