"""Tests of the Telegram Bot API stand-in, exercised over real HTTP with httpx."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from runtime.telegram.spec import load_spec
from tests.support.telegram_standin import RecordedCall, TelegramStandIn, UploadedFile
from tests.support.updates import make_update

TOKEN = "123456:TEST-token"
SPEC = load_spec()


@pytest.fixture
def tg() -> Iterator[TelegramStandIn]:
    """A stand-in accepting only TOKEN."""
    with TelegramStandIn(tokens={TOKEN}) as standin:
        yield standin


@pytest.fixture
def client(tg: TelegramStandIn) -> Iterator[httpx.Client]:
    """An HTTP client rooted at TOKEN's method URLs."""
    with httpx.Client(base_url=tg.bot_url(TOKEN), timeout=10) as http:
        yield http


@pytest.fixture(scope="module")
def any_token_standin() -> Iterator[TelegramStandIn]:
    """One stand-in accepting any well-formed token, shared by the generated table."""
    with TelegramStandIn() as standin:
        yield standin


@pytest.fixture(scope="module")
def shared_client() -> Iterator[httpx.Client]:
    """One keep-alive HTTP client shared by the generated table."""
    with httpx.Client(timeout=10) as http:
        yield http


def plausible(type_str: str) -> object:
    """A JSON value plausible for one spec type string."""
    if type_str.startswith("Array of "):
        return [plausible(type_str.removeprefix("Array of "))]
    scalars: dict[str, object] = {
        "Integer": 7,
        "Float": 1.5,
        "String": "text",
        "Boolean": True,
        "InputFile": "file-id",
    }
    return scalars.get(type_str, {})


def result_matches(returns: tuple[str, ...], result: object) -> bool:
    """Whether ``result`` is a spec-valid value of one of the ``returns`` types."""
    scalar_types = {"Boolean": bool, "Integer": int, "String": str}
    for type_str in returns:
        if type_str in scalar_types:
            if isinstance(result, scalar_types[type_str]):
                return True
        elif type_str.startswith("Array of "):
            inner = type_str.removeprefix("Array of ")
            if isinstance(result, list) and not any(
                SPEC.check_object(inner, item) for item in result
            ):
                return True
        elif not SPEC.check_object(type_str, result):
            return True
    return False


