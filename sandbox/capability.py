"""Host capabilities: named async functions a script calls as plain functions.

A capability is registered per run under a name: ``"inspect"`` (a global function),
``"User.getProperty"`` (a method of the ``User`` namespace) or ``"Api.*"`` (every attribute of
the ``Api`` namespace). Arguments and results cross the process boundary as JSON data, so the
script and the host never share an object. A handler raises
:class:`sandbox.errors.CapabilityError` to fail the call with an exception the script can catch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass

from sandbox.compiler import Script
from sandbox.errors import WaitExhausted
from sandbox.jsontypes import JSON


@dataclass(frozen=True, slots=True)
class CallRequest:
    """One call of a capability by a script: the full name (``"Api.sendMessage"``) and data."""

    name: str
    args: tuple[JSON, ...]
    kwargs: dict[str, JSON]

    @property
    def method(self) -> str:
        """The part after the namespace (``"sendMessage"`` for ``"Api.sendMessage"``)."""
        return self.name.rpartition(".")[2]


@dataclass(frozen=True, slots=True)
class RunInPlace:
    """A handler's answer meaning "run this script now, inside the calling script".

    The script runs in the same worker, under the same limits (its CPU, output and calls count
    toward the caller's), with its own ``globals`` and ``capabilities``. Its top-level
    ``return`` value is what the caller's capability call returns, and an exception it raises
    propagates into the caller. This is how ``Bot.runCommand`` nests commands.
    """

    script: Script
    globals: Mapping[str, JSON]
    capabilities: Mapping[str, Handler]
    exceptions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Response:
    """A handler's answer the script sees as a read-only response object, not as a dict.

    The script gets ``status``, ``ok`` (200 to 299), ``headers`` (a dict of lower-case names),
    ``text`` and ``url`` as attributes, and ``json()``, which parses ``text`` in the worker,
    under the run's limits. Only this plain data crosses to the worker: never a host object.
    """

    status: int
    headers: dict[str, str]
    text: str
    url: str

    def fields(self) -> dict[str, JSON]:
        """The response as the plain data sent to the worker."""
        return {
            "status": self.status,
            "headers": dict(self.headers),
            "text": self.text,
            "url": self.url,
        }


Handler = Callable[[CallRequest], Awaitable["JSON | RunInPlace | Response"]]
"""An async function serving a capability: returns JSON data, :class:`RunInPlace` or
:class:`Response`."""

Capabilities = Mapping[str, Handler]
"""The capabilities offered to one run, by name."""


def find_handler(capabilities: Capabilities, name: str) -> Handler | None:
    """Return the handler for a called name: an exact name first, then its namespace's ``*``."""
    handler = capabilities.get(name)
    if handler is None and "." in name:
        handler = capabilities.get(name.partition(".")[0] + ".*")
    return handler


@dataclass(slots=True)
class WaitBudget:
    """The paced waits of one run: time a capability holds a call back for an outside rate limit.

    Such waits do not count against the run's ``wall_seconds``: :meth:`sleep` pushes the run's
    deadline back by the time it sleeps. They count against ``wait_seconds`` instead; a wait
    that would pass it raises :class:`sandbox.errors.WaitExhausted` before sleeping, and the run
    ends with ``limit_exceeded``. A handler finds the budget of the run it serves with
    :func:`wait_budget`.
    """

    remaining: float
    extend: Callable[[float], None]
    waited: float = 0.0

    async def sleep(
        self, seconds: float, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    ) -> None:
        """Sleep ``seconds`` outside the wall clock, or raise WaitExhausted if it cannot fit."""
        if seconds <= 0:
            return
        if seconds > self.remaining:
            raise WaitExhausted(
                f"a paced wait of {seconds:.1f} s would pass this run's wait_seconds "
                f"({self.remaining:.1f} s left)"
            )
        self.remaining -= seconds
        self.waited += seconds
        self.extend(seconds)
        await sleep(seconds)


_BUDGET: ContextVar[WaitBudget | None] = ContextVar("sandbox_wait_budget", default=None)


def wait_budget() -> WaitBudget | None:
    """The paced-wait budget of the run whose call is being served (None outside a run)."""
    return _BUDGET.get()


def serving(budget: WaitBudget | None) -> object:
    """Make ``budget`` the one :func:`wait_budget` returns; returns a token for :func:`served`."""
    return _BUDGET.set(budget)


def served(token: object) -> None:
    """Undo :func:`serving`."""
    _BUDGET.reset(token)  # type: ignore[arg-type]
