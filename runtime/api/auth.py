"""Pure token and role logic of the admin API: no I/O, no Sanic.

A token is ``bbx_`` and 43 URL-safe characters (``secrets.token_urlsafe(32)``: 256 random
bits). It is shown once; the store keeps only its SHA-256 digest (a fast hash is enough for a
secret of 256 random bits; slow hashes are for guessable passwords) and its first 12
characters, to tell tokens apart in listings.

Who may do what:

- ``admin``: everything, on every bot.
- ``author``: read and write the bots it was granted as author; read those granted as viewer.
- ``viewer``: read the bots it was granted, whatever the grant says.

A bot a principal may not read does not exist for it: the API answers 404, as for a bot that
really does not exist.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Final, Literal

from runtime.store import Principal

TOKEN_PREFIX: Final = "bbx_"  # noqa: S105 - a marker, not a secret
SHOWN_PREFIX: Final = 12
"""How many of a token's first characters are kept in clear, to tell tokens apart."""

Access = Literal["read", "write"]
Need = Literal["any", "admin", "read", "write", "admin-bot"]
"""What an operation needs: any valid token; an admin; read or write access to its bot; an
admin, on a bot (404 for a bot the caller cannot see, 403 for one it can)."""


@dataclass(frozen=True, slots=True)
class NewToken:
    """A freshly made token: the secret (shown once), its shown prefix and its digest."""

    secret: str
    prefix: str
    digest: str


def new_token() -> NewToken:
    """Make a random API token."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return NewToken(secret, secret[:SHOWN_PREFIX], digest(secret))


def digest(token: str) -> str:
    """The SHA-256 digest (hex) the store keeps for a token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None if there is none."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token


def bot_access(principal: Principal, bot_id: str) -> Access | None:
    """What ``principal`` may do with one bot: write, read, or nothing (the bot is hidden)."""
    if principal.role == "admin":
        return "write"
    grant = principal.grants.get(bot_id)
    if grant is None:
        return None
    if principal.role == "author" and grant == "author":
        return "write"
    return "read"


def visible_bots(principal: Principal, hosted: list[str]) -> list[str]:
    """The hosted bots ``principal`` may see, in the order given."""
    return [bot_id for bot_id in hosted if bot_access(principal, bot_id) is not None]


Verdict = Literal["ok", "forbidden", "hidden"]


def decide(principal: Principal, need: Need, bot_id: str | None, *, exists: bool) -> Verdict:
    """May ``principal`` call an operation that needs ``need`` (on ``bot_id``)?

    ``hidden`` (answered 404) when the bot does not exist or the caller cannot see it, before
    anything else; ``forbidden`` (403) when it can see the bot, or the operation is not about
    a bot, but lacks the role.
    """
    if bot_id is not None:
        access = bot_access(principal, bot_id)
        if access is None or not exists:
            return "hidden"
        if need == "write" and access != "write":
            return "forbidden"
        if need in ("admin", "admin-bot") and principal.role != "admin":
            return "forbidden"
        return "ok"
    if need in ("admin", "admin-bot") and principal.role != "admin":
        return "forbidden"
    return "ok"
