"""``HTTP.*`` end to end through a real runner, worker pool and store: scripts reach a local
server only through bot.yaml's allow list, get plain response objects, catch ``HTTPError``,
hit the per-run and per-minute limits (the minute shared across server processes through the
store), and the run log keeps metadata, never URLs' paths, header values or bodies."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from runtime.store import RateHit, SqliteStore
from sandbox import WorkerPool
from tests.support.origin import Origin, origin
from tests.support.runtime import Hosted, hosted, store_path, wait_until, write_bot


def command(name: str, body: str) -> str:
    return f'"""\ncommand: {name}\n"""\n{body}\n'


@pytest.fixture(scope="module")
def server() -> Iterator[Origin]:
    with origin("127.0.0.2") as running:
        yield running


@pytest.fixture
async def lab(pool: WorkerPool, tmp_path: Path, server: Origin) -> AsyncIterator[Hosted]:
    base = server.base
    port = server.port
    files = {
        "get.py": command(
            "/get",
            f"r = HTTP.get('{base}/json', params={{'token': 'query-secret'}})\n"
            "Bot.sendMessage(f\"{r.status} {r.ok} {r.json()['hello']} "
            "{r.headers['content-type']} {isinstance(r.text, str)}\")",
        ),
        "post.py": command(
            "/post",
            f"r = HTTP.post('{base}/echo', json={{'card': 'body-secret'}}, "
            "headers={'Authorization': 'Bearer header-secret'})\n"
            "got = r.json()\nsent = 'authorization' in got['headers']\n"
            "Bot.sendMessage(f\"{got['method']} {len(got['body'])} {sent}\")",
        ),
        "spellings.py": command(
            "/spellings",
            "out = []\n"
            "for host in ['localhost', '127.1', '2130706433', '0x7f000001', '[::1]', "
            "'[::ffff:127.0.0.1]', '127.0.0.1']:\n"
            "    try:\n"
            f"        HTTP.get(f'http://{{host}}:{port}/json')\n"
            "        out.append(host + ' reached')\n"
            "    except HTTPError as e:\n"
            "        out.append(f'{host} {e.reason}')\n"
            "Bot.sendMessage(', '.join(out))",
        ),
        "many.py": command(
            "/many",
            "n = 0\ntry:\n    for i in range(10):\n"
            f"        HTTP.request('GET', '{base}/json')\n        n += 1\n"
            "except HTTPError as e:\n    Bot.sendMessage(f'{n} then {e.reason}: {e}')",
        ),
        "notjson.py": command(
            "/notjson",
            f"r = HTTP.get('{base}/big?n=3')\ntry:\n    r.json()\n"
            "except ValueError:\n    Bot.sendMessage('not json: ' + r.text)",
        ),
        "uncaught.py": command("/uncaught", f"HTTP.get('{base}/big?n=5000')"),
        "error.py": command('"!"', "Bot.sendMessage(f\"failed: {error['type']}\")"),
    }
    allow = f'http:\n  allow: ["{server.host}"]\n  ports: [{port}]\n'
    folders = [
        write_bot(
            tmp_path / "bots",
            "fetcher",
            files,
            yaml=allow + "  per_run: 3\n  max_kb: 4\n",
        ),
        write_bot(tmp_path / "bots", "open", {"spellings.py": files["spellings.py"]}),
        write_bot(
            tmp_path / "bots",
            "minute",
            {"many.py": files["many.py"]},
            yaml=allow + "  per_minute: 4\n",
        ),
        write_bot(
            tmp_path / "bots",
            "slow",
            {"hang.py": command("/hang", f"HTTP.get('{base}/hang')")},
            yaml=allow + "limits:\n  wall_seconds: 1\n",
        ),
    ]
    async with hosted(pool, tmp_path, folders) as running:
        running.processor.start()
        yield running


async def texts(lab: Hosted, n: int) -> list[str]:
    await wait_until(
        lambda: len(lab.telegram.calls_to("sendMessage")) >= n, timeout=20, what=f"{n} messages"
    )
    return [str(call.params["text"]) for call in lab.telegram.calls_to("sendMessage")]


async def logged(lab: Hosted, bot_id: str, n: int) -> list[dict[str, object]]:
    async def enough() -> bool:
        await lab.services.runlog.flush()
        return len(await lab.store.list_runs(bot_id)) >= n

    await wait_until(enough, timeout=10, what=f"{n} runs logged")
    return [
        {"calls": list(r.calls), "extra": r.extra, "error": r.error, "status": r.status}
        for r in await lab.store.list_runs(bot_id)
    ]


async def test_a_script_gets_a_response_object_with_status_headers_text_and_json(
    lab: Hosted, server: Origin
) -> None:
    await lab.post("fetcher", 1, "/get", chat=5)
    assert await texts(lab, 1) == ["200 True world application/json True"]
    assert server.requests[-1]["query"] == {"token": "query-secret"}


async def test_a_post_sends_json_and_headers_and_the_log_keeps_no_secret(
    lab: Hosted, server: Origin
) -> None:
    await lab.post("fetcher", 1, "/post", chat=5)
    assert await texts(lab, 1) == ["POST 23 True"]
    assert server.requests[-1]["body"] == '{"card": "body-secret"}'
    await lab.post("fetcher", 2, "/get", chat=5)
    await texts(lab, 2)
    runs = await logged(lab, "fetcher", 2)
    text = json.dumps(runs)
    for secret in ("header-secret", "query-secret", "body-secret", f":{server.port}/"):
        assert secret not in text
    hops = [hop for run in runs for hop in run["extra"]["http"]]  # type: ignore[index]
    assert sorted(hop["method"] for hop in hops) == ["GET", "POST"]
    for hop in hops:
        assert hop["host"] == server.host
        assert hop["status"] == 200
        assert hop["bytes"] > 0
        assert hop["ms"] >= 0


async def test_without_the_allow_list_loopback_in_every_spelling_is_refused(
    lab: Hosted, server: Origin
) -> None:
    before = len(server.requests)
    await lab.post("open", 1, "/spellings", chat=5)
    (text,) = await texts(lab, 1)
    assert text == (
        "localhost refused, 127.1 refused, 2130706433 refused, 0x7f000001 refused, "
        "[::1] refused, [::ffff:127.0.0.1] refused, 127.0.0.1 refused"
    )
    assert len(server.requests) == before


async def test_a_run_makes_at_most_http_per_run_requests(lab: Hosted) -> None:
    await lab.post("fetcher", 1, "/many", chat=5)
    (text,) = await texts(lab, 1)
    assert text == (
        "3 then limit: HTTP.request: a run may make at most 3 HTTP requests, redirects "
        "included (http.per_run in bot.yaml)"
    )


async def test_the_minute_limit_is_shared_with_other_server_processes(
    lab: Hosted, tmp_path: Path
) -> None:
    """Another process (a second store on the same file) used 3 of the bot's 4 this minute."""
    other = SqliteStore(store_path(tmp_path))
    await other.open()
    try:
        for _ in range(3):
            await other.hit_rates(
                [RateHit("http:minute", 4, 60.0, "http")], now=lab.services.clock()
            )
    finally:
        await other.close()
    await lab.post("minute", 1, "/many", chat=5)
    (text,) = await texts(lab, 1)
    assert text.startswith("1 then limit: HTTP.request: bot 'minute' made more than 4 HTTP")