def test_valid_send_message_is_recorded_and_returns_a_message(
    tg: TelegramStandIn, client: httpx.Client
) -> None:
    """A valid sendMessage answers a spec-valid Message echoing the text and keyboard."""
    markup = {"inline_keyboard": [[{"text": "Yes", "callback_data": "yes"}]]}
    response = client.post(
        "/sendMessage", json={"chat_id": 42, "text": "hi", "reply_markup": markup}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True
    message = body["result"]
    assert SPEC.check_object("Message", message) == ()
    assert message["text"] == "hi"
    assert message["chat"] == {"id": 42, "type": "private", "first_name": "Alice"}
    assert message["from"]["is_bot"] is True
    assert message["reply_markup"] == markup
    assert isinstance(message["date"], int)
    assert tg.calls == [
        RecordedCall(TOKEN, "sendMessage", {"chat_id": 42, "text": "hi", "reply_markup": markup})
    ]


def test_message_ids_increase_per_chat(client: httpx.Client) -> None:
    """Each chat numbers its messages independently, from 1."""
    ids = [
        client.post("/sendMessage", json={"chat_id": chat, "text": "x"}).json()["result"][
            "message_id"
        ]
        for chat in (1, 1, 2, 1)
    ]
    assert ids == [1, 2, 1, 3]


def test_get_me_returns_a_bot_user_derived_from_the_token(client: httpx.Client) -> None:
    """getMe answers a User with is_bot true and the token's bot id and username."""
    me = client.get("/getMe").json()["result"]
    assert SPEC.check_object("User", me) == ()
    assert me["is_bot"] is True
    assert me["id"] == 123456
    assert me["username"] == "standin_123456_bot"


def test_method_names_are_case_insensitive_and_recorded_canonically(
    tg: TelegramStandIn, client: httpx.Client
) -> None:
    """Like Telegram, sendmessage works, and the record uses the canonical sendMessage."""
    assert client.post("/sendmessage", json={"chat_id": 1, "text": "x"}).status_code == 200
    assert [call.method for call in tg.calls_to("SENDMESSAGE")] == ["sendMessage"]


def test_unknown_method_is_404(tg: TelegramStandIn, client: httpx.Client) -> None:
    """An unknown method answers Telegram's 404 and is listed as rejected, not recorded."""
    response = client.post("/sendMesage", json={"chat_id": 1, "text": "x"})
    assert response.status_code == 404
    assert response.json() == {
        "ok": False,
        "error_code": 404,
        "description": "Not Found: method not found",
    }
    assert tg.calls == []
    assert [(call.method, call.error_code) for call in tg.rejected] == [("sendMesage", 404)]


def test_missing_required_field_is_400_naming_it(client: httpx.Client) -> None:
    """A call without a required field answers 400 with a description naming the field."""
    response = client.post("/sendMessage", json={"chat_id": 1})
    assert response.status_code == 400
    assert response.json() == {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: sendMessage is missing the required field 'text'",
    }


def test_unknown_field_is_400_with_a_suggestion(client: httpx.Client) -> None:
    """A misspelt parameter answers 400 suggesting the intended field."""
    response = client.post("/sendMessage", json={"chat_id": 1, "text": "x", "parse_mod": "HTML"})
    assert response.status_code == 400
    assert "did you mean 'parse_mode'?" in response.json()["description"]


def test_unknown_token_is_401(tg: TelegramStandIn) -> None:
    """A token the stand-in does not know answers Telegram's 401."""
    response = httpx.post(f"{tg.bot_url('999:nope')}/getMe")
    assert response.status_code == 401
    assert response.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}


def test_paths_outside_the_bot_api_are_404(tg: TelegramStandIn) -> None:
    """A URL that is not /bot<token>/<method> answers a plain 404."""
    response = httpx.get(f"{tg.base_url}/favicon.ico")
    assert response.status_code == 404
    assert response.json()["ok"] is False


def test_fault_injection_fails_the_next_call_with_retry_after(
    tg: TelegramStandIn, client: httpx.Client
) -> None:
    """fail_next makes the next call a 429 with parameters.retry_after, then calls succeed."""
    tg.fail_next("sendMessage", retry_after=3)
    first = client.post("/sendMessage", json={"chat_id": 1, "text": "x"})
    second = client.post("/sendMessage", json={"chat_id": 1, "text": "x"})
    assert first.status_code == 429
    assert first.json() == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 3",
        "parameters": {"retry_after": 3},
    }
    assert second.status_code == 200
    assert [call.error_code for call in tg.calls_to("sendMessage")] == [429, None]


def test_a_fault_for_one_chat_leaves_other_chats_alone(
    tg: TelegramStandIn, client: httpx.Client
) -> None:
    """fail_next(chat_id=2) skips calls to chat 1 and fails the first call to chat 2."""
    tg.fail_next("sendMessage", retry_after=2, chat_id=2)
    assert client.post("/sendMessage", json={"chat_id": 1, "text": "x"}).status_code == 200
    assert client.post("/sendMessage", json={"chat_id": 2, "text": "x"}).status_code == 429
    assert client.post("/sendMessage", json={"chat_id": 2, "text": "x"}).status_code == 200


