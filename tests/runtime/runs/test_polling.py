"""Long polling: refused updates are skipped and confirmed, logged once, and never block others."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from runtime.bots.folder import load_bot
from runtime.runs.polling import Poller
from runtime.runs.registry import compile_bot, live_bot
from sandbox import WorkerPool
from tests.support.runtime import TOKEN, hosted, wait_until, write_bot
from tests.support.updates import make_update

PING = '"""\ncommand: /ping\n"""\nBot.sendMessage("pong")\n'
CHAT = 4242


def ping(update_id: int) -> dict[str, object]:
    """A valid /ping in a private chat."""
    return make_update(
        update_id=update_id, user_id=CHAT, chat_id=CHAT, text="/ping", bot_token=TOKEN
    )


def skipped(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The poller's skip lines so far."""
    return [r.getMessage() for r in caplog.records if "skipping a malformed update" in r.message]


async def test_bad_updates_are_confirmed_skipped_and_logged_once(
    pool: WorkerPool, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Updates with a huge chat id or no chat are confirmed by offset; the valid ones are queued."""
    caplog.set_level(logging.WARNING, logger="runtime.runs.polling")
    huge = ping(2)
    huge["message"]["chat"]["id"] = 2**70  # type: ignore[index]
    no_chat = ping(4)
    del no_chat["message"]["chat"]  # type: ignore[attr-defined]
    async with hosted(pool, tmp_path, [write_bot(tmp_path / "bots", "p", {"p.py": PING})]) as lab:
        for update in (ping(1), huge, ping(3), no_chat):
            lab.telegram.push_update(TOKEN, update)
        poller = Poller(lab.registry, lab.services, lab.processor)
        bot = lab.registry.get("p")
        offset = await poller.poll_once(bot, None, 0)
        assert offset == 5
        assert await lab.store.pending_count("p") == 2
        assert await poller.poll_once(bot, offset, 0) == 5
        assert lab.telegram.pending_updates(TOKEN) == []
        lines = skipped(caplog)
        assert len(lines) == 2
        assert "message.chat.id must be an integer of at most 52 significant bits" in lines[0]
        assert "message has no chat" in lines[1]


async def test_an_update_whose_id_cannot_be_confirmed_is_logged_once_and_blocks_nothing(
    pool: WorkerPool, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An update_id of 2^63 cannot move the offset: it is logged once, and later updates run."""
    caplog.set_level(logging.WARNING, logger="runtime.runs.polling")
    async with hosted(pool, tmp_path, [write_bot(tmp_path / "bots", "p", {"p.py": PING})]) as lab:
        lab.telegram.push_update(TOKEN, ping(2**63))
        poller = Poller(lab.registry, lab.services, lab.processor)
        bot = lab.registry.get("p")
        assert await poller.poll_once(bot, None, 0) is None
        assert await poller.poll_once(bot, None, 0) is None
        lab.telegram.push_update(TOKEN, ping(7))
        assert await poller.poll_once(bot, None, 0) == 8
        assert await lab.store.pending_count("p") == 1
        lines = skipped(caplog)
        assert len(lines) == 1
        assert "update_id must be at most 4503599627370495" in lines[0]


REACT = '"""\ncommand: /handle_message_reaction\n"""\nBot.sendMessage("reacted")\n'
MENU = '"""\ncommand: /ping\ndescription: Answers pong\n"""\nBot.sendMessage("pong")\n'


async def test_polling_asks_for_the_kinds_the_bot_handles_so_reactions_arrive(
    pool: WorkerPool, tmp_path: Path
) -> None:
    """A /handle_message_reaction bot gets reactions, which Telegram sends only when asked."""
    bot_folder = write_bot(tmp_path / "bots", "r", {"react.py": REACT, "ping.py": MENU})
    reaction = make_update(update_id=1, user_id=CHAT, chat_id=CHAT, text="x", bot_token=TOKEN)
    message = reaction.pop("message")
    assert isinstance(message, dict)
    reaction["message_reaction"] = {
        "chat": message["chat"],
        "message_id": 5,
        "user": message["from"],
        "date": message["date"],
        "old_reaction": [],
        "new_reaction": [{"type": "emoji", "emoji": "👍"}],
    }
    async with hosted(pool, tmp_path, [bot_folder]) as lab:
        lab.telegram.push_update(TOKEN, reaction)
        lab.processor.start()
        poller = Poller(lab.registry, lab.services, lab.processor)
        poller.start()
        try:
            await wait_until(
                lambda: [c.params.get("text") for c in lab.telegram.calls_to("sendMessage")],
                timeout=20,
                what="the reaction handler's message",
            )
        finally:
            await poller.stop()
        assert lab.telegram.calls_to("sendMessage")[0].params["text"] == "reacted"
        allowed = lab.telegram.allowed_updates(TOKEN)
        assert allowed is not None and "message_reaction" in allowed and "message" in allowed
        assert "chat_member" not in allowed
        (menu,) = lab.telegram.calls_to("setMyCommands")
        assert menu.params["commands"] == [{"command": "ping", "description": "Answers pong"}]


async def test_a_new_version_restarts_its_polling_loop_with_its_kinds_and_menu(
    pool: WorkerPool, tmp_path: Path
) -> None:
    """Hot reload with --poll: a new version in the registry restarts the bot's loop, which
    registers the new command menu and asks for the update kinds the new version handles."""
    bot_folder = write_bot(tmp_path / "bots", "r", {"ping.py": PING})
    async with hosted(pool, tmp_path, [bot_folder]) as lab:
        poller = Poller(lab.registry, lab.services, lab.processor)
        poller.start()
        try:
            await wait_until(
                lambda: lab.telegram.allowed_updates(TOKEN) is not None,
                timeout=10,
                what="the first getUpdates",
            )
            assert "message_reaction" not in (lab.telegram.allowed_updates(TOKEN) or [])
            (bot_folder / "ping.py").write_text(MENU)
            (bot_folder / "react.py").write_text(REACT)
            definition = load_bot(bot_folder)
            scripts = compile_bot(definition, pool.cache)
            lab.registry.add(
                live_bot(
                    definition, scripts, env={"TEST_TOKEN": TOKEN}, master_key=b"k" * 32, version=2
                )
            )
            poller.refresh()
            await wait_until(
                lambda: "message_reaction" in (lab.telegram.allowed_updates(TOKEN) or []),
                timeout=10,
                what="getUpdates asking for reactions",
            )
            menus = [call.params["commands"] for call in lab.telegram.calls_to("setMyCommands")]
            assert menus == [[{"command": "ping", "description": "Answers pong"}]]
            lab.registry.remove("r")
            poller.refresh()
            assert poller.problems() == []
        finally:
            await poller.stop()
