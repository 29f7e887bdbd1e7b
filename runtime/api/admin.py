"""Account actions shared by ``run.py tokens|users|audit`` (and recorded like the API's).

Each opens the store, does one thing, records it in the audit log as ``via="cli"`` with the
operating-system user as the actor, and closes the store.
"""

from __future__ import annotations

import getpass
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final, cast

from runtime.api import auth
from runtime.bots.config import BOT_ID
from runtime.errors import ConfigError
from runtime.runs.secrets import BotSecrets, Rekeyed
from runtime.settings import Settings
from runtime.signing.keys import load_master_key
from runtime.signing.sealing import SecretBox
from runtime.store import ApiToken, AuditEntry, SecretInfo, SqliteStore, Store, User
from runtime.store.base import GrantRole, UserRole
from sandbox import JSON

NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
ROLES: Final = ("admin", "author", "viewer")
BOT_ROLES: Final = ("author", "viewer")


def cli_actor() -> str:
    """Who runs the CLI: ``cli:<login name>``."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):
        return "cli:unknown"


def check_name(name: str) -> str:
    """A user name, or ConfigError."""
    if not NAME_PATTERN.fullmatch(name):
        raise ConfigError(f"a user name is 1 to 64 of A-Z a-z 0-9 _ . @ -, not {name!r}")
    return name


@asynccontextmanager
async def opened(settings: Settings) -> AsyncIterator[Store]:
    """The server's store, open for one CLI action."""
    store = SqliteStore(settings.database, synchronous=settings.sqlite_synchronous)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def audit(
    store: Store,
    action: str,
    target: str,
    *,
    before: object = None,
    after: object = None,
    bot_id: str | None = None,
) -> None:
    """Record a CLI change."""
    await store.record_audit(
        AuditEntry(
            cli_actor(),
            "cli",
            action,
            time.time(),
            bot_id,
            target,
            cast(JSON, before),
            cast(JSON, after),
        )
    )


def user_json(user: User | None) -> dict[str, object] | None:
    """A user as the audit log keeps it."""
    return None if user is None else {"role": user.role, "grants": dict(user.grants)}


async def create_token(
    settings: Settings, name: str, *, role: str | None, expires_days: float | None
) -> tuple[str, ApiToken, bool]:
    """Make a token for ``name`` (created with ``role`` if new); return it, its row, and
    whether the user was created."""
    check_name(name)
    async with opened(settings) as store:
        user = await store.get_user(name)
        created = False
        if user is None:
            if role is None:
                raise ConfigError(f"no user {name!r}: give --role to create it")
            user = await store.create_user(name, cast(UserRole, role), now=time.time())
            await audit(store, "user.create", name, after=user_json(user))
            created = True
        elif role is not None and role != user.role:
            raise ConfigError(
                f"user {name!r} is {user.role}, not {role}: change it with "
                f"`users set-role {name} {role}`"
            )
        made = auth.new_token()
        now = time.time()
        expires_at = None if expires_days is None else now + expires_days * 86400
        token = await store.create_token(
            name, prefix=made.prefix, digest=made.digest, now=now, expires_at=expires_at
        )
        await audit(
            store,
            "token.create",
            f"token {token.id}",
            after={"user": name, "prefix": token.prefix, "expires_at": expires_at},
        )
    return made.secret, token, created


async def revoke_token(settings: Settings, token_id: int) -> ApiToken:
    """Revoke a token by id."""
    async with opened(settings) as store:
        token = await store.revoke_token(token_id, now=time.time())
        if token is None:
            raise ConfigError(f"no token {token_id}")
        await audit(
            store, "token.revoke", f"token {token.id}", after={"revoked_at": token.revoked_at}
        )
    return token


async def list_tokens(settings: Settings, name: str | None) -> list[ApiToken]:
    """Every token (of one user), newest first."""
    async with opened(settings) as store:
        return await store.list_tokens(name)


async def list_users(settings: Settings) -> list[User]:
    """Every user."""
    async with opened(settings) as store:
        return await store.list_users()


