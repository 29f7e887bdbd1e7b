"""Signed webhook links: canonical encoding, strict parsing, verification and minting rules."""

from __future__ import annotations

import base64
import math
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, unquote_plus

import pytest

from runtime.errors import LinkError
from runtime.signing.keys import KeyRing
from runtime.signing.links import (
    MAX_EXPIRY,
    MAX_OPTIONS,
    MAX_QUERY,
    RESERVED,
    Link,
    canonical,
    check_redirect,
    is_valid_link,
    make_link,
    parse_options,
    parse_query,
    signature,
    url_of,
    verify_link,
)

BOT = "demo"
NOW = 1_700_000_000.0
RING = KeyRing.new(NOW)
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def query(link: Link, ring: KeyRing = RING, bot_id: str = BOT) -> str:
    """The raw query string of ``link`` signed by ``ring`` for ``bot_id``."""
    return url_of("", bot_id, link, signature(ring, bot_id, link)).partition("?")[2]


def full_link(**changes: Any) -> Link:
    """A link that uses every signed field."""
    values: dict[str, Any] = {
        "user_id": 42,
        "options": {"level": 10, "tags": ["a b", "{x}"]},
        "params": {"ref": "profile", "lang": "en", "q": "a b&c=d"},
        "redirect": "https://example.com/thanks?x=1",
        "expires_in": 300,
        "once": True,
        "now": NOW,
    }
    values.update(changes)
    return make_link("syncGameData", **values)


LINK = full_link()
QUERY = query(LINK)


def pairs(raw: str) -> list[tuple[str, str]]:
    """A raw query as raw (still encoded) name/value pairs."""
    return [tuple(part.split("=", 1)) for part in raw.split("&")]  # type: ignore[misc]


def rebuild(items: list[tuple[str, str]]) -> str:
    """Raw pairs back to a raw query."""
    return "&".join(f"{name}={value}" for name, value in items)


def replace_raw(raw: str, name: str, value: str) -> str:
    """The query with one raw value replaced."""
    return rebuild([(n, value if n == name else v) for n, v in pairs(raw)])


def drop_raw(raw: str, name: str) -> str:
    """The query without one parameter."""
    return rebuild([(n, v) for n, v in pairs(raw) if n != name])


def duplicate_raw(raw: str, name: str) -> str:
    """The query with one parameter repeated."""
    items = pairs(raw)
    return rebuild(items + [(n, v) for n, v in items if n == name])


def refused(raw: str, *, now: float = NOW, ring: KeyRing = RING, bot_id: str = BOT) -> int:
    """The status a refused link gets (fails the test if the link is accepted)."""
    with pytest.raises(LinkError) as caught:
        verify_link(ring, bot_id, raw, now=now)
    return caught.value.status


# -- canonical encoding --
@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("demo", {"a": "b=c"}), ("demo", {"a=b": "c"})),
        (("demo", {"ab": "c"}), ("demo", {"a": "bc"})),
        (("demo", {"a": ""}), ("demo", {"": "a"})),
        (("demo", {"a": "b", "c": "d"}), ("demo", {"a": "b\x00c\x00d"})),
        (("demo", {"a": "1"}), ("demo", {"a": "1", "b": ""})),
        (("demox", {"a": "1"}), ("demo", {"xa": "1"})),
        (("de", {"mo": "1"}), ("demo", {"": "1"})),
        (("demo", {"a": "\u00e9"}), ("demo", {"a": "e\u0301"})),
    ],
    ids=[
        "equals-in-value-vs-name",
        "name-value-boundary",
        "empty-name-vs-empty-value",
        "separator-bytes-inside-a-value",
        "absent-vs-empty-field",
        "bot-id-vs-first-name",
        "bot-id-split",
        "unicode-not-normalised",
    ],
)
def test_canonical_encodings_of_different_fields_differ(first, second):
    """Two different sets of fields never encode to the same bytes."""
    assert canonical(*first) != canonical(*second)


