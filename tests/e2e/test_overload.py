"""A full sandbox queue answers 503 with Retry-After at once, and the server keeps serving."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.support.links import mint
from tests.support.server import BotboxServer

BUSY = (
    '"""\ncommand: busy\n"""\nimport time\nt = time.monotonic()\n'
    "while time.monotonic() - t < 0.5:\n    pass\nres.text('done')\n"
)


def wait_for_idle_pool(server: BotboxServer, timeout: float = 10.0) -> None:
    """Wait until /health shows no run in the sandbox pool and none waiting for a worker."""
    deadline = time.monotonic() + timeout
    while True:
        pool = server.client.get("/health").json()["pool"]
        if pool["running"] == 0 and pool["waiting"] == 0:
            return
        assert time.monotonic() < deadline, f"the pool is still busy: {pool}"
        time.sleep(0.02)


def test_clicks_beyond_the_queue_get_503_with_retry_after(tmp_path):
    """One worker, a queue of one: a burst of slow clicks gets some 503s, never a 500; once the
    pool is idle again, the next click is served."""
    folder = tmp_path / "bots" / "busy"
    folder.mkdir(parents=True)
    (folder / "bot.yaml").write_text("id: busy\ntoken_env: BUSY_TOKEN\n")
    (folder / "busy.py").write_text(BUSY)
    server = BotboxServer(
        tmp_path / "data",
        telegram_api="http://127.0.0.1:9",
        bots_dir=tmp_path / "bots",
        demo=False,
        env={"BOTBOX_SANDBOX_WORKERS": "1", "BOTBOX_SANDBOX_QUEUE": "1"},
    )
    server.start()
    try:
        links = [
            server.url + mint(server.data_dir, "busy", bot_id="busy", user_id=500 + n)
            for n in range(8)
        ]
        with ThreadPoolExecutor(len(links)) as threads:
            responses = list(threads.map(lambda url: httpx.get(url, timeout=30), links))
        statuses = sorted(r.status_code for r in responses)
        assert 200 in statuses
        assert 503 in statuses
        assert set(statuses) <= {200, 503}
        busy = next(r for r in responses if r.status_code == 503)
        assert int(busy.headers["retry-after"]) >= 1
        assert "busy" in busy.json()["message"]
        wait_for_idle_pool(server)
        again = httpx.get(
            server.url + mint(server.data_dir, "busy", bot_id="busy", user_id=599), timeout=30
        )
        assert again.status_code == 200
    finally:
        server.close()
