"""What end users see: the platform's pages for a bot's links, branded from ``pages:`` in
bot.yaml, written for people (never the internal reason), every branded field escaped."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_browser import CHROMIUM, open_in_browser
from tests.support.links import cli
from tests.support.server import BotboxServer, hosting
from tests.support.telegram_standin import TelegramStandIn

TOKEN = "777777777:AAShopPagesTokenForTestsOnly_abcdefghi"
BRANDED = {
    "bot.yaml": (
        "id: shop\ntoken_env: SHOP_TOKEN\nusername: cornershop_bot\n"
        "webhook:\n  per_link: 2/60\n"
        "pages:\n"
        '  title: "Corner <Shop> & Co"\n'
        "  text: \"Questions? Write to us in the bot. <script>alert('x')</script>\"\n"
    ),
    "hello.py": '"""\ncommand: hello\n"""\nBot.setProperty("hello", True)\n',
    "crash.py": '"""\ncommand: crash\n"""\n1 / 0\n',
}
PLAIN = {
    "bot.yaml": "id: plain\ntoken_env: PLAIN_TOKEN\n",
    "hello.py": '"""\ncommand: hello\n"""\nBot.setProperty("hello", True)\n',
}
HTML = {"Accept": "text/html"}
_users = itertools.count(100)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BotboxServer]:
    root = Path(tmp_path_factory.mktemp("pages"))
    env = {"SHOP_TOKEN": TOKEN, "PLAIN_TOKEN": TOKEN.replace("777", "778", 1)}
    with (
        TelegramStandIn() as telegram,
        hosting(
            root, {"shop": BRANDED, "plain": PLAIN}, telegram_api=telegram.base_url, env=env
        ) as running,
    ):
        yield running


def mint(server: BotboxServer, command: str, *extra: str, bot: str = "shop") -> str:
    done = cli(server.env, "url", bot, command, "--user", str(next(_users)), *extra)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def get(url: str, **headers: str) -> httpx.Response:
    return httpx.get(url, headers={**HTML, **headers}, timeout=30)


def assert_branded(page: str) -> None:
    """The bot's title, text and link back, escaped; nothing of the markup they held runs."""
    assert "Corner &lt;Shop&gt; &amp; Co" in page
    assert "&lt;script&gt;alert('x')&lt;/script&gt;" in page or "&lt;script&gt;alert(" in page
    assert "<script>" not in page and "<Shop>" not in page
    assert 'href="https://t.me/cornershop_bot"' in page


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_the_done_page_in_a_real_browser_is_branded_and_escaped(server: BotboxServer) -> None:
    page = open_in_browser(mint(server, "hello"))
    assert "Done" in page and "You can go back to Telegram now." in page
    assert "Corner &lt;Shop&gt; &amp; Co" in page  # the DOM holds the title as text
    assert "Back to Corner &lt;Shop&gt; &amp; Co" in page
    assert 'href="https://t.me/cornershop_bot"' in page
    assert "<script>alert" not in page  # the branded text never became an element


def test_an_expired_link_says_so_in_words_for_people(server: BotboxServer) -> None:
    url = mint(server, "hello", "--expires-in", "0.05")
    deadline = time.monotonic() + 10
    while (response := get(url)).status_code != 410:
        assert time.monotonic() < deadline, response.status_code
    assert "This link has expired" in response.text
    assert "Ask the bot for a new link." in response.text
    assert "the link has expired" not in response.text  # the internal wording stays out
    assert_branded(response.text)
    assert httpx.get(url, timeout=30).json()["error"] == "expired"  # JSON keeps the reason


def test_a_used_one_time_link_says_it_was_used(server: BotboxServer) -> None:
    url = mint(server, "hello", "--once")
    assert get(url).status_code == 200
    again = get(url)
    assert again.status_code == 410 and "This link was already used" in again.text
    assert_branded(again.text)


def test_a_tampered_link_is_not_valid_without_saying_why(server: BotboxServer) -> None:
    url = mint(server, "hello")
    response = get(url.replace("user=", "user=9"))
    assert response.status_code == 403 and "This link is not valid" in response.text
    assert "signature" not in response.text
    assert_branded(response.text)


def test_too_many_clicks_ask_to_wait(server: BotboxServer) -> None:
    url = mint(server, "hello")
    statuses = [get(url).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    response = get(url)
    assert "Too many tries" in response.text and response.headers["Retry-After"] == "60"
    assert_branded(response.text)


def test_a_failed_command_is_an_error_page_with_no_detail(server: BotboxServer) -> None:
    response = get(mint(server, "crash"))
    assert response.status_code == 500 and "Something went wrong" in response.text
    assert "ZeroDivisionError" not in response.text and "Traceback" not in response.text
    assert_branded(response.text)


def test_a_preview_fetcher_sees_the_brand_and_uses_up_nothing(server: BotboxServer) -> None:
    url = mint(server, "hello", "--once")
    preview = get(url, **{"User-Agent": "TelegramBot (like TwitterBot)"})
    assert preview.status_code == 200
    assert '<meta property="og:title" content="Corner &lt;Shop&gt; &amp; Co">' in preview.text
    assert "og:description" in preview.text
    assert get(url).status_code == 200  # the one-time link still works for its user
    assert get(url).status_code == 410


def test_a_link_whose_key_was_retired_says_it_expired(server: BotboxServer) -> None:
    url = mint(server, "hello")
    assert cli(server.env, "keys", "rotate").returncode == 0
    assert cli(server.env, "keys", "retire", "k1").returncode == 0
    deadline = time.monotonic() + 10
    while (response := get(url)).status_code != 410:
        assert time.monotonic() < deadline, f"still {response.status_code}: keys.json not re-read"
        time.sleep(0.1)
    assert "This link has expired" in response.text
    assert_branded(response.text)


def test_a_bot_without_pages_gets_plain_pages_titled_with_its_id(server: BotboxServer) -> None:
    response = get(mint(server, "hello", "--once", bot="plain"))
    assert response.status_code == 200 and "<title>Done ✓ · plain</title>" in response.text
    assert "Back to" not in response.text  # no username, no link: nothing to go back to