def test_canonical_encoding_ignores_field_order():
    """Fields are sorted by name, so insertion order does not matter."""
    assert canonical(BOT, {"a": "1", "b": "2"}) == canonical(BOT, {"b": "2", "a": "1"})


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (Link("c", 1, params={"ab": "c"}), Link("c", 1, params={"a": "bc"})),
        (Link("c", 1, options=""), Link("c", 1)),
        (Link("c", None), Link("c", 1)),
        (Link("c", 1, params={"user": "1"}), Link("c", 1)),
        (Link("c", 1, expires_ms=5), Link("c", 1, params={"exp": "5"})),
        (Link("c", 12), Link("c", 1, params={"2": ""})),
    ],
    ids=[
        "param-boundary",
        "empty-vs-no-options",
        "global-vs-user",
        "param-named-like-a-field",
        "exp-vs-param-exp",
        "user-digits-vs-param",
    ],
)
def test_different_links_have_different_signatures(first, second):
    """Links that differ in any field, however slightly, are signed differently."""
    assert signature(RING, BOT, first) != signature(RING, BOT, second)


# -- verification of good links --
def test_a_minted_link_verifies_and_decodes_every_field():
    """verify_link returns exactly the values that were signed."""
    link = verify_link(RING, BOT, QUERY, now=NOW)
    assert link == LINK
    assert link.parsed_options() == {"level": 10, "tags": ["a b", "{x}"]}
    assert dict(link.params) == {"ref": "profile", "lang": "en", "q": "a b&c=d"}
    assert is_valid_link(RING, BOT, QUERY, now=NOW)


def lowercase_escapes(raw: str) -> str:
    """Every %XX escape with lower-case hex."""
    out, i = [], 0
    while i < len(raw):
        if raw[i] == "%":
            out.append(raw[i : i + 3].lower())
            i += 3
        else:
            out.append(raw[i])
            i += 1
    return "".join(out)


def encode_letters(raw: str) -> str:
    """Percent-encode every ASCII letter of every value (still the same decoded text)."""
    items = [
        (
            name,
            "".join(
                f"%{ord(c):02X}" if c.isascii() and c.isalpha() else quote(c, safe="")
                for c in unquote_plus(value)
            ),
        )
        for name, value in pairs(raw)
    ]
    return rebuild(items)


REENCODINGS: list[tuple[str, Callable[[str], str]]] = [
    ("reversed-order", lambda raw: rebuild(pairs(raw)[::-1])),
    ("sig-first", lambda raw: rebuild([pairs(raw)[-1], *pairs(raw)[:-1]])),
    ("sorted-order", lambda raw: rebuild(sorted(pairs(raw)))),
    ("lowercase-hex-escapes", lowercase_escapes),
    ("plus-for-space", lambda raw: raw.replace("%20", "+")),
    ("letters-percent-encoded", encode_letters),
    (
        "names-percent-encoded",
        lambda raw: rebuild([("".join(f"%{ord(c):02x}" for c in n), v) for n, v in pairs(raw)]),
    ),
    ("safe-chars-left-raw", lambda raw: raw.replace("%3A", ":").replace("%2F", "/")),
]


@pytest.mark.parametrize("reencode", [f for _, f in REENCODINGS], ids=[i for i, _ in REENCODINGS])
def test_reordered_and_reencoded_links_still_verify(reencode):
    """The MAC covers decoded values, so order and percent-encoding choices do not matter."""
    raw = reencode(QUERY)
    assert raw != QUERY
    assert verify_link(RING, BOT, raw, now=NOW) == LINK


# -- tampering with a good link --
OTHER = full_link(user_id=43)

