"""Link clicks and ``res`` in process: each check of a click, each ``res`` rule, each link form."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from runtime.signing.links import Link, make_link
from tests.support.web import BASE_URL, Web, serve

ECHO = (
    '"""\ncommand: echo\n"""\nBot.setProperty("echoed", Bot.getProperty("echoed", 0) + 1)\n'
    'res.json({"user": user, "options": options, "params": params, "method": request["method"],'
    ' "json": request["json"], "form": request["form"]})\n'
)
QUIET = '"""\ncommand: quiet\n"""\nBot.setProperty("quiet", True)\n'
ANSWER = (
    '"""\ncommand: answer\n"""\n'
    'for f, a in options["calls"]:\n'
    '    if f == "status":\n        res.status(*a)\n'
    '    elif f == "set":\n        res.set(*a)\n'
    '    elif f == "set-repeated":\n        res.set(a[0], a[1] * a[2])\n'
    '    elif f == "redirect":\n        res.redirect(*a)\n'
    '    elif f == "text":\n        res.text(*a)\n'
    '    elif f == "json":\n        res.json(*a)\n'
    '    elif f == "html":\n        res.html(*a)\n'
)
MINT = (
    '"""\ncommand: mint\n"""\n'
    "res.json({\n"
    '    "positional": Webhook.getUrl("echo"),\n'
    '    "positional-options": Webhook.getUrl("echo", {"n": 1}),\n'
    '    "positional-all": Webhook.getUrl("echo", {"n": 2}, {"ref": "a"},'
    ' "https://example.com/x", 300, True),\n'
    '    "keywords": Webhook.getUrl(command="echo", options={"n": 3}, params={"ref": "b"}),\n'
    '    "positional-and-keywords": Webhook.getUrl("echo", params={"ref": "c"}),\n'
    '    "one-dict": Webhook.getUrl({"command": "echo", "options": {"n": 4}, "expires_in": 300}),\n'
    '    "for-positional": Webhook.getUrlFor(99, "echo", {"n": 5}),\n'
    '    "for-keywords": Webhook.getUrlFor(user_id=98, command="echo"),\n'
    '    "for-one-dict": Webhook.getUrlFor({"user_id": 97, "command": "echo",'
    ' "params": {"ref": "d"}}),\n'
    '    "global": Webhook.getGlobalUrl("echo", {"n": 6}),\n'
    '    "global-keywords": Webhook.getGlobalUrl(command="echo", params={"ref": "e"}),\n'
    '    "global-one-dict": Webhook.getGlobalUrl({"command": "echo", "once": True}),\n'
    "})\n"
)
REFUSE = (
    '"""\ncommand: refuse\n"""\nout = {}\n'
    "def attempt(name, mint):\n"
    "    try:\n        mint()\n        out[name] = 'minted'\n"
    "    except Exception as e:\n        out[name] = str(e)\n"
    'attempt("too-many", lambda: Webhook.getUrl("echo", None, None, None, None, False, 1))\n'
    'attempt("for-too-many", lambda: Webhook.getUrlFor(1, "echo", None, None, None, None, False,'
    " 1))\n"
    'attempt("given-twice", lambda: Webhook.getUrl("echo", command="echo"))\n'
    'attempt("unknown-argument", lambda: Webhook.getUrl("echo", colour="red"))\n'
    'attempt("user-in-getUrl", lambda: Webhook.getUrl("echo", user_id=5))\n'
    'attempt("no-command", lambda: Webhook.getUrl(options={"n": 1}))\n'
    'attempt("command-not-text", lambda: Webhook.getUrl(5))\n'
    'attempt("unknown-command", lambda: Webhook.getUrl("nosuch"))\n'
    'attempt("dict-and-keywords", lambda: Webhook.getUrl({"command": "echo"}, once=True))\n'
    'attempt("for-without-user", lambda: Webhook.getUrlFor(command="echo"))\n'
    'attempt("for-user-bool", lambda: Webhook.getUrlFor(True, "echo"))\n'
    'attempt("param-clash", lambda: Webhook.getUrl("echo", params={"sig": "x"}))\n'
    'attempt("bad-redirect", lambda: Webhook.getUrl("echo", redirect="javascript:alert(1)"))\n'
    'attempt("bad-expiry", lambda: Webhook.getUrl("echo", expires_in=0))\n'
    'attempt("once-not-bool", lambda: Webhook.getUrl("echo", once="yes"))\n'
    'attempt("no-user", lambda: Webhook.getUrl("echo") if user is None else 1 / 0)\n'
    "res.json(out)\n"
)
FAIL = '"""\ncommand: fail\n"""\nx = 1\nraise ValueError("broken on purpose")\n'


@pytest.fixture(scope="module")
async def web(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Web]:
    """Bot ``web`` with commands to echo, answer through ``res``, mint and fail; ``tight`` is
    rate-limited to 2 clicks per link."""
    files = {
        "echo.py": ECHO,
        "quiet.py": QUIET,
        "answer.py": ANSWER,
        "mint.py": MINT,
        "refuse.py": REFUSE,
        "fail.py": FAIL,
    }
    tight = {"echo.py": ECHO}
    yaml = {"tight": "webhook:\n  per_link: 2/60\n"}
    async with serve(
        tmp_path_factory.mktemp("web"), {"web": files, "tight": tight}, yaml=yaml
    ) as w:
        yield w


async def answer(web: Web, *calls: tuple[str, list[Any]]) -> Any:
    """Click a link to ``answer`` making these ``res`` calls; return the HTTP response."""
    return await web.http.get(web.link("web", "answer", options={"calls": list(calls)}))


# -- res --
RES_GOOD: list[tuple[str, list[tuple[str, list[Any]]], int, dict[str, str], bytes]] = [
    ("text", [("text", ["pong"])], 200, {"content-type": "text/plain; charset=utf-8"}, b"pong"),
    ("json", [("json", [{"a": [1, "é"]}])], 200, {"content-type": "application/json"},
     '{"a": [1, "é"]}'.encode()),
    ("html", [("html", ["<b>hi</b>"])], 200, {"content-type": "text/html; charset=utf-8"},
     b"<b>hi</b>"),
    ("status-and-header", [("status", [201]), ("set", ["X-Thing", "a b"]), ("text", ["made"])],
     201, {"x-thing": "a b"}, b"made"),
    ("status-lowest", [("status", [200]), ("text", ["x"])], 200, {}, b"x"),
    ("status-highest", [("status", [599]), ("text", ["x"])], 599, {}, b"x"),
    ("status-only", [("status", [202])], 202, {}, b""),
    ("header-number-value", [("set", ["X-N", 5]), ("text", ["x"])], 200, {"x-n": "5"}, b"x"),
    ("header-value-4096", [("set-repeated", ["X-Long", "v", 4096]), ("text", ["x"])], 200,
     {"x-long": "v" * 4096}, b"x"),
    ("redirect-https", [("redirect", ["https://example.com/done?x=1"])], 303,
     {"location": "https://example.com/done?x=1"}, b""),
    ("redirect-path-with-status", [("status", [302]), ("redirect", ["/thanks"])], 302,
     {"location": "/thanks"}, b""),
]  # fmt: skip


@pytest.mark.parametrize(
    ("calls", "status", "headers", "body"),
    [case[1:] for case in RES_GOOD],
    ids=[case[0] for case in RES_GOOD],
)
async def test_res_calls_shape_the_answer_to_a_click(
    web: Web, calls: list[tuple[str, list[Any]]], status: int, headers: dict[str, str], body: bytes
) -> None:
    """Each good ``res`` call sets the status, a header, the body or a redirect as asked."""
    response = await answer(web, *calls)
    assert response.status_code == status, response.text
    for name, value in headers.items():
        assert response.headers[name] == value
    assert response.content == body


RES_BAD: list[tuple[str, tuple[str, list[Any]], str]] = [
    ("status-below-200", ("status", [199]), "res.status takes a whole number from 200 to 599"),
    ("status-above-599", ("status", [600]), "res.status takes a whole number from 200 to 599"),
    ("status-bool", ("status", [True]), "res.status takes a whole number from 200 to 599"),
    ("status-text", ("status", ["200"]), "res.status takes a whole number from 200 to 599"),
    ("status-float", ("status", [200.0]), "res.status takes a whole number from 200 to 599"),
    ("status-two-args", ("status", [200, 201]), "res.status takes exactly one argument"),
    ("set-one-arg", ("set", ["X-A"]), "res.set takes a header name and a value"),
    ("set-bad-name", ("set", ["X A", "v"]), "res.set: the header name is not a valid token"),
    ("set-name-not-text", ("set", [5, "v"]), "res.set: the header name is not a valid token"),
    ("set-server-header", ("set", ["Content-Length", "1"]), "res.set: Content-Length is set by"),
    ("set-hop-header", ("set", ["transfer-encoding", "x"]), "res.set: transfer-encoding is set"),
    ("set-newline", ("set", ["X-A", "a\r\nSet-Cookie: x=1"]), "res.set: the value has control"),
    ("set-too-long", ("set-repeated", ["X-A", "v", 4097]), "res.set: the value has control"),
    ("redirect-javascript", ("redirect", ["javascript:alert(1)"]),
     "res.redirect needs an absolute http(s) URL or a /path"),
    ("redirect-protocol-relative", ("redirect", ["//evil.example/x"]),
     "res.redirect needs an absolute http(s) URL or a /path"),
    ("redirect-no-host", ("redirect", ["https:///x"]),
     "res.redirect needs an absolute http(s) URL or a /path"),
    ("redirect-backslash", ("redirect", ["/\\evil.example"]),
     "res.redirect needs a URL without control characters"),
    ("redirect-newline", ("redirect", ["/a\nb"]),
     "res.redirect needs a URL without control characters"),
    ("redirect-not-text", ("redirect", [5]), "res.redirect needs a URL without control"),
    ("text-two-args", ("text", ["a", "b"]), "res.text takes exactly one argument"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("call", "message"), [case[1:] for case in RES_BAD], ids=[case[0] for case in RES_BAD]
)
async def test_a_bad_res_call_fails_the_click_and_the_run_log_says_why(
    web: Web, call: tuple[str, list[Any]], message: str
) -> None:
    """A bad ``res`` call is a 500 with a plain message; the run log names the rule it broke."""
    response = await answer(web, call, ("text", ["not sent"]))
    assert response.status_code == 500
    assert response.json() == {
        "ok": False,
        "error": "something_went_wrong",
        "message": "the bot's command failed; its author can see why in the run log",
    }
    (run,) = await web.runs("web")
    assert run.command == "answer" and run.status != "ok"
    assert isinstance(run.error, dict)
    assert str(run.error["message"]).startswith(message), run.error
    assert "not sent" not in response.text


# -- the checks of a click --
async def test_a_click_without_res_answers_json_or_a_done_page_or_the_signed_redirect(
    web: Web,
) -> None:
    """No ``res``: API clients get ``{"ok": true}``, browsers a Done page, or the redirect."""
    link = web.link("web", "quiet")
    api = await web.http.get(link)
    assert (api.status_code, api.json()) == (200, {"ok": True})
    browser = await web.http.get(link, headers={"Accept": "text/html"})
    assert browser.status_code == 200 and "<h1>Done" in browser.text
    onward = await web.http.get(web.link("web", "quiet", redirect="https://example.com/next"))
    assert (onward.status_code, onward.headers["location"]) == (303, "https://example.com/next")


async def test_a_post_reaches_the_script_as_json_or_form(web: Web) -> None:
    """A POSTed JSON body is ``request["json"]``, a form is ``request["form"]``."""
    link = web.link("web", "echo")
    posted = await web.http.post(link, json={"a": [1, 2]})
    assert posted.json()["json"] == {"a": [1, 2]} and posted.json()["method"] == "POST"
    form = await web.http.post(web.link("web", "echo"), data={"name": "Ada"})
    assert form.json()["form"] == {"name": "Ada"}


async def test_previews_head_and_options_run_nothing(web: Web) -> None:
    """A link-preview fetcher, HEAD and OPTIONS get an answer and the command does not run."""
    link = web.link("web", "echo")
    before = await web.state.store.get_property("web", "bot", "echoed")
    preview = await web.http.get(link, headers={"User-Agent": "TelegramBot (like TwitterBot)"})
    assert preview.status_code == 200 and "link for a Telegram bot" in preview.text
    head = await web.http.head(link)
    assert head.status_code == 200 and head.content == b""
    options = await web.http.options(link)
    assert (options.status_code, options.headers["allow"]) == (204, "GET, POST, HEAD, OPTIONS")
    assert await web.state.store.get_property("web", "bot", "echoed") == before


def resign(web: Web, link: Link) -> str:
    """``link`` signed with the app's keys, as a path and query."""
    return web.state.services.mint(web.state.registry.get("web"), link).removeprefix(BASE_URL)


