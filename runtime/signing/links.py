"""Signed user webhook links: minting, strict parsing and verification (pure, but the clock).

What is guaranteed: every value in a link is covered by one HMAC-SHA256 - the bot, the command,
the options, the user (or its absence), every parameter, the redirect, the expiry and the
one-time nonce. The MAC is computed over an unambiguous encoding of the *decoded* values
(length-prefixed, sorted by name), so reordering parameters or re-encoding them (``%7B`` or
``%7b``, ``+`` or ``%20``) changes nothing, while any changed, dropped, duplicated or added value
breaks the signature. The raw query string is parsed strictly before anything is computed;
comparison is constant-time on bytes; ``options`` is parsed only after the signature passes.

What is not: secrecy. Links are bearer tokens for one user's command: whoever holds a link can
use it (until it expires, once if it is one-time). Anything secret belongs in properties, not in
a link's options or parameters.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final
from urllib.parse import quote, urlsplit

from runtime.errors import LinkError
from runtime.signing.keys import KeyRing
from sandbox.jsontypes import is_int

RESERVED: Final = frozenset({"command", "options", "user", "exp", "once", "redirect", "sig"})
PARAM_NAME: Final = re.compile(r"[A-Za-z0-9_.~-]{1,64}")
SIGNATURE: Final = re.compile(r"(k[0-9]{1,6})\.([A-Za-z0-9_-]{43})")
NUMBER: Final = re.compile(r"0|[1-9][0-9]{0,18}")
NONCE: Final = re.compile(r"[A-Za-z0-9_-]{16,64}")
PERCENT: Final = re.compile(r"%([0-9A-Fa-f]{2})")
CONTROL: Final = re.compile(r"[\x00-\x20\x7f\\]")
MAX_QUERY: Final = 8192
MAX_MINTED_QUERY: Final = 6000
"""Minted links stay well under what servers and proxies accept in a request line."""
MAX_PARAMS: Final = 32
MAX_QUERY_PARAMS: Final = 64
"""A link's query holds at most this many parameters (the most a minted one has is 39)."""
MAX_VALUE: Final = 1024
MAX_OPTIONS: Final = 4096
MAX_OPTIONS_DEPTH: Final = 10
MAX_REDIRECT: Final = 2048
MAX_EXPIRY: Final = 366 * 24 * 3600
DOMAIN: Final = b"botbox-link-v1"


@dataclass(frozen=True, slots=True)
class Link:
    """The decoded, signed content of a webhook link."""

    command: str
    user_id: int | None
    options: str | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    redirect: str | None = None
    expires_ms: int | None = None
    once: str | None = None
    signature: str = field(default="", compare=False)
    """The verified ``sig`` (set by :func:`verify_link`; not itself signed)."""

    def fields(self) -> dict[str, str]:
        """The signed fields, by their query names (``p.<name>`` for parameters)."""
        signed = {
            "command": self.command,
            "user": "" if self.user_id is None else str(self.user_id),
        }
        if self.options is not None:
            signed["options"] = self.options
        if self.redirect is not None:
            signed["redirect"] = self.redirect
        if self.expires_ms is not None:
            signed["exp"] = str(self.expires_ms)
        if self.once is not None:
            signed["once"] = self.once
        signed.update({f"p.{name}": value for name, value in self.params.items()})
        return signed

    def parsed_options(self) -> Any:
        """The options as JSON data (parsed with size and depth limits)."""
        return None if self.options is None else parse_options(self.options)


def canonical(bot_id: str, fields: Mapping[str, str]) -> bytes:
    """The bytes a link's MAC covers: length-prefixed ``bot`` and sorted name/value pairs."""
    parts = [DOMAIN]
    for name, value in [("bot", bot_id), *sorted(fields.items())]:
        for text in (name, value):
            encoded = text.encode("utf-8")
            parts.append(len(encoded).to_bytes(4, "big"))
            parts.append(encoded)
    return b"".join(parts)