def test_strict_flood_limits_refuse_a_second_send_to_a_chat_within_a_second() -> None:
    """One a second per chat: the second quick send is a 429; another chat is not held."""
    with (
        TelegramStandIn(tokens={TOKEN}, strict_flood=True) as tg,
        httpx.Client(base_url=tg.bot_url(TOKEN), timeout=10) as http,
    ):
        assert http.post("/sendMessage", json={"chat_id": 1, "text": "a"}).status_code == 200
        second = http.post("/sendMessage", json={"chat_id": 1, "text": "b"})
        assert second.status_code == 429
        assert second.json()["parameters"] == {"retry_after": 1}
        assert http.post("/sendMessage", json={"chat_id": 2, "text": "c"}).status_code == 200
        assert http.post("/getMe").status_code == 200  # not a send: never limited
        assert [c.error_code for c in tg.calls_to("sendMessage")] == [None, 429, None]


def test_strict_flood_limits_hold_the_bot_to_thirty_sends_a_second() -> None:
    """Thirty sends to thirty chats pass; the 31st within the second is a 429."""
    with (
        TelegramStandIn(tokens={TOKEN}, strict_flood=True) as tg,
        httpx.Client(base_url=tg.bot_url(TOKEN), timeout=10) as http,
    ):
        started = time.monotonic()
        codes = [
            http.post("/sendMessage", json={"chat_id": n, "text": "x"}).status_code
            for n in range(31)
        ]
        if time.monotonic() - started < 0.9:  # the 31st landed in the same second
            assert codes == [200] * 30 + [429]
        else:  # a very slow machine: the window moved on; it must still have counted
            assert codes[:30] == [200] * 30
        assert len(tg.calls_to("sendMessage")) == 31


def test_fault_injection_honours_count_and_other_error_codes(
    tg: TelegramStandIn, client: httpx.Client
) -> None:
    """count=2 fails two calls; a 403 carries its description and no parameters."""
    tg.fail_next("sendMessage", 403, count=2)
    statuses = [
        client.post("/sendMessage", json={"chat_id": 1, "text": "x"}).status_code for _ in range(3)
    ]
    assert statuses == [403, 403, 200]
    tg.fail_next("getMe", 400, "Bad Request: chat not found")
    assert client.get("/getMe").json() == {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: chat not found",
    }


def test_fault_injection_into_an_unknown_method_is_refused(tg: TelegramStandIn) -> None:
    """Injecting into a misspelt method raises instead of silently never firing."""
    with pytest.raises(ValueError, match="sendMesage"):
        tg.fail_next("sendMesage")


def test_get_updates_returns_queued_updates_until_confirmed_by_offset(
    tg: TelegramStandIn, client: httpx.Client
) -> None:
    """Updates stay queued until a getUpdates offset above their id confirms them."""
    for update_id in (10, 11):
        tg.push_update(TOKEN, make_update(update_id=update_id, text=f"m{update_id}"))
    first = client.post("/getUpdates", json={}).json()["result"]
    assert [update["update_id"] for update in first] == [10, 11]
    again = client.post("/getUpdates", json={"offset": 11}).json()["result"]
    assert [update["update_id"] for update in again] == [11]
    assert client.post("/getUpdates", json={"offset": 12}).json()["result"] == []
    assert tg.pending_updates(TOKEN) == []


def test_get_updates_limit_and_allowed_updates_filter(
    tg: TelegramStandIn, client: httpx.Client
) -> None:
    """limit caps the batch and allowed_updates filters it by update kind."""
    tg.push_update(TOKEN, make_update(update_id=1))
    tg.push_update(TOKEN, make_update("callback_query", update_id=2))
    tg.push_update(TOKEN, make_update(update_id=3))
    limited = client.post("/getUpdates", json={"limit": 2}).json()["result"]
    assert [update["update_id"] for update in limited] == [1, 2]
    only = client.post("/getUpdates", json={"allowed_updates": ["callback_query"]}).json()
    assert [update["update_id"] for update in only["result"]] == [2]