async def test_each_refusal_of_a_click_has_its_status_and_message(web: Web) -> None:
    """Unknown bot 404, bad signature 403, expired 410, gone command 404, bad options 400."""
    good = web.link("web", "echo")
    expired = make_link("echo", user_id=7, expires_in=1, now=web.state.services.clock() - 10)
    cases = [
        (good.replace("/webhook/web?", "/webhook/nobot?"), 404, "unknown bot"),
        (good.replace("/webhook/web?", "/webhook/web/?"), 404, None),
        (good.replace("user=7", "user=8"), 403, "the link's signature does not match"),
        (good.replace("user=7", "user=07"), 400, "the link's user is not a canonical number"),
        (good + "&sig=x", 400, "the link repeats the parameter 'sig'"),
        ("/webhook/web", 400, "the link has no parameters"),
        (resign(web, expired), 410, "the link has expired"),
        (web.link("web", "nosuch"), 404, "this link's command no longer exists"),
        (resign(web, Link("echo", 7, options="{oops")), 400, "the link's options are not JSON"),
        (good + "&x=" + "a" * 9000, 413, "the link is too long"),
    ]
    for path, status, message in cases:
        response = await web.http.get(path)
        assert response.status_code == status, (path[:80], response.text)
        if message is not None:
            assert response.json()["message"] == message


