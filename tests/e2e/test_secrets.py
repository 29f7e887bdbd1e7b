"""Bot secrets end to end: set through the CLI and the admin API, read by scripts with
``Secrets.get``, masked in the run log, never answered back, never readable by another bot."""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.runtime.api.conftest import create_token
from tests.support.links import cli
from tests.support.server import ROOT, BotboxServer, hosting
from tests.support.telegram_standin import TelegramStandIn
from tests.support.updates import make_update

PAY_TOKEN = "555555555:AAPayBotTokenForTestsOnly_abcdefghijkl"
OTHER_TOKEN = "666666666:AAOtherBotTokenForTestsOnly_abcdefghij"
STRIPE = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"

PAY = {
    "bot.yaml": "id: pay\ntoken_env: PAY_TOKEN\n",
    "show.py": (
        '"""\ncommand: /show\n"""\n'
        "key = Secrets.get('STRIPE_KEY')\n"
        "print('whole:', key)\n"
        "print(key[:10], end='')\n"  # split across two prints
        "print(key[10:])\n"
        "Bot.sendMessage('charged with ' + key)\n"
        "raise ValueError('card refused for ' + key)\n"
    ),
    "missing.py": (
        '"""\ncommand: /missing\n"""\n'
        "print(Secrets.get('NOPE'), Secrets.get('NOPE', 'fallback'), "
        "Secrets.get(name='NOPE', default=3))\n"
    ),
    "reverse.py": '"""\ncommand: /reverse\n"""\nprint(Secrets.get("STRIPE_KEY")[::-1])\n',
    "error.py": '"""\ncommand: "!"\n"""\nprint("the ! command saw:", error["message"])\n',
}
OTHER = {
    "bot.yaml": "id: other\ntoken_env: OTHER_TOKEN\n",
    "peek.py": '"""\ncommand: /peek\n"""\nprint("other sees", Secrets.get("STRIPE_KEY"))\n',
}

_updates = itertools.count(1)


@dataclass
class Hosted:
    server: BotboxServer
    telegram: TelegramStandIn
    tokens: dict[str, str]

    def say(self, bot: str, text: str, user: int = 42) -> None:
        token = PAY_TOKEN if bot == "pay" else OTHER_TOKEN
        update = make_update(
            update_id=next(_updates), user_id=user, chat_id=user, text=text, bot_token=token
        )
        assert self.server.post_update(update, bot_id=bot).status_code == 200
        self.server.wait_idle()

    def last_run(self, bot: str, command: str) -> dict[str, object]:
        runs = self.server.logs(bot)
        found = [run for run in runs if run["command"] == command]
        assert found, [run["command"] for run in runs]
        return found[0]

    def api(self, who: str, method: str, path: str, **kwargs: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        with httpx.Client(base_url=self.server.url + "/api/v1", headers=headers) as client:
            return client.request(method, path, **kwargs)  # type: ignore[arg-type]


def set_with_cli(
    env: dict[str, str], bot: str, name: str, value: str
) -> subprocess.CompletedProcess[str]:
    """``run.py secrets set BOT NAME`` with the value on stdin."""
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "secrets", "set", bot, name],
        cwd=ROOT,
        env=env,
        input=value,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.fixture(scope="module")
def hosted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosted]:
    root = Path(tmp_path_factory.mktemp("secrets"))
    env = {"PAY_TOKEN": PAY_TOKEN, "OTHER_TOKEN": OTHER_TOKEN}
    with (
        TelegramStandIn(tokens={PAY_TOKEN, OTHER_TOKEN}) as telegram,
        hosting(
            root, {"pay": PAY, "other": OTHER}, telegram_api=telegram.base_url, env=env
        ) as server,
    ):
        tokens = {
            "root": create_token(server, "--name", "root", "--role", "admin"),
            "ann": create_token(server, "--name", "ann", "--role", "author"),
            "vic": create_token(server, "--name", "vic", "--role", "viewer"),
            "nobody": create_token(server, "--name", "nobody", "--role", "author"),
        }
        for name, role in (("ann", "author"), ("vic", "viewer")):
            assert cli(server.env, "users", "grant", name, "pay", "--role", role).returncode == 0
        done = set_with_cli(server.env, "pay", "STRIPE_KEY", STRIPE + "\n")
        assert done.returncode == 0, done.stderr
        assert "stored" in done.stdout and STRIPE not in done.stdout + done.stderr
        yield Hosted(server, telegram, tokens)


def test_a_script_reads_its_secret_and_the_run_log_masks_every_occurrence(
    hosted: Hosted,
) -> None:
    hosted.say("pay", "/show")
    sent = hosted.telegram.wait_for_calls(1, method="sendMessage")
    assert sent[-1].params["text"] == "charged with " + STRIPE  # the script used the value

    run = hosted.last_run("pay", "/show")
    logged = str(run)
    assert STRIPE not in logged and STRIPE[:10] + STRIPE[10:] not in logged
    assert run["output"] == "whole: [secret STRIPE_KEY]\n[secret STRIPE_KEY]\n"
    assert run["error"]["message"] == "card refused for [secret STRIPE_KEY]"  # type: ignore[index]
    assert "[secret STRIPE_KEY]" in str(run["calls"])
    on_error = hosted.last_run("pay", "!")
    assert on_error["output"] == "the ! command saw: card refused for [secret STRIPE_KEY]\n"


