"""Bots as versioned deployments, through a real server and real files (issue 10).

A broken bot never stops another; a change on disk goes live without a restart; a broken change
keeps the last good version serving and is reported; folders appear and disappear; deploys are
all or nothing; versions, diffs and rollbacks; two servers on one store serve the same version.
Every wait is for an observable change, with a deadline.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.links import mint
from tests.support.server import ROOT, BotboxServer, hosting
from tests.support.telegram_standin import TelegramStandIn
from tests.support.updates import make_update

GOOD_TOKEN = "333333333:AAGoodVersionsTokenForTestsOnly_abcdefgh"
BROKEN_TOKEN = "444444444:AABrokenVersionsTokenForTestsOnly_abcdef"
NEW_TOKEN = "555555555:AANewVersionsTokenForTestsOnly_abcdefghi"
TOKENS = {"GOOD_TOKEN": GOOD_TOKEN, "BROKEN_TOKEN": BROKEN_TOKEN, "NEW_TOKEN": NEW_TOKEN}


def hello(answer: str) -> str:
    """A /hello command that answers ``answer``."""
    return f'"""\ncommand: /hello\n"""\nBot.sendMessage({answer!r})\n'


GOOD = {
    "bot.yaml": "id: good\ntoken_env: GOOD_TOKEN\ntelegram:\n  flood_limits: false\n",
    "hello.py": hello("one"),
    "click.py": '"""\ncommand: click\n"""\nres.json({"clicked": True})\n',
}
BROKEN = {
    "bot.yaml": "id: broken\ntoken_env: BROKEN_TOKEN\n",
    "fine.py": hello("fine"),
    "bad.py": '"""\ncommand: /bad\n"""\nx = 1\nif x\n    pass\n',
}

_ids = itertools.count(1)
_chats = itertools.count(7000)


@pytest.fixture(scope="module")
def telegram() -> Iterator[TelegramStandIn]:
    """The Bot API stand-in, knowing every bot's token."""
    with TelegramStandIn(tokens=set(TOKENS.values())) as standin:
        yield standin


@pytest.fixture(scope="module")
def hosted(
    tmp_path_factory: pytest.TempPathFactory, telegram: TelegramStandIn
) -> Iterator[BotboxServer]:
    """A server hosting `good` and `broken` from a bots folder it watches."""
    root = Path(tmp_path_factory.mktemp("versions"))
    with hosting(
        root,
        {"good": GOOD, "broken": BROKEN},
        telegram_api=telegram.base_url,
        env={**TOKENS, "BOTBOX_LOG_LEVEL": "INFO"},
    ) as server:
        yield server


def bots_dir(server: BotboxServer) -> Path:
    return Path(server.env["BOTBOX_BOTS_DIR"])


def say(
    server: BotboxServer, telegram: TelegramStandIn, bot: str, token: str, text: str
) -> str | int:
    """Send ``text`` to ``bot``; the text it answered, or the HTTP status if it was refused."""
    chat = next(_chats)
    update = make_update(
        update_id=next(_ids), user_id=chat, chat_id=chat, text=text, bot_token=token
    )
    response = server.post_update(update, bot_id=bot)
    if response.status_code != 200:
        return response.status_code
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for call in telegram.calls_to("sendMessage"):
            if call.params.get("chat_id") == chat:
                return str(call.params.get("text"))
        time.sleep(0.01)
    raise TimeoutError(f"{bot} did not answer {text!r}")


def status(server: BotboxServer, bot: str, token: str) -> int:
    """The HTTP status an update for ``bot`` gets (its run, if any, is not waited for)."""
    chat = next(_chats)
    update = make_update(
        update_id=next(_ids), user_id=chat, chat_id=chat, text="/hello", bot_token=token
    )
    return server.post_update(update, bot_id=bot).status_code


def eventually(check: Callable[[], object], what: str, timeout: float = 10.0) -> float:
    """Wait until ``check()`` is true; return the seconds it took (fail after ``timeout``)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.02)
    raise TimeoutError(f"{what} did not happen within {timeout} s")


def cli(server: BotboxServer, *args: str) -> subprocess.CompletedProcess[str]:
    """``python run.py ARGS`` against the server's data and bots folders."""
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *args],
        cwd=ROOT,
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def write(server: BotboxServer, bot: str, name: str, text: str) -> None:
    """Write one file of a bot folder the way an editor saves: a new file renamed in place."""
    target = bots_dir(server) / bot / name
    temporary = target.with_name(f".{name}.tmp")
    temporary.write_text(text)
    temporary.replace(target)


