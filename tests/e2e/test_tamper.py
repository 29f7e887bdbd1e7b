"""Tampered, replayed, expired and foreign webhook links against a real server: none may run.

Every refused case asserts the status code *and* that no webhook run was logged for any user the
link names; the table cases then click the untouched link, to show the edit caused the refusal.
"""

from __future__ import annotations

import functools
import itertools
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from runtime.errors import LinkError
from runtime.signing.links import Link
from tests.e2e.conftest import DEMO_TOKEN
from tests.support.links import (
    add,
    cli,
    drop,
    duplicate,
    mint,
    replace_value,
    runs,
    settle,
    sign,
    split,
    value_of,
)
from tests.support.server import BotboxServer
from tests.support.telegram_standin import TelegramStandIn

B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
THANKS = "https://example.com/thanks"
KEY_RELOAD = 1.0  # the server re-reads keys.json at most once a second

PROBES: dict[str, dict[str, Any]] = {
    "demo": {"probe": "stats", "records": 3},  # @, stats, @@
    "other": {"probe": "stats", "records": 1},
}

_users = itertools.count(50_000, 2)


def fresh_user() -> int:
    """A user id no other case uses, nor its successor (limits and flood gates are per user)."""
    return next(_users)


def users_in(url: str) -> set[int]:
    """The user ids a (possibly tampered) link names."""
    return {int(value) for name, value in split(url)[1] if name == "user" and value.isdigit()}


def ran(
    server: BotboxServer, users: Iterable[int], *, bot_id: str = "demo", command: str | None = None
) -> int:
    """Webhook runs for these users (or for no user), once the write-behind run log caught up."""
    settle(server, bot_id, **PROBES[bot_id])
    return runs(server.data_dir, bot_id, users=users, command=command)


def full_link(data_dir: Path, user: int, *, now: float | None = None, once: bool = True) -> str:
    """A link that uses every signed field: command, options, user, params, redirect, exp, once."""
    return mint(
        data_dir,
        "syncGameData",
        user_id=user,
        now=now,
        options={"level": 3},
        params={"ref": "tamper", "lang": "en gb"},
        redirect=THANKS,
        expires_in=300,
        once=once,
    )


def assert_refused(
    server: BotboxServer, url: str, status: int, *, users: Iterable[int] = (), bot_id: str = "demo"
) -> None:
    """Clicking ``url`` gets ``status`` and a clean message, and no run of any user it names.

    (Every helper here waits for the run log before it returns, so ``before`` is exact.)
    """
    who = set(users) | users_in(url)
    before = runs(server.data_dir, bot_id, users=who)
    response = server.client.get(url)
    assert response.status_code == status, response.text
    assert response.json()["ok"] is False
    assert "Traceback" not in response.text
    assert ran(server, who, bot_id=bot_id) == before


def wait_for_status(server: BotboxServer, url: str, status: int) -> None:
    """Click ``url`` every 0.1 s until it answers ``status``: the server re-read keys.json.

    At most about a dozen clicks (the re-read is at most ``KEY_RELOAD`` away), well inside the
    per-link rate limit the later clicks of a test still need.
    """
    deadline = time.monotonic() + KEY_RELOAD + 5
    while (got := server.client.get(url).status_code) != status:
        assert time.monotonic() < deadline, f"still {got}, not {status}: keys.json not re-read"
        time.sleep(0.1)


def assert_ran(
    server: BotboxServer, url: str, command: str = "syncGameData", *, bot_id: str = "demo"
) -> httpx.Response:
    """Clicking ``url`` succeeds and runs ``command`` exactly once."""
    who = users_in(url)
    before = runs(server.data_dir, bot_id, users=who, command=command)
    response = server.client.get(url)
    assert response.status_code in (200, 303), response.text
    assert ran(server, who, bot_id=bot_id, command=command) == before + 1
    return response


# -- editing a link --
Edit = Callable[[str, Path, int], str]


def sig_edit(change: Callable[[str], str]) -> Edit:
    """An edit of the ``sig`` value only."""
    return lambda url, _data, _user: replace_value(url, "sig", change(value_of(url, "sig")))


def value_edit(name: str, value: str) -> Edit:
    """An edit that sets one parameter to ``value``."""
    return lambda url, _data, _user: replace_value(url, name, value)


