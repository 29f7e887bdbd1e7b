"""``POST /api/v1/bots/{id}/try`` through the real server: who may try, what a try answers,
and that a try's data and the real bot's never mix (unless ``real_data``)."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

from runtime.web.trial import TRY_LINK_SECONDS
from tests.runtime.api.conftest import Api

TRY = "/bots/{bot}/try"


def test_an_author_of_the_bot_may_try_a_viewer_gets_403_and_others_404(api: Api) -> None:
    body = {"kind": "message", "text": "/start", "user_id": 501}
    allowed = api.call("ann", "POST", TRY.format(bot="shop"), json=body)
    assert allowed.status_code == 200, allowed.text
    assert api.call("root", "POST", TRY.format(bot="blog"), json=body).status_code == 200
    for viewer in ("vic", "amy"):  # a viewer, and an author with only a viewer grant
        refused = api.call(viewer, "POST", TRY.format(bot="shop"), json=body)
        assert refused.status_code == 403
        assert refused.json()["error"] == "forbidden"
    hidden = api.call("nobody", "POST", TRY.format(bot="shop"), json=body)
    missing = api.call("nobody", "POST", TRY.format(bot="nope"), json=body)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.content == missing.content
    assert api.call(None, "POST", TRY.format(bot="shop"), json=body).status_code == 401


def test_a_try_answers_calls_runs_and_changes_and_telegram_hears_nothing(api: Api) -> None:
    before = len(api.telegram.calls)
    response = api.call(
        "ann",
        "POST",
        TRY.format(bot="shop"),
        json={"kind": "message", "text": "/start", "user_id": 502},
    )
    assert response.status_code == 200, response.text
    trial = response.json()
    assert trial["ok"] is True
    assert trial["data"] == "try"
    assert trial["source"] == f"live version {trial['version']}"
    assert [call["method"] for call in trial["calls"]] == ["sendMessage"]
    assert trial["calls"][0]["params"] == {"chat_id": 502, "text": "welcome"}
    assert [(run["command"], run["status"]) for run in trial["runs"]] == [("/start", "ok")]
    assert trial["properties"] == [
        {"scope": "user:502", "name": "visits", "before": None, "after": 1}
    ]
    assert len(api.telegram.calls) == before


def test_a_script_error_names_file_and_line(api: Api) -> None:
    response = api.call(
        "ann", "POST", TRY.format(bot="shop"), json={"kind": "message", "text": "/fail"}
    )
    assert response.status_code == 200
    trial = response.json()
    assert trial["ok"] is False
    (run,) = trial["runs"]
    assert run["status"] == "script_error"
    assert run["error"]["type"] == "ValueError"
    assert (run["error"]["file"], run["error"]["line"]) == ("fail.py", 4)


def test_a_click_answers_what_res_set(api: Api) -> None:
    response = api.call(
        "ann", "POST", TRY.format(bot="shop"), json={"kind": "click", "command": "click"}
    )
    assert response.status_code == 200, response.text
    answer = response.json()["response"]
    assert answer["status"] == 200
    assert answer["content_type"] == "application/json"
    assert answer["body"] == '{"clicked": true}'
    missing = api.call(
        "ann", "POST", TRY.format(bot="shop"), json={"kind": "click", "command": "x"}
    )
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"


def test_a_body_that_is_not_one_trigger_is_422_naming_the_problem(api: Api) -> None:
    response = api.call(
        "ann", "POST", TRY.format(bot="shop"), json={"kind": "message", "data": "x"}
    )
    assert response.status_code == 422
    wheres = {problem["where"] for problem in response.json()["problems"]}
    assert "body.message.text" in wheres
    assert "body.message.data" in wheres


def test_try_data_is_not_the_real_bots_and_real_data_is(api: Api) -> None:
    """A try's property is not the real bot's; a real update's is not the try's; a try with
    ``real_data`` reads and writes the real one (and is audited)."""

    def visits(real_data: bool) -> tuple[object, object]:
        body = {"kind": "message", "text": "/start", "user_id": 503, "real_data": real_data}
        trial = api.call("ann", "POST", TRY.format(bot="shop"), json=body).json()
        (change,) = trial["properties"]
        return change["before"], change["after"]

    assert visits(False) == (None, 1)
    real = api.call("ann", "GET", "/bots/shop/properties/user:503/visits")
    assert real.status_code == 404  # the try's write is not in the real store
    api.say("shop", "/start", user=503)
    assert api.call("ann", "GET", "/bots/shop/properties/user:503/visits").json()["value"] == 1
    assert visits(False) == (1, 2)  # the real update's write is not in the try store
    assert visits(True) == (1, 2)  # real data: the real value, now 2
    assert api.call("ann", "GET", "/bots/shop/properties/user:503/visits").json()["value"] == 2
    audit = api.call("root", "GET", "/audit").json()["entries"]
    assert any(entry["action"] == "bot.try" and entry["actor"] == "ann" for entry in audit)


def test_a_try_clicks_link_expires_soon_since_its_minting_is_not_audited(api: Api) -> None:
    """The link a try signs (real keys) also opens the real webhook: unlike POST /links, a try
    records no audit entry, so its link must not outlive the try."""
    response = api.call(
        "ann", "POST", TRY.format(bot="shop"), json={"kind": "click", "command": "click"}
    )
    assert response.status_code == 200, response.text
    link = response.json()["trigger"]["link"]
    expiry = parse_qs(urlsplit(link).query).get("exp")
    assert expiry is not None, link
    assert int(expiry[0]) / 1000 <= time.time() + TRY_LINK_SECONDS


def test_a_try_reads_every_secret_as_missing_so_its_report_holds_none(api: Api) -> None:
    """As the README says: a secret the author set is never in a try's report."""
    value = "try-secret-0a1b2c3d4e"
    put = api.call("ann", "PUT", "/bots/shop/secrets/TRY_KEY", json={"value": value})
    assert put.status_code in (200, 201), put.text
    response = api.call(
        "ann", "POST", TRY.format(bot="shop"), json={"kind": "message", "text": "/secret"}
    )
    assert response.status_code == 200, response.text
    (run,) = response.json()["runs"]
    assert run["output"] == "missing\n"
    assert value not in response.text