TAMPERED = [
    ("command-changed", replace_raw(QUERY, "command", "stats"), 403),
    ("user-changed", replace_raw(QUERY, "user", "43"), 403),
    ("user-emptied", replace_raw(QUERY, "user", ""), 403),
    ("options-changed", replace_raw(QUERY, "options", "%7B%22level%22%3A99%7D"), 403),
    ("options-reformatted", replace_raw(QUERY, "options", "%7B%22level%22%3A+10%7D"), 403),
    ("param-changed", replace_raw(QUERY, "ref", "other"), 403),
    ("param-case-changed", replace_raw(QUERY, "lang", "EN"), 403),
    ("redirect-changed", replace_raw(QUERY, "redirect", "https%3A%2F%2Fevil.example%2F"), 403),
    ("exp-changed", replace_raw(QUERY, "exp", str(LINK.expires_ms + 1)), 403),
    ("once-changed", replace_raw(QUERY, "once", "A" * 16), 403),
    ("sig-changed", replace_raw(QUERY, "sig", "k1." + "A" * 43), 403),
    ("sig-of-another-user", replace_raw(QUERY, "sig", dict(pairs(query(OTHER)))["sig"]), 403),
    ("sig-key-unknown", replace_raw(QUERY, "sig", "k9" + dict(pairs(QUERY))["sig"][2:]), 403),
    ("command-dropped", drop_raw(QUERY, "command"), 403),
    ("user-dropped", drop_raw(QUERY, "user"), 403),
    ("sig-dropped", drop_raw(QUERY, "sig"), 403),
    ("options-dropped", drop_raw(QUERY, "options"), 403),
    ("param-dropped", drop_raw(QUERY, "ref"), 403),
    ("redirect-dropped", drop_raw(QUERY, "redirect"), 403),
    ("exp-dropped", drop_raw(QUERY, "exp"), 403),
    ("once-dropped", drop_raw(QUERY, "once"), 403),
    *[(f"{name}-duplicated", duplicate_raw(QUERY, name), 400) for name, _ in pairs(QUERY)],
    ("param-added", QUERY + "&extra=1", 403),
    ("empty-param-added", QUERY + "&extra=", 403),
    ("field-named-param-added", QUERY + "&p.ref=profile", 403),
]


@pytest.mark.parametrize(
    ("raw", "status"), [(r, s) for _, r, s in TAMPERED], ids=[i for i, _, _ in TAMPERED]
)
def test_every_changed_dropped_duplicated_or_added_value_is_refused(raw, status):
    """Any edit of a signed link fails: 400 when it is malformed, else 403."""
    assert refused(raw) == status
    assert not is_valid_link(RING, BOT, raw, now=NOW)


def test_a_link_signed_for_another_bot_is_refused():
    """The bot id is signed: the same query does not verify on another bot."""
    assert refused(QUERY, bot_id="other") == 403


def test_a_link_signed_by_another_ring_is_refused():
    """A key with the same id but another secret does not verify."""
    assert refused(QUERY, ring=KeyRing.new(NOW)) == 403


def test_a_signature_with_other_unused_trailing_bits_is_refused():
    """Only the exact base64 text the server minted verifies (no malleable last character)."""
    sig = dict(pairs(QUERY))["sig"]
    last = B64.index(sig[-1])
    for variant in (B64[last ^ 1], B64[last ^ 2], B64[last ^ 3]):
        assert refused(replace_raw(QUERY, "sig", sig[:-1] + variant)) == 403


# -- expiry --
def test_expiry_is_exact_to_the_millisecond():
    """A link works until just before ``exp`` and is gone (410) from ``exp`` on."""
    link = make_link("stats", user_id=1, expires_in=60, now=NOW)
    raw = query(link)
    assert link.expires_ms == round((NOW + 60) * 1000)
    assert verify_link(RING, BOT, raw, now=NOW + 59.999)
    assert refused(raw, now=NOW + 60) == 410
    assert refused(raw, now=NOW + 60.001) == 410


def test_a_link_without_expiry_never_expires():
    """No ``exp`` means no expiry check."""
    raw = query(make_link("stats", user_id=1, now=NOW))
    assert verify_link(RING, BOT, raw, now=NOW + 10 * MAX_EXPIRY)