def raw_edit(old: str, new: str) -> Edit:
    """An edit of the raw URL text (for encodings a well-behaved client would never send)."""

    def edit(url: str, _data: Path, _user: int) -> str:
        assert old in url
        return url.replace(old, new, 1)

    return edit


def flip_middle(sig: str) -> str:
    """The signature with one character of its MAC changed."""
    char = "B" if sig[20] == "A" else "A"
    return sig[:20] + char + sig[21:]


def flip_low_bits(sig: str) -> str:
    """The signature with the last character's unused low bits changed (same decoded bytes)."""
    return sig[:-1] + B64[B64.index(sig[-1]) ^ 1]


def sig_of_other_user(url: str, data: Path, user: int) -> str:
    """The link carrying the signature of the same link made for another user."""
    return replace_value(url, "sig", value_of(full_link(data, user + 1), "sig"))


FIELDS = ["command", "options", "user", "ref", "lang", "redirect", "exp", "once", "sig"]

TAMPERS: list[tuple[str, Edit, int]] = [
    ("command-changed", value_edit("command", "upgradePlan"), 403),
    ("options-changed", value_edit("options", '{"level":99}'), 403),
    ("options-reformatted", value_edit("options", '{"level": 3}'), 403),
    ("user-changed", lambda url, _d, user: replace_value(url, "user", str(user + 1)), 403),
    ("user-emptied", value_edit("user", ""), 403),
    ("param-ref-changed", value_edit("ref", "admin"), 403),
    ("param-lang-changed", value_edit("lang", "en GB"), 403),
    ("redirect-changed", value_edit("redirect", "https://evil.example/thanks"), 403),
    ("redirect-javascript", value_edit("redirect", "javascript:alert(1)"), 403),
    ("redirect-protocol-relative", value_edit("redirect", "//evil.example"), 403),
    (
        "exp-changed",
        lambda url, _d, _u: replace_value(url, "exp", str(int(time.time() * 1e3))),
        403,
    ),
    ("exp-extended", lambda url, _d, _u: replace_value(url, "exp", "9" * 18), 403),
    ("once-changed", value_edit("once", "A" * 16), 403),
    ("sig-changed", sig_edit(flip_middle), 403),
    *[
        (
            f"{name}-dropped",
            functools.partial(lambda n, url, _d, _u: drop(url, n), name),
            403,
        )
        for name in FIELDS
    ],
    *[
        (
            f"{name}-duplicated",
            functools.partial(lambda n, url, _d, _u: duplicate(url, n), name),
            400,
        )
        for name in FIELDS
    ],
    ("param-added", lambda url, _d, _u: add(url, "admin", "1"), 403),
    ("empty-param-added", lambda url, _d, _u: add(url, "extra", ""), 403),
    ("sig-of-another-user", sig_of_other_user, 403),
    ("sig-truncated", sig_edit(lambda sig: sig[:-1]), 403),
    ("sig-padded", sig_edit(lambda sig: sig + "="), 403),
    ("sig-non-ascii", sig_edit(lambda sig: sig[:-1] + "\u00e9"), 403),
    ("sig-without-key-id", sig_edit(lambda sig: sig.partition(".")[2]), 403),
    ("sig-unknown-key-id", sig_edit(lambda sig: "k9." + sig.partition(".")[2]), 403),
    ("sig-unused-bits-flipped", sig_edit(flip_low_bits), 403),
    ("user-non-canonical", raw_edit("&user=", "&user=0"), 400),
    ("param-invalid-utf8", raw_edit("&ref=tamper", "&ref=tamper%FF"), 400),
    ("param-bad-escape", raw_edit("&ref=tamper", "&ref=tamper%zz"), 400),
    ("empty-segment", raw_edit("&ref=", "&&ref="), 400),
    ("param-without-value", lambda url, _d, _u: url + "&flag", 400),
    ("huge-query", lambda url, _d, _u: url + "&pad=" + "x" * 9000, 413),
]