def test_get_updates_long_poll_times_out_empty(client: httpx.Client) -> None:
    """With nothing queued, getUpdates waits about `timeout` seconds and returns []."""
    started = time.monotonic()
    result = client.post("/getUpdates", json={"timeout": 1}).json()["result"]
    elapsed = time.monotonic() - started
    assert result == []
    assert 0.9 <= elapsed < 2.0


def test_get_updates_long_poll_is_capped() -> None:
    """A long timeout is cut to the stand-in's cap so tests never hang on polling."""
    with TelegramStandIn(long_poll_cap=0.2) as standin:
        started = time.monotonic()
        response = httpx.post(f"{standin.bot_url(TOKEN)}/getUpdates", json={"timeout": 50})
        assert response.json()["result"] == []
        assert 0.15 <= time.monotonic() - started < 1.5


def test_get_updates_long_poll_wakes_when_an_update_arrives(
    tg: TelegramStandIn, client: httpx.Client
) -> None:
    """A waiting getUpdates returns as soon as an update is pushed."""
    timer = threading.Timer(0.1, tg.push_update, args=(TOKEN, make_update(update_id=5)))
    timer.start()
    started = time.monotonic()
    result = client.post("/getUpdates", json={"timeout": 2}).json()["result"]
    timer.join()
    assert [update["update_id"] for update in result] == [5]
    assert time.monotonic() - started < 1.5


def test_push_update_assigns_missing_update_ids(tg: TelegramStandIn) -> None:
    """Updates pushed without an update_id are numbered after the last queued one."""
    assert tg.push_update(TOKEN, make_update(update_id=7)) == 7
    message_only = {"message": make_update(update_id=0)["message"]}
    assert tg.push_update(TOKEN, message_only) == 8


def test_get_updates_is_recorded_only_when_asked(client: httpx.Client, tg: TelegramStandIn) -> None:
    """Polling is not recorded by default, so calls show what the bot did."""
    client.post("/getUpdates", json={})
    assert tg.calls == []
    with TelegramStandIn(record_polling=True) as recording:
        httpx.post(f"{recording.bot_url(TOKEN)}/getUpdates", json={"offset": 3})
        assert recording.calls == [RecordedCall(TOKEN, "getUpdates", {"offset": 3})]


def test_webhook_info_reflects_set_and_delete_webhook(client: httpx.Client) -> None:
    """getWebhookInfo shows the webhook set, getUpdates conflicts with it, deletion clears it."""
    url = "https://example.com/hook"
    assert client.post("/setWebhook", json={"url": url}).json() == {"ok": True, "result": True}
    info = client.get("/getWebhookInfo").json()["result"]
    assert SPEC.check_object("WebhookInfo", info) == ()
    assert info["url"] == url
    conflict = client.post("/getUpdates", json={})
    assert conflict.status_code == 409
    assert client.post("/deleteWebhook", json={}).json()["result"] is True
    assert client.get("/getWebhookInfo").json()["result"]["url"] == ""


def test_form_encoded_body_works_and_is_decoded_by_field_type(
    tg: TelegramStandIn, client: httpx.Client
) -> None:
    """A urlencoded body works; ints, booleans and JSON fields are decoded as Telegram does."""
    markup = '{"inline_keyboard": [[{"text": "a", "callback_data": "b"}]]}'
    response = client.post(
        "/sendMessage",
        data={
            "chat_id": "42",
            "text": "hi",
            "disable_notification": "true",
            "reply_markup": markup,
        },
    )
    assert response.status_code == 200
    assert response.json()["result"]["reply_markup"]["inline_keyboard"][0][0]["text"] == "a"
    (call,) = tg.calls
    assert call.params["chat_id"] == 42
    assert call.params["disable_notification"] is True
    assert call.params["text"] == "hi"


def test_query_string_parameters_work(tg: TelegramStandIn, client: httpx.Client) -> None:
    """GET with a query string is a call like any other."""
    response = client.get("/sendMessage", params={"chat_id": "@news", "text": "hi"})
    assert response.status_code == 200
    chat = response.json()["result"]["chat"]
    assert chat["type"] == "channel"
    assert chat["username"] == "news"
    assert tg.calls[0].params == {"chat_id": "@news", "text": "hi"}


