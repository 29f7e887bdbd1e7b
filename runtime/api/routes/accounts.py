"""``/users`` and ``/tokens``: accounts, their grants on bots, and API tokens (admins only)."""

from __future__ import annotations

import time
from typing import Any

from runtime.api import auth
from runtime.api.models import (
    Deleted,
    GrantIn,
    Name,
    TokenCreated,
    TokenIn,
    TokenList,
    TokenOut,
    UserIn,
    UserList,
    UserOut,
    UserPatch,
)
from runtime.api.operation import ID_SCHEMA, Call, Routes, whole_number
from runtime.errors import AlreadyExists
from runtime.store import ApiToken, User
from runtime.web.responses import HttpError

ROUTES = Routes("accounts", "Users, their roles and grants, and API tokens (admins only).")
NAME_SCHEMA: dict[str, Any] = {"type": "string", "pattern": r"^[A-Za-z0-9_.@-]{1,64}$"}
_ = Name  # the pattern above is Name's


def user_out(user: User) -> UserOut:
    """A user as the API shows it."""
    return UserOut(name=user.name, role=user.role, created_at=user.created_at, grants=user.grants)


def user_json(user: User | None) -> dict[str, object] | None:
    """A user as the audit log keeps it."""
    return None if user is None else {"role": user.role, "grants": dict(user.grants)}


def token_out(token: ApiToken) -> TokenOut:
    """A token as listed (its prefix, never the token)."""
    return TokenOut(
        id=token.id,
        user=token.user,
        prefix=token.prefix,
        created_at=token.created_at,
        expires_at=token.expires_at,
        revoked_at=token.revoked_at,
        last_used_at=token.last_used_at,
    )


async def _user(call: Call) -> User:
    user = await call.state.store.get_user(call.path["name"])
    if user is None:
        raise HttpError(404, "no such user", code="not_found")
    return user


def _not_yourself(call: Call, user: User, what: str) -> None:
    """An admin never locks itself out: its own role and account are another admin's to change."""
    if user.id == call.principal.user_id:
        raise HttpError(409, f"you cannot {what} (another admin can)", code="conflict")


@ROUTES.add("GET", "/users", need="admin", response=UserList)
async def list_users(call: Call, body: None, query: None) -> UserList:
    """List every user."""
    return UserList(users=[user_out(user) for user in await call.state.store.list_users()])


@ROUTES.add(
    "POST", "/users", need="admin", response=UserOut, body=UserIn, status=201, errors=(409, 422)
)
async def create_user(call: Call, body: UserIn, query: None) -> UserOut:
    """Create a user with a role."""
    try:
        user = await call.state.store.create_user(body.name, body.role, now=time.time())
    except AlreadyExists as exc:
        raise HttpError(409, str(exc), code="conflict") from None
    await call.audit("user.create", user.name, after=user_json(user))
    return user_out(user)


NAMED: dict[str, dict[str, Any]] = {"name": NAME_SCHEMA}


@ROUTES.add("GET", "/users/{name}", need="admin", response=UserOut, path_schemas=NAMED)
async def get_user(call: Call, body: None, query: None) -> UserOut:
    """Show one user."""
    return user_out(await _user(call))


@ROUTES.add(
    "PATCH",
    "/users/{name}",
    need="admin",
    response=UserOut,
    body=UserPatch,
    path_schemas=NAMED,
    errors=(409, 422),
)
async def set_role(call: Call, body: UserPatch, query: None) -> UserOut:
    """Change a user's role (not your own: another admin must)."""
    before = await _user(call)
    _not_yourself(call, before, "change your own role")
    after = await call.state.store.set_user_role(before.name, body.role)
    if after is None:
        raise HttpError(404, "no such user", code="not_found")
    await call.audit("user.role", after.name, before=user_json(before), after=user_json(after))
    return user_out(after)