@pytest.mark.parametrize(
    ("edit", "status"), [(e, s) for _, e, s in TAMPERS], ids=[i for i, _, _ in TAMPERS]
)
def test_a_tampered_link_is_refused_and_runs_nothing(server, edit, status):
    """Each signed value changed, dropped or duplicated, or anything added, is refused."""
    user = fresh_user()
    url = full_link(server.data_dir, user)
    tampered = edit(url, server.data_dir, user)
    assert tampered != url
    assert_refused(server, tampered, status, users=[user, user + 1])
    response = assert_ran(server, url)
    assert response.status_code == 303
    assert response.headers["location"] == THANKS


# -- signatures borrowed from other links --
FOREIGN: list[tuple[str, dict[str, object]]] = [
    ("another-user", {"user_id": 1}),
    ("a-global-link", {"user_id": None}),
    ("another-command", {"command": "upgradePlan"}),
    ("other-options", {"options": {"level": 4}}),
    ("other-params", {"params": {"ref": "tamper", "lang": "en"}}),
    ("another-redirect", {"redirect": "https://example.com/other"}),
    ("another-expiry", {"expires_in": 301}),
]


@pytest.mark.parametrize("changes", [c for _, c in FOREIGN], ids=[i for i, _ in FOREIGN])
def test_a_signature_from_another_link_is_refused(server, changes):
    """A genuine signature of a link that differs in one field does not transfer."""
    user, now = fresh_user(), time.time()
    fields: dict[str, object] = {
        "command": "syncGameData",
        "user_id": user,
        "options": {"level": 3},
        "params": {"ref": "tamper", "lang": "en gb"},
        "redirect": THANKS,
        "expires_in": 300,
    }
    url = mint(server.data_dir, now=now, **fields)
    donor = mint(server.data_dir, now=now, **{**fields, **changes})
    assert_refused(server, replace_value(url, "sig", value_of(donor, "sig")), 403)
    assert_ran(server, url)


@pytest.mark.parametrize(
    "redirect",
    ["javascript:alert(1)", "//evil.example", "https://user:pw@evil.example/"],
    ids=["javascript", "protocol-relative", "userinfo"],
)
def test_dangerous_redirects_cannot_be_minted(server, redirect):
    """make_link and ``run.py url`` refuse the redirects a tampered link could not smuggle in."""
    with pytest.raises(LinkError, match="redirect"):
        mint(server.data_dir, "stats", user_id=fresh_user(), redirect=redirect)
    done = cli(server.env, "url", "demo", "stats", "--user", "5", "--redirect", redirect)
    assert done.returncode == 2
    assert done.stderr.startswith("error: redirect must")


# -- links that are validly signed but must still not run --
@pytest.mark.parametrize(
    ("options", "status"),
    [
        ("[" * 11 + "]" * 11, 400),
        ("[" * 1000 + "]" * 1000, 400),
        ('{"level": ', 400),
    ],
    ids=["eleven-deep", "thousand-deep", "not-json"],
)
def test_signed_options_that_could_never_be_minted_are_refused(server, options, status):
    """Options signed past check_options (deep or broken JSON) are a 400, and nothing runs."""
    url = sign(server.data_dir, "demo", Link("stats", fresh_user(), options=options))
    assert_refused(server, url, status)


def test_a_signed_link_to_a_missing_command_is_not_found(server):
    """A validly signed link whose command the bot does not have is a 404."""
    url = sign(server.data_dir, "demo", Link("noSuchCommand", fresh_user()))
    assert_refused(server, url, 404)


def test_an_expired_link_is_gone(server):
    """A link minted with a tiny expires_in is a 410 once that time has passed."""
    url = mint(server.data_dir, "stats", user_id=fresh_user(), expires_in=0.2)
    time.sleep(0.3)  # not a synchronisation: the link's lifetime running out is what is tested
    assert_refused(server, url, 410)


def test_an_unsigned_link_is_forbidden_and_an_empty_query_malformed(server):
    """A link with no signature is a 403 (it could be a forgery); no query at all is a 400."""
    assert_refused(server, f"/webhook/demo?command=stats&user={fresh_user()}", 403)
    assert_refused(server, "/webhook/demo", 400)


# -- one-time links --
def test_a_one_time_link_works_once_then_is_gone(server):
    """The second click of a one-time link is a 410 and does not run the command again."""
    url = mint(server.data_dir, "claimReward", user_id=fresh_user(), once=True)
    first = assert_ran(server, url, "claimReward")
    assert "You now have 1 reward(s)" in first.text
    assert_refused(server, url, 410)


