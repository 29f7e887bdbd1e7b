"""``/bots/{bot_id}/properties/{scope}``: a bot's data, by scope (bot, one user, one chat).

Writes go through :meth:`Store.commit_run` with the version read (or the one the caller gives
as ``if_version``) as a precondition, like a run's commit: a write never silently overwrites
what a run wrote in between (409 instead), and the bot's storage quota holds.
"""

from __future__ import annotations

from typing import Any, Final, cast

from pydantic import JsonValue, TypeAdapter, ValidationError

from runtime.api.models import (
    PropertyDeleted,
    PropertyIn,
    PropertyName,
    PropertyNames,
    PropertyNamesQuery,
    PropertyOut,
    Scope,
)
from runtime.api.operation import Call, Routes
from runtime.errors import ConflictError, QuotaExceeded, StoreError
from runtime.store import MISSING, PropertyRead, PropertyWrite
from runtime.store.runs import encode
from runtime.web.responses import HttpError

ROUTES = Routes("properties", "A bot's data: properties of the bot, of a user, of a chat.")

_SCOPE: Final = TypeAdapter[str](Scope)
_NAME: Final = TypeAdapter[str](PropertyName)
SCOPE_SCHEMA: Final[dict[str, Any]] = _SCOPE.json_schema()
NAME_SCHEMA: Final[dict[str, Any]] = _NAME.json_schema()


def _json(value: object) -> JsonValue:
    """A stored value (None for one not set)."""
    return None if value is MISSING else cast(JsonValue, value)


def _scope(call: Call) -> str:
    try:
        return _SCOPE.validate_python(call.path["scope"])
    except ValidationError:
        raise HttpError(422, "scope must be bot, user:<id> or chat:<id>", code="invalid") from None


def _name(call: Call) -> str:
    try:
        name = _NAME.validate_python(call.path["name"])
        name.encode()
    except (ValidationError, UnicodeEncodeError):
        raise HttpError(
            422, "a property name is text of 1 to 128 characters", code="invalid"
        ) from None
    return name


@ROUTES.add(
    "GET",
    "/bots/{bot_id}/properties/{scope}",
    need="read",
    response=PropertyNames,
    query=PropertyNamesQuery,
    path_schemas={"scope": SCOPE_SCHEMA},
    errors=(422,),
)
async def list_properties(call: Call, body: None, query: PropertyNamesQuery) -> PropertyNames:
    """List property names of one scope (a page, sorted)."""
    scope = _scope(call)
    found = await call.state.store.property_names(
        call.bot_id, scope, prefix=query.prefix, after=query.after, limit=query.limit + 1
    )
    page = found[: query.limit]
    more = len(found) > query.limit
    return PropertyNames(scope=scope, names=page, next_after=page[-1] if more else None)


NAMED: Final = {"scope": SCOPE_SCHEMA, "name": NAME_SCHEMA}


@ROUTES.add(
    "GET",
    "/bots/{bot_id}/properties/{scope}/{name}",
    need="read",
    response=PropertyOut,
    path_schemas=NAMED,
    errors=(422,),
)
async def get_property(call: Call, body: None, query: None) -> PropertyOut:
    """Read one property and its version."""
    scope, name = _scope(call), _name(call)
    found = await call.state.store.read_property(call.bot_id, scope, name)
    if found.value is MISSING:
        raise HttpError(404, "no such property", code="not_found")
    return PropertyOut(scope=scope, name=name, value=_json(found.value), version=found.version)


@ROUTES.add(
    "PUT",
    "/bots/{bot_id}/properties/{scope}/{name}",
    need="write",
    response=PropertyOut,
    body=PropertyIn,
    path_schemas=NAMED,
    errors=(409, 413, 422),
)
async def put_property(call: Call, body: PropertyIn, query: None) -> PropertyOut:
    """Set one property (optionally only if it still has version ``if_version``)."""
    scope, name = _scope(call), _name(call)
    limits = call.served().definition.config
    try:
        _, size = encode(body.value, f"property {name!r}")
    except StoreError as exc:
        raise HttpError(422, str(exc), code="invalid") from None
    if size > limits.properties.max_value_bytes:
        raise HttpError(
            413,
            f"the value takes {size} bytes; this bot allows "
            f"{limits.properties.max_value_bytes} per property",
            code="too_large",
        )
    store = call.state.store
    seen = await store.read_property(call.bot_id, scope, name)
    version = seen.version if body.if_version is None else body.if_version
    await _commit(call, PropertyWrite(scope, name, body.value), PropertyRead(scope, name, version))
    after = await store.read_property(call.bot_id, scope, name)
    before = _json(seen.value)
    await call.audit("property.set", f"{scope}/{name}", before=before, after=body.value)
    return PropertyOut(scope=scope, name=name, value=_json(after.value), version=after.version)


@ROUTES.add(
    "DELETE",
    "/bots/{bot_id}/properties/{scope}/{name}",
    need="write",
    response=PropertyDeleted,
    path_schemas=NAMED,
    errors=(409, 422),
)
async def delete_property(call: Call, body: None, query: None) -> PropertyDeleted:
    """Delete one property."""
    scope, name = _scope(call), _name(call)
    seen = await call.state.store.read_property(call.bot_id, scope, name)
    if seen.value is MISSING:
        return PropertyDeleted(scope=scope, name=name, deleted=False)
    write = PropertyWrite(scope, name, delete=True)
    await _commit(call, write, PropertyRead(scope, name, seen.version))
    await call.audit("property.delete", f"{scope}/{name}", before=_json(seen.value))
    return PropertyDeleted(scope=scope, name=name, deleted=True)


async def _commit(call: Call, write: PropertyWrite, expected: PropertyRead) -> None:
    """One write, committed like a run's, if the property still has the expected version."""
    config = call.served().definition.config
    try:
        await call.state.store.commit_run(
            call.bot_id,
            [write],
            [],
            max_bot_bytes=config.properties.max_bot_bytes,
            max_pending_runs=config.runs.max_pending,
            expected=[expected],
        )
    except ConflictError:
        raise HttpError(
            409, "the property changed meanwhile (read it again)", code="conflict"
        ) from None
    except QuotaExceeded:
        raise HttpError(409, "the bot's storage quota is full", code="quota") from None
