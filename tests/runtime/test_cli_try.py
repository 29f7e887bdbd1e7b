"""``python run.py try``: a bot's commands run against the emulated Telegram, as an author
tries them (real processes: the CLI, its sandbox pool, SQLite files in a temporary folder).

Exit statuses: 0 every run ended well, 1 a run failed (or a click got a 5xx), 2 nothing
could be tried (no such bot, a bad request).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.store import MISSING, SqliteStore
from tests.support.telegram_standin import TelegramStandIn

ROOT = Path(__file__).resolve().parents[2]
LAB_TOKEN = "555555555:AALabBotTokenForTestsOnly_abcdefghijkl"
LAB = {
    "bot.yaml": "id: lab\ntoken_env: LAB_TOKEN\nusername: lab_bot\n",
    "start.py": (
        '"""\ncommand: /start\n"""\n'
        'print("started with", params)\n'
        "User.setProperty('ref', params)\n"
        "Bot.sendMessage('hi ' + params)\n"
    ),
    "press.py": (
        '"""\ncommand: /press\n"""\n'
        "Api.answerCallbackQuery(callback_query_id=request['id'], text='pressed ' + params)\n"
    ),
    "page.py": (
        '"""\ncommand: page\n"""\n'
        "res.status(201)\n"
        "res.set('X-Lab', 'yes')\n"
        "res.json({'user': user['id'], 'params': params, 'options': options})\n"
    ),
    "boom.py": '"""\ncommand: /boom\n"""\nx = 1\ny = x / 0\n',
    "ask.py": (
        '"""\ncommand: /ask\nanswer: What is your name?\nneed_reply: true\n"""\n'
        "User.setProperty('name', message)\n"
        "Bot.sendMessage('Nice to meet you, ' + message)\n"
    ),
    "count.py": (
        '"""\ncommand: /count\n"""\n'
        "n = Bot.getProperty('n', 0) + 1\n"
        "Bot.setProperty('n', n)\n"
        "Bot.sendMessage(str(n))\n"
    ),
    "refuse.py": '"""\ncommand: /refuse\n"""\nApi.sendMessage(text="x", colour="red")\n',
    "later.py": (
        '"""\ncommand: /later\n"""\n'
        "Bot.run(command='/count', run_after=60, options={'n': 1})\n"
        "Bot.broadcast(command='/count', user_ids=[5, 6])\n"
    ),
}


@pytest.fixture
def lab(tmp_path: Path) -> dict[str, str]:
    """The environment of a checkout hosting the ``lab`` bot folder (and its token)."""
    folder = tmp_path / "bots" / "lab"
    folder.mkdir(parents=True)
    for name, text in LAB.items():
        (folder / name).write_text(text)
    return {
        "PATH": os.environ.get("PATH", ""),
        "BOTBOX_DATA_DIR": str(tmp_path / "data"),
        "BOTBOX_BOTS_DIR": str(tmp_path / "bots"),
        "BOTBOX_DEMO": "false",
        "BOTBOX_LOG_LEVEL": "WARNING",
        "LAB_TOKEN": LAB_TOKEN,
    }


def try_(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``python run.py try ARGS``."""
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "try", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def try_json(env: dict[str, str], *args: str, status: int = 0) -> dict[str, object]:
    """``run.py try ARGS --json``, expecting exit ``status``; the document it printed."""
    done = try_(env, *args, "--json")
    assert done.returncode == status, done.stdout + done.stderr
    document: dict[str, object] = json.loads(done.stdout)
    return document


def property_in(path: Path, scope: str, name: str) -> object:
    """A property of bot ``lab`` as a store file holds it (None: not set)."""

    async def read() -> object:
        store = SqliteStore(path)
        await store.open()
        try:
            value = (await store.read_property("lab", scope, name)).value
        finally:
            await store.close()
        return None if value is MISSING else value

    return asyncio.run(read())


def test_the_demo_bot_answers_start_on_a_fresh_checkout(tmp_path: Path) -> None:
    """Only the README's install: the demo bot's /start runs, and the text report says so."""
    env = {"PATH": os.environ.get("PATH", ""), "BOTBOX_DATA_DIR": str(tmp_path / "data")}
    done = try_(env, "demo", "/start")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "sendMessage" in done.stdout
    assert "Hello, User 111!" in done.stdout
    assert "/start: ok" in done.stdout
    assert done.stdout.rstrip().endswith("ok")


