"""What a run returns: a frozen :class:`RunResult` describing how the script ended."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sandbox.jsontypes import JSON


class Status(enum.StrEnum):
    """How a run ended."""

    OK = "ok"
    SCRIPT_ERROR = "script_error"
    COMPILE_ERROR = "compile_error"
    LIMIT_EXCEEDED = "limit_exceeded"
    CRASHED = "crashed"


@dataclass(frozen=True, slots=True)
class Frame:
    """One line of a script traceback, from the author's file only."""

    line: int
    function: str
    text: str = ""
    file: str = ""


@dataclass(frozen=True, slots=True)
class ScriptFailure:
    """An error in the author's script: type, message and the author's line number."""

    type: str
    message: str
    line: int | None = None
    column: int | None = None
    traceback: tuple[Frame, ...] = ()
    file: str | None = None
    """The file of ``line`` when it is not the script run (a script module: ``lib/quiz.py``)."""

    def as_dict(self) -> dict[str, JSON]:
        """The failure as JSON-compatible data (the CLI's --json and the run log)."""
        return {
            "type": self.type,
            "message": self.message,
            "line": self.line,
            "column": self.column,
            "file": self.file,
            "traceback": [
                {"file": f.file, "line": f.line, "function": f.function, "text": f.text}
                for f in self.traceback
            ],
        }

    def describe(self) -> str:
        """Return ``'line 3: ZeroDivisionError: division by zero'`` style text."""
        where = f"line {self.line}: " if self.line is not None else ""
        if self.file is not None:
            where = f"{self.file}:{self.line}: " if self.line is not None else f"{self.file}: "
        return f"{where}{self.type}: {self.message}"


@dataclass(frozen=True, slots=True)
class LimitBreach:
    """The limit a run broke, and its value."""

    limit: str
    value: float | int

    def describe(self) -> str:
        """Return ``'cpu_seconds limit of 1.0 exceeded'`` style text."""
        return f"{self.limit} limit of {self.value} exceeded"


@dataclass(frozen=True, slots=True)
class CapabilityCall:
    """One capability call a script made, as the host saw it."""

    name: str
    args: tuple[JSON, ...]
    kwargs: dict[str, JSON]
    ok: bool
    seconds: float
    error: str | None = None
    line: int | None = None
    """The script line that made a deferred call (answered after the script), if known."""


@dataclass(frozen=True, slots=True)
class RunResult:
    """Everything the host learns from one run."""

    status: Status
    output: str = ""
    error: ScriptFailure | None = None
    breach: LimitBreach | None = None
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0
    waited_seconds: float = 0.0
    """Paced waits (not counted in the wall-clock limit; see ``Limits.wait_seconds``)."""
    calls: tuple[CapabilityCall, ...] = ()
    returned: bool = False
    value: JSON = None
    worker_pid: int | None = None
    """The process that ran the script (each worker serves one tenant for life)."""

    @property
    def ok(self) -> bool:
        """True when the script ran to the end (or returned) without an error."""
        return self.status is Status.OK

    def describe(self) -> str:
        """Return a one-line summary for logs and the command line."""
        if self.breach is not None:
            return f"{self.status}: {self.breach.describe()}"
        if self.error is not None:
            return f"{self.status}: {self.error.describe()}"
        return str(self.status)

    def as_dict(self) -> dict[str, JSON]:
        """Return the result as JSON-compatible data (``python -m sandbox run --json``)."""
        return {
            "status": str(self.status),
            "output": self.output,
            "error": None if self.error is None else self.error.as_dict(),
            "breach": None
            if self.breach is None
            else {"limit": self.breach.limit, "value": self.breach.value},
            "cpu_seconds": round(self.cpu_seconds, 6),
            "wall_seconds": round(self.wall_seconds, 6),
            "waited_seconds": round(self.waited_seconds, 6),
            "calls": [
                {
                    "name": c.name,
                    "args": list(c.args),
                    "kwargs": c.kwargs,
                    "ok": c.ok,
                    "seconds": round(c.seconds, 6),
                    "error": c.error,
                }
                for c in self.calls
            ],
            "returned": self.returned,
            "value": self.value,
        }
