"""``python run.py``: check, logs, url and keys, as an admin runs them."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.cli import MAX_OUTPUT_LINES, format_record
from runtime.runs.registry import derive_secret
from runtime.signing.keys import load_master_key
from runtime.store import RunRecord, SqliteStore
from tests.support.telegram_standin import TelegramStandIn

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures"


RECORD_FIELDS: dict[str, object] = dict(
    bot_id="b",
    command="/x",
    trigger="update",
    user_id=1,
    chat_id=1,
    status="ok",
    started_at=0.0,
    cpu_seconds=0.001,
    wall_seconds=0.002,
    id=5,
)
"""A run log record's fields, for tests of how `run.py logs` prints one."""


def run_py(*args: str, data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": os.environ.get("PATH", ""), "BOTBOX_DATA_DIR": str(data_dir), **env},
    )


def test_check_passes_the_demo_bot(tmp_path):
    """The bundled demo bot is a valid bot folder."""
    done = run_py("check", str(ROOT / "commands"), data_dir=tmp_path)
    assert done.returncode == 0, done.stdout
    assert done.stdout.strip().endswith(": ok")


def test_check_lists_every_problem_with_file_and_line_and_fails(tmp_path):
    """A broken folder prints file:line problems and exits 1."""
    done = run_py("check", str(FIXTURES / "badbot"), data_dir=tmp_path)
    assert done.returncode == 1
    lines = done.stdout.strip().splitlines()
    assert lines[-1].endswith(f"problem(s) in {FIXTURES / 'badbot'}")
    assert all(":" in line for line in lines[:-1])
    assert "Traceback" not in done.stdout + done.stderr


