"""Recurring schedules and labelled runs end to end: real servers, real store, real workers."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from tests.support.links import cli
from tests.support.server import BotboxServer, hosting
from tests.support.telegram_standin import TelegramStandIn
from tests.support.updates import make_update

CLOCK_TOKEN = "555555555:AAClockBotTokenForTestsOnly_abcdefghij"
CLOCK = {
    "bot.yaml": (
        "id: clock\ntoken_env: CLOCK_TOKEN\n"
        "schedules:\n"
        "  - cron: '* * * * *'\n"
        "    command: tick\n"
        "    catch_up: 3600\n"
    ),
    "tick.py": '"""\ncommand: tick\n"""\nBot.incProperty("ticks")\n',
}
MEMO = {
    "bot.yaml": (
        "id: memo\ntoken_env: CLOCK_TOKEN\n"
        "schedules:\n"
        "  - cron: '0 9 * * *'\n"
        "    command: remind\n"
        "    timezone: Europe/Berlin\n"
        "    name: morning\n"
    ),
    "plan.py": (
        '"""\ncommand: /plan\n"""\n'
        "for i in range(3):\n"
        "    Bot.run(command='remind', run_after=3600, label='reminder-42', options=i)\n"
        "Bot.run(command='remind', run_after=3600, label='keep')\n"
    ),
    "remind.py": '"""\ncommand: remind\n"""\nBot.sendMessage("reminder")\n',
}


def wait_for(check: object, *, timeout: float, what: str) -> object:
    """Call ``check`` until it returns something true; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()  # type: ignore[operator]
        if found:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout} s")
        time.sleep(0.05)


def queued_occurrences(database: Path) -> list[float]:
    with sqlite3.connect(database) as conn:
        rows = conn.execute(
            "SELECT payload FROM queue WHERE bot_id = 'clock' AND kind = 'run'"
        ).fetchall()
    return [json.loads(payload)["occurrence"] for (payload,) in rows]


def test_a_missed_occurrence_runs_once_after_a_restart_with_two_server_processes(
    tmp_path: Path,
) -> None:
    """Served by two processes with a 0.1 s tick; stopped; the stored next occurrence is moved
    three minutes back (what three minutes of downtime leave behind); started again: the latest
    missed occurrence runs once (trigger ``schedule:tick``, no user, no chat), the older one is
    skipped and logged."""
    env = {"CLOCK_TOKEN": CLOCK_TOKEN, "BOTBOX_SCHEDULE_TICK": "0.1", "BOTBOX_SERVER_WORKERS": "2"}
    with (
        TelegramStandIn(tokens={CLOCK_TOKEN}) as telegram,
        hosting(tmp_path, {"clock": CLOCK}, telegram_api=telegram.base_url, env=env) as server,
    ):
        database = server.data_dir / "botbox.sqlite3"

        def listed() -> str | None:
            done = cli(server.env, "schedules", "clock")
            return done.stdout if "1 schedule(s)" in done.stdout else None

        shown = wait_for(listed, timeout=20, what="the schedule in the store")
        assert "schedule tick\t* * * * * (UTC)\ttick" in str(shown)
        server.stop()
        with sqlite3.connect(database) as conn:
            (due,) = conn.execute("SELECT due_at FROM schedule WHERE bot_id = 'clock'").fetchone()
            conn.execute("UPDATE schedule SET due_at = ? WHERE bot_id = 'clock'", (due - 180,))
        assert queued_occurrences(database) == []
        server.start()

        def ran() -> list[dict[str, object]]:
            done = cli(server.env, "logs", "clock", "--json")
            return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]

        (run,) = wait_for(ran, timeout=30, what="the scheduled run")  # type: ignore[misc]
        assert (run["trigger"], run["command"], run["status"]) == ("schedule:tick", "tick", "ok")
        assert (run["user_id"], run["chat_id"]) == (None, None)
        occurrences = queued_occurrences(database)
        # Only the latest missed occurrence ran (due - 60, or due itself if the minute turned
        # during the restart), once across both processes; the older ones were skipped.
        assert occurrences and min(occurrences) >= due - 60, occurrences
        assert len(occurrences) == len(set(occurrences))
        log = server.log.read_text()
        assert re.search(r"schedule 'tick' skipped [23] occurrence\(s\)", log), log[-2000:]