def mac(ring: KeyRing, key_id: str, bot_id: str, fields: Mapping[str, str]) -> bytes | None:
    """The MAC of a link under one key, or None if that key may not verify."""
    key = ring.find(key_id)
    if key is None:
        return None
    return hmac.new(ring.bot_key(key, bot_id), canonical(bot_id, fields), hashlib.sha256).digest()


def signature(ring: KeyRing, bot_id: str, link: Link) -> str:
    """The ``sig`` value of a link, signed with the active key: ``<key id>.<base64url MAC>``."""
    key = ring.active
    digest = mac(ring, key.id, bot_id, link.fields())
    assert digest is not None
    return f"{key.id}.{_b64(digest)}"


def _b64(digest: bytes) -> str:
    """Unpadded base64url text of a MAC."""
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def url_of(base_url: str, bot_id: str, link: Link, sig: str) -> str:
    """The full URL of a signed link."""
    pairs = [("command", link.command)]
    if link.options is not None:
        pairs.append(("options", link.options))
    pairs.append(("user", "" if link.user_id is None else str(link.user_id)))
    pairs.extend(link.params.items())
    if link.expires_ms is not None:
        pairs.append(("exp", str(link.expires_ms)))
    if link.once is not None:
        pairs.append(("once", link.once))
    if link.redirect is not None:
        pairs.append(("redirect", link.redirect))
    pairs.append(("sig", sig))
    query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)
    return f"{base_url}/webhook/{quote(bot_id, safe='')}?{query}"


# -- minting --
def check_redirect(url: object, *, allow_http: bool) -> str:
    """Return a redirect target that is safe to sign, or raise LinkError saying why not."""
    if not isinstance(url, str) or not url:
        raise LinkError("redirect must be a URL")
    if len(url) > MAX_REDIRECT:
        raise LinkError(f"redirect is longer than {MAX_REDIRECT} characters")
    if CONTROL.search(url):
        raise LinkError("redirect must not contain spaces, control characters or backslashes")
    parts = urlsplit(url)
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme.lower() not in schemes:
        allowed = " or ".join(schemes)
        raise LinkError(f"redirect must be an absolute {allowed} URL, not {url[:60]!r}")
    if not parts.hostname:
        raise LinkError("redirect must name a host")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise LinkError("redirect must not contain user information")
    return url


def check_options(options: object) -> str | None:
    """Encode options as canonical JSON, or raise LinkError (not JSON, too large, too deep)."""
    if options is None:
        return None
    try:
        text = json.dumps(
            options, separators=(",", ":"), sort_keys=True, ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError, RecursionError) as exc:
        raise LinkError(f"options must be JSON data: {exc}") from None
    if len(text.encode()) > MAX_OPTIONS:
        raise LinkError(f"options are over {MAX_OPTIONS} bytes as JSON")
    parse_options(text)
    return text


def check_params(params: object) -> dict[str, str]:
    """Return link parameters as text, or raise LinkError (bad names, clashes, size)."""
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise LinkError("params must be a dict of names to values")
    if len(params) > MAX_PARAMS:
        raise LinkError(f"a link takes at most {MAX_PARAMS} params")
    checked: dict[str, str] = {}
    for name, value in params.items():
        if not isinstance(name, str) or not PARAM_NAME.fullmatch(name):
            raise LinkError(f"param name {name!r} must be 1-64 letters, digits, or _.~-")
        if name in RESERVED:
            raise LinkError(f"param name {name!r} clashes with the link's own {name!r}")
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, str | int | float):
            text = str(value)
        else:
            raise LinkError(f"param {name!r} must be text or a number")
        if len(text) > MAX_VALUE:
            raise LinkError(f"param {name!r} is longer than {MAX_VALUE} characters")
        checked[name] = text
    return checked