def test_url_prints_a_link_and_refuses_bad_input_with_status_2(tmp_path):
    """A signed link for the demo bot; an unknown command or a bad redirect is a clear error."""
    done = run_py(
        "url",
        "demo",
        "stats",
        "--user",
        "5",
        "--params",
        "a=1",
        data_dir=tmp_path,
        BOTBOX_PUBLIC_URL="https://bots.example",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(
        "https://bots.example/webhook/demo?command=stats&user=5&a=1&sig=k1."
    )
    unknown = run_py("url", "demo", "nope", "--user", "5", data_dir=tmp_path)
    assert unknown.returncode == 2
    assert "no command 'nope'" in unknown.stderr
    bad = run_py(
        "url",
        "demo",
        "stats",
        "--user",
        "5",
        "--redirect",
        "javascript:alert(1)",
        data_dir=tmp_path,
    )
    assert bad.returncode == 2
    assert "redirect must be an absolute" in bad.stderr


def test_keys_rotate_retire_and_revoke_change_the_ring(tmp_path):
    """rotate adds an active key, retire refuses the old one, revoke bumps a bot's epoch."""
    assert "k1\tactive" in run_py("keys", "list", data_dir=tmp_path).stdout
    rotated = run_py("keys", "rotate", data_dir=tmp_path).stdout
    assert "k1\tverifying" in rotated and "k2\tactive" in rotated
    refused = run_py("keys", "retire", "k2", data_dir=tmp_path)
    assert refused.returncode == 2
    assert "rotate first" in refused.stderr
    assert "k1\tretired" in run_py("keys", "retire", "k1", data_dir=tmp_path).stdout
    assert "links revoked 1 time" in run_py("keys", "revoke", "demo", data_dir=tmp_path).stdout
    assert oct((tmp_path / "keys.json").stat().st_mode)[-3:] == "600"


def test_keys_revoke_of_an_unknown_bot_is_an_error_and_changes_nothing(tmp_path):
    """Revoking a bot this server does not host exits 2 naming it, and keys.json is untouched."""
    assert run_py("keys", "list", data_dir=tmp_path).returncode == 0
    before = (tmp_path / "keys.json").read_bytes()
    done = run_py("keys", "revoke", "nosuchbot", data_dir=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ")
    assert "nosuchbot" in done.stderr
    assert "revoked" not in done.stdout
    assert (tmp_path / "keys.json").read_bytes() == before


@pytest.mark.parametrize("depth", [11, 1000, 30_000], ids=["just-too-deep", "1k", "30k"])
def test_url_with_too_deeply_nested_options_is_a_clean_error(tmp_path, depth):
    """Options nested past the limit, however deep, exit 2 with an error line, no traceback."""
    options = "[" * depth + "]" * depth
    done = run_py("url", "demo", "stats", "--user", "5", "--options", options, data_dir=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr.startswith("error: ")
    assert "deeper than 10" in done.stderr
    assert "Traceback" not in done.stderr


def test_logs_without_a_store_says_so(tmp_path):
    """Reading logs before the server ever ran is a plain message, not a crash."""
    done = run_py("logs", "demo", data_dir=tmp_path)
    assert done.returncode == 1
    assert "start the server first" in done.stdout


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"BOTBOX_PORT": "eighty"}, "BOTBOX_PORT"),
        ({"BOTBOX_NOPE": "1"}, "unknown setting"),
        ({"BOTBOX_LOG_LEVEL": "LOUD"}, "BOTBOX_LOG_LEVEL='LOUD': expected one of DEBUG"),
    ],
    ids=["bad-port", "unknown-setting", "bad-log-level"],
)
def test_bad_settings_stop_with_a_message_and_status_2(tmp_path, env, fragment):
    """Configuration errors name the variable and exit 2 without a traceback."""
    done = run_py("check", str(ROOT / "commands"), data_dir=tmp_path, **env)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ")
    assert fragment in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_on_a_port_in_use_is_a_clear_error(tmp_path):
    """A taken port stops `serve` with exit 2 and a message, before anything starts."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_py("serve", data_dir=tmp_path, BOTBOX_PORT=str(port))
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_with_a_damaged_master_key_stops_with_a_message(tmp_path):
    """A master key file that is not hex is named in a one-line error; exit 2."""
    (tmp_path / "master.key").write_text("not hex\n")
    done = run_py("serve", data_dir=tmp_path, BOTBOX_PORT="0")
    assert done.returncode == 2
    assert "does not hold a hex key" in done.stderr
    assert "Traceback" not in done.stderr


def test_set_webhook_registers_the_url_the_secret_the_update_kinds_and_the_menu(tmp_path):
    """set-webhook sends the URL, the secret, the kinds the demo handles, then its command menu."""
    token = "123456789:AAFakeTokenForTheSetWebhookTest_abcdefgh"
    with TelegramStandIn(tokens={token}) as telegram:
        done = run_py(
            "set-webhook",
            "demo",
            data_dir=tmp_path,
            DEMO_BOT_TOKEN=token,
            BOTBOX_TELEGRAM_API=telegram.base_url,
            BOTBOX_PUBLIC_URL="https://bots.example",
        )
        assert done.returncode == 0, done.stderr
        (call,) = telegram.calls_to("setWebhook")
        (menu,) = telegram.calls_to("setMyCommands")
    secret = derive_secret(
        load_master_key(tmp_path / "master.key"), "telegram-webhook-secret", "demo"
    )
    kinds = call.params["allowed_updates"]
    assert {k: v for k, v in call.params.items() if k != "allowed_updates"} == {
        "url": "https://bots.example/telegram/demo",
        "secret_token": secret,
    }
    # The demo has /handle_my_chat_member and /inline_query; no chat_member or reaction handler.
    assert {"message", "callback_query", "my_chat_member", "inline_query"} <= set(kinds)
    assert not {"chat_member", "message_reaction", "message_reaction_count"} & set(kinds)
    names = {command["command"] for command in menu.params["commands"]}
    assert {"debug", "menu", "sale", "tryapi"} <= names
    assert not {"inline_query", "handle_my_chat_member", "stats", "@@"} & names
    assert "command menu:" in done.stdout


def test_set_webhook_without_a_token_says_which_variable_to_set(tmp_path):
    """No token in the environment: a message naming the variable, exit 1."""
    done = run_py("set-webhook", "demo", data_dir=tmp_path)
    assert done.returncode == 1
    assert "set DEMO_BOT_TOKEN" in done.stdout


def test_a_log_line_names_the_worker_process_that_ran_the_run():
    """`run.py logs` shows worker=PID when the run log recorded one, and nothing otherwise."""
    base = RECORD_FIELDS
    with_pid = format_record(RunRecord(**base, extra={"worker_pid": 4321}))
    without = format_record(RunRecord(**base, extra={"worker_pid": None}))
    assert with_pid.splitlines()[0].endswith(" worker=4321")
    assert "worker=" not in without


def test_a_log_entry_shows_each_http_request_as_metadata():
    hops = [
        {
            "method": "GET",
            "host": "api.test",
            "status": 200,
            "bytes": 512,
            "ms": 41.2,
            "error": None,
        },
        {
            "method": "POST",
            "host": "10.0.0.1",
            "status": None,
            "bytes": 0,
            "ms": 0.1,
            "error": "refused",
        },
    ]
    shown = format_record(RunRecord(**RECORD_FIELDS, extra={"http": hops})).splitlines()
    assert shown[1:] == [
        "  http GET api.test 200 512 B 41.2 ms",
        "  http POST 10.0.0.1 None failed: refused 0.1 ms",
    ]


def write_bots(root: Path, configs: dict[str, str]) -> Path:
    """A folder of bot folders, one bot.yaml each (no commands), under ``root/bots``."""
    bots = root / "bots"
    for name, text in configs.items():
        (bots / name).mkdir(parents=True)
        (bots / name / "bot.yaml").write_text(text)
    return bots


def test_check_reports_a_bad_webhook_setting_at_its_line(tmp_path):
    """A bad webhook rate is one located problem for `check` (exit 1); `serve` would start and
    list the bot as failed (tests/e2e/test_versions.py)."""
    bots = write_bots(tmp_path, {"a": "token_env: A_TOKEN\nwebhook:\n  per_link: lots\n"})
    expected = f"{bots / 'a'}/bot.yaml:3: webhook.per_link must look like 30/60"
    checked = run_py("check", str(bots / "a"), data_dir=tmp_path / "data")
    assert checked.returncode == 1
    assert checked.stdout.startswith(expected)


def test_check_of_a_folder_of_bots_checks_each_and_finds_shared_ids(tmp_path):
    """`check BOTS_DIR` checks every bot under it and reports two bots with one id, naming both."""
    config = "id: same\ntoken_env: T\n"
    bots = write_bots(tmp_path, {"a": config, "b": config, "c": "token_env: T\nnane: x\n"})
    (bots / "not-a-bot").mkdir()
    for single in ("a", "b"):
        assert run_py("check", str(bots / single), data_dir=tmp_path).returncode == 0
    done = run_py("check", str(bots), data_dir=tmp_path)
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        f"{bots / 'b'}/bot.yaml: bot id 'same' is already used by {bots / 'a'}; "
        "each bot needs an id of its own (set id in bot.yaml)",
        f'{bots / "c"}/bot.yaml:2: unknown setting "nane" (did you mean "name"?)',
        f"2 problem(s) in {bots}",
    ]


def test_check_of_a_folder_of_good_bots_passes_and_counts_them(tmp_path):
    """Every bot under the folder is valid and their ids differ: ok, exit 0."""
    bots = write_bots(tmp_path, {"a": "token_env: T\n", "b": "token_env: T\n"})
    done = run_py("check", str(bots), data_dir=tmp_path)
    assert done.returncode == 0, done.stdout
    assert done.stdout == f"{bots}: ok, 2 bots\n"


def test_check_of_a_folder_with_no_bot_says_so(tmp_path):
    """A folder with no bot.yaml and no bot under it is one problem, exit 1."""
    (tmp_path / "empty").mkdir()
    done = run_py("check", str(tmp_path / "empty"), data_dir=tmp_path)
    assert done.returncode == 1
    assert "no bot.yaml here, and no sub-folder with one" in done.stdout


async def store_with_runs(path: Path, bot_id: str, outputs: list[str]) -> None:
    """Create the store at ``path`` holding one finished run of ``bot_id`` per output."""
    store = SqliteStore(path)
    await store.open()
    try:
        for output in outputs:
            await store.record_run(
                RunRecord(bot_id, "/x", "update", 1, 1, "ok", 0.0, 0.001, 0.002, output=output)
            )
    finally:
        await store.close()


def test_logs_of_a_bot_nobody_knows_is_an_error(tmp_path):
    """A bot with no folder here and no runs in the store exits 2 with `error:`, store or not."""
    before = run_py("logs", "nosuchbot", data_dir=tmp_path)
    assert (before.returncode, before.stdout) == (2, "")
    assert before.stderr == "error: no bot 'nosuchbot' on this server\n"
    asyncio.run(store_with_runs(tmp_path / "botbox.sqlite3", "otherbot", ["hi"]))
    after = run_py("logs", "nosuchbot", data_dir=tmp_path)
    assert (after.returncode, after.stdout) == (2, "")
    assert "no bot 'nosuchbot' on this server, and no runs of it in the store" in after.stderr


def test_logs_of_a_removed_bot_still_show_its_runs(tmp_path):
    """A bot whose folder is gone but whose runs are in the store is not an error."""
    asyncio.run(store_with_runs(tmp_path / "botbox.sqlite3", "oldbot", ["bye"]))
    done = run_py("logs", "oldbot", "--failed", data_dir=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "no failed runs for bot 'oldbot'\n"
    shown = run_py("logs", "oldbot", data_dir=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "  | bye" in shown.stdout


def test_logs_limit_must_be_a_positive_number(tmp_path):
    """`logs --limit 0` is refused by the argument parser with exit 2."""
    done = run_py("logs", "demo", "--limit", "0", data_dir=tmp_path)
    assert done.returncode == 2
    assert "expected a whole number of 1 or more" in done.stderr


def test_logs_say_how_many_output_lines_they_left_out():
    """A run's output past the shown lines ends with a line counting the rest."""
    base = RECORD_FIELDS
    output = "".join(f"line {n}\n" for n in range(MAX_OUTPUT_LINES + 7))
    shown = format_record(RunRecord(**base, output=output)).splitlines()
    assert shown[1:-1] == [f"  | line {n}" for n in range(MAX_OUTPUT_LINES)]
    assert shown[-1] == "  | ... 7 more lines (--json shows them)"
    exact = "".join(f"line {n}\n" for n in range(MAX_OUTPUT_LINES))
    assert "more lines" not in format_record(RunRecord(**base, output=exact))


