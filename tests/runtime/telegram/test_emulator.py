"""The emulated Telegram: calls checked like real ones, results shaped like Telegram's."""

from __future__ import annotations

import asyncio

import pytest

from runtime.errors import ApiError, CallRefused
from runtime.telegram.emulator import EMULATED_TOKEN, EmulatedTelegram, Emulator
from runtime.telegram.spec import load_spec

SPEC = load_spec()


def call(telegram: EmulatedTelegram, method: str, **params: object) -> object:
    return asyncio.run(telegram.call(EMULATED_TOKEN, method, params))


def test_a_sent_message_is_a_valid_message_echoing_the_text_with_ids_counted_per_chat() -> None:
    telegram = EmulatedTelegram()
    first = call(telegram, "sendMessage", chat_id=7, text="hi")
    second = call(telegram, "sendMessage", chat_id=7, text="again")
    other = call(telegram, "sendMessage", chat_id=-100, text="group")
    assert SPEC.check_object("Message", first) == ()
    assert SPEC.check_object("Message", other) == ()
    assert isinstance(first, dict) and isinstance(second, dict) and isinstance(other, dict)
    assert (first["message_id"], second["message_id"], other["message_id"]) == (1, 2, 1)
    assert first["chat"] == {"id": 7, "type": "private", "first_name": "User 7"}
    assert other["chat"]["type"] == "group"
    assert second["text"] == "again"
    assert [c.method for c in telegram.calls] == ["sendMessage"] * 3


@pytest.mark.parametrize(
    ("method", "params", "type_name"),
    [
        ("getMe", {}, "User"),
        ("getChat", {"chat_id": 5}, "ChatFullInfo"),
        ("getChatMember", {"chat_id": -5, "user_id": 9}, "ChatMember"),
        ("sendPhoto", {"chat_id": 5, "photo": "file-id"}, "Message"),
        ("createChatInviteLink", {"chat_id": -5}, "ChatInviteLink"),
    ],
)
def test_results_have_the_type_the_spec_says(
    method: str, params: dict[str, object], type_name: str
) -> None:
    result = call(EmulatedTelegram(), method, **params)
    assert SPEC.check_object(type_name, result) == ()


def test_a_call_the_spec_refuses_is_refused_and_recorded() -> None:
    telegram = EmulatedTelegram()
    with pytest.raises(CallRefused) as refused:
        call(telegram, "sendMessage", chat_id=1, text="x", colour="red")
    assert "sendMessage has no field 'colour'" in str(refused.value)
    with pytest.raises(ApiError) as empty:
        call(telegram, "sendMessage", chat_id=1, text="")
    assert empty.value.code == 400
    assert [(c.method, c.ok) for c in telegram.calls] == [
        ("sendMessage", False),
        ("sendMessage", False),
    ]


def test_an_edit_keeps_its_message_id_and_an_inline_edit_is_true() -> None:
    telegram = EmulatedTelegram(Emulator(SPEC))
    edited = call(telegram, "editMessageText", chat_id=3, message_id=41, text="new")
    assert isinstance(edited, dict) and edited["message_id"] == 41 and "edit_date" in edited
    assert call(telegram, "editMessageText", inline_message_id="abc", text="new") is True