def make_link(
    command: str,
    *,
    user_id: int | None,
    options: object = None,
    params: object = None,
    redirect: object = None,
    expires_in: object = None,
    once: object = False,
    now: float,
    allow_http_redirects: bool = False,
) -> Link:
    """Validate everything a script asked for and return the Link to sign."""
    if user_id is not None and (not is_int(user_id) or not 0 < user_id < 10**19):
        raise LinkError("user_id must be a positive whole number")
    expires_ms = None
    if expires_in is not None:
        if (
            not isinstance(expires_in, int | float)
            or isinstance(expires_in, bool)
            or not 0 < expires_in <= MAX_EXPIRY
        ):
            raise LinkError(f"expires_in must be seconds, more than 0 and at most {MAX_EXPIRY}")
        expires_ms = round((now + expires_in) * 1000)
    if not isinstance(once, bool):
        raise LinkError("once must be True or False")
    link = Link(
        command=command,
        user_id=user_id,
        options=check_options(options),
        params=check_params(params),
        redirect=None
        if redirect is None
        else check_redirect(redirect, allow_http=allow_http_redirects),
        expires_ms=expires_ms,
        once=secrets.token_urlsafe(12) if once else None,
    )
    size = len(url_of("", "x", link, "k1." + "A" * 43).partition("?")[2])
    if size > MAX_MINTED_QUERY:
        raise LinkError(
            f"the link would be {size} characters long; keep options and params under "
            f"{MAX_MINTED_QUERY} characters in all (keep big data in properties)"
        )
    return link


# -- verifying --
def _unescape(match: re.Match[str]) -> str:
    """One ``%XX`` as a character: ASCII as itself, other bytes as surrogate escapes."""
    byte = int(match.group(1), 16)
    return chr(byte) if byte < 0x80 else chr(0xDC00 + byte)


def _decode(text: str) -> str:
    """Percent-decode strictly (``+`` is a space); raise LinkError on a bad escape or UTF-8."""
    if "%" in PERCENT.sub("", text):
        raise LinkError("malformed percent escape in the link")
    raw = PERCENT.sub(_unescape, text.replace("+", " "))
    try:
        data = raw.encode("utf-8", "surrogateescape")
        return data.decode("utf-8")
    except UnicodeError:
        raise LinkError("the link is not valid UTF-8") from None


def parse_query(raw: str) -> dict[str, str]:
    """Split a raw query string into decoded names and values, refusing anything ambiguous."""
    if len(raw) > MAX_QUERY:
        raise LinkError("the link is too long", status=413)
    if not raw:
        raise LinkError("the link has no parameters")
    if raw.count("&") >= MAX_QUERY_PARAMS:
        raise LinkError(f"the link has more than {MAX_QUERY_PARAMS} parameters")
    values: dict[str, str] = {}
    for part in raw.split("&"):
        name_raw, equals, value_raw = part.partition("=")
        if not equals:
            raise LinkError("every link parameter needs a value")
        name = _decode(name_raw)
        if not PARAM_NAME.fullmatch(name):
            raise LinkError("the link has a malformed parameter name")
        if name in values:
            raise LinkError(f"the link repeats the parameter {name!r}")
        values[name] = _decode(value_raw)
    return values


def read_link(raw_query: str) -> tuple[Link, str, str]:
    """Parse a link's query strictly; return the Link, the key id and the MAC text.

    A query that cannot be read one way only is 400; a readable one that lacks its command,
    user or signature, or whose signature could never be ours, is 403, like any other forgery.
    """
    values = parse_query(raw_query)
    sig = values.pop("sig", None)
    command = values.pop("command", None)
    user = values.pop("user", None)
    if sig is None or command is None or user is None:
        raise LinkError("the link lacks its command, user or signature", status=403)
    found = SIGNATURE.fullmatch(sig)
    if found is None:
        raise LinkError("the link's signature does not match", status=403)
    if user and not NUMBER.fullmatch(user):
        raise LinkError("the link's user is not a canonical number")
    exp = values.pop("exp", None)
    if exp is not None and not NUMBER.fullmatch(exp):
        raise LinkError("the link's expiry is not a canonical number")
    once = values.pop("once", None)
    if once is not None and not NONCE.fullmatch(once):
        raise LinkError("the link's one-time token is malformed")
    link = Link(
        command=command,
        user_id=int(user) if user else None,
        options=values.pop("options", None),
        redirect=values.pop("redirect", None),
        expires_ms=None if exp is None else int(exp),
        once=once,
        params=values,
    )
    return link, found.group(1), found.group(2)


