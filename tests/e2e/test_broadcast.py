"""Bot.broadcast through a real server: every user who wrote to the bot gets the command's run
once, paced to Telegram's limits (a strict stand-in answers no 429), resumed after kill -9,
and its progress is in ``run.py logs``."""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from tests.e2e.conftest import DEMO_TOKEN
from tests.support.server import ROOT, BotboxServer
from tests.support.telegram_standin import TelegramStandIn
from tests.support.updates import make_update

FILES = {
    "bot.yaml": "id: caster\ntoken_env: DEMO_BOT_TOKEN\n",
    "hello.py": '"""\ncommand: /hello\n"""\nn = 1\n',
    "announce.py": (
        '"""\ncommand: /announce\n"""\n'
        'Bot.broadcast(command="news", options={"text": params or "big news"})\n'
    ),
    "only.py": (
        '"""\ncommand: /only\n"""\n'
        'Bot.broadcast("news", user_ids=[3, 5, 3], options={"text": "few"})\n'
    ),
    "news.py": (
        '"""\ncommand: news\n"""\nBot.sendMessage(options["text"] + " for " + str(user["id"]))\n'
    ),
}
_ids = itertools.count(1)


def caster(tmp_path: Path, telegram: TelegramStandIn) -> BotboxServer:
    """A server (not started) hosting the `caster` bot, flood limits on."""
    folder = tmp_path / "bots" / "caster"
    folder.mkdir(parents=True)
    for name, text in FILES.items():
        (folder / name).write_text(text)
    return BotboxServer(
        tmp_path / "data",
        telegram_api=telegram.base_url,
        bots_dir=tmp_path / "bots",
        demo=False,
        env={"DEMO_BOT_TOKEN": DEMO_TOKEN},
    )


def say(server: BotboxServer, user: int, text: str) -> None:
    """A private message from ``user``."""
    update = make_update(update_id=next(_ids), user_id=user, chat_id=user, text=text)
    assert server.post_update(update, "caster").status_code == 200


def news(telegram: TelegramStandIn, text: str) -> Counter[int]:
    """How many times each chat got the news ``text`` (successful sends only)."""
    return Counter(
        int(c.params["chat_id"])  # type: ignore[call-overload]
        for c in telegram.calls_to("sendMessage")
        if c.error_code is None and str(c.params["text"]).startswith(text + " for ")
    )


def wait_news(telegram: TelegramStandIn, text: str, users: int, timeout: float) -> Counter[int]:
    """Wait until ``users`` distinct chats got the news."""
    deadline = time.monotonic() + timeout
    while len(got := news(telegram, text)) < users:
        assert time.monotonic() < deadline, f"{len(got)} of {users} users got {text!r}"
        time.sleep(0.05)
    return got


def logs_text(server: BotboxServer) -> str:
    """``run.py logs caster`` as a person reads it."""
    server.wait_logged()
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "logs", "caster", "--limit", "1"],
        cwd=ROOT,
        env=server.env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout


def test_every_known_user_gets_the_broadcast_once_paced_without_a_429(tmp_path: Path) -> None:
    """45 users wrote /hello; /announce reaches each of them once, and nobody else."""
    with TelegramStandIn(tokens={DEMO_TOKEN}, strict_flood=True) as telegram:
        server = caster(tmp_path, telegram).start()
        try:
            users = list(range(1001, 1046))
            for user in users:
                say(server, user, "/hello")
            server.wait_idle(timeout=20)
            say(server, 1001, "/announce today")
            got = wait_news(telegram, "today", len(users), timeout=30)
            server.wait_idle(timeout=20)
            assert got == Counter(dict.fromkeys(users, 1))
            assert [c for c in telegram.calls_to("sendMessage") if c.error_code == 429] == []
            assert (
                "broadcast " in (text := logs_text(server))
                and "of news: 45 of 45 users queued, 45 ran (45 ok), all queued" in text
            )
        finally:
            server.close()


def test_a_list_broadcast_reaches_just_those_users_once(tmp_path: Path) -> None:
    """user_ids=[3, 5, 3]: users 3 and 5, once each, whether or not they wrote before."""
    with TelegramStandIn(tokens={DEMO_TOKEN}) as telegram:
        server = caster(tmp_path, telegram).start()
        try:
            say(server, 7, "/hello")
            say(server, 7, "/only")
            got = wait_news(telegram, "few", 2, timeout=15)
            server.wait_idle(timeout=10)
            assert got == Counter({3: 1, 5: 1})
        finally:
            server.close()


def test_a_broadcast_cut_by_kill_9_resumes_after_the_restart(tmp_path: Path) -> None:
    """Killed while 90 users are being reached: after the restart all 90 get it; only runs in
    flight at the kill may repeat."""
    with TelegramStandIn(tokens={DEMO_TOKEN}) as telegram:
        server = caster(tmp_path, telegram).start()
        users = list(range(2001, 2091))
        try:
            for user in users:
                say(server, user, "/hello")
            server.wait_idle(timeout=30)
            say(server, 2001, "/announce resumed")
            wait_news(telegram, "resumed", 10, timeout=20)
            server.stop(signal.SIGKILL)
            before = news(telegram, "resumed")
            assert len(before) < len(users)  # it was cut in the middle
            server.start()
            got = wait_news(telegram, "resumed", len(users), timeout=60)
            server.wait_idle(timeout=30)
            got = news(telegram, "resumed")
            assert set(got) == set(users)
            repeats = sum(n - 1 for n in got.values())
            assert repeats <= 4  # at most the runs in flight when it died (2 workers, 2 steps)
        finally:
            server.close()
