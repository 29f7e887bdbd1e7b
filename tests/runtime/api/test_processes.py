"""Two server processes on one store: the API's guarantees hold whichever process answers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.runtime.api.conftest import SHOP, SHOP_TOKEN, create_token
from tests.support.archives import zipped
from tests.support.server import BotboxServer, hosting
from tests.support.telegram_standin import TelegramStandIn


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BotboxServer, str]]:
    """``shop`` served by two processes (BOTBOX_SERVER_WORKERS=2, metrics in multiprocess
    mode), and an admin token."""
    root = Path(tmp_path_factory.mktemp("api-pair"))
    (root / "prometheus").mkdir()
    env = {
        "SHOP_TOKEN": SHOP_TOKEN,
        "BOTBOX_SERVER_WORKERS": "2",
        "BOTBOX_SANDBOX_WORKERS": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(root / "prometheus"),
    }
    with (
        TelegramStandIn(tokens={SHOP_TOKEN}) as telegram,
        hosting(root, {"shop": SHOP}, telegram_api=telegram.base_url, env=env) as server,
    ):
        yield server, create_token(server, "--name", "root", "--role", "admin")


def _fresh(server: BotboxServer, token: str, method: str, path: str, **kwargs: object) -> int:
    """One request on a new connection (so either process may take it); its status."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.url + "/api/v1", headers=headers, timeout=30) as client:
        return client.request(method, path, **kwargs).status_code  # type: ignore[arg-type]


def test_twenty_concurrent_creates_of_one_property_succeed_once(
    pair: tuple[BotboxServer, str],
) -> None:
    server, token = pair
    body = {"value": "first", "if_version": 0}  # version 0: only if it is not set yet
    with ThreadPoolExecutor(20) as threads:
        statuses = sorted(
            threads.map(
                lambda _: _fresh(server, token, "PUT", "/bots/shop/properties/bot/k", json=body),
                range(20),
            )
        )
    assert statuses == [200] + [409] * 19
    with httpx.Client(base_url=server.url, timeout=10) as client:
        audit = client.get(
            "/api/v1/audit", params={"bot": "shop"}, headers={"Authorization": f"Bearer {token}"}
        ).json()["entries"]
    assert [entry["target"] for entry in audit] == ["bot/k"]


def test_a_token_revoked_in_one_process_is_refused_by_both(pair: tuple[BotboxServer, str]) -> None:
    server, root = pair
    with httpx.Client(base_url=server.url + "/api/v1", timeout=10) as client:
        made = client.post(
            "/tokens", json={"user": "root"}, headers={"Authorization": f"Bearer {root}"}
        ).json()
        assert client.post(
            f"/tokens/{made['id']}/revoke", headers={"Authorization": f"Bearer {root}"}
        ).is_success
    with ThreadPoolExecutor(10) as threads:
        statuses = set(
            threads.map(lambda _: _fresh(server, made["token"], "GET", "/bots"), range(20))
        )
    assert statuses == {401}


def test_in_multiprocess_mode_every_scrape_counts_both_processes(
    pair: tuple[BotboxServer, str],
) -> None:
    server, token = pair
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.url, timeout=10, headers=headers) as client:
        url = client.post(
            "/api/v1/bots/shop/links", json={"command": "click", "user_id": 3}
        ).json()["url"]
    with ThreadPoolExecutor(10) as threads:
        clicks = list(threads.map(lambda _: httpx.get(url, timeout=30), range(10)))
    assert {click.status_code for click in clicks} == {200}

    def clicked() -> float:
        with httpx.Client(base_url=server.url, timeout=10, headers=headers) as client:
            text = client.get("/metrics").text
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "botbox_link_clicks_total" and sample.labels["status"] == "200"
        )

    assert [clicked() for _ in range(6)] == [10.0] * 6


def test_a_bot_created_deployed_and_disabled_through_one_process_is_followed_by_both(
    pair: tuple[BotboxServer, str],
) -> None:
    """Ten concurrent creates of one id (spread over both processes): one 201. Then every
    request, whichever process takes it, sees the upload served and the disable honoured."""
    server, token = pair
    with ThreadPoolExecutor(10) as threads:
        statuses = sorted(
            threads.map(
                lambda _: _fresh(server, token, "POST", "/bots", json={"id": "twin"}), range(10)
            )
        )
    assert statuses == [201] + [409] * 9
    files = {
        "bot.yaml": "id: twin\ntoken_env: SHOP_TOKEN\n",
        "p.py": '"""\ncommand: /p\n"""\nx = 1\n',
    }
    assert _fresh(server, token, "POST", "/bots/twin/versions", content=zipped(files)) == 200
    assert _fresh(server, token, "POST", "/bots/twin/disable") == 200
    update = {
        "update_id": 77,
        "message": {"message_id": 1, "date": 0, "chat": {"id": 5, "type": "private"}, "text": "/p"},
    }
    deadline = time.monotonic() + 10
    answers: list[dict[str, object]] = []
    while len(answers) < 10:  # new connections: both processes answer over ten tries
        with httpx.Client(base_url=server.url, timeout=10) as client:
            response = client.post(
                "/telegram/twin",
                json=update,
                headers={"X-Telegram-Bot-Api-Secret-Token": server.secret("twin")},
            )
        if response.status_code == 200 and response.json().get("dropped"):
            answers.append(response.json())
        else:  # the other process has not followed the disable yet (within its 0.5 s poll)
            assert time.monotonic() < deadline, response.text
            answers.clear()
    assert _fresh(server, token, "GET", "/bots/twin") == 200


def test_tries_on_both_processes_share_one_try_store_and_never_the_real_one(
    pair: tuple[BotboxServer, str],
) -> None:
    """Twenty concurrent tries of /start (each on a new connection, so both processes answer):
    every try that ended well counted its visit in the one try store (a conflicting one
    failed and wrote nothing), and the real store holds none of them."""
    server, token = pair
    headers = {"Authorization": f"Bearer {token}"}
    body = {"kind": "message", "text": "/start", "user_id": 901}

    def try_once(_: int) -> dict[str, object]:
        with httpx.Client(base_url=server.url + "/api/v1", headers=headers, timeout=30) as client:
            response = client.post("/bots/shop/try", json=body)
            assert response.status_code == 200, response.text
            trial: dict[str, object] = response.json()
            return trial

    with ThreadPoolExecutor(20) as threads:
        trials = list(threads.map(try_once, range(20)))
    succeeded = [trial for trial in trials if trial["ok"]]
    assert succeeded
    failed_types = {
        run["error"]["type"]  # type: ignore[index]
        for trial in trials
        if not trial["ok"]
        for run in trial["runs"]  # type: ignore[attr-defined]
    }
    assert failed_types <= {"ConflictError"}
    after = sorted(trial["properties"][0]["after"] for trial in succeeded)  # type: ignore[index]
    assert after == list(range(1, len(succeeded) + 1))
    last = try_once(0)
    assert last["properties"][0]["before"] == len(succeeded)  # type: ignore[index]
    assert _fresh(server, token, "GET", "/bots/shop/properties/user:901/visits") == 404
