"""A real server hosting two bots (``shop`` and ``blog``) and a token per role, made with
``run.py tokens create`` and ``run.py users grant`` (so the CLI is exercised too)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.links import cli
from tests.support.server import BotboxServer, hosting
from tests.support.telegram_standin import TelegramStandIn
from tests.support.updates import make_update

SHOP_TOKEN = "333333333:AAShopBotTokenForTestsOnly_abcdefghijk"
BLOG_TOKEN = "444444444:AABlogBotTokenForTestsOnly_abcdefghijk"

SHOP = {
    "bot.yaml": "id: shop\ntoken_env: SHOP_TOKEN\n",
    "start.py": (
        '"""\ncommand: /start\n"""\n'
        "User.setProperty('visits', (User.getProperty('visits') or 0) + 1)\n"
        "Bot.sendMessage('welcome')\n"
    ),
    "fail.py": '"""\ncommand: /fail\n"""\nraise ValueError("broken on purpose")\n',
    "click.py": '"""\ncommand: click\n"""\nres.json({"clicked": True})\n',
    "secret.py": '"""\ncommand: /secret\n"""\nprint(Secrets.get("TRY_KEY", "missing"))\n',
}
BLOG = {
    "bot.yaml": "id: blog\ntoken_env: BLOG_TOKEN\n",
    "post.py": '"""\ncommand: /post\n"""\nBot.sendMessage("posted")\n',
}


def create_token(server: BotboxServer, *args: str) -> str:
    """``run.py tokens create ARGS``; return the token it printed."""
    done = cli(server.env, "tokens", "create", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@dataclass
class Api:
    """The server, and an HTTP client per role."""

    server: BotboxServer
    telegram: TelegramStandIn
    tokens: dict[str, str]

    def as_(self, who: str | None) -> httpx.Client:
        """A client sending ``who``'s token (None: no token)."""
        headers = {} if who is None else {"Authorization": f"Bearer {self.tokens[who]}"}
        return httpx.Client(base_url=self.server.url + "/api/v1", headers=headers, timeout=10)

    def call(self, who: str | None, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request to ``/api/v1`` + ``path`` as ``who``."""
        with self.as_(who) as client:
            return client.request(method, path, **kwargs)

    def say(self, bot: str, text: str, *, user: int) -> None:
        """Send ``text`` to ``bot`` from ``user`` and wait until its run is in the log."""
        token = SHOP_TOKEN if bot == "shop" else BLOG_TOKEN
        update = make_update(
            update_id=next(_update_ids), user_id=user, chat_id=user, text=text, bot_token=token
        )
        assert self.server.post_update(update, bot_id=bot).status_code == 200
        self.server.wait_idle()
        self.server.wait_logged()


_update_ids = itertools.count(1)


@pytest.fixture(scope="package")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The server, with tokens for: ``root`` (admin), ``ann`` (author of shop), ``vic``
    (viewer of shop), ``amy`` (author, but only a viewer grant on shop), ``nobody`` (author
    with no grant)."""
    root = Path(tmp_path_factory.mktemp("api"))
    env = {"SHOP_TOKEN": SHOP_TOKEN, "BLOG_TOKEN": BLOG_TOKEN}
    with (
        TelegramStandIn(tokens={SHOP_TOKEN, BLOG_TOKEN}) as telegram,
        hosting(
            root, {"shop": SHOP, "blog": BLOG}, telegram_api=telegram.base_url, env=env
        ) as server,
    ):
        tokens = {
            "root": create_token(server, "--name", "root", "--role", "admin"),
            "ann": create_token(server, "--name", "ann", "--role", "author"),
            "vic": create_token(server, "--name", "vic", "--role", "viewer"),
            "amy": create_token(server, "--name", "amy", "--role", "author"),
            "nobody": create_token(server, "--name", "nobody", "--role", "author"),
        }
        for name, role in (("ann", "author"), ("vic", "author"), ("amy", "viewer")):
            done = cli(server.env, "users", "grant", name, "shop", "--role", role)
            assert done.returncode == 0, done.stderr
        yield Api(server, telegram, tokens)
