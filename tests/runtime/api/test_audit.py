"""The audit log: every change through the API or the CLI, with who, what, before and after."""

from __future__ import annotations

from tests.runtime.api.conftest import Api
from tests.support.links import cli


def test_api_and_cli_changes_are_audited_with_before_and_after(api: Api) -> None:
    path = "/bots/shop/properties/chat:77/topic"
    api.call("ann", "PUT", path, json={"value": "cats"})
    api.call("ann", "PUT", path, json={"value": "dogs"})
    assert cli(api.server.env, "keys", "revoke", "blog").returncode == 0

    entries = api.call("root", "GET", "/audit", params={"bot": "shop", "limit": 2}).json()
    newest = entries["entries"][0]
    assert newest["actor"] == "ann" and newest["via"].startswith("api token ")
    assert (newest["action"], newest["target"]) == ("property.set", "chat:77/topic")
    assert (newest["before"], newest["after"]) == ("cats", "dogs")
    older = api.call(
        "root", "GET", "/audit", params={"bot": "shop", "cursor": entries["next_cursor"]}
    ).json()["entries"]
    assert older[0]["id"] < newest["id"]

    blog = api.call("root", "GET", "/audit", params={"bot": "blog"}).json()["entries"]
    revoke = next(entry for entry in blog if entry["action"] == "keys.revoke")
    assert revoke["via"] == "cli" and revoke["actor"].startswith("cli:")
    everything = api.call("root", "GET", "/audit", params={"limit": 500}).json()["entries"]
    actions = {entry["action"] for entry in everything}
    assert {"user.create", "token.create", "user.grant"} <= actions  # the fixture's CLI calls


def test_only_an_admin_reads_the_audit_log(api: Api) -> None:
    for who in ("ann", "vic"):
        assert api.call(who, "GET", "/audit").status_code == 403
    assert api.call(None, "GET", "/audit").status_code == 401
    assert api.call("root", "GET", "/audit", params={"limit": 0}).status_code == 422
