"""A bot's ``lib/`` through a real server and real files: modules go live with their bot's
version, a broken module is refused with its file and line and the last good version serves,
and ``run.py check`` names the module's line."""

from __future__ import annotations

import itertools
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

TOKEN = "666666666:AAAuthoringTokenForTestsOnly_abcdefghijk"


def quiz(prompt: str) -> str:
    """lib/quiz.py asking ``prompt``."""
    return f"PROMPT = {prompt!r}\n\n\ndef ask():\n    return settings['greeting'] + ' ' + PROMPT\n"


BOT = {
    "bot.yaml": (
        "id: author\ntoken_env: AUTHOR_TOKEN\ntelegram:\n  flood_limits: false\n"
        "settings:\n  greeting: Hi\n"
    ),
    "lib/quiz.py": quiz("one?"),
    "ask.py": '"""\ncommand: /ask\n"""\nfrom lib import quiz\nBot.sendMessage(quiz.ask())\n',
    "page.py": (
        '"""\ncommand: page\n"""\nimport lib.quiz\nres.json({"ask": lib.quiz.ask()})\n'
        'Bot.sendMessage("not after res")\n'
    ),
}
_ids = itertools.count(1)
_chats = itertools.count(9000)


@pytest.fixture(scope="module")
def telegram() -> Iterator[TelegramStandIn]:
    """The Bot API stand-in."""
    with TelegramStandIn(tokens={TOKEN}) as standin:
        yield standin


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, telegram: TelegramStandIn
) -> Iterator[BotboxServer]:
    """A server hosting `author` (with lib/quiz.py) from a folder it watches."""
    root = Path(tmp_path_factory.mktemp("authoring"))
    with hosting(
        root, {"author": BOT}, telegram_api=telegram.base_url, env={"AUTHOR_TOKEN": TOKEN}
    ) as started:
        yield started


def say(server: BotboxServer, telegram: TelegramStandIn, text: str) -> str:
    """Send ``text`` to the bot; return the text it answered."""
    chat = next(_chats)
    update = make_update(
        update_id=next(_ids), user_id=chat, chat_id=chat, text=text, bot_token=TOKEN
    )
    assert server.post_update(update, bot_id="author").status_code == 200
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for call in telegram.calls_to("sendMessage"):
            if call.params.get("chat_id") == chat:
                return str(call.params.get("text"))
        time.sleep(0.01)
    raise TimeoutError(f"no answer to {text!r}")


def eventually(check: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    """Wait until ``check()`` is true (fail after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise TimeoutError(f"{what} did not happen within {timeout} s")


def write(server: BotboxServer, name: str, text: str) -> None:
    """Save one file of the bot's folder as an editor does (a new file renamed in place)."""
    target = Path(server.env["BOTBOX_BOTS_DIR"]) / "author" / name
    temporary = target.with_name(f".{target.name}.tmp")
    temporary.write_text(text)
    temporary.replace(target)


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


def test_a_command_uses_its_bots_lib_in_chat_and_from_a_link(server, telegram):
    assert say(server, telegram, "/ask") == "Hi one?"
    click = server.client.get(mint(server.data_dir, "page", bot_id="author", user_id=5))
    assert (click.status_code, click.json()) == (200, {"ask": "Hi one?"})
    records = [r for r in server.logs("author") if r["command"] == "page"]
    assert records[0]["notes"] == ["res.json at line 5 ended the script"]


def test_a_lib_edit_makes_a_version_and_goes_live(server, telegram):
    write(server, "lib/quiz.py", quiz("two?"))
    eventually(lambda: say(server, telegram, "/ask") == "Hi two?", "the lib edit")
    versions = cli(server, "versions", "author").stdout.splitlines()
    assert versions[0].startswith("v2\t"), versions
    diff = cli(server, "diff", "author", "1", "2")
    assert "lib/quiz.py" in diff.stdout and "+PROMPT = 'two?'" in diff.stdout, diff.stdout


def test_a_broken_lib_is_refused_with_file_and_line_and_the_last_version_serves(server, telegram):
    write(server, "lib/quiz.py", quiz("three?") + "if True\n")
    eventually(lambda: "author\tstale" in cli(server, "bots").stdout, "the refusal")
    assert "lib/quiz.py:6: SyntaxError" in cli(server, "bots").stdout
    assert say(server, telegram, "/ask") == "Hi two?"
    folder = Path(server.env["BOTBOX_BOTS_DIR"]) / "author"
    check = cli(server, "check", str(folder))
    assert check.returncode != 0
    assert f"{folder}/lib/quiz.py:6: SyntaxError" in check.stdout + check.stderr
    write(server, "lib/quiz.py", quiz("three?"))
    eventually(lambda: say(server, telegram, "/ask") == "Hi three?", "the fix")


def test_two_servers_on_one_store_follow_a_lib_edit_and_its_rollback(tmp_path, telegram):
    """A lib/ edit is one version both processes serve; a rollback (store only) brings the
    old module back on both."""
    with hosting(
        tmp_path, {"author": BOT}, telegram_api=telegram.base_url, env={"AUTHOR_TOKEN": TOKEN}
    ) as first:
        second = BotboxServer(
            first.data_dir,
            telegram_api=telegram.base_url,
            bots_dir=Path(first.env["BOTBOX_BOTS_DIR"]),
            demo=False,
            env={"AUTHOR_TOKEN": TOKEN},
        ).start()
        try:
            servers = (first, second)
            for server in servers:
                assert say(server, telegram, "/ask") == "Hi one?"
            write(first, "lib/quiz.py", quiz("edited?"))
            for server in servers:
                eventually(
                    lambda s=server: say(s, telegram, "/ask") == "Hi edited?",
                    "the lib edit on both servers",
                )
            assert cli(first, "versions", "author").stdout.splitlines()[-1] == (
                "2 version(s) of bot author"
            )
            assert cli(first, "rollback", "author", "1").returncode == 0
            for server in servers:
                eventually(
                    lambda s=server: say(s, telegram, "/ask") == "Hi one?",
                    "the rollback on both servers",
                )
        finally:
            second.close()
