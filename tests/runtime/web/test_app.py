"""The app in process: ``/health`` and Telegram's webhook endpoint (secret, body, dispatch).

The 1 MiB body limit lives in Sanic's HTTP protocol, not on the ASGI path:
tests/e2e/test_telegram_endpoint.py checks it on the real server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from runtime.web.app import SECRET_HEADER
from tests.support.runtime import TOKEN, wait_until
from tests.support.updates import make_update
from tests.support.web import Web, serve

PING = '"""\ncommand: /ping\n"""\nBot.sendMessage("pong")\n'


@pytest.fixture(scope="module")
async def web(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Web]:
    """Bot ``tg`` answering /ping, on an app started once for this module."""
    async with serve(tmp_path_factory.mktemp("app"), {"tg": {"ping.py": PING}}) as started:
        yield started


def secret(web: Web) -> dict[str, str]:
    """The header carrying bot ``tg``'s webhook secret."""
    return {SECRET_HEADER: web.state.registry.get("tg").webhook_secret}


async def test_health_reports_bots_pool_queue_and_run_log(web: Web) -> None:
    """``/health`` counts the hosted bots (never names them: it is public, and the API hides a
    bot from tokens that may not see it) and gives the pool's and the queue's numbers."""
    response = await web.http.get("/health")
    health = response.json()
    assert health["ok"] is True and health["bots"] == 1
    assert '"tg"' not in response.text
    assert health["pool"]["workers"] == 2
    assert {"pending", "handled", "run_log_dropped"} <= set(health)
    assert (health["running"], health["run_log_pending"]) == (0, 0)


async def test_an_update_with_the_secret_is_queued_and_answered(web: Web) -> None:
    """A good update is stored (200 at once), then handled: the bot's reply reaches Telegram."""
    handled = web.state.processor.handled
    update = make_update(update_id=1, user_id=5, chat_id=5, text="/ping", bot_token=TOKEN)
    response = await web.http.post("/telegram/tg", json=update, headers=secret(web))
    assert (response.status_code, response.json()) == (200, {"ok": True})
    await wait_until(
        lambda: web.telegram.calls_to("sendMessage"), timeout=10, what="the reply to /ping"
    )
    (call,) = web.telegram.calls_to("sendMessage")
    assert (call.params["chat_id"], call.params["text"]) == (5, "pong")
    await wait_until(
        lambda: web.state.processor.handled > handled, timeout=10, what="the item finished"
    )


@pytest.mark.parametrize(
    ("path", "headers", "body", "status", "message"),
    [
        ("/telegram/nobot", "secret", b"{}", 404, "unknown bot"),
        ("/telegram/tg", None, b"{}", 403, "bad or missing secret token"),
        ("/telegram/tg", {SECRET_HEADER: "0" * 64}, b"{}", 403, "bad or missing secret token"),
        ("/telegram/tg", "secret", b"{not json", 400, "not a Telegram update: Expecting"),
        ("/telegram/tg", "secret", b'{"update_id": 1}', 400, "not a Telegram update: "),
        ("/telegram/tg", "secret", b"[" * 100_000, 400, "not a Telegram update: "),
    ],
    ids=["unknown-bot", "no-secret", "wrong-secret", "not-json", "no-update-kind", "too-deep"],
)
async def test_a_bad_telegram_request_is_refused_and_queues_nothing(
    web: Web, path: str, headers: object, body: bytes, status: int, message: str
) -> None:
    """Unknown bot 404, a missing or wrong secret 403, a body that is not an update 400."""
    sent = secret(web) if headers == "secret" else headers
    before = await web.state.store.pending_count()
    response = await web.http.post(path, content=body, headers=sent)  # type: ignore[arg-type]
    assert response.status_code == status
    assert response.json()["message"].startswith(message)
    assert "Traceback" not in response.text
    assert await web.state.store.pending_count() == before
