"""Two bots on one real server: one tries every bypass, the other must not notice.

``evil`` tries the guard bypasses (a lying ``str`` subclass name, a lying ``dict`` subclass
handed to the host) from a Telegram update and from a link click; ``good`` runs beside it. The
run log shows which worker process ran each run: the two bots never share one.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.links import mint
from tests.support.server import BotboxServer, hosting
from tests.support.telegram_standin import TelegramStandIn
from tests.support.updates import make_update

EVIL_TOKEN = "111111111:AAEvilBotTokenForTestsOnly_abcdefghijk"
GOOD_TOKEN = "222222222:AAGoodBotTokenForTestsOnly_abcdefghijk"

LIARS = """
class S(str):
    def startswith(self, *a):
        return False
class D(dict):
    def items(self):
        return [("lie", True)]
    def keys(self):
        return ["lie"]
    def get(self, key, default=None):
        return "lie"
"""

EVIL = {
    "bot.yaml": "id: evil\ntoken_env: EVIL_TOKEN\n",
    "bypass.py": (
        '"""\ncommand: /bypass\n"""\n' + LIARS + "try:\n"
        "    Bot.sendMessage('ESCAPED ' + repr(getattr(1, S('__class__'))))\n"
        "except TypeError as e:\n"
        "    Bot.sendMessage('refused: ' + str(e))\n"
    ),
    "smuggle.py": (
        '"""\ncommand: /smuggle\n"""\n' + LIARS + "Bot.setProperty('loot', D(real=1))\n"
        "Bot.sendMessage(repr(Bot.getProperty('loot')))\n"
    ),
    "steal.py": (
        '"""\ncommand: /steal\n"""\n'
        "Bot.sendMessage(repr(Bot.getProperty('treasure', 'nothing')))\n"
    ),
    "click.py": ('"""\ncommand: click\n"""\n' + LIARS + "res.json(D(real=1, via=S('link')))\n"),
}
GOOD = {
    "bot.yaml": "id: good\ntoken_env: GOOD_TOKEN\n",
    "hello.py": (
        '"""\ncommand: /hello\n"""\nBot.setProperty("treasure", "gold")\n'
        "Bot.sendMessage('hello ' + str(user['id']))\n"
    ),
}


@pytest.fixture(scope="module")
def two_bots(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[BotboxServer, TelegramStandIn]]:
    """A server hosting `evil` and `good`, each with its own token."""
    root = Path(tmp_path_factory.mktemp("tenants"))
    env = {"EVIL_TOKEN": EVIL_TOKEN, "GOOD_TOKEN": GOOD_TOKEN}
    with (
        TelegramStandIn(tokens={EVIL_TOKEN, GOOD_TOKEN}) as telegram,
        hosting(
            root, {"evil": EVIL, "good": GOOD}, telegram_api=telegram.base_url, env=env
        ) as server,
    ):
        yield server, telegram


_ids = itertools.count(1)


def say(two_bots, bot: str, token: str, text: str, *, chat: int) -> str:
    """Send ``text`` to ``bot`` as a Telegram update and return the one message it answers."""
    server, telegram = two_bots
    before = len(telegram.calls)
    update = make_update(
        update_id=next(_ids), user_id=chat, chat_id=chat, text=text, bot_token=token
    )
    assert server.post_update(update, bot_id=bot).status_code == 200
    (call,) = telegram.wait_for_calls(before + 1)[before:]
    return str(call.params.get("text"))


def test_a_lying_attribute_name_is_refused_in_a_real_run(two_bots):
    """getattr with a str subclass name is a TypeError for the script, not a dunder."""
    text = say(two_bots, "evil", EVIL_TOKEN, "/bypass", chat=501)
    assert text.startswith("refused: attribute name must be a str")
    assert "ESCAPED" not in text


def test_a_lying_dict_is_stored_as_the_data_it_holds(two_bots):
    """A dict subclass whose items() lies is stored as what it really holds."""
    assert say(two_bots, "evil", EVIL_TOKEN, "/smuggle", chat=502) == "{'real': 1}"


def test_a_lying_dict_in_res_json_answers_the_click_with_its_real_data(two_bots):
    """res.json with lying subclasses answers 200 with plain JSON, not a crash or the lie."""
    server, _ = two_bots
    url = mint(server.data_dir, "click", bot_id="evil", user_id=503)
    response = server.client.get(url)
    assert response.status_code == 200
    assert response.json() == {"real": 1, "via": "link"}


def test_the_other_bot_is_unaffected_and_its_data_unreadable(two_bots):
    """good answers normally beside evil, evil cannot read good's property, no process shared."""
    server, _ = two_bots
    for chat in (504, 505):
        assert say(two_bots, "good", GOOD_TOKEN, "/hello", chat=chat) == f"hello {chat}"
        say(two_bots, "evil", EVIL_TOKEN, "/bypass", chat=chat)
    assert say(two_bots, "evil", EVIL_TOKEN, "/steal", chat=506) == "'nothing'"
    good_pids = {r["worker_pid"] for r in server.logs("good")}
    evil_pids = {r["worker_pid"] for r in server.logs("evil")}
    assert None not in good_pids and None not in evil_pids
    assert good_pids and evil_pids and not good_pids & evil_pids
