"""Large files through a real server process: a script's 20 MB File reaches the Bot API
stand-in intact, a 15 MB user file reaches the script intact, and ``BOTBOX_FILE_BUDGET_MB``
(here 24) refuses a file past it with a clear 503 while the server goes on serving."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.server import BotboxServer, hosting
from tests.support.telegram_standin import TelegramStandIn
from tests.support.updates import make_update

TOKEN = "777777777:AAFilesBotTokenForTestsOnly_abcdefghij"
MIB = 1024 * 1024
CONTENT = "bytes(range(256)) * (4096 * {mib})"
BOT = {
    "bot.yaml": (
        "id: big\ntoken_env: BIG_TOKEN\n"
        "limits:\n  memory_mb: 200\n  cpu_seconds: 5\n  wall_seconds: 30\n"
    ),
    "up.py": (
        '"""\ncommand: /up\n"""\n'
        "try:\n"
        f"    Bot.sendDocument(File('big.bin', {CONTENT.format(mib='int(params)')}))\n"
        "except ApiError as e:\n"
        "    Bot.sendMessage(f'{e.code} {e}')\n"
    ),
    "down.py": (
        '"""\ncommand: /down\n"""\n'
        "f = Api.downloadFile('user-file')\n"
        f"Bot.sendMessage(f'{{f.name}} {{f.size}} {{f.data == {CONTENT.format(mib=15)}}}')\n"
    ),
}

_updates = itertools.count(1)


def content(mib: int) -> bytes:
    return bytes(range(256)) * (4096 * mib)


@dataclass
class Hosted:
    server: BotboxServer
    telegram: TelegramStandIn

    def say(self, text: str) -> None:
        update = make_update(
            update_id=next(_updates), user_id=42, chat_id=42, text=text, bot_token=TOKEN
        )
        assert self.server.post_update(update, bot_id="big").status_code == 200
        self.server.wait_idle()


@pytest.fixture(scope="module")
def hosted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosted]:
    root = Path(tmp_path_factory.mktemp("files"))
    env = {"BIG_TOKEN": TOKEN, "BOTBOX_FILE_BUDGET_MB": "24"}
    with (
        TelegramStandIn(tokens={TOKEN}) as telegram,
        hosting(root, {"big": BOT}, telegram_api=telegram.base_url, env=env) as server,
    ):
        yield Hosted(server, telegram)


def test_a_20_mb_file_a_script_made_reaches_telegram_intact(hosted: Hosted) -> None:
    before = len(hosted.telegram.calls_to("sendDocument"))
    hosted.say("/up 20")
    call = hosted.telegram.wait_for_calls(before + 1, method="sendDocument", timeout=30)[-1]
    document = call.params["document"]
    digest = hashlib.sha256(document.data).hexdigest()  # type: ignore[attr-defined]
    assert digest == hashlib.sha256(content(20)).hexdigest()


def test_a_file_past_the_servers_budget_is_refused_and_the_next_run_works(
    hosted: Hosted,
) -> None:
    sent = len(hosted.telegram.calls_to("sendMessage"))
    hosted.say("/up 30")
    refusal = hosted.telegram.wait_for_calls(sent + 1, method="sendMessage", timeout=30)[-1]
    assert str(refusal.params["text"]).startswith("503 sendDocument: the server holds 0 MiB")
    assert "may hold 24 MiB (BOTBOX_FILE_BUDGET_MB)" in str(refusal.params["text"])
    documents = len(hosted.telegram.calls_to("sendDocument"))
    hosted.say("/up 5")
    call = hosted.telegram.wait_for_calls(documents + 1, method="sendDocument", timeout=30)[-1]
    assert call.params["document"].data == content(5)  # type: ignore[attr-defined]


def test_a_15_mb_user_file_reaches_the_script_intact(hosted: Hosted) -> None:
    hosted.telegram.add_file("user-file", content(15), "documents/file_3.bin")
    sent = len(hosted.telegram.calls_to("sendMessage"))
    hosted.say("/down")
    answer = hosted.telegram.wait_for_calls(sent + 1, method="sendMessage", timeout=30)[-1]
    assert answer.params["text"] == f"file_3.bin {15 * MIB} True"
