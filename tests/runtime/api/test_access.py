"""Through the real server: who may call what, and in which order requests are refused.

Every family of endpoints has a test per role, proving what it may do and what it may not.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.runtime.api.conftest import Api

BOT_ENDPOINTS = [
    ("GET", "/bots/{bot}"),
    ("GET", "/bots/{bot}/runs?limit=abc"),
    ("GET", "/bots/{bot}/runs/not-a-number"),
    ("GET", "/bots/{bot}/properties/nonsense"),
    ("PUT", "/bots/{bot}/properties/bot/x"),
    ("DELETE", "/bots/{bot}/properties/bot/x"),
    ("POST", "/bots/{bot}/links"),
    ("POST", "/bots/{bot}/keys/revoke"),
]


@pytest.mark.parametrize(("method", "path"), BOT_ENDPOINTS)
def test_no_token_is_401_with_a_bearer_challenge_before_the_input_is_read(
    api: Api, method: str, path: str
) -> None:
    for headers in ({}, {"Authorization": "Bearer bbx_wrong"}, {"Authorization": "Basic x"}):
        response = api.call(
            None, method, path.format(bot="shop"), content=b"{not json", headers=headers
        )
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert response.json()["error"] == "unauthorized"


@pytest.mark.parametrize(("method", "path"), BOT_ENDPOINTS)
def test_a_bot_the_token_may_not_see_is_404_like_a_missing_one_before_validation(
    api: Api, method: str, path: str
) -> None:
    hidden = api.call("ann", method, path.format(bot="blog"), content=b"{not json")
    missing = api.call("ann", method, path.format(bot="nope"), content=b"{not json")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.content == missing.content
    assert "traceback" not in hidden.text.lower()


def test_invalid_input_after_authorisation_gets_400_or_422_with_every_problem(api: Api) -> None:
    response = api.call("ann", "PUT", "/bots/shop/properties/bot/x", content=b"{not json")
    assert response.status_code == 400 and response.json()["error"] == "bad_request"
    response = api.call("ann", "PUT", "/bots/shop/properties/bot/x", json={"valu": 1})
    assert response.status_code == 422
    wheres = {p["where"] for p in response.json()["problems"]}
    assert wheres == {"body.value", "body.valu"}
    response = api.call("ann", "GET", "/bots/shop/runs", params={"limit": "0", "user": "x"})
    assert response.status_code == 422
    assert {p["where"] for p in response.json()["problems"]} == {"query.limit", "query.user"}
    assert api.call("ann", "GET", "/bots/shop/properties/planet:1").status_code == 422
    assert api.call("ann", "GET", "/bots/shop/runs/abc").status_code == 422


# -- bots --
def test_each_role_lists_exactly_the_bots_it_may_see(api: Api) -> None:
    def listed(who: str) -> dict[str, str]:
        response = api.call(who, "GET", "/bots")
        assert response.status_code == 200
        return {bot["id"]: bot["access"] for bot in response.json()["bots"]}

    assert listed("root") == {"shop": "write", "blog": "write"}
    assert listed("ann") == {"shop": "write"}
    assert listed("vic") == {"shop": "read"}
    assert listed("amy") == {"shop": "read"}
    assert listed("nobody") == {}
    shop = api.call("vic", "GET", "/bots/shop").json()
    assert shop["status"] == "serving" and shop["errors"] == [] and "/start" in shop["commands"]
    assert api.call("nobody", "GET", "/bots/shop").status_code == 404


# -- runs --
def test_runs_are_read_by_every_role_that_sees_the_bot_filtered_and_paged(api: Api) -> None:
    for _ in range(3):
        api.say("shop", "/start", user=701)
    api.say("shop", "/fail", user=702)
    for who in ("root", "ann", "vic", "amy"):
        assert api.call(who, "GET", "/bots/shop/runs").status_code == 200
    assert api.call("nobody", "GET", "/bots/shop/runs").status_code == 404
    assert api.call("ann", "GET", "/bots/blog/runs").status_code == 404

    failed = api.call("vic", "GET", "/bots/shop/runs", params={"status": "failed"}).json()["runs"]
    assert [run["command"] for run in failed] == ["/fail"]
    errors = api.call("vic", "GET", "/bots/shop/runs", params={"status": "script_error"}).json()
    assert errors["runs"] == failed
    mine = api.call("vic", "GET", "/bots/shop/runs", params={"user": 701}).json()["runs"]
    assert len(mine) == 3 and {run["command"] for run in mine} == {"/start"}

    first = api.call("vic", "GET", "/bots/shop/runs", params={"limit": 2, "user": 701}).json()
    assert len(first["runs"]) == 2 and first["next_cursor"] == first["runs"][-1]["id"]
    rest = api.call(
        "vic",
        "GET",
        "/bots/shop/runs",
        params={"limit": 2, "user": 701, "cursor": first["next_cursor"]},
    ).json()
    assert len(rest["runs"]) == 1 and rest["next_cursor"] is None
    started = first["runs"][0]["started_at"]
    later = api.call("vic", "GET", "/bots/shop/runs", params={"since": started + 3600}).json()
    assert later["runs"] == []

    run_id = failed[0]["id"]
    full = api.call("vic", "GET", f"/bots/shop/runs/{run_id}").json()
    assert full["status"] == "script_error" and "broken on purpose" in str(full["error"])
    assert "calls" in full and "output" in full
    assert api.call("vic", "GET", f"/bots/blog/runs/{run_id}").status_code == 404
    assert api.call("root", "GET", f"/bots/blog/runs/{run_id}").status_code == 404


# -- properties --
def test_an_author_reads_and_writes_its_bots_data_a_viewer_only_reads(api: Api) -> None:
    api.say("shop", "/start", user=711)
    seen = api.call("vic", "GET", "/bots/shop/properties/user:711/visits")
    assert seen.status_code == 200 and seen.json()["value"] == 1
    names = api.call("vic", "GET", "/bots/shop/properties/user:711").json()
    assert names["names"] == ["visits"] and names["next_after"] is None

    put = api.call("ann", "PUT", "/bots/shop/properties/user:711/visits", json={"value": 41})
    assert put.status_code == 200 and put.json()["value"] == 41
    api.say("shop", "/start", user=711)  # the run sees what the API wrote
    assert api.call("vic", "GET", "/bots/shop/properties/user:711/visits").json()["value"] == 42

    for who in ("vic", "amy"):
        assert (
            api.call(who, "PUT", "/bots/shop/properties/bot/x", json={"value": 1}).status_code
            == 403
        )
        assert api.call(who, "DELETE", "/bots/shop/properties/user:711/visits").status_code == 403
    assert (
        api.call("ann", "PUT", "/bots/blog/properties/bot/x", json={"value": 1}).status_code == 404
    )
    assert (
        api.call("root", "PUT", "/bots/blog/properties/chat:-5/x", json={"value": [1]}).status_code
        == 200
    )

    gone = api.call("ann", "DELETE", "/bots/shop/properties/user:711/visits")
    assert gone.status_code == 200 and gone.json()["deleted"] is True
    assert api.call("ann", "GET", "/bots/shop/properties/user:711/visits").status_code == 404


def test_a_write_with_a_stale_version_is_refused_not_lost(api: Api) -> None:
    first = api.call("ann", "PUT", "/bots/shop/properties/bot/stock", json={"value": 5}).json()
    api.call("ann", "PUT", "/bots/shop/properties/bot/stock", json={"value": 4})
    stale = api.call(
        "ann",
        "PUT",
        "/bots/shop/properties/bot/stock",
        json={"value": 99, "if_version": first["version"]},
    )
    assert stale.status_code == 409
    assert api.call("ann", "GET", "/bots/shop/properties/bot/stock").json()["value"] == 4


def test_a_value_over_the_bots_limit_is_refused(api: Api) -> None:
    big = "x" * (64 * 1024 + 1)
    response = api.call("ann", "PUT", "/bots/shop/properties/bot/big", json={"value": big})
    assert response.status_code == 413


# -- links --
def test_an_author_mints_a_working_link_a_viewer_may_not(api: Api) -> None:
    minted = api.call("ann", "POST", "/bots/shop/links", json={"command": "click", "user_id": 5})
    assert minted.status_code == 201
    click = api.server.client.get(minted.json()["url"])
    assert click.status_code == 200 and click.json() == {"clicked": True}
    assert api.call("vic", "POST", "/bots/shop/links", json={"command": "click"}).status_code == 403
    assert api.call("ann", "POST", "/bots/blog/links", json={"command": "post"}).status_code == 404
    unknown = api.call("ann", "POST", "/bots/shop/links", json={"command": "nope"})
    assert unknown.status_code == 404 and "nope" in unknown.json()["message"]


# -- keys --
def test_only_an_admin_rotates_retires_and_revokes_keys(api: Api) -> None:
    for who in ("ann", "vic"):
        assert api.call(who, "GET", "/keys").status_code == 403
        assert api.call(who, "POST", "/keys/rotate").status_code == 403
        assert api.call(who, "POST", "/bots/shop/keys/revoke").status_code == 403
    assert api.call("ann", "POST", "/bots/blog/keys/revoke").status_code == 404

    link = api.call("root", "POST", "/bots/shop/links", json={"command": "click", "user_id": 6})
    url = link.json()["url"]
    assert api.server.client.get(url).status_code == 200
    ring = api.call("root", "POST", "/keys/rotate").json()
    old = next(key["id"] for key in ring["keys"] if key["state"] == "verifying")
    assert api.call("root", "POST", f"/keys/{old}/retire").status_code == 200
    active = next(key["id"] for key in ring["keys"] if key["state"] == "active")
    assert api.call("root", "POST", f"/keys/{active}/retire").status_code == 409
    revoked = api.call("root", "POST", "/bots/shop/keys/revoke")
    assert revoked.status_code == 200 and revoked.json()["epoch"] >= 1
    fresh = api.call("root", "POST", "/bots/shop/links", json={"command": "click", "user_id": 6})
    deadline_ok = _eventually(lambda: api.server.client.get(url).status_code != 200)
    assert deadline_ok, "a link signed before the revocation still works"
    assert api.server.client.get(fresh.json()["url"]).status_code == 200


def _eventually(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    """True once ``check()`` is (the key ring is re-read within a second of a change)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