def test_a_tampered_expired_link_is_a_bad_signature_not_expired():
    """The signature is checked before expiry, so a forged exp says nothing about the link."""
    raw = query(make_link("stats", user_id=1, expires_in=1, now=NOW))
    assert refused(replace_raw(raw, "exp", "1"), now=NOW) == 403


# -- strict parsing --
BASE = query(make_link("stats", user_id=5, params={"a": "1", "b": "2"}, now=NOW))
SIG = dict(pairs(BASE))["sig"]

MALFORMED = [
    ("duplicate-param", BASE + "&a=1", 400),
    ("duplicate-via-encoding", BASE + "&%61=1", 400),
    ("param-without-equals", BASE + "&flag", 400),
    ("empty-segment", BASE.replace("&", "&&", 1), 400),
    ("trailing-ampersand", BASE + "&", 400),
    ("leading-ampersand", "&" + BASE, 400),
    ("empty-query", "", 400),
    ("bad-escape-zz", replace_raw(BASE, "a", "%zz"), 400),
    ("bad-escape-short", replace_raw(BASE, "a", "1%4"), 400),
    ("bad-escape-lone", replace_raw(BASE, "a", "%"), 400),
    ("bad-escape-in-name", BASE + "&%g1=1", 400),
    ("invalid-utf8-ff", replace_raw(BASE, "a", "%ff"), 400),
    ("invalid-utf8-truncated", replace_raw(BASE, "a", "%c3"), 400),
    ("invalid-utf8-overlong", replace_raw(BASE, "a", "%c0%af"), 400),
    ("invalid-utf8-surrogate", replace_raw(BASE, "a", "%ed%a0%80"), 400),
    ("bad-param-name", BASE + "&a%20b=1", 400),
    ("bad-param-name-unicode", BASE + "&%c3%a9=1", 400),
    ("user-leading-zero", replace_raw(BASE, "user", "05"), 400),
    ("user-plus", replace_raw(BASE, "user", "%2B5"), 400),
    ("user-exponent", replace_raw(BASE, "user", "1e3"), 400),
    ("user-negative", replace_raw(BASE, "user", "-1"), 400),
    ("user-space", replace_raw(BASE, "user", "+5"), 400),
    ("user-decimal", replace_raw(BASE, "user", "5.0"), 400),
    ("user-huge", replace_raw(BASE, "user", "9" * 20), 400),
    ("user-fullwidth-digit", replace_raw(BASE, "user", "%EF%BC%95"), 400),
    ("exp-leading-zero", BASE + "&exp=0123", 400),
    ("exp-plus", BASE + "&exp=%2B5", 400),
    ("exp-exponent", BASE + "&exp=1e3", 400),
    ("exp-negative", BASE + "&exp=-1", 400),
    ("exp-empty", BASE + "&exp=", 400),
    ("once-short", BASE + "&once=abc", 400),
    ("once-bad-chars", BASE + "&once=" + "a%2F" * 16, 400),
    ("oversized", BASE + "&pad=" + "x" * MAX_QUERY, 413),
    ("oversized-junk", "x" * (MAX_QUERY + 1), 413),
]


@pytest.mark.parametrize(
    ("raw", "status"), [(r, s) for _, r, s in MALFORMED], ids=[i for i, _, _ in MALFORMED]
)
def test_malformed_links_are_refused_before_the_signature_is_checked(raw, status):
    """Ambiguous or malformed queries are 400 (413 when oversized), whatever they are signed by."""
    assert refused(raw) == status


FORGED_SIGNATURES = [
    ("sig-short", replace_raw(BASE, "sig", SIG[:-1])),
    ("sig-key-id-only", replace_raw(BASE, "sig", "k1.")),
    ("sig-padded", replace_raw(BASE, "sig", SIG + "%3D")),
    ("sig-long", replace_raw(BASE, "sig", SIG + "A")),
    ("sig-non-ascii", replace_raw(BASE, "sig", SIG[:-1] + "%C3%A9")),
    ("sig-no-key-id", replace_raw(BASE, "sig", SIG[3:])),
    ("sig-no-dot", replace_raw(BASE, "sig", "k1" + SIG[3:])),
    ("sig-upper-key-id", replace_raw(BASE, "sig", "K1" + SIG[2:])),
    ("sig-long-key-id", replace_raw(BASE, "sig", "k1234567" + SIG[2:])),
    ("sig-standard-base64", replace_raw(BASE, "sig", SIG[:-1] + "%2B")),
    ("sig-empty", replace_raw(BASE, "sig", "")),
]


