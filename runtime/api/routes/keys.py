"""``/keys`` and ``/bots/{bot_id}/keys``: the link-signing keys (admin only).

The ring lives in ``keys.json`` (:class:`~runtime.signing.keys.KeyFile`), which every server
process re-reads within a second of a change, as with ``run.py keys``.
"""

from __future__ import annotations

import time

from runtime.api.models import KeyOut, KeyRingOut, Revoked
from runtime.api.operation import Call, Routes
from runtime.errors import ConfigError
from runtime.signing.keys import KeyRing
from runtime.web.responses import HttpError

ROUTES = Routes("keys", "Link-signing keys: rotate, retire, and revoke a bot's links (admins).")


def ring_out(ring: KeyRing) -> KeyRingOut:
    """The ring without its secrets."""
    return KeyRingOut(
        keys=[KeyOut(id=key.id, state=key.state, created=key.created) for key in ring.keys],
        epochs=dict(ring.epochs),
    )


def _summary(ring: KeyRing) -> dict[str, str]:
    return {key.id: key.state for key in ring.keys}


@ROUTES.add("GET", "/keys", need="admin", response=KeyRingOut)
async def list_keys(call: Call, body: None, query: None) -> KeyRingOut:
    """List the link-signing keys and their states."""
    return ring_out(call.state.services.keys.load())


@ROUTES.add("POST", "/keys/rotate", need="admin", response=KeyRingOut)
async def rotate_keys(call: Call, body: None, query: None) -> KeyRingOut:
    """Make a new signing key; the old one keeps verifying until retired."""
    keyfile = call.state.services.keys
    before = keyfile.load()
    after = before.rotated(time.time())
    keyfile.save(after)
    await call.audit("keys.rotate", after.active.id, before=_summary(before), after=_summary(after))
    return ring_out(after)


@ROUTES.add(
    "POST",
    "/keys/{key_id}/retire",
    need="admin",
    response=KeyRingOut,
    errors=(409,),
)
async def retire_key(call: Call, body: None, query: None) -> KeyRingOut:
    """Retire a verifying key: links it signed are refused from now on."""
    keyfile = call.state.services.keys
    before = keyfile.load()
    key_id = call.path["key_id"]
    if not any(key.id == key_id for key in before.keys):
        raise HttpError(404, "no such key", code="not_found")
    try:
        after = before.retired(key_id)
    except ConfigError as exc:
        raise HttpError(409, str(exc), code="conflict") from None
    if after != before:
        keyfile.save(after)
        await call.audit("keys.retire", key_id, before=_summary(before), after=_summary(after))
    return ring_out(after)


@ROUTES.add("POST", "/bots/{bot_id}/keys/revoke", need="admin-bot", response=Revoked)
async def revoke_links(call: Call, body: None, query: None) -> Revoked:
    """Revoke every existing link of one bot."""
    keyfile = call.state.services.keys
    before = keyfile.load()
    after = before.revoked(call.bot_id)
    keyfile.save(after)
    epoch = after.epoch(call.bot_id)
    await call.audit("keys.revoke", call.bot_id, before=before.epoch(call.bot_id), after=epoch)
    return Revoked(bot_id=call.bot_id, epoch=epoch)
