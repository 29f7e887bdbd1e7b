"""The server's own log against a real server: no signature in any line, no flood of failures.

Each test runs a server of its own at log level INFO and reads everything it wrote (stdout and
stderr) after stopping it, so nothing logged late is missed.
"""

from __future__ import annotations

import math
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import DEMO_TOKEN
from tests.support.links import mint, value_of
from tests.support.server import BotboxServer
from tests.support.telegram_standin import TelegramStandIn


@pytest.fixture
def server(tmp_path: Path) -> Iterator[BotboxServer]:
    """A server of this test's own, logging at INFO."""
    with TelegramStandIn(tokens={DEMO_TOKEN}) as telegram:
        running = BotboxServer(
            tmp_path / "data",
            telegram_api=telegram.base_url,
            env={"DEMO_BOT_TOKEN": DEMO_TOKEN, "BOTBOX_LOG_LEVEL": "INFO"},
        ).start()
        yield running
        running.close()


def raw_request(server: BotboxServer, target: bytes, headers: bytes = b"") -> bytes:
    """Send one HTTP/1.1 request exactly as given; return everything the server answered."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
        conn.sendall(
            b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + headers + b"\r\n"
        )
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer


def log_after_stop(server: BotboxServer) -> str:
    """Everything the server process wrote, once it has exited."""
    server.stop()
    return server.log.read_text(encoding="utf-8", errors="replace")


@pytest.mark.parametrize(
    "spoil",
    [
        lambda url: url.replace("&sig=", "\x01&sig="),
        lambda url: url + "\x7f",
        lambda url: url.replace("/webhook/demo?", "/webhook/de\x00mo?"),
        lambda url: url.replace("&sig=", "&sig=\x1b"),
    ],
    ids=["control-byte-before-sig", "del-at-the-end", "nul-in-the-path", "escape-in-the-sig"],
)
def test_a_signed_link_with_a_control_byte_is_a_400_and_its_signature_is_never_logged(
    server, spoil
):
    """Sanic cannot parse the target: the client gets a plain 400, the log holds no part of sig."""
    url = mint(server.data_dir, "stats", user_id=7)
    mac = value_of(url, "sig").partition(".")[2]
    answers = [raw_request(server, spoil(url).encode("latin-1")) for _ in range(4)]
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
        assert mac.encode() not in answer
        assert b"Traceback" not in answer
    assert server.client.get(url).status_code == 200  # the clean link still works
    log = log_after_stop(server)
    assert mac not in log
    assert mac[:16] not in log
    assert "connection_task uncaught" not in log
    assert "Traceback" not in log


@pytest.mark.parametrize(
    ("spoil_target", "extra_header"),
    [
        (lambda url: url.replace("&sig=", "\x01&sig="), b""),
        (lambda url: url, b"A header line without a colon\r\n"),
    ],
    ids=["control-byte-in-target", "header-without-colon"],
)
def test_secret_headers_and_tokens_of_a_bad_request_are_never_logged(
    server, spoil_target, extra_header
):
    """A refused request carrying the Telegram secret and a bot token leaves neither in the log."""
    url = mint(server.data_dir, "stats", user_id=8)
    mac = value_of(url, "sig").partition(".")[2]
    secret = server.secret()
    headers = (
        b"X-Telegram-Bot-Api-Secret-Token: "
        + secret.encode()
        + b"\r\nAuthorization: Bot "
        + DEMO_TOKEN.encode()
        + b"\r\n"
        + extra_header
    )
    answer = raw_request(server, spoil_target(url).encode("latin-1"), headers)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    log = log_after_stop(server)
    for secret_text in (mac, secret, DEMO_TOKEN, DEMO_TOKEN.partition(":")[2]):
        assert secret_text not in log


def test_failed_clicks_are_short_rate_limited_warnings_and_tracebacks_stay_in_the_run_log(server):
    """30 quick failing clicks log about 10 one-line warnings: no ERROR, traceback or sig."""
    # One user per click: the `!` command's message to each chat is not held by flood limits.
    urls = [mint(server.data_dir, "/crash", user_id=9000 + i) for i in range(30)]
    macs = [value_of(url, "sig").partition(".")[2] for url in urls]
    started = time.monotonic()
    for url in urls:
        assert server.client.get(url).status_code == 500
    elapsed = time.monotonic() - started
    failed = [r for r in server.logs("demo", "--failed") if r["command"] == "/crash"]
    assert len(failed) == 30
    assert all(r["error"]["type"] == "ZeroDivisionError" for r in failed)
    assert all(r["error"]["traceback"] for r in failed)  # the author still sees where
    log = log_after_stop(server)
    lines = [line for line in log.splitlines() if "command /crash failed" in line]
    # 10 at once, then the bucket refills at 10 a minute
    assert 1 <= len(lines) <= 10 + math.ceil(elapsed / 6)
    assert len(lines) < 30
    assert all(" WARNING runtime.serverlog: bot demo: " in line for line in lines)
    assert all("ZeroDivisionError" in line for line in lines)
    assert "division by zero" not in log  # the script's message is the script's, not the log's
    assert " ERROR " not in log
    assert "Traceback" not in log
    assert not [mac for mac in macs if mac in log]


def test_with_two_server_processes_every_process_logs_the_same_way(tmp_path):
    """Spawned server processes also answer a bad target 400 unlogged and log failures briefly."""
    with TelegramStandIn(tokens={DEMO_TOKEN}) as telegram:
        server = BotboxServer(
            tmp_path / "data",
            telegram_api=telegram.base_url,
            env={
                "DEMO_BOT_TOKEN": DEMO_TOKEN,
                "BOTBOX_LOG_LEVEL": "INFO",
                "BOTBOX_SERVER_WORKERS": "2",
                "BOTBOX_SANDBOX_WORKERS": "1",
            },
        ).start()
        try:
            url = mint(server.data_dir, "stats", user_id=11)
            mac = value_of(url, "sig").partition(".")[2]
            bad = url.replace("&sig=", "\x01&sig=").encode("latin-1")
            # New connections may land on either process; whichever answers must log nothing.
            for _ in range(8):
                assert raw_request(server, bad).startswith(b"HTTP/1.1 400 ")
            for user in range(9100, 9108):
                crash = mint(server.data_dir, "/crash", user_id=user)
                assert httpx.get(server.url + crash, timeout=30).status_code == 500
            log = log_after_stop(server)
        finally:
            server.close()
    assert mac not in log
    assert "Traceback" not in log
    lines = [line for line in log.splitlines() if "command /crash failed" in line]
    assert lines
    assert all(" WARNING runtime.serverlog: bot demo: " in line for line in lines)