async def test_a_refusal_is_a_small_page_for_a_browser(web: Web) -> None:
    """A browser gets the refusal as an HTML page written for its user, never a traceback."""
    response = await web.http.get("/webhook/web?command=x", headers={"Accept": "text/html"})
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")
    assert "This link is not valid" in response.text
    assert "the link lacks its command, user or signature" not in response.text
    assert "Traceback" not in response.text


async def test_a_one_time_link_runs_once(web: Web) -> None:
    """The second click of a ``once`` link is 410 and runs nothing."""
    link = web.link("web", "echo", once=True)
    assert (await web.http.get(link)).status_code == 200
    again = await web.http.get(link)
    assert (again.status_code, again.json()["message"]) == (
        410,
        "this one-time link was already used",
    )


async def test_a_link_past_its_rate_limit_is_429_with_retry_after(web: Web) -> None:
    """With ``per_link: 2/60`` the third click of one link is refused until the period ends."""
    link = web.link("tight", "echo")
    assert [(await web.http.get(link)).status_code for _ in range(2)] == [200, 200]
    third = await web.http.get(link)
    assert (third.status_code, third.headers["retry-after"]) == (429, "60")
    assert third.json()["message"] == "too many clicks (link limit); try again later"


async def test_a_body_over_64_kib_is_413(web: Web) -> None:
    """A POST body over the limit is refused before the link is even checked."""
    response = await web.http.post(web.link("web", "echo"), content=b"x" * (64 * 1024 + 1))
    assert response.status_code == 413


