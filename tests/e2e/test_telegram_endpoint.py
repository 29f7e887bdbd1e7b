"""POST /telegram/<bot>: the secret, malformed input, dedupe and order, through real HTTP."""

from __future__ import annotations

import sqlite3

import pytest

from tests.e2e.conftest import DEMO_TOKEN
from tests.support.updates import make_update


def stored_updates(server) -> int:
    with sqlite3.connect(server.data_dir / "botbox.sqlite3") as db:
        return db.execute("SELECT COUNT(*) FROM queue").fetchone()[0]


@pytest.mark.parametrize(
    ("secret", "status"),
    [(None, 403), ("", 403), ("wrong", 403), ("x" * 300, 403)],
    ids=["missing", "empty", "wrong", "oversized"],
)
def test_a_bad_secret_token_is_refused_and_nothing_is_stored(server, update_ids, secret, status):
    """Without the right X-Telegram-Bot-Api-Secret-Token the update is refused, not stored."""
    before = stored_updates(server)
    update = make_update(update_id=next(update_ids), text="/start", bot_token=DEMO_TOKEN)
    headers = {} if secret is None else {"X-Telegram-Bot-Api-Secret-Token": secret}
    response = server.client.post("/telegram/demo", json=update, headers=headers)
    assert response.status_code == status
    assert response.json()["ok"] is False
    assert stored_updates(server) == before


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"not json", "not a Telegram update"),
        (b"[]", "not a Telegram update"),
        (b'{"update_id": "1", "message": {}}', "update_id"),
        (b'{"update_id": 5}', "not a Telegram update"),
        (b'{"update_id": 5, "message": 3}', "not a Telegram update"),
        (b"[" * 100000, "not a Telegram update"),
    ],
    ids=["not-json", "array", "string-id", "no-kind", "kind-not-object", "deep-nesting"],
)
def test_malformed_updates_get_400_and_change_nothing(server, body, fragment):
    """A body that is not an Update is a 400 with a message; the queue is untouched."""
    before = stored_updates(server)
    response = server.client.post(
        "/telegram/demo",
        content=body,
        headers={
            "X-Telegram-Bot-Api-Secret-Token": server.secret(),
            "Content-Type": "application/json",
        },
    )
    assert response.status_code == 400
    assert fragment in response.json()["message"]
    assert "Traceback" not in response.text
    assert stored_updates(server) == before


def test_an_unknown_bot_is_404(server, update_ids):
    """Updates for a bot this server does not host are refused with 404."""
    update = make_update(update_id=next(update_ids), text="/start", bot_token=DEMO_TOKEN)
    assert server.post_update(update, bot_id="nobot", secret="x").status_code == 404


def test_an_oversized_body_is_refused_with_413(server):
    """Bodies over the cap are refused before they are read whole."""
    response = server.client.post(
        "/telegram/demo",
        content=b"x" * (2 * 1024 * 1024),
        headers={"X-Telegram-Bot-Api-Secret-Token": server.secret()},
    )
    assert response.status_code == 413


def test_a_redelivered_update_runs_once(server, telegram, update_ids, chat_id):
    """Telegram may deliver an update twice; the second copy is acknowledged and ignored."""
    update = make_update(
        update_id=next(update_ids),
        user_id=chat_id,
        chat_id=chat_id,
        text="/set",
        bot_token=DEMO_TOKEN,
    )
    before = len(telegram.calls)
    assert server.post_update(update).status_code == 200
    assert server.post_update(update).status_code == 200
    telegram.wait_for_calls(before + 1)
    server.wait_idle()
    mine = [c for c in telegram.calls[before:] if c.params.get("chat_id") == chat_id]
    assert len(mine) == 1


def test_updates_of_one_chat_are_handled_in_order(server, telegram, update_ids, chat_id):
    """Five quick updates in one chat are answered in the order they arrived."""
    before = len(telegram.calls)
    words = ["one", "two", "three", "four", "five"]
    for word in words:
        update = make_update(
            update_id=next(update_ids),
            user_id=chat_id,
            chat_id=chat_id,
            text=word,
            bot_token=DEMO_TOKEN,
        )
        assert server.post_update(update).status_code == 200
    calls = telegram.wait_for_calls(before + 5, timeout=20)[before:]
    mine = [c.params["text"].split("\n")[0] for c in calls if c.params["chat_id"] == chat_id]
    assert mine == [f"You said: {w}" for w in words]


def test_health_reports_bots_pool_and_isolation(server):
    """GET /health answers with the number of bots, the pool's state and its isolation."""
    body = server.client.get("/health").json()
    assert body["ok"] is True
    assert body["bots"] == 1
    assert body["pool"]["workers"] == 2
    assert "network" in body["isolation"]
    assert body["run_log_dropped"] == 0
    assert isinstance(body["handled"], int)


def test_unknown_routes_and_methods_get_clean_errors(server):
    """A wrong path is 404 and a wrong method 405, as JSON, without internals."""
    assert server.client.get("/nope").status_code == 404
    response = server.client.get("/telegram/demo")
    assert response.status_code == 405
    assert "Traceback" not in response.text