@ROUTES.add(
    "DELETE", "/users/{name}", need="admin", response=Deleted, path_schemas=NAMED, errors=(409,)
)
async def delete_user(call: Call, body: None, query: None) -> Deleted:
    """Delete a user, its grants and its tokens (not yourself)."""
    before = await _user(call)
    _not_yourself(call, before, "delete yourself")
    if not await call.state.store.delete_user(before.name):
        raise HttpError(404, "no such user", code="not_found")
    await call.audit("user.delete", before.name, before=user_json(before))
    return Deleted(deleted=before.name)


GRANTED: dict[str, dict[str, Any]] = {
    "name": NAME_SCHEMA,
    "grant_bot": {"type": "string", "minLength": 1},
}


@ROUTES.add(
    "PUT",
    "/users/{name}/grants/{grant_bot}",
    need="admin",
    response=UserOut,
    body=GrantIn,
    path_schemas=GRANTED,
    errors=(422,),
)
async def set_grant(call: Call, body: GrantIn, query: None) -> UserOut:
    """Grant a user a role on one bot (the bot need not exist yet)."""
    before = await _user(call)
    bot_id = call.path["grant_bot"]
    after = await call.state.store.set_grant(before.name, bot_id, body.role)
    if after is None:
        raise HttpError(404, "no such user", code="not_found")
    await call.audit(
        "grant.set", before.name, before=user_json(before), after=user_json(after), bot_id=bot_id
    )
    return user_out(after)


@ROUTES.add(
    "DELETE",
    "/users/{name}/grants/{grant_bot}",
    need="admin",
    response=UserOut,
    path_schemas=GRANTED,
)
async def remove_grant(call: Call, body: None, query: None) -> UserOut:
    """Remove a user's grant on one bot."""
    before = await _user(call)
    bot_id = call.path["grant_bot"]
    after = await call.state.store.remove_grant(before.name, bot_id)
    if after is None:
        raise HttpError(404, "no such user", code="not_found")
    await call.audit(
        "grant.remove", before.name, before=user_json(before), after=user_json(after), bot_id=bot_id
    )
    return user_out(after)


@ROUTES.add("GET", "/tokens", need="admin", response=TokenList)
async def list_tokens(call: Call, body: None, query: None) -> TokenList:
    """List every token (prefixes, never tokens), newest first."""
    return TokenList(tokens=[token_out(t) for t in await call.state.store.list_tokens()])


@ROUTES.add(
    "POST", "/tokens", need="admin", response=TokenCreated, body=TokenIn, status=201, errors=(404,)
)
async def create_token(call: Call, body: TokenIn, query: None) -> TokenCreated:
    """Create a token for a user; the answer shows it this once."""
    if await call.state.store.get_user(body.user) is None:
        raise HttpError(404, f"no user {body.user!r}: create it first", code="not_found")
    made = auth.new_token()
    now = time.time()
    expires_at = None if body.expires_days is None else now + body.expires_days * 86400
    token = await call.state.store.create_token(
        body.user, prefix=made.prefix, digest=made.digest, now=now, expires_at=expires_at
    )
    await call.audit(
        "token.create",
        f"token {token.id}",
        after={"user": token.user, "prefix": token.prefix, "expires_at": expires_at},
    )
    return TokenCreated(**token_out(token).model_dump(), token=made.secret)


@ROUTES.add(
    "POST",
    "/tokens/{token_id}/revoke",
    need="admin",
    response=TokenOut,
    path_schemas={"token_id": ID_SCHEMA},
    errors=(409, 422),
)
async def revoke_token(call: Call, body: None, query: None) -> TokenOut:
    """Revoke a token: it is refused from the next request on."""
    token_id = whole_number(call, "token_id")
    if token_id == call.principal.token_id:
        raise HttpError(
            409, "this is the token you are using: revoke it with another", code="conflict"
        )
    token = await call.state.store.revoke_token(token_id, now=time.time())
    if token is None:
        raise HttpError(404, "no such token", code="not_found")
    await call.audit("token.revoke", f"token {token.id}", after={"revoked_at": token.revoked_at})
    return token_out(token)