def test_a_broken_bot_fails_alone_and_the_working_one_serves(hosted, telegram):
    """The server started; `good` answers updates and clicks; `broken` is listed as failed with
    its file and line (CLI, log), counted without its name on /health, and 404 like no bot."""
    assert say(hosted, telegram, "good", GOOD_TOKEN, "/hello") == "one"
    click = hosted.client.get(mint(hosted.data_dir, "click", bot_id="good", user_id=5))
    assert click.status_code == 200
    assert click.json() == {"clicked": True}

    health = hosted.client.get("/health")
    assert health.status_code == 200  # one bot's typo is no reason to restart the server
    body = health.json()
    assert body["ok"] is False
    assert "1 bot failed to load" in body["problems"]
    assert body["bots_failed"] == 1
    assert "broken" not in health.text

    assert say(hosted, telegram, "broken", BROKEN_TOKEN, "/fine") == 404
    assert hosted.client.get("/webhook/broken").status_code == 404
    listed = cli(hosted, "bots")
    assert listed.returncode == 0, listed.stderr
    assert "broken\tfailed\tlive none" in listed.stdout
    assert "bad.py:5: SyntaxError" in listed.stdout
    assert "good\tok\tlive v1" in listed.stdout
    log = hosted.log.read_text()
    assert "bot broken failed to load" in log
    assert "bad.py:5: SyntaxError" in log


def test_an_edit_goes_live_without_a_restart_and_the_run_records_its_version(hosted, telegram):
    """Saving a file under the running server makes a new version that answers within a
    second or so; the run log records the version each run ran."""
    write(hosted, "good", "hello.py", hello("two"))
    took = eventually(
        lambda: say(hosted, telegram, "good", GOOD_TOKEN, "/hello") == "two", "the edit"
    )
    assert took < 3.0
    versions = cli(hosted, "versions", "good")
    assert versions.stdout.splitlines()[0].startswith("v2\t")
    records = [r for r in hosted.logs("good") if r["command"] == "/hello"]
    assert {r["version"] for r in records} == {1, 2}
    assert records[0]["version"] == 2  # newest first
    # The pool's tenant is bot id + version: no worker that ran version 1 ran version 2.
    pids = {v: {r["worker_pid"] for r in records if r["version"] == v} for v in (1, 2)}
    assert None not in pids[1] | pids[2]
    assert not pids[1] & pids[2]


def test_a_broken_edit_is_reported_and_the_last_good_version_keeps_serving(hosted, telegram):
    """A syntax error saved over a working command: refused, reported on /health and by
    `run.py bots` with file and line; the bot keeps answering with its last good version."""
    before = say(hosted, telegram, "good", GOOD_TOKEN, "/hello")
    write(hosted, "good", "hello.py", hello("three") + "if True\n")
    eventually(
        lambda: any("older version" in p for p in hosted.client.get("/health").json()["problems"]),
        "the refusal on /health",
    )
    assert say(hosted, telegram, "good", GOOD_TOKEN, "/hello") == before
    listed = cli(hosted, "bots").stdout
    assert "good\tstale" in listed
    assert "hello.py:5: SyntaxError" in listed
    write(hosted, "good", "hello.py", hello("three"))
    eventually(lambda: say(hosted, telegram, "good", GOOD_TOKEN, "/hello") == "three", "the fix")
    assert "good\tok" in cli(hosted, "bots").stdout


def test_a_new_folder_starts_serving_and_a_removed_one_stops(hosted, telegram):
    """A bot folder copied in serves without a restart; deleting it stops it (404)."""
    staging = bots_dir(hosted).parent / "staging-new"
    staging.mkdir()
    (staging / "bot.yaml").write_text("id: newbie\ntoken_env: NEW_TOKEN\n")
    (staging / "hello.py").write_text(hello("hi, new"))
    assert say(hosted, telegram, "newbie", NEW_TOKEN, "/hello") == 404
    staging.rename(bots_dir(hosted) / "newbie")
    eventually(lambda: say(hosted, telegram, "newbie", NEW_TOKEN, "/hello") == "hi, new", "new bot")
    shutil.rmtree(bots_dir(hosted) / "newbie")
    eventually(lambda: status(hosted, "newbie", NEW_TOKEN) == 404, "removal")
    assert "newbie" not in cli(hosted, "bots").stdout