async def test_a_failing_command_is_a_500_and_its_line_is_in_the_run_log(web: Web) -> None:
    """The user sees a plain 500; the author's run log has the error and its line."""
    response = await web.http.get(web.link("web", "fail"))
    assert response.status_code == 500
    assert "broken on purpose" not in response.text
    (run,) = await web.runs("web")
    assert isinstance(run.error, dict)
    assert (run.error["type"], run.error["line"]) == ("ValueError", 5)
    assert run.error["message"] == "broken on purpose"


# -- links minted by scripts, in every argument form --
MINTED: dict[str, tuple[int | None, Any, dict[str, str]]] = {
    "positional": (7, None, {}),
    "positional-options": (7, {"n": 1}, {}),
    "positional-all": (7, {"n": 2}, {"ref": "a"}),
    "keywords": (7, {"n": 3}, {"ref": "b"}),
    "positional-and-keywords": (7, None, {"ref": "c"}),
    "one-dict": (7, {"n": 4}, {}),
    "for-positional": (99, {"n": 5}, {}),
    "for-keywords": (98, None, {}),
    "for-one-dict": (97, None, {"ref": "d"}),
    "global": (None, {"n": 6}, {}),
    "global-keywords": (None, None, {"ref": "e"}),
    "global-one-dict": (None, None, {}),
}