def test_a_message_runs_the_pipeline_and_never_reaches_telegram(lab: dict[str, str]) -> None:
    """``/start ref_1``: the command's call, output and property change are reported, and the
    Bot API (here the stand-in, with the bot's real token configured) hears nothing."""
    with TelegramStandIn(tokens={LAB_TOKEN}) as telegram:
        env = {**lab, "BOTBOX_TELEGRAM_API": telegram.base_url}
        trial = try_json(env, "lab", "/start ref_1", "--user", "42")
        assert telegram.calls == []
    (call,) = trial["calls"]  # type: ignore[misc]
    assert call["method"] == "sendMessage"
    assert call["params"] == {"chat_id": 42, "text": "hi ref_1"}
    assert call["ok"] is True
    assert call["result"]["chat"]["id"] == 42
    assert call["result"]["text"] == "hi ref_1"
    (run,) = trial["runs"]  # type: ignore[misc]
    assert run["command"] == "/start"
    assert run["status"] == "ok"
    assert run["output"] == "started with ref_1\n"
    assert trial["properties"] == [
        {"scope": "user:42", "name": "ref", "before": None, "after": "ref_1"}
    ]
    assert trial["ok"] is True


def test_the_json_document_has_every_part_of_a_try(lab: dict[str, str]) -> None:
    """``--json`` prints one document, the same shape as the API's answer."""
    trial = try_json(lab, "lab", "/count")
    assert set(trial) == {
        "ok",
        "bot",
        "version",
        "source",
        "data",
        "trigger",
        "matched",
        "calls",
        "runs",
        "properties",
        "scheduled",
        "waiting",
        "replied",
        "response",
    }
    assert trial["bot"] == "lab"
    assert trial["data"] == "try"
    assert trial["matched"] is True
    assert trial["trigger"]["kind"] == "message"  # type: ignore[index]
    assert trial["trigger"]["update"]["message"]["text"] == "/count"  # type: ignore[index]
    assert trial["response"] is None
    assert str(trial["source"]).startswith("folder ")


def test_a_button_press_runs_its_command_and_answers_the_query_once(lab: dict[str, str]) -> None:
    """``--callback``: the callback data is dispatched like typed text; the script answers the
    query itself, so the platform does not answer it again."""
    trial = try_json(lab, "lab", "--callback", "/press blue")
    assert trial["trigger"]["kind"] == "callback_query"  # type: ignore[index]
    calls = trial["calls"]
    assert [c["method"] for c in calls] == ["answerCallbackQuery"]  # type: ignore[union-attr]
    assert calls[0]["params"]["text"] == "pressed blue"  # type: ignore[index]
    assert calls[0]["result"] is True  # type: ignore[index]


def test_a_click_reports_what_res_answered(lab: dict[str, str]) -> None:
    """``--click`` mints a real signed link, runs the command with ``res``, and shows the reply."""
    trial = try_json(
        lab, "lab", "--click", "page", "--params", "from=menu", "--options", '{"level": 3}'
    )
    assert trial["trigger"]["kind"] == "click"  # type: ignore[index]
    assert "/webhook/lab?command=page" in trial["trigger"]["link"]  # type: ignore[index]
    response = trial["response"]
    assert response["status"] == 201  # type: ignore[index]
    assert response["headers"] == {"X-Lab": "yes"}  # type: ignore[index]
    assert response["content_type"] == "application/json"  # type: ignore[index]
    assert json.loads(response["body"]) == {  # type: ignore[index]
        "user": 111,
        "params": {"from": "menu"},
        "options": {"level": 3},
    }
    assert trial["calls"] == []


def test_a_click_on_a_missing_command_tries_nothing(lab: dict[str, str]) -> None:
    """Exit 2 with the reason, like any request that cannot be tried."""
    done = try_(lab, "lab", "--click", "nope")
    assert done.returncode == 2
    assert "has no command 'nope'" in done.stderr


def test_a_script_error_shows_file_and_line_and_exits_1(lab: dict[str, str]) -> None:
    """The failed run's error names the file and the author's line; the exit status is 1."""
    done = try_(lab, "lab", "/boom")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "/boom: script_error" in done.stdout
    assert "error: boom.py, line 5: ZeroDivisionError: division by zero" in done.stdout
    assert done.stdout.rstrip().endswith("failed")
    trial = try_json(lab, "lab", "/boom", status=1)
    (run,) = trial["runs"]  # type: ignore[misc]
    assert run["error"]["file"] == "boom.py"
    assert run["error"]["line"] == 5
    assert trial["ok"] is False


