"""Type aliases shared by the sandbox modules: the data that may cross the process boundary."""

from __future__ import annotations

from typing import TypeAlias

JSON: TypeAlias = "bool | int | float | str | list[JSON] | dict[str, JSON] | None"
"""A JSON-compatible value: what crosses between the host and a worker."""