async def test_every_link_argument_form_mints_a_link_that_runs_as_signed(web: Web) -> None:
    """Positional, keyword and one-dict forms of getUrl, getUrlFor and getGlobalUrl all click."""
    minted = (await web.http.get(web.link("web", "mint"))).json()
    assert set(minted) == set(MINTED)
    for form, (user_id, options, params) in MINTED.items():
        url = minted[form]
        assert url.startswith(f"{BASE_URL}/webhook/web?"), form
        clicked = await web.http.get(url.removeprefix(BASE_URL))
        assert clicked.status_code == 200, (form, clicked.text)
        expected_user = None if user_id is None else {"id": user_id}
        assert clicked.json()["user"] == expected_user, form
        assert clicked.json()["options"] == options, form
        assert clicked.json()["params"] == params, form
    signed = parse_qs(urlsplit(minted["positional-all"]).query)
    assert signed["redirect"] == ["https://example.com/x"] and "exp" in signed
    assert "exp" in parse_qs(urlsplit(minted["one-dict"]).query)
    for once in ("positional-all", "global-one-dict"):
        assert (await web.http.get(minted[once].removeprefix(BASE_URL))).status_code == 410


REFUSALS = {
    "too-many": "too many arguments for a link",
    "for-too-many": "too many arguments for a link",
    "given-twice": "command given twice",
    "unknown-argument": "unknown link argument(s): colour; links take command, expires_in, "
    "once, options, params, redirect",
    "user-in-getUrl": "unknown link argument(s): user_id; links take command, expires_in, "
    "once, options, params, redirect",
    "no-command": "a link needs the command it runs",
    "command-not-text": "a link needs the command it runs",
    "unknown-command": "bot 'web' has no command 'nosuch'",
    "dict-and-keywords": "a link needs the command it runs",
    "for-without-user": "getUrlFor needs user_id, a whole number",
    "for-user-bool": "getUrlFor needs user_id, a whole number",
    "param-clash": "param name 'sig' clashes with the link's own 'sig'",
    "bad-redirect": "redirect must be an absolute https URL, not 'javascript:alert(1)'",
    "bad-expiry": "expires_in must be seconds, more than 0 and at most 31622400",
    "once-not-bool": "once must be True or False",
}


async def test_every_bad_link_argument_form_is_refused_with_a_clear_error(web: Web) -> None:
    """Too many, doubled, unknown or ill-typed link arguments raise an error naming the problem."""
    refused = (await web.http.get(web.link("web", "refuse"))).json()
    del refused["no-user"]
    assert refused == REFUSALS
    nobody = (await web.http.get(web.link("web", "refuse", user_id=None))).json()
    assert nobody["no-user"] == "this run has no user: use getUrlFor or getGlobalUrl"