@pytest.mark.parametrize(
    "raw", [r for _, r in FORGED_SIGNATURES], ids=[i for i, _ in FORGED_SIGNATURES]
)
def test_a_signature_that_could_never_be_ours_is_a_forgery(raw):
    """A readable link whose ``sig`` has the wrong shape is refused 403, like any forgery."""
    assert refused(raw) == 403


@pytest.mark.parametrize("name", ["command", "user", "sig"])
def test_a_link_without_its_command_user_or_signature_is_a_forgery(name):
    """Dropping a required field is refused 403, not 400: it could be a forgery."""
    assert refused(drop_raw(BASE, name)) == 403


def test_more_than_64_parameters_are_refused_before_anything_else():
    """A query with 65 parameters is 400 even when each is well formed; 64 still parse."""
    names = [f"x{i}" for i in range(64)]
    sixty_four = "&".join(f"{name}=1" for name in names)
    assert len(parse_query(sixty_four)) == 64
    with pytest.raises(LinkError) as caught:
        parse_query(sixty_four + "&y=1")
    assert caught.value.status == 400
    assert "64" in caught.value.message
    assert refused(BASE + "".join(f"&x{i}=1" for i in range(62))) == 400


def test_the_query_size_limit_is_exact():
    """A query of exactly the limit is parsed; one byte more is 413."""
    exact = "a=" + "x" * (MAX_QUERY - 2)
    assert parse_query(exact) == {"a": "x" * (MAX_QUERY - 2)}
    with pytest.raises(LinkError) as caught:
        parse_query(exact + "x")
    assert caught.value.status == 413


def test_parse_query_decodes_plus_and_escapes():
    """``+`` is a space and escapes decode to UTF-8 text."""
    assert parse_query("a=x+y%20z&b=%C3%A9%e2%82%ac") == {"a": "x y z", "b": "\u00e9\u20ac"}


# -- minting --
GOOD = {"user_id": 1, "now": NOW}


