"""The property capabilities of a run: ``Bot.*``, ``User.*`` and ``Chat.*`` property calls.

Each namespace offers ``getProperty``, ``setProperty`` (with ``if_version=`` for
compare-and-set), ``deleteProperty``, ``incProperty``, ``getPropertyVersion`` and
``getPropertyNames``. Reads go to the store (once per property and run, versions remembered
for the commit); writes wait in the run's :class:`~runtime.runs.transaction.Transaction`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Final

from runtime.runs.registry import LiveBot
from runtime.runs.transaction import Transaction
from runtime.store import MISSING, PropertyWrite, Store
from sandbox import JSON, CallRequest, CapabilityError, Handler
from sandbox.jsontypes import is_int

MAX_NAMES_PAGE: Final = 1000
"""The most names one ``getPropertyNames`` call returns."""


class Properties:
    """The property handlers of one run, bound to its bot, user, chat and transaction."""

    def __init__(
        self,
        store: Store,
        bot: LiveBot,
        user_id: int | None,
        chat_id: int | None,
        tx: Transaction,
    ) -> None:
        self.store = store
        self.bot = bot
        self.user_id = user_id
        self.chat_id = chat_id
        self.tx = tx

    def handlers(self) -> dict[str, Handler]:
        """Every property capability, by the names scripts call them."""
        scopes: dict[str, Callable[[CallRequest], str]] = {
            "Bot": lambda call: "bot",
            "User": self._user_scope,
            "Chat": self._chat_scope,
        }
        handlers: dict[str, Handler] = {}
        for space, scope_of in scopes.items():
            for name, make in (
                ("getProperty", self._get),
                ("setProperty", self._set),
                ("deleteProperty", self._delete),
                ("incProperty", self._inc),
                ("getPropertyVersion", self._version),
                ("getPropertyNames", self._names),
            ):
                handlers[f"{space}.{name}"] = make(scope_of)
        return handlers

    def _user_scope(self, call: CallRequest) -> str:
        user_id = call.kwargs.get("user_id", self.user_id)
        if not is_int(user_id):
            raise CapabilityError("this run has no user; pass user_id=...")
        return f"user:{user_id}"

    def _chat_scope(self, call: CallRequest) -> str:
        chat_id = call.kwargs.get("chat_id", self.chat_id)
        if not is_int(chat_id):
            raise CapabilityError("this run has no chat; pass chat_id=...")
        return f"chat:{chat_id}"

    def _get(self, scope_of: Callable[[CallRequest], str]) -> Handler:
        async def get(call: CallRequest) -> JSON:
            """``getProperty(name, default=None)``."""
            scope, name = scope_of(call), _name(call)
            default = call.args[1] if len(call.args) > 1 else call.kwargs.get("default")
            value = await self.tx.read(self.store, self.bot.id, scope, name)
            return default if value is MISSING else value  # type: ignore[return-value]

        return get

    def _set(self, scope_of: Callable[[CallRequest], str]) -> Handler:
        async def set_(call: CallRequest) -> JSON:
            """``setProperty(name, value, if_version=None)``; with if_version, True if set."""
            scope = scope_of(call)
            if len(call.args) < 2 and "value" not in call.kwargs:
                raise CapabilityError("setProperty needs a name and a value")
            name = _name(call)
            value = call.args[1] if len(call.args) > 1 else call.kwargs.get("value")
            size = len(json.dumps(value, ensure_ascii=False).encode())
            limit = self.bot.definition.config.properties.max_value_bytes
            if size > limit:
                raise CapabilityError(f"property {name!r} is {size} bytes; the limit is {limit}")
            if "if_version" in call.kwargs:
                wanted = call.kwargs["if_version"]
                if not is_int(wanted) or wanted < 0:
                    raise CapabilityError("if_version must be a version: a whole number, 0 or more")
                seen = await self.tx.versioned(self.store, self.bot.id, scope, name)
                if seen.version != wanted:
                    return False
                self.tx.write(PropertyWrite(scope, name, value))
                return True
            self.tx.write(PropertyWrite(scope, name, value))
            return None

        return set_

    def _delete(self, scope_of: Callable[[CallRequest], str]) -> Handler:
        async def delete(call: CallRequest) -> JSON:
            """``deleteProperty(name)``."""
            scope, name = scope_of(call), _name(call)
            self.tx.write(PropertyWrite(scope, name, delete=True))
            return None

        return delete

    def _inc(self, scope_of: Callable[[CallRequest], str]) -> Handler:
        async def inc(call: CallRequest) -> JSON:
            """``incProperty(name, by=1)``: add at commit, never a conflict."""
            scope, name = scope_of(call), _name(call)
            by = call.args[1] if len(call.args) > 1 else call.kwargs.get("by", 1)
            if not (type(by) is int or type(by) is float) or not math.isfinite(by):
                raise CapabilityError("incProperty: by must be a number")
            self.tx.write(PropertyWrite(scope, name, add=by))
            return None

        return inc

    def _version(self, scope_of: Callable[[CallRequest], str]) -> Handler:
        async def version(call: CallRequest) -> JSON:
            """``getPropertyVersion(name)``: the stored version, 0 when not set."""
            scope, name = scope_of(call), _name(call)
            return (await self.tx.versioned(self.store, self.bot.id, scope, name)).version

        return version

    def _names(self, scope_of: Callable[[CallRequest], str]) -> Handler:
        async def names(call: CallRequest) -> JSON:
            """``getPropertyNames(prefix="", after=None, limit=100)``: one page of names."""
            scope = scope_of(call)
            prefix = call.args[0] if call.args else call.kwargs.get("prefix", "")
            after = call.kwargs.get("after")
            limit = call.kwargs.get("limit", 100)
            if type(prefix) is not str or (after is not None and type(after) is not str):
                raise CapabilityError("getPropertyNames: prefix and after must be text")
            if not is_int(limit) or not 1 <= limit <= MAX_NAMES_PAGE:
                raise CapabilityError(f"getPropertyNames: limit must be 1 to {MAX_NAMES_PAGE}")
            found = await self.store.property_names(
                self.bot.id, scope, prefix=prefix, after=after or "", limit=limit + 1
            )
            page: list[JSON] = list(found[:limit])
            return {"names": page, "next": found[limit - 1] if len(found) > limit else None}

        return names


def _name(call: CallRequest) -> str:
    name = call.args[0] if call.args else call.kwargs.get("name")
    if type(name) is not str or not 1 <= len(name) <= 128:
        raise CapabilityError("a property name must be text of 1 to 128 characters")
    return name


__all__ = ["MAX_NAMES_PAGE", "Properties"]