def test_a_missing_secret_is_none_or_the_default(hosted: Hosted) -> None:
    hosted.say("pay", "/missing")
    assert hosted.last_run("pay", "/missing")["output"] == "None fallback 3\n"


def test_another_bot_never_reads_the_secret(hosted: Hosted) -> None:
    hosted.say("other", "/peek")
    assert hosted.last_run("other", "/peek")["output"] == "other sees None\n"


def test_a_transformed_secret_is_not_masked_as_documented(hosted: Hosted) -> None:
    hosted.say("pay", "/reverse")
    assert hosted.last_run("pay", "/reverse")["output"] == STRIPE[::-1] + "\n"


def test_the_store_and_the_cli_never_show_the_value(hosted: Hosted) -> None:
    data = hosted.server.data_dir
    for path in data.iterdir():
        if path.is_file() and path.suffix != ".log":
            assert STRIPE.encode() not in path.read_bytes(), path
    listed = cli(hosted.server.env, "secrets", "list", "pay")
    assert listed.returncode == 0 and "STRIPE_KEY" in listed.stdout
    assert STRIPE not in listed.stdout
    audit = cli(hosted.server.env, "audit", "--bot", "pay", "--limit", "100").stdout
    assert "secret.set STRIPE_KEY" in audit and STRIPE not in audit


def test_authors_and_admins_set_list_and_delete_through_the_api(hosted: Hosted) -> None:
    value = "whsec_api_value_1234567890"
    put = hosted.api("ann", "PUT", "/bots/pay/secrets/WEBHOOK_SECRET", json={"value": value})
    assert put.status_code == 200, put.text
    assert put.json() == {"name": "WEBHOOK_SECRET", "created": True, "masked": True}
    again = hosted.api("root", "PUT", "/bots/pay/secrets/WEBHOOK_SECRET", json={"value": "short"})
    assert again.json() == {"name": "WEBHOOK_SECRET", "created": False, "masked": False}
    names = hosted.api("ann", "GET", "/bots/pay/secrets").json()["secrets"]
    assert {entry["name"] for entry in names} >= {"STRIPE_KEY", "WEBHOOK_SECRET"}
    assert value not in str(names) and STRIPE not in str(names)
    # No endpoint answers a value back.
    assert hosted.api("root", "GET", "/bots/pay/secrets/STRIPE_KEY").status_code == 405
    audit = hosted.api("root", "GET", "/audit", params={"bot": "pay", "limit": 100}).text
    assert "secret.set" in audit and value not in audit and STRIPE not in audit
    gone = hosted.api("ann", "DELETE", "/bots/pay/secrets/WEBHOOK_SECRET")
    assert gone.json() == {"name": "WEBHOOK_SECRET", "deleted": True}
    assert (
        hosted.api("ann", "DELETE", "/bots/pay/secrets/WEBHOOK_SECRET").json()["deleted"] is False
    )


def test_viewers_and_strangers_cannot_touch_secrets(hosted: Hosted) -> None:
    body = {"value": "x" * 20}
    assert hosted.api("vic", "GET", "/bots/pay/secrets").status_code == 403
    assert hosted.api("vic", "PUT", "/bots/pay/secrets/K", json=body).status_code == 403
    assert hosted.api("nobody", "GET", "/bots/pay/secrets").status_code == 404
    assert hosted.api("nobody", "DELETE", "/bots/pay/secrets/STRIPE_KEY").status_code == 404
    bad = hosted.api("ann", "PUT", "/bots/pay/secrets/1BAD", json=body)
    assert bad.status_code == 422
    assert hosted.api("ann", "PUT", "/bots/pay/secrets/K", json={"value": ""}).status_code == 422


def test_the_cli_refuses_bad_names_and_reports_a_missing_delete(hosted: Hosted) -> None:
    bad = set_with_cli(hosted.server.env, "pay", "BAD-NAME", "value-12345")
    assert bad.returncode == 2 and "letters, digits and _" in bad.stderr
    short = set_with_cli(hosted.server.env, "pay", "PIN", "1234\n")
    assert short.returncode == 0 and "not masked" in short.stderr
    assert "not in the store" not in short.stderr
    early = set_with_cli(hosted.server.env, "payy", "KEY", "value-12345")
    assert early.returncode == 0 and "bot payy is not in the store yet" in early.stderr
    assert cli(hosted.server.env, "secrets", "delete", "pay", "PIN").returncode == 0
    missing = cli(hosted.server.env, "secrets", "delete", "pay", "PIN")
    assert missing.returncode == 1 and "no secret PIN" in missing.stderr


def test_a_replaced_secret_is_masked_in_the_very_next_run(hosted: Hosted) -> None:
    """The server's masker caches a bot's secrets for 2 s, but what a run read is always
    masked: a value changed through the API a moment ago never reaches the log."""
    fresh = "sk_live_REPLACED_0123456789abcdef"
    put = hosted.api("root", "PUT", "/bots/pay/secrets/STRIPE_KEY", json={"value": fresh})
    assert put.status_code == 200 and put.json()["created"] is False
    hosted.say("pay", "/show")
    runs = [run for run in hosted.server.logs("pay") if run["command"] == "/show"]
    assert runs[0]["output"] == "whole: [secret STRIPE_KEY]\n[secret STRIPE_KEY]\n"
    assert fresh not in str(runs[0])