# -- users and tokens --
def test_only_an_admin_manages_users_and_tokens(api: Api) -> None:
    for who in ("ann", "vic"):
        assert api.call(who, "GET", "/users").status_code == 403
        assert (
            api.call(who, "POST", "/users", json={"name": "eve", "role": "admin"}).status_code
            == 403
        )
        assert api.call(who, "GET", "/tokens").status_code == 403
        assert api.call(who, "POST", "/tokens", json={"user": who}).status_code == 403
    made = api.call("root", "POST", "/users", json={"name": "zoe", "role": "viewer"})
    assert made.status_code == 201
    assert (
        api.call("root", "POST", "/users", json={"name": "zoe", "role": "viewer"}).status_code
        == 409
    )
    granted = api.call("root", "PUT", "/users/zoe/grants/blog", json={"role": "viewer"})
    assert granted.json()["grants"] == {"blog": "viewer"}
    token = api.call("root", "POST", "/tokens", json={"user": "zoe"}).json()
    listed = api.call("root", "GET", "/tokens").json()["tokens"]
    assert token["prefix"] in {t["prefix"] for t in listed}
    assert all("token" not in t for t in listed)
    zoe = {"Authorization": f"Bearer {token['token']}"}
    bots = api.call(None, "GET", "/bots", headers=zoe).json()["bots"]
    assert [bot["id"] for bot in bots] == ["blog"]
    assert api.call("root", "DELETE", "/users/zoe").status_code == 200
    assert api.call(None, "GET", "/bots", headers=zoe).status_code == 401


def test_an_admin_cannot_lock_itself_out(api: Api) -> None:
    me = next(
        t
        for t in api.call("root", "GET", "/tokens").json()["tokens"]
        if api.tokens["root"].startswith(t["prefix"]) and t["revoked_at"] is None
    )
    assert api.call("root", "POST", f"/tokens/{me['id']}/revoke").status_code == 409
    assert api.call("root", "DELETE", "/users/root").status_code == 409
    assert api.call("root", "PATCH", "/users/root", json={"role": "viewer"}).status_code == 409
    assert api.call("root", "GET", "/users").status_code == 200