def test_a_call_the_spec_refuses_is_refused_as_it_would_be_when_serving(
    lab: dict[str, str],
) -> None:
    """Calls are checked against the packaged Bot API spec: same refusal, recorded as refused."""
    trial = try_json(lab, "lab", "/refuse", status=1)
    (call,) = trial["calls"]  # type: ignore[misc]
    assert call["ok"] is False
    assert "sendMessage has no field 'colour'" in call["error"]
    (run,) = trial["runs"]  # type: ignore[misc]
    assert run["error"]["type"] == "ApiError"


def test_need_reply_waits_across_two_tries(lab: dict[str, str]) -> None:
    """The first try asks and waits; the next try's plain message answers the question."""
    first = try_json(lab, "lab", "/ask")
    assert first["waiting"] == "/ask"
    assert [c["params"]["text"] for c in first["calls"]] == ["What is your name?"]  # type: ignore[index,union-attr]
    assert first["runs"] == []
    second = try_json(lab, "lab", "Ann")
    assert second["replied"] == "/ask"
    assert second["waiting"] is None
    assert [c["params"]["text"] for c in second["calls"]] == ["Nice to meet you, Ann"]  # type: ignore[index,union-attr]
    assert second["properties"] == [
        {"scope": "user:111", "name": "name", "before": None, "after": "Ann"}
    ]
    third = try_json(lab, "lab", "Bob")
    assert third["matched"] is False
    assert third["calls"] == []


def test_try_data_and_real_data_never_mix(lab: dict[str, str], tmp_path: Path) -> None:
    """A property set by a try is not in the real store, one set with ``--real-data`` is not in
    the try store, and ``--real-data`` reads and writes the real one."""
    data = tmp_path / "data"
    first = try_json(lab, "lab", "/count")
    assert first["properties"] == [{"scope": "bot", "name": "n", "before": None, "after": 1}]
    assert property_in(data / "try.sqlite3", "bot", "n") == 1
    assert property_in(data / "botbox.sqlite3", "bot", "n") is None
    real = try_json(lab, "lab", "/count", "--real-data")
    assert real["data"] == "real"
    assert real["properties"] == [{"scope": "bot", "name": "n", "before": None, "after": 1}]
    again = try_json(lab, "lab", "/count", "--real-data")
    assert again["properties"] == [{"scope": "bot", "name": "n", "before": 1, "after": 2}]
    assert property_in(data / "botbox.sqlite3", "bot", "n") == 2
    emulated = try_json(lab, "lab", "/count")
    assert emulated["properties"] == [{"scope": "bot", "name": "n", "before": 1, "after": 2}]
    assert property_in(data / "try.sqlite3", "bot", "n") == 2


def test_an_unknown_bot_or_two_triggers_exit_2(lab: dict[str, str]) -> None:
    """Nothing is tried when the bot does not exist or the request is ambiguous."""
    missing = try_(lab, "ghost", "/start")
    assert missing.returncode == 2
    assert "no bot 'ghost'" in missing.stderr
    both = try_(lab, "lab", "/start", "--callback", "x")
    assert both.returncode == 2
    assert "exactly one of" in both.stderr


def test_a_folder_path_or_the_stores_live_version_can_be_tried(
    lab: dict[str, str], tmp_path: Path
) -> None:
    """``try path/to/bot/`` tries that folder; a bot with no folder tries its live version."""
    folder = tmp_path / "bots" / "lab"
    bare = {key: value for key, value in lab.items() if key != "BOTBOX_BOTS_DIR"}
    by_path = try_json(bare, f"{folder}/", "/count")
    assert by_path["source"] == f"folder {folder}"
    deployed = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "deploy", "lab", str(folder)],
        cwd=ROOT,
        env=bare,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    stored = try_json(bare, "lab", "/count")
    assert (stored["source"], stored["version"]) == ("store version 1", 1)
    assert stored["properties"] == [{"scope": "bot", "name": "n", "before": 1, "after": 2}]


def test_runs_and_broadcasts_a_try_asks_for_are_reported_never_queued(lab: dict[str, str]) -> None:
    """Bot.run and Bot.broadcast in a try: both listed under ``scheduled``, the broadcast
    marked as one; nothing runs them."""
    trial = try_json(lab, "lab", "/later")
    assert trial["ok"] is True
    scheduled = trial["scheduled"]
    assert isinstance(scheduled, list) and len(scheduled) == 2
    run, cast = scheduled
    assert (run["command"], run["options"]) == ("/count", {"n": 1})
    assert (cast["command"], cast["broadcast"]) == ("/count", True)