def test_check_and_serve_report_a_warning_without_refusing_the_bot(tmp_path):
    """A Markdown answer that cannot be escaped is a warning: check exits 0 and names it."""
    bot = tmp_path / "bots" / "md"
    bot.mkdir(parents=True)
    (bot / "bot.yaml").write_text("id: md\ntoken_env: MD_TOKEN\n")
    (bot / "hi.py").write_text(
        '"""\ncommand: /hi\nparse_mode: Markdown\nanswer: Hi *{{user.first_name}}*\n"""\n'
    )
    done = run_py("check", str(bot), data_dir=tmp_path / "data")
    assert done.returncode == 0, done.stdout
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"{bot / 'hi.py'}:4: warning: answer: {{{{user.first_name}}}}")
    assert lines[-1] == f"{bot}: ok (1 warning(s))"


def test_secrets_rekey_moves_every_secret_to_a_new_master_key(tmp_path):
    """After master.key is replaced, secrets read as missing until `secrets rekey OLD` seals
    them again with the new key; a secret set under the new key is left alone."""
    env = {"PATH": os.environ.get("PATH", ""), "BOTBOX_DATA_DIR": str(tmp_path)}

    def put(bot: str, name: str, value: str) -> None:
        done = subprocess.run(
            [sys.executable, str(ROOT / "run.py"), "secrets", "set", bot, name],
            cwd=ROOT,
            input=value,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr

    put("shop", "STRIPE_KEY", "sk_live_one_23456789")
    put("blog", "TOKEN", "blog-token-123456")
    old = tmp_path / "old.key"
    (tmp_path / "master.key").rename(old)
    put("shop", "NEWER", "set-after-rotation-1")  # makes a new master.key
    refused = run_py("secrets", "rekey", str(tmp_path / "nope.key"), data_dir=tmp_path)
    assert refused.returncode == 2 and "no old master key file" in refused.stderr
    done = run_py("secrets", "rekey", str(old), data_dir=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "2 secret(s) sealed again with the current master key; 1 already were" in done.stdout
    again = run_py("secrets", "rekey", str(old), data_dir=tmp_path)
    assert "0 secret(s) sealed again" in again.stdout and "3 already were" in again.stdout
    audit = run_py("audit", "--limit", "50", data_dir=tmp_path).stdout
    assert "secret.rekey" in audit and "sk_live_one" not in audit
