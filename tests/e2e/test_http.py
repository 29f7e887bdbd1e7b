"""HTTP.* on a real server process: a bot fetches from a local server on ::1 (allowed by its
bot.yaml) for a Telegram update and for a link click; another bot, without an allow list, is
refused the same server; ``run.py logs`` shows each request's metadata and nothing more."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.links import mint
from tests.support.origin import Origin, origin
from tests.support.server import BotboxServer, hosting
from tests.support.telegram_standin import TelegramStandIn
from tests.support.updates import make_update

TOKEN = "333333333:AAHttpBotTokenForTestsOnly_abcdefghijkl"
CLOSED_TOKEN = "444444444:AAClosedBotTokenForTestsOnly_abcdefghi"
_ids = itertools.count(1)


def bots(server: Origin) -> dict[str, dict[str, str]]:
    url = f"{server.base}/echo"
    return {
        "fetcher": {
            "bot.yaml": (
                f'id: fetcher\ntoken_env: HTTP_TOKEN\nhttp:\n  allow: ["::1"]\n'
                f"  ports: [{server.port}]\n"
            ),
            "ask.py": (
                '"""\ncommand: /ask\n"""\n'
                f"r = HTTP.get('{url}', params={{'key': 'query-secret'}})\n"
                "Bot.sendMessage(f\"{r.status} {r.json()['method']} {r.json()['host']}\")\n"
            ),
            "hook.py": (
                '"""\ncommand: hook\n"""\n'
                f"r = HTTP.post('{url}', json={{'n': 7}})\n"
                "res.json({'upstream': r.status, 'sent': r.json()['body']})\n"
            ),
        },
        "closed": {
            "bot.yaml": f"id: closed\ntoken_env: CLOSED_TOKEN\nhttp:\n  ports: [{server.port}]\n",
            "ask.py": (
                '"""\ncommand: /ask\n"""\ntry:\n'
                f"    HTTP.get('{url}')\n    Bot.sendMessage('reached')\n"
                "except HTTPError as e:\n    Bot.sendMessage(f'{e.reason}: {e}')\n"
            ),
        },
    }


@pytest.fixture(scope="module")
def running(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[BotboxServer, TelegramStandIn, Origin]]:
    root = Path(tmp_path_factory.mktemp("http"))
    env = {"HTTP_TOKEN": TOKEN, "CLOSED_TOKEN": CLOSED_TOKEN}
    with (
        origin("::1") as server,
        TelegramStandIn(tokens={TOKEN, CLOSED_TOKEN}) as telegram,
        hosting(root, bots(server), telegram_api=telegram.base_url, env=env) as botbox,
    ):
        yield botbox, telegram, server


def say(running: tuple[BotboxServer, TelegramStandIn, Origin], bot: str, token: str) -> str:
    botbox, telegram, _ = running
    before = len(telegram.calls)
    update = make_update(update_id=next(_ids), user_id=7, chat_id=7, text="/ask", bot_token=token)
    assert botbox.post_update(update, bot_id=bot).status_code == 200
    (call,) = telegram.wait_for_calls(before + 1)[before:]
    return str(call.params.get("text"))


def test_an_update_runs_a_script_that_fetches_from_an_allowed_ipv6_server(running) -> None:
    _, _, server = running
    assert say(running, "fetcher", TOKEN) == f"200 GET [::1]:{server.port}"


def test_a_link_click_answers_with_what_the_script_fetched(running) -> None:
    botbox, _, server = running
    response = botbox.client.get(mint(botbox.data_dir, "hook", bot_id="fetcher", user_id=7))
    assert response.status_code == 200
    assert response.json() == {"upstream": 200, "sent": '{"n": 7}'}
    assert server.requests[-1]["method"] == "POST"


def test_a_bot_with_the_port_but_no_allow_entry_is_refused_the_same_server(running) -> None:
    _, _, server = running
    before = len(server.requests)
    text = say(running, "closed", CLOSED_TOKEN)
    assert text.startswith("refused: HTTP.get: ::1 is a loopback address; only public")
    assert len(server.requests) == before


def test_the_run_log_shows_request_metadata_and_no_url_or_body(running) -> None:
    botbox, _, server = running
    say(running, "fetcher", TOKEN)
    runs = botbox.logs("fetcher")
    hops = [hop for run in runs for hop in run["http"]]
    assert {hop["method"] for hop in hops} >= {"GET"}
    assert all(hop["host"] == "::1" and hop["status"] == 200 for hop in hops)
    assert "query-secret" not in str(runs)
    assert f":{server.port}/" not in str(runs)