async def test_json_of_a_body_that_is_not_json_raises_value_error_in_the_script(
    lab: Hosted,
) -> None:
    await lab.post("fetcher", 1, "/notjson", chat=5)
    assert await texts(lab, 1) == ["not json: xxx"]


async def test_an_uncaught_oversize_answer_fails_the_run_with_http_error(lab: Hosted) -> None:
    await lab.post("fetcher", 1, "/uncaught", chat=5)
    assert await texts(lab, 1) == ["failed: HTTPError"]
    runs = await logged(lab, "fetcher", 2)
    failed = next(run for run in runs if run["status"] != "ok")
    assert "larger than 4096 bytes" in json.dumps(failed["error"])
    assert failed["extra"]["http"][0]["error"] == "too_large"  # type: ignore[index]


async def test_a_request_still_waiting_at_the_runs_wall_limit_ends_with_the_run(
    lab: Hosted, server: Origin
) -> None:
    """The request's own timeout is 10 s, the run's wall_seconds 1: the run ends at 1 s, over
    its limit, and the request it was waiting on is logged as cut off."""
    await lab.post("slow", 1, "/hang", chat=5)
    (run,) = await logged(lab, "slow", 1)
    server.release()
    assert run["status"] == "limit_exceeded"
    assert run["error"] == {
        "type": "LimitExceeded",
        "message": "wall_seconds limit of 1.0 exceeded",
    }
    (hop,) = run["extra"]["http"]  # type: ignore[index]
    assert (hop["status"], hop["error"]) == (200, "cancelled")
    assert 500 < hop["ms"] < 5000
