"""``/bots/{bot_id}/secrets``: a bot's secrets, for its authors and admins.

A value goes in (``PUT``) and is never answered back: listings give names and times only, and
no endpoint reads a value. Changes are audited with the secret's name, never its value. Values
are sealed with the master key's secrets key (:mod:`runtime.signing.sealing`); runs of the
bot read them with ``Secrets.get`` (:mod:`runtime.runs.secrets`).
"""

from __future__ import annotations

import time
from typing import Any, Final

from pydantic import TypeAdapter, ValidationError

from runtime.api.models import SecretDeleted, SecretIn, SecretList, SecretName, SecretOut, SecretSet
from runtime.api.operation import Call, Routes
from runtime.errors import SecretError
from runtime.runs.secrets import BotSecrets
from runtime.signing.sealing import masked
from runtime.web.responses import HttpError

ROUTES = Routes("secrets", "A bot's secrets: set and delete them, list their names (authors).")

_NAME: Final = TypeAdapter[str](SecretName)
NAMED: Final[dict[str, dict[str, Any]]] = {"name": _NAME.json_schema()}


def _name(call: Call) -> str:
    try:
        return _NAME.validate_python(call.path["name"])
    except ValidationError:
        raise HttpError(
            422,
            "a secret's name is 1 to 64 letters, digits and _, not starting with a digit",
            code="invalid",
        ) from None


def _secrets(call: Call) -> BotSecrets:
    secrets = call.state.services.secrets
    if secrets is None:  # pragma: no cover - the server always builds it
        raise HttpError(503, "this server keeps no secrets", code="unavailable")
    return secrets


@ROUTES.add("GET", "/bots/{bot_id}/secrets", need="write", response=SecretList)
async def list_secrets(call: Call, body: None, query: None) -> SecretList:
    """List a bot's secrets: names and when each was set, never values."""
    found = await _secrets(call).names(call.bot_id)
    return SecretList(
        secrets=[SecretOut(name=info.name, updated_at=info.updated_at) for info in found]
    )


@ROUTES.add(
    "PUT",
    "/bots/{bot_id}/secrets/{name}",
    need="write",
    response=SecretSet,
    body=SecretIn,
    path_schemas=NAMED,
    errors=(422,),
)
async def put_secret(call: Call, body: SecretIn, query: None) -> SecretSet:
    """Store a secret (replacing one of that name); the value is never answered back."""
    name = _name(call)
    try:
        created = await _secrets(call).put(call.bot_id, name, body.value, now=time.time())
    except SecretError as exc:
        raise HttpError(422, str(exc), code="invalid") from None
    await call.audit("secret.set", name, before=None if created else "set", after="set")
    return SecretSet(name=name, created=created, masked=masked(body.value))


@ROUTES.add(
    "DELETE",
    "/bots/{bot_id}/secrets/{name}",
    need="write",
    response=SecretDeleted,
    path_schemas=NAMED,
    errors=(422,),
)
async def delete_secret(call: Call, body: None, query: None) -> SecretDeleted:
    """Delete one of a bot's secrets."""
    name = _name(call)
    deleted = await _secrets(call).delete(call.bot_id, name)
    if deleted:
        await call.audit("secret.delete", name, before="set")
    return SecretDeleted(name=name, deleted=deleted)
