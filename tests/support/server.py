"""A real botbox server in a subprocess (``python run.py serve``), for end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from runtime.runs.registry import derive_secret
from runtime.signing.keys import load_master_key

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """Return a free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class BotboxServer:
    """Start, stop and talk to a botbox server process."""

    def __init__(
        self,
        data_dir: Path,
        *,
        telegram_api: str,
        env: dict[str, str] | None = None,
        bots_dir: Path | None = None,
        demo: bool = True,
    ) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "BOTBOX_DATA_DIR": str(data_dir),
            "BOTBOX_PORT": str(self.port),
            "BOTBOX_TELEGRAM_API": telegram_api,
            "BOTBOX_SANDBOX_WORKERS": "2",
            "BOTBOX_DEMO": "true" if demo else "false",
            "BOTBOX_LOG_LEVEL": "WARNING",
            "BOTBOX_PUBLIC_URL": f"http://127.0.0.1:{self.port}",
            **({"BOTBOX_BOTS_DIR": str(bots_dir)} if bots_dir else {}),
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data_dir / "server.log"
        self.client = httpx.Client(base_url=self.url, timeout=10)

    def start(self, *args: str) -> BotboxServer:
        """Start the server and wait until /health answers."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(ROOT / "run.py"), "serve", *args],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                if self.client.get("/health").status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not start: {self.log.read_text()[-3000:]}")

    def stop(self, sig: int = signal.SIGINT) -> None:
        """Stop the server (SIGINT: graceful; SIGKILL: a crash)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def close(self) -> None:
        """Stop the server and close the HTTP client."""
        self.stop()
        self.client.close()

    def secret(self, bot_id: str = "demo") -> str:
        """The Telegram webhook secret the server derived for a bot."""
        return derive_secret(
            load_master_key(self.data_dir / "master.key"), "telegram-webhook-secret", bot_id
        )

    def post_update(
        self, update: dict[str, Any], bot_id: str = "demo", secret: str | None = None
    ) -> httpx.Response:
        """POST an update to the server the way Telegram does."""
        return self.client.post(
            f"/telegram/{bot_id}",
            content=json.dumps(update),
            headers={
                "Content-Type": "application/json",
                "X-Telegram-Bot-Api-Secret-Token": secret or self.secret(bot_id),
            },
        )

    def logs(self, bot_id: str = "demo", *extra: str) -> list[dict[str, Any]]:
        """The bot's run log, through ``python run.py logs BOT --json``.

        The log is written behind: first wait until the server holds no queue item and no
        unwritten record (``/health``), so every run that ended (a click answered, an update
        whose effects were seen) is in it. Single server process only.
        """
        self.wait_logged()
        done = subprocess.run(
            [
                sys.executable,
                str(ROOT / "run.py"),
                "logs",
                bot_id,
                "--json",
                "--limit",
                "200",
                *extra,
            ],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]

    def wait_logged(self, timeout: float = 10.0) -> None:
        """Wait until no queue item is in hand and every finished run's record is written."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            health = self.client.get("/health").json()
            if health["running"] == 0 and health["run_log_pending"] == 0:
                return
            time.sleep(0.01)
        raise TimeoutError(f"the run log was not written within {timeout} s")

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until the server's queue is empty."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.client.get("/health").json()["pending"] == 0:
                return
            time.sleep(0.05)
        raise TimeoutError("the server's queue did not drain")


@contextmanager
def hosting(
    root: Path, bots: Mapping[str, Mapping[str, str]], *, telegram_api: str, env: dict[str, str]
) -> Iterator[BotboxServer]:
    """A started server hosting exactly ``bots`` (folder name -> file name -> text), no demo.

    The folders go to ``root/bots``, the data to ``root/data``; the server is closed on exit.
    """
    for name, files in bots.items():
        folder = root / "bots" / name
        folder.mkdir(parents=True)
        for file_name, text in files.items():
            (folder / file_name).parent.mkdir(parents=True, exist_ok=True)  # lib/quiz.py
            (folder / file_name).write_text(text)
    server = BotboxServer(
        root / "data", telegram_api=telegram_api, bots_dir=root / "bots", demo=False, env=env
    ).start()
    try:
        yield server
    finally:
        server.close()
