"""Issue 10's "done when": an author's whole day through the admin API only.

A server in API mode (no ``BOTBOX_BOTS_DIR``, no demo). The admin makes an author token with
the CLI; the author creates a bot, uploads it, sees a check error with file and line, fixes
it, watches the new version answer without a restart, reads the run log and a property, and
rolls back. Along the way: a viewer gets 403 on deploy, another author 404.
"""

from __future__ import annotations

import io
import itertools
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.archives import zipped
from tests.support.links import cli
from tests.support.server import BotboxServer
from tests.support.telegram_standin import TelegramStandIn
from tests.support.updates import make_update

TOKEN = "777777777:AAShopBotTokenForTestsOnly_abcdefghijk"
CONFIG = "id: kiosk\ntoken_env: TELEGRAM_TOKEN_KIOSK\n"
HELLO_V1 = (
    '"""\ncommand: /hello\n"""\n'
    "User.setProperty('greeted', (User.getProperty('greeted') or 0) + 1)\n"
    "Bot.sendMessage('hello v1')\n"
)
HELLO_V2 = HELLO_V1.replace("hello v1", "hello v2")
BROKEN = HELLO_V2 + "if True\n    pass\n"  # a syntax error on line 6
_updates = itertools.count(1)


def token(server: BotboxServer, *args: str) -> str:
    done = cli(server.env, "tokens", "create", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def tar_gz(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"kiosk/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[BotboxServer, TelegramStandIn]]:
    with TelegramStandIn(tokens={TOKEN}) as telegram:
        server = BotboxServer(
            tmp_path / "data",
            telegram_api=telegram.base_url,
            demo=False,
            env={"TELEGRAM_TOKEN_KIOSK": TOKEN},
        ).start()
        try:
            yield server, telegram
        finally:
            server.close()


def say(server: BotboxServer, telegram: TelegramStandIn, text: str, *, user: int) -> str:
    """Send ``text`` to kiosk; return the text of the bot's next sendMessage."""
    before = len(telegram.calls_to("sendMessage"))
    update = make_update(
        update_id=next(_updates), user_id=user, chat_id=user, text=text, bot_token=TOKEN
    )
    assert server.post_update(update, bot_id="kiosk").status_code == 200
    return str(telegram.wait_for_calls(before + 1, method="sendMessage")[-1].params["text"])


def test_an_author_with_only_an_api_token_ships_fixes_and_rolls_back_a_bot(
    world: tuple[BotboxServer, TelegramStandIn],
) -> None:
    server, telegram = world
    amy = token(server, "--name", "amy", "--role", "author")
    others = {
        "ben": token(server, "--name", "ben", "--role", "author"),
        "val": token(server, "--name", "val", "--role", "viewer"),
    }
    started_pid = server.process.pid if server.process else None

    def api(who: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        secret = amy if who == "amy" else others[who]
        headers = {"Authorization": f"Bearer {secret}", **kwargs.pop("headers", {})}
        return httpx.request(
            method, f"{server.url}/api/v1{path}", headers=headers, timeout=10, **kwargs
        )

    # Create, upload version 1 (a zip), and it answers.
    assert api("amy", "POST", "/bots", json={"id": "kiosk"}).status_code == 201
    first = api(
        "amy",
        "POST",
        "/bots/kiosk/versions",
        content=zipped({"bot.yaml": CONFIG, "hello.py": HELLO_V1}),
    )
    assert first.status_code == 200, first.text
    assert say(server, telegram, "/hello", user=501) == "hello v1"

    # Others: a viewer granted the bot may read but not deploy; another author sees nothing.
    assert cli(server.env, "users", "grant", "val", "kiosk", "--role", "viewer").returncode == 0
    assert api("val", "GET", "/bots/kiosk").status_code == 200
    assert api("val", "POST", "/bots/kiosk/versions", content=b"x").status_code == 403
    assert api("ben", "GET", "/bots/kiosk").status_code == 404
    assert api("ben", "POST", "/bots/kiosk/versions", content=b"x").status_code == 404

    # A broken version (a tar.gz of the folder) is refused with the file and the line.
    refused = api(
        "amy",
        "POST",
        "/bots/kiosk/versions",
        content=tar_gz({"bot.yaml": CONFIG, "hello.py": BROKEN}),
    )
    assert refused.status_code == 422, refused.text
    (problem,) = refused.json()["problems"]
    assert (problem["file"], problem["line"]) == ("hello.py", 6)
    shown = api("amy", "GET", "/bots/kiosk").json()
    assert shown["status"] == "stale" and shown["problems"][0]["line"] == 6
    assert say(server, telegram, "/hello", user=501) == "hello v1"  # version 1 still serves

    # The fix, one file: live without a restart (the next update gets it).
    fixed = api("amy", "PUT", "/bots/kiosk/files/hello.py", content=HELLO_V2.encode())
    assert fixed.status_code == 200, fixed.text
    assert fixed.json()["version"]["version"] == 2
    assert api("amy", "GET", "/bots/kiosk").json()["status"] == "serving"
    assert say(server, telegram, "/hello", user=501) == "hello v2"
    assert server.process is not None and server.process.pid == started_pid

    # The run log, with the version each run ran, and the property the runs wrote.
    server.wait_logged()
    runs = api("amy", "GET", "/bots/kiosk/runs", params={"command": "/hello"}).json()["runs"]
    assert [run["status"] for run in runs] == ["ok", "ok", "ok"]
    full = api("amy", "GET", f"/bots/kiosk/runs/{runs[0]['id']}").json()
    assert full["extra"]["version"] == 2
    greeted = api("amy", "GET", "/bots/kiosk/properties/user:501/greeted").json()
    assert greeted["value"] == 3

    # What changed, and back to version 1 (as version 3).
    diff = api("amy", "GET", "/bots/kiosk/diff", params={"old": 1, "new": 2}).json()["diff"]
    assert "-Bot.sendMessage('hello v1')" in diff and "+Bot.sendMessage('hello v2')" in diff
    back = api("amy", "POST", "/bots/kiosk/rollback", json={"version": 1})
    assert back.status_code == 200 and back.json()["version"]["version"] == 3
    deadline = time.monotonic() + 5
    while (answer := say(server, telegram, "/hello", user=502)) != "hello v1":
        assert time.monotonic() < deadline, answer
    assert api("amy", "GET", "/bots/kiosk/versions").json()["live"] == 3