def test_concurrent_clicks_on_a_one_time_link_run_it_once(server):
    """Twenty simultaneous clicks: one 200, nineteen 410, and claimReward ran once."""
    user = fresh_user()
    url = mint(server.data_dir, "claimReward", user_id=user, once=True)
    start = threading.Barrier(20)

    def click(_: int) -> httpx.Response:
        with httpx.Client(base_url=server.url, timeout=20) as client:
            start.wait()
            return client.get(url)

    with ThreadPoolExecutor(20) as executor:
        responses = list(executor.map(click, range(20)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [410] * 19
    assert ran(server, [user], command="claimReward") == 1
    (winner,) = [r for r in responses if r.status_code == 200]
    assert "You now have 1 reward(s)" in winner.text


def test_reencoding_a_used_one_time_link_does_not_revive_it(server):
    """The nonce is the decoded value: another encoding of a used link is still a 410."""
    url = full_link(server.data_dir, fresh_user())
    assert_ran(server, url)
    path, _, query = url.partition("?")
    reordered = path + "?" + "&".join(reversed(query.split("&")))
    assert_refused(server, reordered, 410)


# -- reordering and re-encoding keep a link valid --
def reverse_order(url: str) -> str:
    """The same link with its parameters in reverse order."""
    path, _, query = url.partition("?")
    return path + "?" + "&".join(reversed(query.split("&")))


def sig_first(url: str) -> str:
    """The same link with ``sig`` moved to the front."""
    path, _, query = url.partition("?")
    parts = query.split("&")
    return path + "?" + "&".join([parts[-1], *parts[:-1]])


def lowercase_hex(url: str) -> str:
    """The same link with lower-case percent escapes."""
    path, _, query = url.partition("?")
    chunks = query.split("%")
    return path + "?" + chunks[0] + "".join("%" + c[:2].lower() + c[2:] for c in chunks[1:])


def encode_letters(url: str) -> str:
    """The same link with the letters of its command name percent-encoded."""
    return url.replace(
        "command=syncGameData", "command=" + "".join(f"%{ord(c):02X}" for c in "syncGameData")
    )


ACCEPTED: list[tuple[str, Callable[[str], str]]] = [
    ("reversed-order", reverse_order),
    ("sig-first", sig_first),
    ("lowercase-hex", lowercase_hex),
    ("plus-for-space", lambda url: url.replace("en%20gb", "en+gb")),
    ("letters-percent-encoded", encode_letters),
    ("name-percent-encoded", lambda url: url.replace("&ref=", "&%72%65%66=")),
    ("sig-dot-percent-encoded", lambda url: url.replace("&sig=k1.", "&sig=k1%2E")),
]


@pytest.mark.parametrize("reencode", [f for _, f in ACCEPTED], ids=[i for i, _ in ACCEPTED])
def test_reordered_and_reencoded_links_still_work(server, reencode):
    """The signature covers decoded values, so parameter order and encoding do not matter."""
    url = full_link(server.data_dir, fresh_user())
    changed = reencode(url)
    assert changed != url
    response = assert_ran(server, changed)
    assert response.status_code == 303


# -- methods, previews, paths --
@pytest.mark.parametrize(
    ("method", "status", "expected"),
    [
        ("GET", 200, 1),
        ("POST", 200, 1),
        ("HEAD", 200, 0),
        ("OPTIONS", 204, 0),
        ("PUT", 405, 0),
        ("DELETE", 405, 0),
        ("PATCH", 405, 0),
        ("TRACE", 405, 0),
    ],
    ids=["get", "post", "head", "options", "put", "delete", "patch", "trace"],
)
def test_only_get_and_post_run_the_command(server, method, status, expected):
    """HEAD and OPTIONS answer without running; other methods are 405 and run nothing."""
    user = fresh_user()
    url = mint(server.data_dir, "stats", user_id=user)
    response = server.client.request(method, url)
    assert response.status_code == status
    settle(server)
    assert runs(server.data_dir, users=[user], command="stats") == expected
    assert runs(server.data_dir, users=[user]) == 3 * expected  # @, the command, @@
    if method in ("HEAD", "OPTIONS"):
        assert response.content == b""
    if status == 405:
        assert "Traceback" not in response.text


def test_head_and_options_do_not_use_up_a_one_time_link(server):
    """A HEAD or OPTIONS request before the real click leaves a one-time link unused."""
    user = fresh_user()
    url = full_link(server.data_dir, user)
    assert server.client.head(url).status_code == 200
    assert server.client.options(url).status_code == 204
    assert ran(server, [user]) == 0
    assert assert_ran(server, url).status_code == 303


PREVIEWERS = [
    "TelegramBot (like TwitterBot)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
    "WhatsApp/2.23.20.0",
]


@pytest.mark.parametrize(
    "agent", PREVIEWERS, ids=["telegram", "facebook", "slack", "discord", "whatsapp"]
)
def test_a_link_preview_fetcher_runs_nothing_and_leaves_a_one_time_link_unused(server, agent):
    """Chat apps unfurling a link get a harmless 200 page; the command runs only on the click."""
    user = fresh_user()
    url = full_link(server.data_dir, user)
    for method in ("GET", "POST"):
        response = server.client.request(method, url, headers={"User-Agent": agent})
        assert response.status_code == 200
        assert "link for a Telegram bot" in response.text
    assert ran(server, [user]) == 0
    assert assert_ran(server, url).status_code == 303


@pytest.mark.parametrize(
    "path",
    [
        "/webhook/..%2Fdemo",
        "/webhook/demo%00",
        "/webhook/DEMO",
        "/webhook/demo/extra",
        "/webhook/demo/",
        "/webhook/demo%2F",
        "/webhook/demo%20",
        "/webhook//demo",
        "/webhook/demo;x",
        "/webhook/%2E%2E/webhook/demo",
    ],
    ids=[
        "dot-dot-slash",
        "nul",
        "upper-case",
        "extra-segment",
        "trailing-slash",
        "encoded-slash",
        "trailing-space",
        "empty-segment",
        "semicolon",
        "encoded-dot-dot",
    ],
)
def test_path_tricks_in_the_bot_id_never_reach_the_bot(server, path):
    """A bot id that is not exactly the bot's is a 404 (or 400), and nothing runs."""
    user = fresh_user()
    query = mint(server.data_dir, "stats", user_id=user).partition("?")[2]
    response = server.client.get(f"{path}?{query}")
    assert response.status_code in (400, 404)
    assert "Traceback" not in response.text
    assert ran(server, [user]) == 0


def test_a_trailing_slash_after_the_bot_id_is_not_found(server):
    """``/webhook/demo/`` is not the link's path: 404, and the command does not run."""
    user = fresh_user()
    query = mint(server.data_dir, "stats", user_id=user).partition("?")[2]
    assert server.client.get(f"/webhook/demo?{query}").status_code == 200
    other = fresh_user()
    query = mint(server.data_dir, "stats", user_id=other).partition("?")[2]
    assert server.client.get(f"/webhook/demo/?{query}").status_code == 404
    assert server.client.post(f"/webhook/demo/?{query}").status_code == 404
    assert ran(server, [other]) == 0


def test_a_link_with_more_than_64_parameters_is_refused(server):
    """A signed link padded to 65 parameters is a 400, and nothing runs."""
    user = fresh_user()
    url = mint(server.data_dir, "stats", user_id=user)
    padded = url + "".join(f"&x{i}=1" for i in range(62))
    assert_refused(server, padded, 400)


# -- another bot, retired keys, revoked bots: a server of our own, since these change keys --
OTHER_BOT = {
    "bot.yaml": "id: other\ntoken_env: OTHER_BOT_TOKEN\n",
    "stats.py": '"""\ncommand: stats\n"""\nres.json({"bot": "other", "user": user["id"]})\n',
}


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BotboxServer]:
    """A server with the demo bot and a second bot, ``other``, whose keys tests may change."""
    root = tmp_path_factory.mktemp("pair")
    folder = root / "bots" / "other"
    folder.mkdir(parents=True)
    for name, text in OTHER_BOT.items():
        (folder / name).write_text(text)
    with TelegramStandIn(tokens={DEMO_TOKEN}) as telegram:
        running = BotboxServer(
            root / "data",
            telegram_api=telegram.base_url,
            bots_dir=root / "bots",
            env={"DEMO_BOT_TOKEN": DEMO_TOKEN},
        ).start()
        yield running
        running.close()


def test_a_link_signed_for_another_bot_is_refused(pair):
    """The same command, user and key, signed for bot ``other``, does not run on ``demo``."""
    user = fresh_user()
    other = mint(pair.data_dir, "stats", bot_id="other", user_id=user)
    demo = mint(pair.data_dir, "stats", bot_id="demo", user_id=user)
    query = other.partition("?")[2]
    assert_refused(pair, f"/webhook/demo?{query}", 403)
    assert_refused(pair, f"/webhook/other?{demo.partition('?')[2]}", 403, bot_id="other")
    assert_ran(pair, other, "stats", bot_id="other")
    assert pair.client.get(other).json() == {"bot": "other", "user": user}  # again: no once


def test_a_link_signed_by_a_retired_key_is_refused(pair):
    """After ``keys rotate`` old links still work; after ``keys retire k1`` they are a 410: to
    their users they have expired."""
    old = mint(pair.data_dir, "stats", user_id=fresh_user())
    assert value_of(old, "sig").startswith("k1.")
    rotated = cli(pair.env, "keys", "rotate")
    assert rotated.returncode == 0, rotated.stderr
    new = mint(pair.data_dir, "stats", user_id=fresh_user())
    assert value_of(new, "sig").startswith("k2.")
    wait_for_status(pair, new, 200)
    assert_ran(pair, old, "stats")
    assert_ran(pair, new, "stats")
    retired = cli(pair.env, "keys", "retire", "k1")
    assert retired.returncode == 0, retired.stderr
    assert "k1\tretired" in retired.stdout
    wait_for_status(pair, old, 410)
    assert_refused(pair, old, 410)
    assert pair.client.get(old).json()["error"] == "expired"
    assert_ran(pair, new, "stats")


def test_a_revoked_bot_refuses_its_old_links_only(pair):
    """``keys revoke demo`` kills demo's existing links; bot ``other`` and new links still work."""
    demo = mint(pair.data_dir, "stats", user_id=fresh_user())
    other = mint(pair.data_dir, "stats", bot_id="other", user_id=fresh_user())
    revoked = cli(pair.env, "keys", "revoke", "demo")
    assert revoked.returncode == 0, revoked.stderr
    wait_for_status(pair, demo, 403)
    assert_refused(pair, demo, 403)
    assert pair.client.get(other).status_code == 200
    assert_ran(pair, mint(pair.data_dir, "stats", user_id=fresh_user()), "stats")


# -- a new bot with an old bot's id --
def test_a_new_bot_with_a_removed_bots_id_never_accepts_the_old_links(tmp_path):
    """Folder removed, server restarted, same id added again: every old link is a 403."""
    bots = tmp_path / "bots"
    folder = bots / "other"
    folder.mkdir(parents=True)
    for name, text in OTHER_BOT.items():
        (folder / name).write_text(text)
    with TelegramStandIn(tokens={DEMO_TOKEN}) as telegram:
        server = BotboxServer(
            tmp_path / "data", telegram_api=telegram.base_url, bots_dir=bots, demo=False
        )
        try:
            server.start()
            plain = mint(server.data_dir, "stats", bot_id="other", user_id=fresh_user())
            once = mint(server.data_dir, "stats", bot_id="other", user_id=fresh_user(), once=True)
            assert server.client.get(plain).status_code == 200
            server.stop()
            server.start()  # same folder, restarted: the same bot, its links still work
            assert server.client.get(plain).status_code == 200
            server.stop()
            shutil.rmtree(folder)
            server.start()  # no folder: the bot is retired
            assert server.client.get(plain).status_code == 404
            server.stop()
            folder.mkdir()
            for name, text in OTHER_BOT.items():
                (folder / name).write_text(text)
            server.start()  # a new bot that happens to reuse the id
            for old in (plain, once):
                response = server.client.get(old)
                assert response.status_code == 403, response.text
            fresh = mint(server.data_dir, "stats", bot_id="other", user_id=fresh_user())
            assert server.client.get(fresh).status_code == 200
            printed = cli(server.env, "url", "other", "stats", "--user", str(fresh_user()))
            assert printed.returncode == 0, printed.stderr
            assert server.client.get(printed.stdout.strip()).status_code == 200
        finally:
            server.close()
        assert "bot other was removed: retired" in server.log.read_text()
