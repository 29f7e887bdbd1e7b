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


def test_a_restart_after_kill_9_resumes_the_dead_process_chats_within_seconds(tmp_path):
    """The killed process's lease (120 s) is reclaimed at once: its chat drains in seconds."""
    with TelegramStandIn(tokens={DEMO_TOKEN}) as telegram:
        server = tough_server(tmp_path, telegram)  # the default lease: 120 s
        server.start()
        telegram.fail_next("sendMessage", 429, retry_after=5)
        for update_id in (1, 2, 3):  # 1 is claimed when the server dies; 2 and 3 wait behind it
            update = make_update(
                update_id=update_id, user_id=7, chat_id=7, text="/slow", bot_token=DEMO_TOKEN
            )
            assert server.post_update(update, bot_id="tough").status_code == 200
        (refused,) = telegram.wait_for_calls(1, timeout=15, method="sendMessage")
        assert refused.error_code == 429
        server.stop(signal.SIGKILL)
        server.start()
        try:
            telegram.wait_for_calls(4, timeout=10, method="sendMessage")
            server.wait_idle(timeout=5)
            delivered = [c for c in telegram.calls_to("sendMessage") if c.error_code is None]
            assert len(delivered) == 3
            assert server.client.get("/health").json()["ok"] is True
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


def test_health_is_not_ok_with_the_reason_while_polling_fails_and_ok_once_it_recovers(tmp_path):
    """A failing getUpdates makes /health answer 503 naming the bot; polling then resumes."""
    with TelegramStandIn(tokens={DEMO_TOKEN}, record_polling=True) as telegram:
        server = tough_server(tmp_path, telegram)
        server.start("--poll")
        try:
            telegram.fail_next("getUpdates", 502, count=2)
            first = make_update(update_id=60, user_id=9, chat_id=9, text="/slow")
            telegram.push_update(DEMO_TOKEN, first)  # ends the long poll in flight
            reasons = wait_for_health(server, ok=False)
            assert any(r.startswith("polling tough: ApiError") for r in reasons), reasons
            assert wait_for_health(server, ok=True) == []
            second = make_update(update_id=61, user_id=8, chat_id=8, text="/slow")
            telegram.push_update(DEMO_TOKEN, second)
            telegram.wait_for_calls(2, method="sendMessage", timeout=10)
        finally:
            server.close()


def wait_for_health(server: BotboxServer, *, ok: bool, timeout: float = 15.0) -> list[str]:
    """Poll /health until its ``ok`` is ``ok`` (503 when not); return its problems."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = server.client.get("/health")
        body = answer.json()
        if body["ok"] is ok:
            assert answer.status_code == (200 if ok else 503)
            return list(body["problems"])
        time.sleep(0.05)
    raise TimeoutError(f"/health did not become ok={ok} within {timeout} s")
