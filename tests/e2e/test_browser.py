"""A real headless Chromium clicks the demo bot's signed links, as an end user would."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile

import pytest

from tests.support.server import ROOT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Debian's chromium is not installed (.ci/run installs it: apt-get install chromium)",
)


def open_in_browser(url: str) -> str:
    """Load ``url`` in headless Chromium, follow redirects, return the final page's DOM."""
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def mint(server, *args: str) -> str:
    """A signed link from ``python run.py url`` on the server's data directory."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "url", "demo", *args],
        cwd=ROOT,
        env=server.env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout.strip()


def test_a_signed_link_runs_the_command_then_redirects_the_browser(server, telegram):
    """The upgrade link runs upgradePlan for its user, then the browser lands on the redirect."""
    landing = mint(server, "dashboard", "--user", "4242", "--params", "from=upgrade")
    link = mint(
        server,
        "upgradePlan",
        "--user",
        "4242",
        "--options",
        '{"plan": "pro"}',
        "--params",
        "ref=browser",
        "--redirect",
        landing,
    )
    before = len(telegram.calls)
    page = open_in_browser(link)
    assert "Hello, user 4242" in page
    assert "Came from: upgrade" in page
    sent = [c for c in telegram.calls[before:] if c.method == "sendMessage"]
    assert [(c.params["chat_id"], c.params["text"]) for c in sent] == [
        (4242, "You are now on the pro plan (via browser).")
    ]


def test_a_one_time_link_works_once_in_the_browser(server):
    """The first visit claims the reward; the second shows a plain 'already used' page."""
    link = mint(server, "claimReward", "--user", "4343", "--once")
    assert "Reward claimed" in open_in_browser(link)
    second = open_in_browser(link)
    assert "already used" in second
    assert "Reward claimed" not in second
    assert "Traceback" not in second


def test_a_tampered_link_shows_a_plain_error_page(server):
    """Changing the user in a link gives the browser a small page for end users, not
    internals (the precise reason is in the JSON answer)."""
    link = mint(server, "dashboard", "--user", "4444")
    page = open_in_browser(link.replace("user=4444", "user=4445"))
    assert "This link is not valid" in page
    assert "signature does not match" not in page
    assert "Hello, user" not in page