def test_multipart_upload_records_the_file(tg: TelegramStandIn, client: httpx.Client) -> None:
    """A multipart sendPhoto records the uploaded file and answers a Message with a photo."""
    response = client.post(
        "/sendPhoto",
        data={"chat_id": "5", "caption": "look"},
        files={"photo": ("cat.png", b"\x89PNG", "image/png")},
    )
    message = response.json()["result"]
    assert SPEC.check_object("Message", message) == ()
    assert message["caption"] == "look"
    assert message["photo"]
    (call,) = tg.calls
    assert call.params["photo"] == UploadedFile("cat.png", "image/png", b"\x89PNG")


def test_malformed_json_body_is_400(client: httpx.Client) -> None:
    """A body that is not a JSON object answers 400."""
    response = client.post(
        "/sendMessage", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400


def test_wait_for_calls_blocks_until_calls_arrive(tg: TelegramStandIn) -> None:
    """wait_for_calls returns once another thread's call is recorded."""
    url = f"{tg.bot_url(TOKEN)}/sendMessage"
    timer = threading.Timer(
        0.1, httpx.post, args=(url,), kwargs={"json": {"chat_id": 1, "text": "x"}}
    )
    timer.start()
    (call,) = tg.wait_for_calls(1, timeout=5, method="sendMessage")
    timer.join()
    assert call.params["text"] == "x"


def test_wait_for_calls_times_out_with_a_clear_error(tg: TelegramStandIn) -> None:
    """wait_for_calls raises TimeoutError saying what it waited for."""
    with pytest.raises(TimeoutError, match="expected 1 calls to sendMessage"):
        tg.wait_for_calls(1, timeout=0.1, method="sendMessage")


def test_clear_forgets_calls_and_faults(tg: TelegramStandIn, client: httpx.Client) -> None:
    """clear() empties the records and pending faults."""
    client.post("/sendMessage", json={"chat_id": 1, "text": "x"})
    tg.fail_next("sendMessage")
    tg.clear()
    assert tg.calls == []
    assert client.post("/sendMessage", json={"chat_id": 1, "text": "x"}).status_code == 200


def test_close_stops_the_server_and_is_idempotent() -> None:
    """After close() the port refuses connections, and closing again is harmless."""
    standin = TelegramStandIn()
    with httpx.Client() as http:  # keep a keep-alive connection open across close()
        assert http.get(f"{standin.bot_url(TOKEN)}/getMe").status_code == 200
        standin.close()
    standin.close()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", standin.port), timeout=1):
        pass


async def test_works_from_inside_an_asyncio_loop() -> None:
    """The stand-in serves an async client while the test's loop is running."""
    with TelegramStandIn(tokens={TOKEN}) as standin:
        async with httpx.AsyncClient(base_url=standin.bot_url(TOKEN)) as http:
            response = await http.post("/sendMessage", json={"chat_id": 1, "text": "async"})
        assert response.json()["result"]["text"] == "async"


@pytest.mark.parametrize("method", sorted(SPEC.methods), ids=sorted(SPEC.methods))
def test_every_method_answers_a_result_of_its_return_type(
    any_token_standin: TelegramStandIn, shared_client: httpx.Client, method: str
) -> None:
    """Each method, called with its required fields, answers ok with a spec-valid result."""
    spec = SPEC.method(method)
    params = {name: plausible(spec.fields[name].types[0]) for name in spec.required_fields}
    token = f"{abs(hash(method)) % 10**9}:token"  # a fresh bot per method: no webhook clashes
    response = shared_client.post(f"{any_token_standin.bot_url(token)}/{method}", json=params)
    body = response.json()
    assert body["ok"] is True, body
    assert result_matches(spec.returns, body["result"]), body["result"]
