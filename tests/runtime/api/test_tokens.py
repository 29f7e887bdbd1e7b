"""Tokens through the real server and the CLI: shown once, stored hashed, expiring, revocable."""

from __future__ import annotations

import sqlite3
import time

from tests.runtime.api.conftest import Api, create_token
from tests.support.links import cli


def _status(api: Api, token: str) -> int:
    return api.call(None, "GET", "/bots", headers={"Authorization": f"Bearer {token}"}).status_code


def _wait_for(api: Api, token: str, status: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _status(api, token) == status:
            return True
        time.sleep(0.05)
    return False


def test_the_store_keeps_a_digest_and_a_prefix_never_the_token(api: Api) -> None:
    token = create_token(api.server, "--name", "hashy", "--role", "viewer")
    conn = sqlite3.connect(api.server.data_dir / "botbox.sqlite3")
    try:
        rows = conn.execute("SELECT prefix, digest FROM api_token").fetchall()
        dump = "\n".join(conn.iterdump())
    finally:
        conn.close()
    assert token[:12] in {prefix for prefix, _ in rows}
    assert token not in dump


def test_a_token_stops_working_when_it_expires(api: Api) -> None:
    # 0.00005 days is 4.3 seconds: it works now, and is refused once they have passed.
    token = create_token(api.server, "--name", "brief", "--role", "viewer", "--expires", "0.00005")
    assert _status(api, token) == 200
    assert _wait_for(api, token, 401), "an expired token still works"
    listed = cli(api.server.env, "tokens", "list", "--name", "brief").stdout
    assert "brief" in listed and "expires never" not in listed


def test_a_token_revoked_from_the_cli_is_refused_by_the_running_server(api: Api) -> None:
    token = create_token(api.server, "--name", "gone", "--role", "viewer")
    assert _status(api, token) == 200
    token_id = next(
        line.split("\t")[0]
        for line in cli(api.server.env, "tokens", "list", "--name", "gone").stdout.splitlines()
    )
    done = cli(api.server.env, "tokens", "revoke", token_id)
    assert done.returncode == 0 and "revoked" in done.stdout
    assert _status(api, token) == 401  # the next request: the store is read on every one


def test_a_token_revoked_through_the_api_is_refused(api: Api) -> None:
    made = api.call("root", "POST", "/tokens", json={"user": "vic", "expires_days": 1}).json()
    assert made["expires_at"] is not None
    assert _status(api, made["token"]) == 200
    revoked = api.call("root", "POST", f"/tokens/{made['id']}/revoke")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert _status(api, made["token"]) == 401


def test_the_cli_refuses_bad_input_with_an_error_line_and_status_2(api: Api) -> None:
    for args in (
        ("tokens", "create", "--name", "newbie"),  # a new user needs --role
        ("tokens", "create", "--name", "root", "--role", "viewer"),  # root is admin
        ("tokens", "create", "--name", "bad name", "--role", "viewer"),
        ("tokens", "revoke", "99999"),
        ("users", "grant", "nobody-here", "shop"),
        ("users", "create", "root", "--role", "admin"),
    ):
        done = cli(api.server.env, *args)
        assert done.returncode == 2, args
        assert done.stderr.startswith("error: "), (args, done.stderr)
        assert "Traceback" not in done.stderr
    done = cli(
        api.server.env, "tokens", "create", "--name", "x", "--role", "admin", "--expires", "-1"
    )
    assert done.returncode == 2 and "expected a number of days" in done.stderr