async def change_user(
    settings: Settings, action: str, name: str, *, role: str | None = None, bot: str | None = None
) -> User | None:
    """Create, delete, re-role, grant or ungrant a user; return it after (None once deleted)."""
    check_name(name)
    async with opened(settings) as store:
        before = await store.get_user(name)
        if action == "create":
            after: User | None = await store.create_user(
                name, cast(UserRole, role), now=time.time()
            )
        elif before is None:
            raise ConfigError(f"no user {name!r}")
        elif action == "delete":
            await store.delete_user(name)
            after = None
        elif action == "set-role":
            after = await store.set_user_role(name, cast(UserRole, role))
        elif action == "grant":
            after = await store.set_grant(name, cast(str, bot), cast(GrantRole, role))
        else:
            after = await store.remove_grant(name, cast(str, bot))
        await audit(
            store,
            f"user.{action}",
            name,
            before=user_json(before),
            after=user_json(after),
            bot_id=bot,
        )
    return after


async def list_audit(settings: Settings, *, bot: str | None, limit: int) -> list[AuditEntry]:
    """The newest audit entries (of one bot)."""
    async with opened(settings) as store:
        return await store.list_audit(bot_id=bot, limit=limit)


async def record(settings: Settings, action: str, target: str, **values: object) -> None:
    """Record one CLI change made elsewhere (the key ring) in the audit log."""
    async with opened(settings) as store:
        bot_id = values.pop("bot_id", None)
        await audit(
            store,
            action,
            target,
            before=values.get("before"),
            after=values.get("after"),
            bot_id=cast(str | None, bot_id),
        )


# -- bot secrets (``run.py secrets``); the audit log names the secret, never its value --
@asynccontextmanager
async def bot_secrets(settings: Settings) -> AsyncIterator[tuple[Store, BotSecrets]]:
    """The store and the secrets service (the master key read, or made, as the server does)."""
    box = SecretBox(load_master_key(settings.key_file))
    async with opened(settings) as store:
        yield store, BotSecrets(store, box)


def check_bot_id(bot_id: str) -> str:
    """A bot id as ``bot.yaml`` spells it, or ConfigError."""
    if not BOT_ID.fullmatch(bot_id):
        raise ConfigError(f"{bot_id!r} is not a bot id (a-z 0-9 _ -, up to 64)")
    return bot_id


async def set_secret(settings: Settings, bot_id: str, name: str, value: str) -> tuple[bool, bool]:
    """Store a bot's secret; return whether it is new and whether the store knows the bot (a
    secret may be set before the bot's first deploy; a typo is worth a warning). Audited
    without the value."""
    async with bot_secrets(settings) as (store, secrets):
        known = bool(await store.bot_versions(check_bot_id(bot_id)))
        created = await secrets.put(bot_id, name, value, now=time.time())
        await audit(
            store,
            "secret.set",
            name,
            before=None if created else "set",
            after="set",
            bot_id=bot_id,
        )
    return created, known


async def delete_secret(settings: Settings, bot_id: str, name: str) -> bool:
    """Delete a bot's secret; False if it had none of that name. Audited."""
    async with bot_secrets(settings) as (store, secrets):
        deleted = await secrets.delete(check_bot_id(bot_id), name)
        if deleted:
            await audit(store, "secret.delete", name, before="set", bot_id=bot_id)
    return deleted


async def list_secrets(settings: Settings, bot_id: str) -> list[SecretInfo]:
    """A bot's secrets: names and times, never values."""
    async with opened(settings) as store:
        return await store.list_secrets(check_bot_id(bot_id))


async def rekey_secrets(settings: Settings, old_key_file: Path) -> Rekeyed:
    """Seal every secret that opens only with the old master key again with the current one
    (``run.py secrets rekey OLD_KEY_FILE``, after ``master.key`` was replaced). Audited."""
    if not old_key_file.is_file():
        raise ConfigError(f"no old master key file {old_key_file}")
    old = SecretBox(load_master_key(old_key_file))
    async with bot_secrets(settings) as (store, secrets):
        done = await secrets.rekey(old, now=time.time())
        if done.resealed:
            await audit(store, "secret.rekey", "master key", after=done.resealed)
    return done
