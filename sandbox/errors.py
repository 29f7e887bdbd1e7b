"""The sandbox's exception tree, raised to the host (never inside a script).

::

    SandboxError
    ├── Overloaded          the pool's queue is full; retry later (carries ``retry_after``)
    ├── PoolClosed          the pool was shut down, or was never started
    ├── WorkerStartError    a worker process could not be started or did not say it was ready
    ├── CapabilityError     raised by a host capability to fail the script's call cleanly
    ├── StopScript          raised by a host capability to end the script (as a top-level return)
    └── WaitExhausted       a paced wait would pass the run's ``wait_seconds`` (ends the run)

Problems with an author's script are never exceptions on the host side: they come back as data
in a :class:`sandbox.result.RunResult` (see :class:`sandbox.result.Status`).
"""

from __future__ import annotations

from collections.abc import Mapping

from sandbox.jsontypes import JSON


class SandboxError(Exception):
    """Base class of every error the sandbox raises to its host."""


class Overloaded(SandboxError):
    """The pool has no free worker and its waiting queue is full."""

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PoolClosed(SandboxError):
    """The pool is not running: it was closed or never started."""


class WorkerStartError(SandboxError):
    """A worker process failed to start or to report that it was ready."""


class CapabilityError(SandboxError):
    """Raised by a host capability handler; the script sees it as a catchable exception.

    ``kind`` names the exception class the script sees (for example ``"ApiError"``) and ``data``
    becomes read-only attributes on it (for example ``code`` and ``description``).
    """

    def __init__(
        self, message: str, *, kind: str = "CapabilityError", data: Mapping[str, JSON] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.data: dict[str, JSON] = dict(data or {})


class StopScript(SandboxError):
    """Raised by a host capability handler to end the calling script, like a ``return``.

    The run ends with status ok, ``returned`` true and ``value`` as given (``res.json(...)``
    sends a response and ends the script this way).
    """

    def __init__(self, value: JSON = None) -> None:
        super().__init__("the script was ended by the host")
        self.value = value


class WaitExhausted(SandboxError):
    """A capability's paced wait would take the run past its ``wait_seconds`` limit.

    Raised by :meth:`sandbox.capability.WaitBudget.sleep` before sleeping; the run ends with
    ``limit_exceeded`` (``wait_seconds``), like any other limit.
    """


class FileRefused(CapabilityError):
    """A file could not cross between worker and host: over this run's file budget
    (``status`` 413) or the server's bytes in flight (``status`` 503). A handler usually turns
    it into its own error kind (``ApiError``); unhandled, the script sees a CapabilityError."""

    def __init__(self, message: str, *, status: int = 413) -> None:
        super().__init__(message)
        self.status = status
