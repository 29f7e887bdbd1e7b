"""Script-facing guarantees through a real server: transactions, quotas, limits, pipeline."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import DEMO_TOKEN
from tests.support.server import BotboxServer, hosting
from tests.support.telegram_standin import TelegramStandIn
from tests.support.updates import make_update

COMMANDS = {
    "bot.yaml": (
        "id: lab\ntoken_env: DEMO_BOT_TOKEN\nlimits:\n  cpu_seconds: 0.3\n  wall_seconds: 3\n"
        "properties:\n  max_value_bytes: 100\n  max_bot_bytes: 400\n"
    ),
    "before.py": '"""\ncommand: "@"\n"""\nif message == "/blocked":\n    return "stop"\n',
    "after.py": '"""\ncommand: "@@"\n"""\nBot.setProperty(f"after_{chat[\'id\']}", message)\n',
    "error.py": '"""\ncommand: "!"\n"""\nBot.sendMessage(f"failed: {error[\'type\']}")\n',
    "blocked.py": '"""\ncommand: /blocked\n"""\nBot.sendMessage("should not run")\n',
    "big.py": (
        '"""\ncommand: /big\n"""\ntry:\n    User.setProperty("x", "a" * 200)\n'
        "except Exception as e:\n    Bot.sendMessage(str(e))\n"
    ),
    "fill.py": (
        '"""\ncommand: /fill\n"""\nfor i in range(10):\n'
        '    Bot.setProperty(f"k{i}", "b" * 60)\nBot.sendMessage("filled")\n'
    ),
    "spin.py": (
        '"""\ncommand: /spin\n"""\nUser.setProperty("spun", True)\nwhile True:\n    pass\n'
    ),
    "spun.py": (
        '"""\ncommand: /spun\n"""\nBot.sendMessage(repr(User.getProperty("spun", "unset")))\n'
    ),
    "typo.py": (
        '"""\ncommand: /typo\n"""\ntry:\n    Api.sendMesage(text="x")\n'
        "except ApiError as e:\n    Bot.sendMessage(e.description)\n"
    ),
    "peek.py": (
        '"""\ncommand: /peek\n"""\nUser.setProperty("secret", params)\n'
        'Bot.sendMessage(repr(User.getProperty("secret", user_id=int(params))))\n'
    ),
    "notify.py": (
        '"""\ncommand: /notify\n"""\nBot.run(command="hello", user_id=int(params), '
        'chat_id=int(params), options={"from": user["id"]})\n'
    ),
    "hello.py": '"""\ncommand: hello\n"""\nBot.sendMessage(f"hello from {options[\'from\']}")\n',
    "deep.py": (
        '"""\ncommand: /deep\n"""\nn = (options or 0) + 1\ntry:\n'
        '    Bot.runCommand("/deep", options=n)\nexcept Exception as e:\n'
        '    Bot.sendMessage(f"stopped at {n}: {e}")\n'
    ),
    "newkind.py": (
        '"""\ncommand: /handle_brand_new_kind\n"""\n'
        'Bot.setProperty("seen_kind", [update_type, request["value"]])\n'
    ),
    "seen.py": '"""\ncommand: /seen\n"""\nBot.sendMessage(repr(Bot.getProperty("seen_kind")))\n',
    "state.py": (
        '"""\ncommand: /state\n"""\n'
        "Bot.sendMessage(repr(Bot.getProperty(f\"after_{chat['id']}\")))\n"
    ),
}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BotboxServer, TelegramStandIn]]:
    """A server hosting the `lab` bot, with small limits and quotas."""
    root = Path(tmp_path_factory.mktemp("lab"))
    with (
        TelegramStandIn(tokens={DEMO_TOKEN}) as telegram,
        hosting(
            root,
            {"lab": COMMANDS},
            telegram_api=telegram.base_url,
            env={"DEMO_BOT_TOKEN": DEMO_TOKEN},
        ) as server,
    ):
        yield server, telegram


_ids = itertools.count(1)


def say(lab, text: str, *, chat: int, expect: int = 1) -> list[str]:
    server, telegram = lab
    before = len(telegram.calls)
    update = make_update(
        update_id=next(_ids), user_id=chat, chat_id=chat, text=text, bot_token=DEMO_TOKEN
    )
    assert server.post_update(update, bot_id="lab").status_code == 200
    if expect == 0:
        server.wait_idle()
        return [c.params.get("text") for c in telegram.calls[before:]]
    return [c.params.get("text") for c in telegram.wait_for_calls(before + expect)[before:]]


def test_a_return_in_the_before_command_stops_the_pipeline(lab):
    """`@` returning stops the command and `@@` alike."""
    assert say(lab, "/blocked", chat=101, expect=0) == []
    assert say(lab, "/state", chat=101) == ["None"]


def test_the_after_command_runs_after_a_failure(lab):
    """`@@` still runs when the command failed (and `!` told the user)."""
    assert say(lab, "/spin", chat=102) == ["failed: LimitExceeded"]
    assert say(lab, "/state", chat=102) == ["'/spin'"]


def test_a_value_over_its_size_limit_is_a_catchable_error(lab):
    """A 200-byte value against a 100-byte limit is refused with the sizes named."""
    (text,) = say(lab, "/big", chat=103)
    assert "the limit is 100" in text


def test_a_run_that_breaks_the_bot_quota_writes_nothing(lab):
    """Ten 60-byte values exceed the 400-byte bot quota: the run fails and none is stored."""
    assert say(lab, "/fill", chat=104, expect=2) == ["filled", "failed: QuotaExceeded"]
    server, _ = lab
    assert any(
        r["command"] == "/fill" and r["error"]["type"] == "QuotaExceeded"
        for r in server.logs("lab", "--failed")
    )


def test_a_run_stopped_by_a_limit_commits_nothing(lab):
    """/spin sets a property then loops: the CPU limit ends it and the write is dropped."""
    say(lab, "/spin", chat=105)
    assert say(lab, "/spun", chat=105) == ["'unset'"]


def test_api_calls_are_checked_against_the_spec_with_a_suggestion(lab):
    """A misspelt method never reaches Telegram and the error suggests the right name."""
    (text,) = say(lab, "/typo", chat=106)
    assert "unknown Bot API method 'sendMesage'" in text
    assert "sendMessage" in text


def test_scripts_can_read_another_users_properties_of_the_same_bot(lab):
    """User.getProperty(..., user_id=) reads that user's value."""
    say(lab, "/peek 107", chat=107)
    assert say(lab, "/peek 107", chat=108) == ["'107'"]


def test_bot_run_runs_a_command_for_another_user_and_chat(lab):
    """Bot.run queues `hello` for user 110, which then messages chat 110."""
    _, telegram = lab
    before = len(telegram.calls)
    say(lab, "/notify 110", chat=109, expect=0)
    (call,) = telegram.wait_for_calls(before + 1)[before:]
    assert (call.params["chat_id"], call.params["text"]) == (110, "hello from 109")


def test_run_command_nesting_stops_at_six(lab):
    """A command that runs itself is refused at the seventh level with a clear message."""
    (text,) = say(lab, "/deep", chat=112)
    assert text.startswith("stopped at 7")
    assert "nests at most 6 deep" in text


def test_an_unknown_update_kind_is_acknowledged_and_routed_to_its_handler(lab):
    """A kind the Bot API may add later reaches /handle_<kind> like any other."""
    server, _ = lab
    update = {"update_id": next(_ids), "brand_new_kind": {"value": 42}}
    assert server.post_update(update, bot_id="lab").status_code == 200
    server.wait_idle()
    assert say(lab, "/seen", chat=113) == ["['brand_new_kind', 42]"]