MINT_REFUSALS: list[tuple[str, dict[str, Any]]] = [
    *[(f"reserved-param-{name}", {"params": {name: "x"}}) for name in sorted(RESERVED)],
    ("param-name-empty", {"params": {"": "x"}}),
    ("param-name-space", {"params": {"a b": "x"}}),
    ("param-name-equals", {"params": {"a=b": "x"}}),
    ("param-name-ampersand", {"params": {"a&b": "x"}}),
    ("param-name-unicode", {"params": {"\u00e9": "x"}}),
    ("param-name-too-long", {"params": {"n" * 65: "x"}}),
    ("param-name-not-text", {"params": {1: "x"}}),
    ("params-not-a-dict", {"params": [("a", "b")]}),
    ("too-many-params", {"params": {f"p{i}": "x" for i in range(33)}}),
    ("param-value-none", {"params": {"a": None}}),
    ("param-value-list", {"params": {"a": [1]}}),
    ("param-value-dict", {"params": {"a": {"b": 1}}}),
    ("param-value-bytes", {"params": {"a": b"x"}}),
    ("param-value-too-long", {"params": {"a": "x" * 1025}}),
    ("options-nan", {"options": {"a": math.nan}}),
    ("options-infinity", {"options": [math.inf]}),
    ("options-set", {"options": {1, 2}}),
    ("options-bytes", {"options": b"x"}),
    ("options-object", {"options": object()}),
    ("options-too-large", {"options": "x" * MAX_OPTIONS}),
    ("options-too-deep", {"options": [[[[[[[[[[[1]]]]]]]]]]]}),
    (
        "options-too-deep-dicts",
        {"options": {"a": {"a": {"a": {"a": {"a": {"a": {"a": {"a": {"a": {"a": {"a": 1}}}}}}}}}}}},
    ),
    ("redirect-http", {"redirect": "http://example.com/"}),
    ("redirect-javascript", {"redirect": "javascript:alert(1)"}),
    ("redirect-javascript-upper", {"redirect": "JAVASCRIPT:alert(1)"}),
    ("redirect-data", {"redirect": "data:text/html,<script>alert(1)</script>"}),
    ("redirect-protocol-relative", {"redirect": "//evil.com"}),
    ("redirect-relative", {"redirect": "/relative"}),
    ("redirect-no-host", {"redirect": "https:evil.com"}),
    ("redirect-empty-host", {"redirect": "https:///evil.com"}),
    ("redirect-userinfo", {"redirect": "https://user:pw@host.example/"}),
    ("redirect-user-only", {"redirect": "https://user@host.example/"}),
    ("redirect-backslash", {"redirect": "https://host.example\\evil.com"}),
    ("redirect-backslash-path", {"redirect": "https:/\\evil.com"}),
    ("redirect-newline", {"redirect": "https://host.example/\r\nSet-Cookie: a=b"}),
    ("redirect-tab", {"redirect": "https://host.example/\tx"}),
    ("redirect-nul", {"redirect": "https://host.example/\x00"}),
    ("redirect-del", {"redirect": "https://host.example/\x7f"}),
    ("redirect-space", {"redirect": "https://host.example/a b"}),
    ("redirect-leading-space", {"redirect": " https://host.example/"}),
    ("redirect-ftp", {"redirect": "ftp://host.example/"}),
    ("redirect-empty", {"redirect": ""}),
    ("redirect-not-text", {"redirect": 5}),
    ("redirect-too-long", {"redirect": "https://host.example/" + "a" * 2048}),
    ("expires-zero", {"expires_in": 0}),
    ("expires-negative", {"expires_in": -1}),
    ("expires-over-366-days", {"expires_in": MAX_EXPIRY + 1}),
    ("expires-nan", {"expires_in": math.nan}),
    ("expires-infinite", {"expires_in": math.inf}),
    ("expires-bool", {"expires_in": True}),
    ("expires-text", {"expires_in": "60"}),
    ("once-text", {"once": "yes"}),
    ("once-int", {"once": 1}),
    ("once-none", {"once": None}),
    ("user-zero", {"user_id": 0}),
    ("user-negative", {"user_id": -5}),
    ("user-bool", {"user_id": True}),
    ("user-text", {"user_id": "5"}),
    ("user-too-big", {"user_id": 10**19}),
]


@pytest.mark.parametrize(
    "changes", [c for _, c in MINT_REFUSALS], ids=[i for i, _ in MINT_REFUSALS]
)
def test_make_link_refuses_what_cannot_be_signed_safely(changes):
    """Bad params, options, redirects, expiries, once flags and users raise LinkError."""
    with pytest.raises(LinkError) as caught:
        make_link("stats", **{**GOOD, **changes})
    assert caught.value.message


def test_make_link_refusals_name_the_problem():
    """The messages say which value is wrong and why."""
    cases = [
        ({"params": {"user": "1"}}, "clashes"),
        ({"params": {"a b": "1"}}, "'a b'"),
        ({"options": {"a": math.nan}}, "JSON"),
        ({"options": "x" * MAX_OPTIONS}, "4096 bytes"),
        ({"options": [[[[[[[[[[[1]]]]]]]]]]]}, "deeper than 10"),
        ({"redirect": "javascript:alert(1)"}, "absolute https URL"),
        ({"redirect": "https://u:p@host.example"}, "user information"),
        ({"expires_in": 0}, "expires_in"),
        ({"once": "yes"}, "once"),
    ]
    for changes, words in cases:
        with pytest.raises(LinkError, match=words.replace("(", r"\(")):
            make_link("stats", **{**GOOD, **changes})