def verify_link(ring: KeyRing, bot_id: str, raw_query: str, *, now: float) -> Link:
    """Return the Link if its signature is right and it has not expired; else raise LinkError.

    400 for a malformed link, 413 for an oversized one, 403 for a missing or bad signature
    (or a revoked bot epoch), 410 for an expired link, and for a real link whose key was
    retired (to its user it expired; a forgery naming a retired key is still 403).
    """
    link, key_id, given = read_link(raw_query)
    expected = mac(ring, key_id, bot_id, link.fields())
    # Compare the text, not decoded bytes: base64 would ignore the unused low bits of the
    # last character, letting several spellings of one signature pass (and dodge rate keys).
    expected_text = b"" if expected is None else _b64(expected).encode()
    if expected is None or not hmac.compare_digest(expected_text, given.encode()):
        if _signed_by_retired_key(ring, key_id, bot_id, link, given):
            # A real link of ours whose key was retired: to its user, it has expired.
            raise LinkError("the link has expired (its signing key was retired)", status=410)
        raise LinkError("the link's signature does not match", status=403)
    if link.expires_ms is not None and now * 1000 >= link.expires_ms:
        raise LinkError("the link has expired", status=410)
    return replace(link, signature=f"{key_id}.{given}")


def _signed_by_retired_key(ring: KeyRing, key_id: str, bot_id: str, link: Link, given: str) -> bool:
    """Whether a link's signature is right under a retired key (retired keys keep their secret,
    so a real old link is told apart from a forgery)."""
    key = next((k for k in ring.keys if k.id == key_id and k.state == "retired"), None)
    if key is None:
        return False
    digest = hmac.new(
        ring.bot_key(key, bot_id), canonical(bot_id, link.fields()), hashlib.sha256
    ).digest()
    return hmac.compare_digest(_b64(digest).encode(), given.encode())


def is_valid_link(ring: KeyRing, bot_id: str, raw_query: str, *, now: float) -> bool:
    """True when :func:`verify_link` would accept the link."""
    try:
        verify_link(ring, bot_id, raw_query, now=now)
    except LinkError:
        return False
    return True


def parse_options(text: str) -> Any:
    """Parse options JSON with size and depth limits; raise LinkError (400) otherwise."""
    if len(text.encode()) > MAX_OPTIONS:
        raise LinkError("the link's options are too large")
    if nesting_depth(text) > MAX_OPTIONS_DEPTH:
        raise LinkError(f"the link's options nest deeper than {MAX_OPTIONS_DEPTH}")
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except ValueError:
        raise LinkError("the link's options are not JSON") from None


def nesting_depth(text: str) -> int:
    """How deep JSON text nests ``[`` and ``{``, measured without recursing (before json.loads)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _refuse_constant(name: str) -> None:
    """``NaN`` and ``Infinity`` are not JSON."""
    raise ValueError(f"{name} is not JSON")


@dataclass(frozen=True, slots=True)
class ClickRate:
    """At most ``limit`` clicks per ``period`` seconds."""

    limit: int
    period: float

    @classmethod
    def parse(cls, text: object, where: str) -> ClickRate:
        """Parse ``"30/60"`` (30 per 60 seconds); raise LinkError naming ``where``."""
        match = re.fullmatch(r"\s*([0-9]{1,9})\s*/\s*([0-9]{1,7})\s*", str(text))
        if match is None or int(match.group(1)) < 1 or int(match.group(2)) < 1:
            raise LinkError(f"{where} must look like 30/60 (clicks per seconds), not {text!r}")
        return cls(int(match.group(1)), float(match.group(2)))


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """A bot's ``webhook:`` settings in bot.yaml, with defaults (read by runtime.bots.config)."""

    per_link: ClickRate = ClickRate(30, 60)
    per_user: ClickRate = ClickRate(120, 60)
    per_bot: ClickRate = ClickRate(6000, 60)
    allow_http_redirects: bool = False
