"""What survives a crash or a restart: acknowledged updates and need_reply waits."""

from __future__ import annotations

import signal
import time

from tests.e2e.conftest import DEMO_TOKEN
from tests.support.server import BotboxServer
from tests.support.telegram_standin import TelegramStandIn
from tests.support.updates import make_update


def tough_server(tmp_path, telegram: TelegramStandIn, **env: str) -> BotboxServer:
    """A server (not started) hosting the `tough` bot only, talking to the stand-in."""
    make_bot(tmp_path / "bots" / "tough")
    return BotboxServer(
        tmp_path / "data",
        telegram_api=telegram.base_url,
        bots_dir=tmp_path / "bots",
        demo=False,
        env={"DEMO_BOT_TOKEN": DEMO_TOKEN, **env},
    )


def make_bot(folder) -> None:
    """The `tough` bot: /slow sends one message, /ask waits for a reply."""
    folder.mkdir(parents=True)
    (folder / "bot.yaml").write_text("id: tough\ntoken_env: DEMO_BOT_TOKEN\n")
    (folder / "slow.py").write_text(
        '"""\ncommand: /slow\n"""\nn = 0\nfor i in range(1000):\n    n += i\n'
        'Bot.sendMessage(f"done {n}")\n'
    )
    (folder / "ask.py").write_text(
        '"""\ncommand: /ask\nanswer: Your name?\nneed_reply: true\n"""\n'
        'if message != "/ask":\n    Bot.sendMessage(f"Hi {message}")\n'
    )


def test_an_acknowledged_update_survives_a_crash(tmp_path):
    """The server dies mid-update after acknowledging it; after a restart it is handled once."""
    with TelegramStandIn(tokens={DEMO_TOKEN}) as telegram:
        server = tough_server(tmp_path, telegram, BOTBOX_LEASE_SECONDS="1")
        server.start()
        # Telegram's 429 makes the server wait 3 s inside the update: it dies right there.
        telegram.fail_next("sendMessage", 429, retry_after=3)
        update = make_update(update_id=1, user_id=7, chat_id=7, text="/slow", bot_token=DEMO_TOKEN)
        assert server.post_update(update, bot_id="tough").status_code == 200
        (refused,) = telegram.wait_for_calls(1, timeout=15, method="sendMessage")
        assert refused.error_code == 429
        server.stop(signal.SIGKILL)
        server.start()
        try:
            calls = telegram.wait_for_calls(2, timeout=20, method="sendMessage")
            # Queue empty: the update's item is finished, so nothing can deliver it again.
            server.wait_idle(timeout=15)
            delivered = [c for c in telegram.calls_to("sendMessage") if c.error_code is None]
            assert len(delivered) == 1
            assert calls[1].params["text"].startswith("done")
        finally:
            server.close()


def test_a_need_reply_wait_survives_a_restart(tmp_path):
    """A user asked a question before a restart; their answer after it still reaches /ask."""
    with TelegramStandIn(tokens={DEMO_TOKEN}) as telegram:
        server = tough_server(tmp_path, telegram)
        server.start()
        try:
            ask = make_update(update_id=1, user_id=8, chat_id=8, text="/ask", bot_token=DEMO_TOKEN)
            assert server.post_update(ask, bot_id="tough").status_code == 200
            telegram.wait_for_calls(1, method="sendMessage")
            server.wait_idle()
            server.stop()
            server.start()
            reply = make_update(update_id=2, user_id=8, chat_id=8, text="Ada", bot_token=DEMO_TOKEN)
            assert server.post_update(reply, bot_id="tough").status_code == 200
            calls = telegram.wait_for_calls(2, method="sendMessage")
            assert calls[1].params["text"] == "Hi Ada"
        finally:
            server.close()


def test_long_polling_fetches_confirms_and_handles_updates(tmp_path):
    """With --poll the server takes updates from getUpdates instead of a webhook."""
    with TelegramStandIn(tokens={DEMO_TOKEN}, record_polling=True) as telegram:
        server = tough_server(tmp_path, telegram)
        server.start("--poll")
        try:
            telegram.push_update(
                DEMO_TOKEN,
                make_update(update_id=50, user_id=9, chat_id=9, text="/ask", bot_token=DEMO_TOKEN),
            )
            (answer,) = telegram.wait_for_calls(1, method="sendMessage", timeout=10)
            assert answer.params["text"] == "Your name?"
            assert telegram.calls_to("deleteWebhook")
            deadline = time.monotonic() + 10
            while telegram.pending_updates(DEMO_TOKEN) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert telegram.pending_updates(DEMO_TOKEN) == []
        finally:
            server.close()
