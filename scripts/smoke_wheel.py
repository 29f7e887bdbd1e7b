"""Start botbox from an installed wheel and click the quick-start link (CI's packaging check);
first, ``botbox try demo /start`` must answer from the emulated Telegram.

Usage: ``python scripts/smoke_wheel.py VENV`` where VENV has the wheel installed (its ``botbox``
console script is used). The server runs in a new temporary directory, so nothing of the source
checkout is on its path. Exit status 0 when ``/health`` counts one bot (the demo) and the
printed link answers 200 with the dashboard page; 1 with a message otherwise.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

DEADLINE = 60.0


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fetch(url: str) -> tuple[int, str]:
    """GET ``url``; return its status and body."""
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback only
        return response.status, response.read().decode()


def try_demo(botbox: Path) -> str | None:
    """``botbox try demo /start`` in an empty directory: None if it answered, else why not."""
    with tempfile.TemporaryDirectory() as work:
        env = {"PATH": os.environ.get("PATH", "")}
        done = subprocess.run(
            [str(botbox), "try", "demo", "/start"],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=DEADLINE,
            check=False,
        )
    if done.returncode != 0 or "Hello, User 111!" not in done.stdout:
        return f"botbox try exited with {done.returncode}:\n{done.stdout}{done.stderr}"
    return None


def main() -> int:
    """Run the check; return the exit status."""
    botbox = Path(sys.argv[1]) / "bin" / "botbox"
    problem = try_demo(botbox)
    if problem is not None:
        print(problem)
        return 1
    port = free_port()
    with tempfile.TemporaryDirectory() as work:
        log = Path(work) / "server.log"
        env = {"PATH": os.environ.get("PATH", ""), "BOTBOX_PORT": str(port)}
        with log.open("wb") as out:
            server = subprocess.Popen([str(botbox)], cwd=work, env=env, stdout=out, stderr=out)
        try:
            deadline = time.monotonic() + DEADLINE
            link = None
            while time.monotonic() < deadline and link is None:
                if server.poll() is not None:
                    print(f"the server exited with {server.returncode}:\n{log.read_text()}")
                    return 1
                found = re.search(r"http://127\.0\.0\.1:\d+/webhook/demo\?\S+", log.read_text())
                link = found.group(0) if found else None
                time.sleep(0.1)
            health = None
            while time.monotonic() < deadline and health is None:
                try:
                    health = fetch(f"http://127.0.0.1:{port}/health")
                except OSError:
                    time.sleep(0.1)
            serving = json.loads(health[1]).get("bots") if health is not None else None
            if link is None or health is None or serving != 1:
                print(f"the server from the wheel did not come up:\n{log.read_text()}")
                return 1
            status, page = fetch(link)
            if status != 200 or "Hello, user 1" not in page:
                print(f"the quick-start link answered {status}:\n{page[:500]}")
                return 1
            print(f"wheel ok: /health counts the demo bot, the quick-start link answers {status}")
            return 0
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()


if __name__ == "__main__":
    sys.exit(main())