def test_a_deploy_with_one_bad_file_is_refused_as_a_whole(hosted, telegram, tmp_path):
    """`run.py deploy` checks every file: one bad file refuses all of them (exit 1, file and
    line), no version is made, and the bot answers as before."""
    before = cli(hosted, "versions", "good").stdout
    serving = say(hosted, telegram, "good", GOOD_TOKEN, "/hello")
    folder = tmp_path / "upload"
    folder.mkdir()
    for name, text in GOOD.items():
        (folder / name).write_text(text)
    (folder / "hello.py").write_text(hello("never"))
    (folder / "oops.py").write_text('"""\ncommand: /oops\n"""\ny = Bot.__class__\n')
    done = cli(hosted, "deploy", "good", str(folder))
    assert done.returncode == 1
    assert f"{folder / 'oops.py'}:4:" in done.stdout
    assert "refused, nothing changed" in done.stdout
    assert cli(hosted, "versions", "good").stdout == before
    assert say(hosted, telegram, "good", GOOD_TOKEN, "/hello") == serving
    missing = cli(hosted, "deploy", "good", str(tmp_path / "nowhere"))
    assert missing.returncode == 2
    assert missing.stderr.startswith("error: ")


def test_diff_and_rollback(hosted, telegram):
    """`diff 1 2` shows the changed line; `rollback good 1` makes a new version with version
    1's files, which the server answers with (no file changed on disk)."""
    diff = cli(hosted, "diff", "good", "1", "2")
    assert diff.returncode == 0
    assert "--- v1/hello.py" in diff.stdout
    assert "-Bot.sendMessage('one')" in diff.stdout
    assert "+Bot.sendMessage('two')" in diff.stdout
    latest = int(cli(hosted, "versions", "good").stdout.split("\t")[0].removeprefix("v"))
    done = cli(hosted, "rollback", "good", "1")
    assert done.returncode == 0, done.stderr
    assert f"version {latest + 1} (the files of version 1) is live" in done.stdout
    eventually(lambda: say(hosted, telegram, "good", GOOD_TOKEN, "/hello") == "one", "rollback")
    assert cli(hosted, "diff", "good", "1", str(latest + 1)).stdout.startswith("versions 1 and")
    audit = cli(hosted, "audit", "--bot", "good")  # a CLI change is audited like an API one
    assert "version.rollback" in audit.stdout, audit.stdout
    unknown = cli(hosted, "diff", "good", "1", "999")
    assert unknown.returncode == 2
    assert "no version 999" in unknown.stderr


def test_two_servers_on_one_store_serve_the_same_live_version(tmp_path, telegram):
    """Two server processes share a store and a bots folder: an edit and then a rollback (a
    store-only change) reach both of them."""
    with hosting(tmp_path, {"good": GOOD}, telegram_api=telegram.base_url, env=TOKENS) as first:
        second = BotboxServer(
            first.data_dir,
            telegram_api=telegram.base_url,
            bots_dir=bots_dir(first),
            demo=False,
            env=TOKENS,
        ).start()
        try:
            servers = (first, second)
            for server in servers:
                assert say(server, telegram, "good", GOOD_TOKEN, "/hello") == "one"
            write(first, "good", "hello.py", hello("edited"))
            for server in servers:
                eventually(
                    lambda s=server: say(s, telegram, "good", GOOD_TOKEN, "/hello") == "edited",
                    "the edit on both servers",
                )
            lines = cli(first, "versions", "good").stdout.splitlines()
            assert lines[-1] == "2 version(s) of bot good"  # both watched; one new version
            assert cli(first, "rollback", "good", "1").returncode == 0
            for server in servers:
                eventually(
                    lambda s=server: say(s, telegram, "good", GOOD_TOKEN, "/hello") == "one",
                    "the rollback on both servers",
                )
        finally:
            second.close()