MINT_ACCEPTS: list[tuple[str, dict[str, Any]]] = [
    ("global-link", {"user_id": None}),
    ("params-at-the-count-limit", {"params": {f"p{i}": "x" for i in range(32)}}),
    ("param-value-at-the-limit", {"params": {"a": "x" * 1024}}),
    ("param-name-at-the-limit", {"params": {"n" * 64: "x"}}),
    ("param-values-numbers-and-bools", {"params": {"a": 1, "b": 1.5, "c": True}}),
    ("options-at-the-depth-limit", {"options": [[[[[[[[[[1]]]]]]]]]]}),
    ("options-with-brackets-in-strings", {"options": {"s": "[[[[[[[[[[[[{{{{"}}),
    ("options-at-the-size-limit", {"options": "x" * (MAX_OPTIONS - 2)}),
    ("expires-at-the-limit", {"expires_in": MAX_EXPIRY}),
    ("expires-fraction", {"expires_in": 0.5}),
    ("redirect-https", {"redirect": "https://example.com/thanks?a=1#top"}),
    ("redirect-https-upper", {"redirect": "HTTPS://EXAMPLE.COM/"}),
    ("redirect-port", {"redirect": "https://example.com:8443/x"}),
    ("once", {"once": True}),
]


@pytest.mark.parametrize("changes", [c for _, c in MINT_ACCEPTS], ids=[i for i, _ in MINT_ACCEPTS])
def test_make_link_accepts_values_at_the_limits(changes):
    """Values up to each limit are signed, and the signed link verifies."""
    link = make_link("stats", **{**GOOD, **changes})
    assert verify_link(RING, BOT, query(link), now=NOW) == link


