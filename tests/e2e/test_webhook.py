"""The ``/webhook/<bot>`` endpoint with the demo bot and a small test bot: what a click does."""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Iterator

import pytest

from runtime.signing.links import Link
from tests.e2e.conftest import DEMO_TOKEN
from tests.support.links import cli, mint, replace_value, runs, settle, sign, value_of
from tests.support.server import BotboxServer
from tests.support.updates import make_update

URL = re.compile(r"https?://\S+")
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def link_from_bot(server, telegram, update_ids, chat_id, text, *, expect):
    """Send ``text`` as the user ``chat_id``; return the link in the bot's last message."""
    before = len(telegram.calls)
    update = make_update(
        update_id=next(update_ids),
        user_id=chat_id,
        chat_id=chat_id,
        text=text,
        bot_token=DEMO_TOKEN,
    )
    assert server.post_update(update).status_code == 200
    calls = telegram.wait_for_calls(before + expect, timeout=10)[before:]
    (url,) = URL.findall(calls[-1].params["text"])
    return url


def stats_of(server, user):
    """The demo ``stats`` command's JSON for a user (a property read through a link)."""
    response = server.client.get(mint(server.data_dir, "stats", user_id=user))
    assert response.status_code == 200
    return response.json()


# -- the demo bot's links --
def test_the_start_link_runs_sync_game_data_for_that_user(server, telegram, update_ids, chat_id):
    """/start's signed link runs syncGameData in the user's context, with its options."""
    url = link_from_bot(server, telegram, update_ids, chat_id, "/start", expect=2)
    assert url.startswith(f"{server.url}/webhook/demo?")
    before = len(telegram.calls)
    response = server.client.get(url)
    assert response.status_code == 200
    (call,) = telegram.wait_for_calls(before + 1)[before:]
    assert call.method == "sendMessage"
    assert call.params["chat_id"] == chat_id
    assert call.params["text"] == "Game data synced: you are on level 10."
    assert stats_of(server, chat_id)["level"] == 10
    (run,) = [
        r for r in server.logs("demo") if r["command"] == "syncGameData" and r["user_id"] == chat_id
    ]
    assert run["trigger"] == "webhook"
    assert run["status"] == "ok"


