"""Deploy and versions, and the bots lifecycle, through a real server with no bot folders:
every bot here is created and deployed through ``/api/v1``."""

from __future__ import annotations

import socket
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from runtime.bots.config import assigned_token_env
from tests.runtime.api.conftest import create_token
from tests.support.archives import zipped
from tests.support.links import cli
from tests.support.server import BotboxServer
from tests.support.telegram_standin import TelegramStandIn
from tests.support.updates import make_update

TOKEN = "555555555:AAToolsBotTokenForTestsOnly_abcdefghijk"
BOT_IDS = (
    "anns",
    "checked",
    "edited",
    "headless",
    "hooked",
    "libbed",
    "named",
    "someone-else",
    "switched",
    "keyed",
)
"""The bots of this module: the server has each one's assigned token variable."""


def bot(bot_id: str, **extra: str) -> dict[str, str]:
    """A small bot's files."""
    return {
        "bot.yaml": f"id: {bot_id}\ntoken_env: {assigned_token_env(bot_id)}\n",
        "ping.py": '"""\ncommand: /ping\n"""\nBot.sendMessage("pong")\n',
        **extra,
    }


@dataclass
class Server:
    server: BotboxServer
    tokens: dict[str, str]
    telegram: TelegramStandIn

    def call(self, who: str | None, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = kwargs.pop("headers", {})
        if who is not None:
            headers["Authorization"] = f"Bearer {self.tokens[who]}"
        with httpx.Client(base_url=self.server.url + "/api/v1", timeout=10) as client:
            return client.request(method, path, headers=headers, **kwargs)

    def upload(self, who: str, bot_id: str, data: bytes) -> httpx.Response:
        return self.call(
            who,
            "POST",
            f"/bots/{bot_id}/versions",
            content=data,
            headers={"Content-Type": "application/zip"},
        )

    def status(self, bot_id: str) -> dict[str, Any]:
        response = self.call("root", "GET", f"/bots/{bot_id}")
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    def wait_status(self, bot_id: str, status: str, timeout: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.status(bot_id)
            if found["status"] == status or time.monotonic() > deadline:
                assert found["status"] == status, found
                return found
            time.sleep(0.05)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server in API mode (no BOTBOX_BOTS_DIR, no demo) and tokens: ``root`` (admin),
    ``ann`` and ``bob`` (authors), ``vic`` (viewer)."""
    root = Path(tmp_path_factory.mktemp("deploy"))
    with TelegramStandIn(tokens={TOKEN}) as telegram:
        server = BotboxServer(
            root / "data",
            telegram_api=telegram.base_url,
            demo=False,
            env={assigned_token_env(bot_id): TOKEN for bot_id in BOT_IDS},
        ).start()
        try:
            tokens = {
                "root": create_token(server, "--name", "root", "--role", "admin"),
                "ann": create_token(server, "--name", "ann", "--role", "author"),
                "bob": create_token(server, "--name", "bob", "--role", "author"),
                "vic": create_token(server, "--name", "vic", "--role", "viewer"),
            }
            yield Server(server, tokens, telegram)
        finally:
            server.close()


def test_an_author_creates_a_bot_is_granted_it_and_other_authors_get_404(api: Server) -> None:
    created = api.call("ann", "POST", "/bots", json={"id": "anns"})
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "new" and created.json()["access"] == "write"
    assert [b["id"] for b in api.call("ann", "GET", "/bots").json()["bots"]] == ["anns"]
    assert api.call("bob", "GET", "/bots/anns").status_code == 404
    assert api.upload("bob", "anns", zipped(bot("anns"))).status_code == 404
    assert api.call("bob", "GET", "/bots/anns/versions").status_code == 404
    assert api.call("vic", "POST", "/bots", json={"id": "vics"}).status_code == 403
    # The id is taken: a second create is a conflict, for the same author or another.
    assert api.call("bob", "POST", "/bots", json={"id": "anns"}).status_code == 409


def test_a_viewer_gets_403_on_deploy_and_no_token_gets_401_before_the_body_is_read(
    api: Server,
) -> None:
    assert api.call("root", "POST", "/bots", json={"id": "viewed"}).status_code == 201
    assert (
        api.call("root", "PUT", "/users/vic/grants/viewed", json={"role": "viewer"}).status_code
        == 200
    )
    garbage = b"not an archive at all"
    assert api.upload("vic", "viewed", garbage).status_code == 403
    put = api.call("vic", "PUT", "/bots/viewed/files/ping.py", content=b"\xff")
    assert put.status_code == 403
    assert api.call(None, "POST", "/bots/viewed/versions", content=garbage).status_code == 401
    assert api.upload("vic", "nosuchbot", garbage).status_code == 404
    assert api.call("vic", "GET", "/bots/viewed/versions").json() == {"live": None, "versions": []}


@pytest.mark.parametrize(
    ("files", "mode", "reason"),
    [
        ({"../escape.py": "x = 1\n"}, None, "leaves the bot folder"),
        ({"/abs.py": "x = 1\n"}, None, "absolute path"),
        ({"sub\\x.py": "x = 1\n"}, None, "backslash"),
        ({"ping.py": "/etc/passwd"}, stat.S_IFLNK | 0o777, "symbolic link"),
        ({"readme.md": "hi"}, None, "not a bot file"),
        ({f"c{n}.py": b"#" + b"\0" * 500_000 for n in range(20)}, None, "expands to more"),
        (bot("someone-else"), None, "names id 'someone-else'"),
    ],
)
def test_each_hostile_upload_is_refused_400_with_its_reason_and_nothing_changes(
    api: Server, files: dict[str, str], mode: int | None, reason: str
) -> None:
    if api.call("root", "GET", "/bots/hostile").status_code == 404:
        assert api.call("root", "POST", "/bots", json={"id": "hostile"}).status_code == 201
    response = api.upload("root", "hostile", zipped(files, mode=mode))
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "upload_refused"
    assert reason in response.json()["message"]
    assert api.call("root", "GET", "/bots/hostile/versions").json()["versions"] == []


def test_a_refused_deploy_lists_every_problem_by_file_and_line_and_the_live_version_serves(
    api: Server,
) -> None:
    assert api.call("ann", "POST", "/bots", json={"id": "checked"}).status_code == 201
    good = api.upload("ann", "checked", zipped(bot("checked")))
    assert good.status_code == 200, good.text
    assert good.json()["version"]["version"] == 1 and good.json()["created"] is True
    api.wait_status("checked", "serving")
    broken = bot(
        "checked",
        **{
            "bad.py": '"""\ncommand: /bad\n"""\nx = (\n',
            "worse.py": '"""\ncommand: /worse\n"""\nif:\n',
        },
    )
    response = api.upload("ann", "checked", zipped(broken))
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "check_failed"
    files = {problem["file"] for problem in body["problems"]}
    assert files == {"bad.py", "worse.py"}
    assert all(problem["line"] for problem in body["problems"])
    status = api.wait_status("checked", "stale")
    assert status["version"] == 1 and {p["file"] for p in status["problems"]} == files
    assert any("bad.py:" in line for line in status["errors"])


def test_put_file_makes_a_version_diff_shows_it_rollback_restores_the_old_files(
    api: Server,
) -> None:
    assert api.call("ann", "POST", "/bots", json={"id": "edited"}).status_code == 201
    assert api.upload("ann", "edited", zipped(bot("edited"))).status_code == 200
    new_ping = '"""\ncommand: /ping\n"""\nBot.sendMessage("PONG")\n'
    put = api.call("ann", "PUT", "/bots/edited/files/ping.py", content=new_ping.encode())
    assert put.status_code == 200, put.text
    assert put.json()["version"]["version"] == 2
    stale = api.call("ann", "PUT", "/bots/edited/files/ping.py?base=1", content=b"x = 1\n")
    assert stale.status_code == 409
    bad_name = api.call("ann", "PUT", "/bots/edited/files/notes.txt", content=b"hi")
    assert bad_name.status_code in (400, 422)
    diff = api.call("ann", "GET", "/bots/edited/diff", params={"old": 1, "new": 2}).json()
    assert '-Bot.sendMessage("pong")' in diff["diff"] and '+Bot.sendMessage("PONG")' in diff["diff"]
    back = api.call("ann", "POST", "/bots/edited/rollback", json={"version": 1})
    assert back.status_code == 200, back.text
    assert back.json()["version"]["version"] == 3 and back.json()["version"]["rollback_of"] == 1
    files = api.call("ann", "GET", "/bots/edited/versions/3").json()["files"]
    assert files["ping.py"] == bot("edited")["ping.py"]
    listed = api.call("ann", "GET", "/bots/edited/versions").json()
    assert listed["live"] == 3 and [v["version"] for v in listed["versions"]] == [3, 2, 1]
    assert api.call("ann", "GET", "/bots/edited/versions/9").status_code == 404
    assert api.call("ann", "POST", "/bots/edited/rollback", json={"version": 9}).status_code == 409
    missing = api.call("ann", "GET", "/bots/edited/diff", params={"old": 1, "new": 9})
    assert missing.status_code == 409
    audit = api.call("root", "GET", "/audit", params={"bot": "edited"}).json()
    actions = {entry["action"] for entry in audit["entries"]}
    assert {"bot.create", "version.deploy", "version.put_file", "version.rollback"} <= actions


def test_disable_stops_the_bot_enable_serves_it_again_and_delete_is_for_admins(
    api: Server,
) -> None:
    assert api.call("ann", "POST", "/bots", json={"id": "switched"}).status_code == 201
    assert api.upload("ann", "switched", zipped(bot("switched"))).status_code == 200
    api.wait_status("switched", "serving")
    assert api.call("ann", "POST", "/bots/switched/disable").json()["status"] == "disabled"
    secret = api.server.secret("switched")
    update = {
        "update_id": 1,
        "message": {
            "message_id": 1,
            "date": 0,
            "chat": {"id": 1, "type": "private"},
            "text": "/ping",
        },
    }
    dropped = api.server.post_update(update, bot_id="switched", secret=secret)
    assert dropped.status_code == 200 and dropped.json()["dropped"]
    assert api.server.post_update(update, bot_id="switched", secret="wrong").status_code == 403
    assert api.call("ann", "POST", "/bots/switched/enable").json()["status"] == "serving"
    assert api.call("ann", "DELETE", "/bots/switched").status_code == 403
    assert api.call("root", "DELETE", "/bots/switched").status_code == 200
    assert api.call("ann", "GET", "/bots/switched").status_code == 404
    assert api.call("root", "GET", "/bots/switched").status_code == 404
    # An author may not take over a deleted id (its data is kept); an admin may.
    assert api.call("bob", "POST", "/bots", json={"id": "switched"}).status_code == 409
    assert api.call("root", "POST", "/bots", json={"id": "switched"}).status_code == 201


def test_health_counts_bots_for_everyone_and_names_them_only_for_an_admin(api: Server) -> None:
    assert api.call("root", "POST", "/bots", json={"id": "named"}).status_code in (201, 409)
    assert api.upload("root", "named", zipped(bot("named"))).status_code == 200
    api.wait_status("named", "serving")
    public = api.server.client.get("/health")
    assert public.json()["bots"] >= 1 and "bot_ids" not in public.json()
    assert "named" not in public.text
    author = api.server.client.get(
        "/health", headers={"Authorization": f"Bearer {api.tokens['ann']}"}
    )
    assert "bot_ids" not in author.json() and "named" not in author.text
    admin = api.server.client.get(
        "/health", headers={"Authorization": f"Bearer {api.tokens['root']}"}
    ).json()
    assert "named" in admin["bot_ids"] and admin["bots"] == len(admin["bot_ids"])


def test_the_cli_creates_disables_enables_and_deletes_and_the_server_follows(api: Server) -> None:
    assert cli(api.server.env, "bots", "create", "headless").returncode == 0
    assert api.call("root", "GET", "/bots/headless").json()["status"] == "new"
    assert api.upload("root", "headless", zipped(bot("headless"))).status_code == 200
    api.wait_status("headless", "serving")
    assert cli(api.server.env, "bots", "disable", "headless").returncode == 0
    api.wait_status("headless", "disabled")
    listing = cli(api.server.env, "bots")
    assert "headless\tdisabled" in listing.stdout
    assert cli(api.server.env, "bots", "enable", "headless").returncode == 0
    api.wait_status("headless", "serving")
    assert cli(api.server.env, "bots", "delete", "headless").returncode == 0
    deadline = time.monotonic() + 10
    while api.call("root", "GET", "/bots/headless").status_code != 404:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    missing = cli(api.server.env, "bots", "disable", "headless")
    assert missing.returncode != 0 and "no bot 'headless'" in missing.stderr
    actions = [
        e["action"]
        for e in api.call("root", "GET", "/audit", params={"bot": "headless"}).json()["entries"]
    ]
    assert {"bot.create", "bot.disable", "bot.enable", "bot.delete"} <= set(actions)


def test_telegram_webhook_is_set_with_the_secret_and_kinds_and_the_secret_read_is_audited(
    api: Server,
) -> None:
    assert api.call("ann", "POST", "/bots", json={"id": "hooked"}).status_code == 201
    assert api.call("ann", "PUT", "/bots/hooked/telegram/webhook").status_code == 409  # new
    inline = '"""\ncommand: /inline_query\n"""\nx = 1\n'
    files = bot("hooked", **{"inline.py": inline})
    assert api.upload("ann", "hooked", zipped(files)).status_code == 200
    api.wait_status("hooked", "serving")
    done = api.call("ann", "PUT", "/bots/hooked/telegram/webhook")
    assert done.status_code == 200, done.text
    assert done.json()["url"].endswith("/telegram/hooked")
    assert "inline_query" in done.json()["allowed_updates"]
    info = api.call("ann", "GET", "/bots/hooked/telegram/webhook").json()["info"]
    assert info["url"].endswith("/telegram/hooked")
    secret = api.call("ann", "GET", "/bots/hooked/telegram/secret")
    assert secret.status_code == 200 and secret.json()["secret"] == api.server.secret("hooked")
    assert (
        api.call("root", "PUT", "/users/vic/grants/hooked", json={"role": "viewer"}).status_code
        == 200
    )
    assert api.call("vic", "GET", "/bots/hooked/telegram/secret").status_code == 403
    assert api.call("bob", "GET", "/bots/hooked/telegram/secret").status_code == 404
    entries = api.call("root", "GET", "/audit", params={"bot": "hooked"}).json()["entries"]
    reads = [e for e in entries if e["action"] == "telegram.secret_read"]
    assert len(reads) == 1 and reads[0]["actor"] == "ann"


def test_an_unauthorised_upload_is_answered_before_its_body_is_even_sent(api: Server) -> None:
    """The upload routes stream: token, bot and role are checked first, so a refusal comes
    while the client has sent only the headers (a buffered route would wait for the body)."""
    port = int(api.server.url.rsplit(":", 1)[1])
    for token, expected in ((None, b" 401 "), (api.tokens["vic"], b" 404 ")):
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        head = (
            f"POST /api/v1/bots/anns/versions HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}"
            "Content-Type: application/zip\r\nContent-Length: 900000\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(head + b"PK\x03\x04")  # 4 of 900,000 bytes, then nothing
            answer = conn.recv(4096)
        assert answer.startswith(b"HTTP/1.1") and expected in answer.split(b"\r\n")[0], answer


def test_a_bot_that_serves_nothing_answers_409_where_its_live_version_is_needed(
    api: Server,
) -> None:
    """A created bot exists (no 404), but links, tries and webhooks need a served version."""
    assert api.call("ann", "POST", "/bots", json={"id": "empty"}).status_code == 201
    for method, path, body in (
        ("POST", "/bots/empty/links", {"command": "/ping", "user_id": 1}),
        ("POST", "/bots/empty/try", {"kind": "message", "text": "/ping", "user_id": 1}),
        ("PUT", "/bots/empty/properties/bot/k", {"value": 1}),
    ):
        response = api.call("ann", method, path, json=body)
        assert response.status_code == 409, (path, response.text)
        assert response.json()["error"] == "not_serving"
    assert (
        api.call("bob", "POST", "/bots/empty/links", json={"command": "/ping"}).status_code == 404
    )


def test_an_upload_with_a_lib_module_serves_commands_that_import_it(api: Server) -> None:
    assert api.call("ann", "POST", "/bots", json={"id": "libbed"}).status_code == 201
    ping = '"""\ncommand: /ping\n"""\nfrom lib import words\nBot.sendMessage(words.WORD)\n'
    files = {**bot("libbed"), "ping.py": ping, "lib/words.py": "WORD = 'from lib'\n"}
    uploaded = api.upload("ann", "libbed", zipped({f"libbed/{n}": t for n, t in files.items()}))
    assert uploaded.status_code == 200, uploaded.text
    stored = api.call("ann", "GET", "/bots/libbed/versions/1").json()["files"]
    assert stored["lib/words.py"] == "WORD = 'from lib'\n"
    before = len(api.telegram.calls_to("sendMessage"))
    update = make_update(update_id=4242, user_id=77, chat_id=77, text="/ping", bot_token=TOKEN)
    assert api.server.post_update(update, bot_id="libbed").status_code == 200
    sent = api.telegram.wait_for_calls(before + 1, method="sendMessage")[-1]
    assert sent.params["text"] == "from lib"


def test_an_authors_bot_reads_only_its_own_token_variable(api: Server) -> None:
    """An author's bot.yaml naming another variable (another bot's token, any server secret)
    is refused 422 at its line, and nothing changes; an admin may name any; after an admin's
    version, the author may keep what the admin named."""
    assert api.call("ann", "POST", "/bots", json={"id": "keyed"}).status_code == 201
    thief = {**bot("keyed"), "bot.yaml": "id: keyed\ntoken_env: TELEGRAM_TOKEN_ANNS\n"}
    refused = api.upload("ann", "keyed", zipped(thief))
    assert refused.status_code == 422, refused.text
    (problem,) = refused.json()["problems"]
    assert (problem["file"], problem["line"]) == ("bot.yaml", 2)
    assert "TELEGRAM_TOKEN_KEYED" in problem["message"]
    assert api.call("root", "GET", "/bots/keyed/versions").json()["versions"] == []
    assert api.upload("ann", "keyed", zipped(bot("keyed"))).status_code == 200
    admins = {**bot("keyed"), "bot.yaml": "id: keyed\ntoken_env: TELEGRAM_TOKEN_ANNS\n"}
    assert api.upload("root", "keyed", zipped(admins)).status_code == 200
    kept = {**admins, "more.py": '"""\ncommand: /more\n"""\nx = 1\n'}
    assert api.upload("ann", "keyed", zipped(kept)).status_code == 200


def test_an_author_cannot_create_an_id_that_shares_another_bots_token_variable(
    api: Server,
) -> None:
    """someone-else and someone_else would both read TELEGRAM_TOKEN_SOMEONE_ELSE."""
    api.call("root", "POST", "/bots", json={"id": "someone-else"})
    twin = api.call("bob", "POST", "/bots", json={"id": "someone_else"})
    assert twin.status_code == 409
    assert "TELEGRAM_TOKEN_SOMEONE_ELSE" in twin.text and "someone-else" not in twin.text
