"""Per-run resource limits, one frozen value with sane defaults."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Final

from sandbox.jsontypes import is_number

KIB: Final = 1024
MIB: Final = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """What one run of a script may use. Breaking any limit ends the run with ``limit_exceeded``.

    ``wall_seconds`` includes the time spent waiting on capabilities (Telegram calls, storage),
    except *paced waits*: time a capability spends holding a call back to respect an outside
    rate limit (Telegram's flood limits), which counts against ``wait_seconds`` instead (see
    :class:`sandbox.capability.WaitBudget`).
    ``memory_bytes`` is added to the worker's own baseline address space.
    """

    cpu_seconds: float = 1.0
    wall_seconds: float = 10.0
    memory_bytes: int = 128 * MIB
    output_bytes: int = 64 * KIB
    capability_calls: int = 100
    recursion_depth: int = 200
    wait_seconds: float = 120.0

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if not is_number(value) or value <= 0:
                raise ValueError(f"limit {field.name} must be a positive number, not {value!r}")
        if self.cpu_seconds > self.wall_seconds:
            raise ValueError("limit cpu_seconds cannot be larger than wall_seconds")
        if self.recursion_depth > 5000:
            raise ValueError("limit recursion_depth cannot be above 5000 (the C stack is finite)")

    def as_dict(self) -> dict[str, float | int]:
        """Return the limits as a plain mapping (for the worker protocol and logs)."""
        return asdict(self)
