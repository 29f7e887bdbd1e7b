"""The Telegram client: spec checks before sending, answers read by check_response."""

from __future__ import annotations

import logging

import httpx
import pytest

from runtime.errors import ApiError, CallRefused, FileRefused, TransportError
from runtime.telegram.client import RedactTokens, TelegramClient, check_response
from tests.support.telegram_standin import TelegramStandIn

TOKEN = "123456:AAtestTokenForTheClientTests_abcdefgh"


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, b'{"ok": true, "result": {"id": 1}}', {"id": 1}),
        (200, b'{"ok": true, "result": true}', True),
    ],
    ids=["object", "boolean"],
)
def test_a_successful_answer_returns_its_result(status, body, expected):
    """ok: true gives the result."""
    assert check_response("getMe", status, body) == expected


def test_a_refusal_raises_api_error_with_code_description_and_retry_after():
    """ok: false becomes ApiError carrying Telegram's data."""
    with pytest.raises(ApiError) as error:
        check_response(
            "sendMessage",
            429,
            b'{"ok": false, "error_code": 429, '
            b'"description": "Too Many Requests: retry after 3", '
            b'"parameters": {"retry_after": 3}}',
        )
    assert (error.value.code, error.value.retry_after) == (429, 3.0)
    assert error.value.description.startswith("Too Many Requests")


@pytest.mark.parametrize(
    "body",
    [b"<html>bad gateway</html>", b"[1, 2]", b'{"result": 1}'],
    ids=["html", "array", "no-ok"],
)
def test_an_answer_that_is_not_the_bot_api_is_a_transport_error(body):
    """Proxies' error pages and other garbage do not pass as results."""
    with pytest.raises(TransportError):
        check_response("getMe", 502, body)


async def test_calls_go_over_real_http_and_unknown_methods_never_leave():
    """A valid call reaches the stand-in; a misspelt one is refused with a suggestion."""
    with TelegramStandIn(tokens={TOKEN}) as telegram:
        client = TelegramClient(telegram.base_url)
        try:
            message = await client.call(
                TOKEN, "sendMessage", {"chat_id": 5, "text": "hi", "parse_mode": None}
            )
            assert message["text"] == "hi"
            assert telegram.calls[0].params == {"chat_id": 5, "text": "hi"}
            with pytest.raises(CallRefused) as refused:
                await client.call(TOKEN, "sendMesage", {"chat_id": 5, "text": "hi"})
            assert "did you mean 'sendMessage'" in str(refused.value)
            assert len(telegram.calls) == 1
        finally:
            await client.close()


async def test_an_unreachable_api_is_a_transport_error():
    """A closed port is translated once, into TransportError."""
    client = TelegramClient("http://127.0.0.1:9", timeout=2)
    try:
        with pytest.raises(TransportError):
            await client.call(TOKEN, "getMe", {})
    finally:
        await client.close()


def test_tokens_are_redacted_from_library_log_lines():
    """httpx's request log never shows a bot token."""
    record = logging.LogRecord(
        "httpx",
        logging.INFO,
        __file__,
        1,
        "HTTP Request: %s %s",
        ("POST", f"https://api.telegram.org/bot{TOKEN}/getMe"),
        None,
    )
    RedactTokens().filter(record)
    assert TOKEN not in record.getMessage()
    assert "/bot<redacted>/getMe" in record.getMessage()


async def test_a_download_without_a_length_stops_reading_at_the_cap():
    """A file served in chunks with no Content-Length is cut off once it passes the cap."""
    produced: list[int] = []

    async def chunks():
        for index in range(50):
            produced.append(index)
            yield b"x" * 1000

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/missing.bin"):
            return httpx.Response(404, content=b"Not Found")
        assert request.url.raw_path == f"/file/bot{TOKEN}/documents/big%20file.bin".encode()
        return httpx.Response(200, content=chunks())

    client = TelegramClient("http://stand.in", transport=httpx.MockTransport(answer))
    try:
        with pytest.raises(FileRefused, match="over 2500 bytes") as refused:
            await client.download(TOKEN, "documents/big file.bin", max_bytes=2500)
        assert refused.value.status == 413
        assert len(produced) < 10  # it stopped reading, not after the whole body
        with pytest.raises(ApiError) as missing:
            await client.download(TOKEN, "documents/missing.bin", max_bytes=2500)
        assert missing.value.code == 404
    finally:
        await client.close()