@pytest.mark.parametrize(
    "changes",
    [
        {"params": {f"p{i}": "x" * 1024 for i in range(32)}},
        {"options": "\u00e9" * (MAX_OPTIONS // 2 - 1)},
        {"params": {f"p{i}": "\u00e9" * 1024 for i in range(4)}},
    ],
    ids=["32-params-of-1024", "options-of-4094-utf8-bytes", "params-of-non-ascii-text"],
)
def test_a_link_too_long_to_click_is_refused_when_minted(changes):
    """Values within each field's limit that add up to too long a URL are refused at minting."""
    with pytest.raises(LinkError, match=r"the link would be \d+ characters long"):
        make_link("stats", **{**GOOD, **changes})


def largest(build: Callable[[int], Link]) -> int:
    """The largest ``n`` in 0..1024 for which ``build(n)`` mints (by bisection)."""
    low, high = 0, 1024
    while low < high:
        middle = (low + high + 1) // 2
        try:
            build(middle)
        except LinkError:
            high = middle - 1
        else:
            low = middle
    return low


FULL = {"expires_in": 300, "once": True, "redirect": "https://example.com/" + "r" * 1000}
EDGES: list[tuple[str, Callable[[int], dict[str, Any]]]] = [
    ("32-ascii-params", lambda n: {"params": {f"p{i}": "x" * n for i in range(32)}}),
    ("32-escaped-params", lambda n: {"params": {f"p{i}": "&=%+" * n for i in range(32)}}),
    ("32-two-byte-params", lambda n: {"params": {f"p{i}": "\u00e9" * n for i in range(32)}}),
    ("32-four-byte-params", lambda n: {"params": {f"p{i}": "\U0001f600" * n for i in range(32)}}),
    (
        "options-and-params",
        lambda n: {"options": ["\u20ac" * n] * 2, "params": {"a": "\u00e9" * n}},
    ),
    ("everything", lambda n: {**FULL, "options": {"k": "\u00e9" * n}, "params": {"q": " " * n}}),
]


@pytest.mark.parametrize("fields", [f for _, f in EDGES], ids=[i for i, _ in EDGES])
def test_every_link_that_can_be_minted_can_be_clicked(fields):
    """The longest link that mints, of every shape, verifies: the minting cap is below 413's."""
    n = largest(lambda n: make_link("stats", **{**GOOD, **fields(n)}))
    assert 0 < n < 1024, "the shape never reaches the minting cap: it tests nothing"
    with pytest.raises(LinkError, match="characters long"):
        make_link("stats", **{**GOOD, **fields(n + 1)})
    link = make_link("stats", **{**GOOD, **fields(n)})
    ring = KeyRing.new(NOW)
    clicked = query(link, ring)
    assert len(clicked) <= MAX_QUERY
    assert verify_link(ring, BOT, clicked, now=NOW) == link


def test_http_redirects_only_when_the_bot_allows_them():
    """``allow_http_redirects`` admits http:, never other schemes."""
    assert check_redirect("http://127.0.0.1:8080/x", allow_http=True) == "http://127.0.0.1:8080/x"
    with pytest.raises(LinkError):
        check_redirect("http://127.0.0.1:8080/x", allow_http=False)
    with pytest.raises(LinkError):
        check_redirect("javascript:alert(1)", allow_http=True)


def test_once_links_get_a_fresh_nonce_each():
    """Two one-time links for the same command and user differ."""
    first = make_link("stats", once=True, **GOOD)
    second = make_link("stats", once=True, **GOOD)
    assert first.once and second.once and first.once != second.once


# -- options --
@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000 + "]" * 100_000,
        "{" + '"a":{' * 3000 + "}" * 3001,
        "[" * 11 + "]" * 11,
        '[[[[[[[[[[[1]]]]]]]]]]],"x"' * 100,
    ],
    ids=["lists-100000-deep", "objects-3000-deep", "eleven-deep", "repeated-deep"],
)
def test_parse_options_refuses_deep_nesting_without_recursing(text):
    """Nesting deeper than 10 is refused by a flat scan, quickly, before json.loads."""
    started = time.perf_counter()
    with pytest.raises(LinkError, match=r"deeper than 10|too large"):
        parse_options(text)
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("[" * 10 + "]" * 10, [[[[[[[[[[]]]]]]]]]]),
        ('{"a":"[[[[[[[[[[[[[[[["}', {"a": "[[[[[[[[[[[[[[[["}),
        ('["\\"[[[[[[[[[[[["]', ['"[[[[[[[[[[[[']),
        ("null", None),
    ],
    ids=["ten-deep", "brackets-in-a-string", "escaped-quote-then-brackets", "null"],
)
def test_parse_options_accepts_json_within_the_limits(text, value):
    """Brackets inside strings do not count as nesting."""
    assert parse_options(text) == value


@pytest.mark.parametrize(
    "text",
    ["{", "[1,]", "'a'", "", "x" * (MAX_OPTIONS + 1)],
    ids=["unclosed", "trailing-comma", "single-quotes", "empty", "too-large"],
)
def test_parse_options_refuses_what_is_not_json_or_too_large(text):
    """Broken or oversized options are a 400 LinkError, never a ValueError."""
    with pytest.raises(LinkError) as caught:
        parse_options(text)
    assert caught.value.status == 400


def test_a_signed_link_with_deep_options_fails_when_its_options_are_read():
    """Options that bypassed minting still cannot make the server recurse."""
    link = Link("stats", 1, options="[" * 50 + "]" * 50)
    verified = verify_link(RING, BOT, query(link), now=NOW)
    with pytest.raises(LinkError) as caught:
        verified.parsed_options()
    assert caught.value.status == 400


def test_signatures_are_key_id_dot_unpadded_base64url():
    """A signature is ``k<n>.`` and 43 base64url characters (a 32-byte MAC)."""
    sig = signature(RING, BOT, LINK)
    key_id, _, mac = sig.partition(".")
    assert key_id == RING.active.id
    assert len(mac) == 43
    assert len(base64.urlsafe_b64decode(mac + "=")) == 32