def test_res_json_answers_json_with_the_headers_the_script_set(
    server, telegram, update_ids, chat_id
):
    """/api's link answers with stats' res.json body and its Cache-Control header."""
    url = link_from_bot(server, telegram, update_ids, chat_id, "/api", expect=1)
    response = server.client.post(url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {
        "user": chat_id,
        "visits": 0,
        "level": None,
        "plan": "free",
        "method": "POST",
    }


def test_res_html_answers_a_page(server, telegram, update_ids, chat_id):
    """/reward's one-time link answers with claimReward's res.html page."""
    url = link_from_bot(server, telegram, update_ids, chat_id, "/reward", expect=1)
    response = server.client.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.text == "<h1>Reward claimed</h1><p>You now have 1 reward(s).</p>"


def test_res_text_answers_plain_text(server, telegram, update_ids, chat_id):
    """/sale's expiring link answers with flashSaleOpen's res.text."""
    url = link_from_bot(server, telegram, update_ids, chat_id, "/sale", expect=1)
    assert "exp=" in url
    response = server.client.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.text == "The flash sale is open. Hurry!"


def test_a_signed_redirect_answers_303_after_the_command_ran(server, telegram, update_ids, chat_id):
    """/upgrade's link runs upgradePlan, then sends the browser to https://example.com/thanks."""
    url = link_from_bot(server, telegram, update_ids, chat_id, "/upgrade", expect=1)
    before = len(telegram.calls)
    response = server.client.get(url)
    assert response.status_code == 303
    assert response.headers["location"] == "https://example.com/thanks"
    (call,) = telegram.wait_for_calls(before + 1)[before:]
    assert call.params["text"] == "You are now on the pro plan (via upgrade)."
    assert stats_of(server, chat_id)["plan"] == "pro"


def test_a_global_link_runs_without_a_user(server, telegram, update_ids, chat_id):
    """/cron's global link runs cronTick with ``user`` None and counts bot-wide."""
    url = link_from_bot(server, telegram, update_ids, chat_id, "/cron", expect=1)
    assert "user=&" in url
    first = server.client.get(url).json()
    second = server.client.get(url).json()
    assert first["user"] is None
    assert second["ticks"] == first["ticks"] + 1


@pytest.mark.parametrize(
    ("accept", "content_type", "body"),
    [
        ("text/html,application/xhtml+xml,*/*;q=0.8", "text/html; charset=utf-8", "Done"),
        ("application/json", "application/json", '{"ok":true}'),
        ("*/*", "application/json", '{"ok":true}'),
    ],
    ids=["browser", "api-client", "any"],
)
def test_without_res_a_browser_gets_a_page_and_an_api_client_json(
    server, chat_id, accept, content_type, body
):
    """A command that sets no answer gets the friendly Done page or ``{"ok": true}``."""
    url = mint(server.data_dir, "syncGameData", user_id=chat_id, options={"level": 2})
    response = server.client.get(url, headers={"Accept": accept})
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert body in response.text


def test_a_failing_command_is_a_plain_500_and_the_error_command_runs(server, telegram, chat_id):
    """A link to /crash answers 500 without a traceback, and `!` tells the user in Telegram."""
    url = mint(server.data_dir, "/crash", user_id=chat_id)
    before = len(telegram.calls)
    for accept, says in (("application/json", "command failed"), ("text/html", "went wrong")):
        response = server.client.get(url, headers={"Accept": accept})
        assert response.status_code == 500
        assert says in response.text
        assert "Traceback" not in response.text
        assert "ZeroDivisionError" not in response.text
    calls = telegram.wait_for_calls(before + 2)[before:]
    assert {c.params["text"] for c in calls} == {
        "Sorry, /crash failed: ZeroDivisionError (line 6)."
    }
    assert {c.params["chat_id"] for c in calls} == {chat_id}
    handled = [r for r in server.logs("demo") if r["command"] == "!" and r["user_id"] == chat_id]
    assert [r["trigger"] for r in handled] == ["webhook", "webhook"]


def test_an_unknown_bot_is_not_found(server, chat_id):
    """A link to a bot the server does not host is a 404 for browsers and API clients."""
    query = mint(server.data_dir, "stats", user_id=chat_id).partition("?")[2]
    response = server.client.get(f"/webhook/nobot?{query}")
    assert response.status_code == 404
    assert response.json() == {"ok": False, "error": "not_found", "message": "unknown bot"}
    page = server.client.get(f"/webhook/nobot?{query}", headers={"Accept": "text/html"})
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")


# -- a test bot: request bodies, rate limits, link errors in scripts, removed commands --
LAB = {
    "bot.yaml": "id: lab\ntoken_env: LAB_BOT_TOKEN\nwebhook:\n  per_link: 3/60\n",
    "echo.py": (
        '"""\ncommand: echo\n"""\n'
        "res.json({'method': request['method'], 'json': request['json'],"
        " 'form': request['form'], 'body': request['body'], 'query': request['query'],"
        " 'params': params, 'options': options, 'user': user,"
        " 'content_type': request['headers'].get('content-type')})\n"
    ),
    "try_links.py": (
        '"""\ncommand: tryLinks\n"""\n'
        "try:\n    Webhook.getUrl('noSuchCommand')\n"
        "except Exception as e:\n    print('unknown command:', e)\n"
        "try:\n    Webhook.getUrl('echo', params={'user': '2'})\n"
        "except Exception as e:\n    print('clashing param:', e)\n"
        "try:\n    Webhook.getUrl('echo', redirect='javascript:alert(1)')\n"
        "except Exception as e:\n    print('bad redirect:', e)\n"
        "try:\n    Webhook.getUrl('echo', expires_in=0)\n"
        "except Exception as e:\n    print('bad expiry:', e)\n"
        "try:\n    Webhook.getUrl('echo', colour='red')\n"
        "except Exception as e:\n    print('unknown argument:', e)\n"
        "good = Webhook.getUrl('echo', params={'a': '1'})\n"
        "print('still running; a good link has sig:', 'sig=k' in good)\n"
        "res.text('tried')\n"
    ),
    "gone.py": '"""\ncommand: gone\n"""\nres.text("still here")\n',
}


LAB_PROBE = {"probe": "echo", "records": 1}  # the lab bot has no @ or @@


@pytest.fixture(scope="module")
def lab(telegram, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BotboxServer]:
    """A server with only the ``lab`` test bot (per_link limit 3/60)."""
    root = tmp_path_factory.mktemp("lab")
    folder = root / "bots" / "lab"
    folder.mkdir(parents=True)
    for name, text in LAB.items():
        (folder / name).write_text(text)
    running = BotboxServer(
        root / "data", telegram_api=telegram.base_url, bots_dir=root / "bots", demo=False
    ).start()
    yield running
    running.close()


_fresh = itertools.count()
_lab_users = itertools.count(600)


def echo_link(lab, user, **options):
    """A new signed link to the lab bot's echo command (a ``once``-free link, so made unique)."""
    options.setdefault("params", {})["n"] = str(next(_fresh))
    return mint(lab.data_dir, "echo", bot_id="lab", user_id=user, **options)


def test_a_post_json_body_is_visible_to_the_script(lab):
    """The script sees the method, the parsed JSON body, the raw body, params and options."""
    url = echo_link(lab, 501, params={"a": "1"}, options={"o": [1, 2]})
    response = lab.client.post(url, json={"score": 7, "tags": ["x"]})
    assert response.status_code == 200
    echoed = response.json()
    assert echoed["method"] == "POST"
    assert echoed["json"] == {"score": 7, "tags": ["x"]}
    assert json.loads(echoed["body"]) == {"score": 7, "tags": ["x"]}
    assert echoed["form"] is None
    assert echoed["query"] == echoed["params"]
    assert echoed["params"]["a"] == "1"
    assert echoed["options"] == {"o": [1, 2]}
    assert echoed["user"] == {"id": 501}


def test_a_post_form_body_is_visible_to_the_script(lab):
    """A form-encoded POST reaches the script as ``request['form']``."""
    response = lab.client.post(echo_link(lab, 502), data={"name": "Ada", "lang": "en"})
    assert response.status_code == 200
    echoed = response.json()
    assert echoed["form"] == {"name": "Ada", "lang": "en"}
    assert echoed["json"] is None
    assert echoed["content_type"] == "application/x-www-form-urlencoded"


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[" * 5000 + b"]" * 5000, b"NaN"],
    ids=["broken", "deep", "nan"],
)
def test_a_bad_json_body_is_none_for_the_script_not_an_error(lab, body):
    """Unparsable, deep or non-standard JSON bodies give ``json`` None and the raw body."""
    response = lab.client.post(
        echo_link(lab, 503), content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200, response.text
    echoed = response.json()
    assert echoed["json"] is None
    assert echoed["body"] == body.decode()


def test_a_get_has_no_body(lab):
    """A GET click has method GET and no body, JSON or form."""
    echoed = lab.client.get(echo_link(lab, 504)).json()
    assert (echoed["method"], echoed["json"], echoed["form"], echoed["body"]) == (
        "GET",
        None,
        None,
        None,
    )


def clicks_in_one_window(lab, make_urls):
    """Click fresh URLs (from ``make_urls(user)``) inside one fixed 60 s rate window.

    Returns the user and the responses; retries with a new user and new links if the clicks
    happened to straddle two windows.
    """
    for _ in range(2):
        user = next(_lab_users)
        urls = make_urls(user)
        window = int(time.time() // 60)
        responses = [lab.client.get(url) for url in urls]
        if int(time.time() // 60) == window:
            return user, responses
    pytest.fail("the clicks straddled two rate windows twice")  # pragma: no cover


def test_rate_limiting_answers_429_with_retry_after_after_per_link_clicks(lab):
    """With per_link 3/60 the fourth click of a link is a 429 with Retry-After, and runs nothing."""
    user, responses = clicks_in_one_window(lab, lambda user: [echo_link(lab, user)] * 4)
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    limited = responses[-1]
    assert limited.headers["retry-after"] == "60"
    assert limited.json()["error"] == "too_many_requests"
    settle(lab, "lab", **LAB_PROBE)
    assert runs(lab.data_dir, "lab", users=[user]) == 3
    assert lab.client.get(echo_link(lab, user)).status_code == 200  # another link of the user


def reencoded_sig(url: str) -> str:
    """The same link with the dot of its signature percent-encoded."""
    return url.replace("&sig=k1.", "&sig=k1%2E")


def sig_low_bits(url: str) -> str:
    """The same link with the signature's unused trailing bits changed."""
    sig = value_of(url, "sig")
    return replace_value(url, "sig", sig[:-1] + B64[B64.index(sig[-1]) ^ 1])


@pytest.mark.parametrize(
    ("variant", "last_status"),
    [
        (reencoded_sig, 429),
        (sig_low_bits, 403),  # another spelling of the MAC is simply a bad signature
        (lambda url: url.replace("command=echo", "command=%65cho"), 429),
    ],
    ids=["sig-percent-encoded", "sig-unused-bits", "command-percent-encoded"],
)
def test_another_encoding_of_a_link_shares_its_per_link_limit(lab, variant, last_status):
    """Re-encoding a rate-limited link does not buy more clicks: it is the same link."""

    def urls(user):
        url = echo_link(lab, user)
        return [url, url, url, variant(url)]

    _, responses = clicks_in_one_window(lab, urls)
    assert [r.status_code for r in responses] == [200, 200, 200, last_status]


def test_link_errors_in_scripts_are_catchable_with_clear_messages(lab):
    """getUrl with an unknown command, a clashing param or a bad redirect raises, and is caught."""
    response = lab.client.get(mint(lab.data_dir, "tryLinks", bot_id="lab", user_id=507))
    assert response.status_code == 200
    assert response.text == "tried"
    (run,) = [r for r in lab.logs("lab") if r["command"] == "tryLinks"]
    assert run["status"] == "ok"
    lines = run["output"].splitlines()
    assert lines == [
        "unknown command: bot 'lab' has no command 'noSuchCommand'",
        "clashing param: param name 'user' clashes with the link's own 'user'",
        "bad redirect: redirect must be an absolute https URL, not 'javascript:alert(1)'",
        "bad expiry: expires_in must be seconds, more than 0 and at most 31622400",
        "unknown argument: unknown link argument(s): colour; links take command, expires_in,"
        " once, options, params, redirect",
        "still running; a good link has sig: True",
    ]


def test_a_link_whose_command_was_removed_is_not_found(lab):
    """A link minted while ``gone`` existed is a 404 once the command is removed; nothing runs."""
    url = mint(lab.data_dir, "gone", bot_id="lab", user_id=508)
    assert lab.client.get(url).text == "still here"
    (lab.data_dir.parent / "bots" / "lab" / "gone.py").unlink()
    lab.stop()
    lab.start()
    response = lab.client.get(url)
    assert response.status_code == 404
    assert response.json()["message"] == "this link's command no longer exists"
    settle(lab, "lab", **LAB_PROBE)
    assert runs(lab.data_dir, "lab", users=[508]) == 1


def test_a_signed_link_to_an_unknown_command_is_not_found(lab):
    """A validly signed link naming a command the bot never had is a 404."""
    url = sign(lab.data_dir, "lab", Link("neverThere", 509))
    assert lab.client.get(url).status_code == 404


# -- python run.py url --
def test_the_url_command_prints_a_link_that_works(server, chat_id):
    """``run.py url demo dashboard --user N --params from=cli`` prints a working signed link."""
    done = cli(
        server.env, "url", "demo", "dashboard", "--user", str(chat_id), "--params", "from=cli"
    )
    assert done.returncode == 0, done.stderr
    url = done.stdout.strip()
    assert url.startswith(f"{server.url}/webhook/demo?command=dashboard&user={chat_id}&")
    response = server.client.get(url)
    assert response.status_code == 200
    assert f"Hello, user {chat_id}" in response.text
    assert "Came from: cli" in response.text


def test_the_url_command_makes_one_time_expiring_and_global_links(server, chat_id):
    """--once, --expires-in, --options and --global produce links with those properties."""
    once = cli(
        server.env,
        "url",
        "demo",
        "claimReward",
        "--user",
        str(chat_id),
        "--once",
        "--expires-in",
        "60",
    ).stdout.strip()
    assert "once=" in once and "exp=" in once
    assert server.client.get(once).status_code == 200
    assert server.client.get(once).status_code == 410
    sync = cli(
        server.env,
        "url",
        "demo",
        "syncGameData",
        "--user",
        str(chat_id),
        "--options",
        '{"level": 4}',
    ).stdout.strip()
    assert server.client.get(sync).status_code == 200
    assert stats_of(server, chat_id)["level"] == 4
    tick = cli(server.env, "url", "demo", "cronTick", "--global").stdout.strip()
    assert server.client.get(tick).json()["user"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["demo", "noSuchCommand", "--user", "5"], "has no command 'noSuchCommand'"),
        (["nobot", "stats", "--user", "5"], "no bot 'nobot'"),
        (["demo", "stats", "--user", "5", "--params", "user=6"], "clashes"),
        (["demo", "stats", "--user", "5", "--params", "novalue"], "NAME=VALUE"),
        (["demo", "stats", "--user", "5", "--params", "a b=1"], "param name"),
        (["demo", "stats", "--user", "5", "--options", "{nope"], "--options is not JSON"),
        (["demo", "stats", "--user", "5", "--options", "NaN"], "JSON"),
        (["demo", "stats", "--user", "5", "--redirect", "javascript:alert(1)"], "redirect"),
        (["demo", "stats", "--user", "5", "--redirect", "//evil.example"], "redirect"),
        (["demo", "stats", "--user", "5", "--redirect", "https://u:p@evil.example"], "user info"),
        (["demo", "stats", "--user", "5", "--expires-in", "0"], "expires_in"),
        (["demo", "stats", "--user", "0"], "user_id"),
    ],
    ids=[
        "unknown-command",
        "unknown-bot",
        "clashing-param",
        "param-without-equals",
        "bad-param-name",
        "options-not-json",
        "options-nan",
        "javascript-redirect",
        "protocol-relative-redirect",
        "userinfo-redirect",
        "zero-expiry",
        "user-zero",
    ],
)
def test_the_url_command_refuses_bad_input_with_status_2(server, args, message):
    """Bad input exits with status 2 and an ``error:`` line saying what is wrong."""
    done = cli(server.env, "url", *args)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("error: ")
    assert message in done.stderr
    assert "Traceback" not in done.stderr