@pytest.fixture
def memo(tmp_path: Path):  # type: ignore[no-untyped-def]
    env = {"CLOCK_TOKEN": CLOCK_TOKEN}
    with (
        TelegramStandIn(tokens={CLOCK_TOKEN}) as telegram,
        hosting(tmp_path, {"memo": MEMO}, telegram_api=telegram.base_url, env=env) as server,
    ):
        yield server


def token(server: BotboxServer, name: str, role: str) -> str:
    done = cli(server.env, "tokens", "create", "--name", name, "--role", role)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_labelled_runs_are_listed_and_cancelled_through_the_api_and_the_cli(
    memo: BotboxServer,
) -> None:
    admin_token = token(memo, "root", "admin")
    viewer_token = token(memo, "vic", "viewer")
    assert cli(memo.env, "users", "grant", "vic", "memo", "--role", "viewer").returncode == 0
    with (
        client(memo, admin_token) as admin,
        client(memo, viewer_token) as viewer,
    ):
        check_labelled_runs(memo, admin, viewer)


def client(server: BotboxServer, bearer: str) -> httpx.Client:
    headers = {"Authorization": f"Bearer {bearer}"}
    return httpx.Client(base_url=server.url + "/api/v1", headers=headers, timeout=10)


def check_labelled_runs(memo: BotboxServer, admin: httpx.Client, viewer: httpx.Client) -> None:
    update = make_update(update_id=1, user_id=5, chat_id=5, text="/plan", bot_token=CLOCK_TOKEN)
    assert memo.post_update(update, bot_id="memo").status_code == 200

    def labelled() -> list[dict[str, object]]:
        answer = admin.get("/bots/memo/scheduled", params={"label": "reminder-42"})
        assert answer.status_code == 200, answer.text
        runs: list[dict[str, object]] = answer.json()["runs"]
        return runs if len(runs) == 3 else []

    runs = wait_for(labelled, timeout=20, what="three labelled runs")
    assert all(r["command"] == "remind" and r["status"] == "pending" for r in runs)  # type: ignore[attr-defined]

    whole = viewer.get("/bots/memo/scheduled").json()
    assert len(whole["runs"]) == 4
    (schedule,) = whole["schedules"]
    assert (schedule["name"], schedule["cron"], schedule["timezone"]) == (
        "morning",
        "0 9 * * *",
        "Europe/Berlin",
    )
    assert schedule["next_at"] > time.time()
    page = admin.get("/bots/memo/scheduled", params={"limit": 3}).json()
    assert len(page["runs"]) == 3 and page["next_cursor"] is not None
    rest = admin.get("/bots/memo/scheduled", params={"cursor": page["next_cursor"]}).json()
    assert [r["label"] for r in rest["runs"]] == ["keep"]

    listing = cli(memo.env, "schedules", "memo")
    assert "schedule morning\t0 9 * * * (Europe/Berlin)\tremind" in listing.stdout
    assert "1 schedule(s), 4 queued run(s)" in listing.stdout

    refused = viewer.delete("/bots/memo/scheduled", params={"label": "reminder-42"})
    assert refused.status_code == 403
    assert admin.delete("/bots/memo/scheduled").status_code == 422  # a label is required
    assert admin.delete("/bots/memo/scheduled", params={"label": "bad label"}).status_code == 422
    done = admin.delete("/bots/memo/scheduled", params={"label": "reminder-42"})
    assert done.json() == {"cancelled": 3}
    assert admin.get("/bots/memo/scheduled", params={"label": "reminder-42"}).json()["runs"] == []
    keep = rest["runs"][0]["id"]
    assert admin.delete(f"/bots/memo/scheduled/{keep}").json() == {"cancelled": 1}
    assert admin.delete(f"/bots/memo/scheduled/{keep}").status_code == 404
    entries = admin.get("/audit", params={"bot": "memo"}).json()["entries"]
    assert {e["target"] for e in entries if e["action"] == "scheduled.cancel"} == {
        "label:reminder-42",
        f"run:{keep}",
    }
    assert "0 queued run(s)" in cli(memo.env, "schedules", "memo").stdout
