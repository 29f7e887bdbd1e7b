"""One bad update never fails another: poisoned updates in a concurrent burst, through real HTTP."""

from __future__ import annotations

import asyncio
import copy
import json
import sqlite3
from collections import Counter
from typing import Any

import httpx

from tests.e2e.conftest import DEMO_TOKEN
from tests.support.server import BotboxServer
from tests.support.telegram_standin import TelegramStandIn
from tests.support.updates import make_update

VALID = 40
FIRST_CHAT = 700_000
FIRST_UPDATE = 9_000_000


def stored_update_ids(server: BotboxServer) -> list[int]:
    """The update ids in the server's queue (done or not)."""
    with sqlite3.connect(server.data_dir / "botbox.sqlite3") as db:
        rows = db.execute("SELECT update_id FROM queue WHERE kind = 'update'").fetchall()
    return sorted(row[0] for row in rows)


def valid(n: int) -> dict[str, Any]:
    """The n-th valid update: a text message in a private chat of its own."""
    chat = FIRST_CHAT + n
    return make_update(
        update_id=FIRST_UPDATE + n, user_id=chat, chat_id=chat, text=f"w{n}", bot_token=DEMO_TOKEN
    )


def poisoned() -> dict[str, tuple[dict[str, Any], str]]:
    """Bad updates by name, each with a fragment of the 400 message it must get."""
    cases: dict[str, tuple[dict[str, Any], str]] = {}
    huge_update_id = copy.deepcopy(valid(100))
    huge_update_id["update_id"] = 2**63
    cases["update-id-2-63"] = (huge_update_id, "update_id must be at most 4503599627370495")
    surrogate = valid(101)
    surrogate["message"]["text"] = "\ud800"
    cases["lone-surrogate"] = (surrogate, "message.text is not valid Unicode")
    huge_user = valid(102)
    huge_user["message"]["from"]["id"] = 2**70
    cases["user-id-2-70"] = (huge_user, "message.from.id must be an integer of at most 52")
    huge_chat = valid(103)
    huge_chat["message"]["chat"]["id"] = 2**70
    cases["chat-id-2-70"] = (huge_chat, "message.chat.id must be an integer of at most 52")
    no_chat = valid(104)
    del no_chat["message"]["chat"]
    cases["message-without-chat"] = (no_chat, "message has no chat")
    # The same chat as a valid update of the burst: refusing it must not hold that chat.
    same_chat = valid(5)
    same_chat["update_id"] = FIRST_UPDATE + 105
    same_chat["message"]["text"] = "x\udfffy"
    cases["surrogate-in-a-busy-chat"] = (same_chat, "not valid Unicode")
    return cases


async def post_all(server: BotboxServer, bodies: list[bytes]) -> list[httpx.Response]:
    """POST every body to the demo bot's webhook at the same moment."""
    headers = {
        "Content-Type": "application/json",
        "X-Telegram-Bot-Api-Secret-Token": server.secret(),
    }
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        return await asyncio.gather(
            *(client.post("/telegram/demo", content=body, headers=headers) for body in bodies)
        )


def test_poisoned_updates_in_a_concurrent_burst_fail_alone(
    server: BotboxServer, telegram: TelegramStandIn
) -> None:
    """Each bad update gets 400 and runs nothing; each of the 40 valid ones gets 200, runs once."""
    bad = poisoned()
    valid_bodies = [json.dumps(valid(n)).encode() for n in range(VALID)]
    bad_bodies = [json.dumps(update).encode() for update, _ in bad.values()]
    # Poison in the middle of the burst, between valid updates, so they share batches.
    bodies = valid_bodies[:20] + bad_bodies + valid_bodies[20:]
    before = len(telegram.calls_to("sendMessage"))

    responses = asyncio.run(post_all(server, bodies))

    statuses = [response.status_code for response in responses]
    assert statuses[:20] + statuses[20 + len(bad) :] == [200] * VALID
    for (name, (_, fragment)), response in zip(bad.items(), responses[20:], strict=False):
        assert response.status_code == 400, name
        assert fragment in response.json()["message"], name
        assert "Traceback" not in response.text
    telegram.wait_for_calls(before + VALID, timeout=60, method="sendMessage")
    server.wait_idle(timeout=30)
    sent = telegram.calls_to("sendMessage")[before:]
    per_chat = Counter(call.params["chat_id"] for call in sent)
    assert per_chat == Counter({FIRST_CHAT + n: 1 for n in range(VALID)})
    for call in sent:
        n = call.params["chat_id"] - FIRST_CHAT
        assert call.params["text"].startswith(f"You said: w{n}\n")
    assert stored_update_ids(server) == [FIRST_UPDATE + n for n in range(VALID)]
