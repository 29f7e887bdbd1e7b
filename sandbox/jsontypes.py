"""The data that may cross the process boundary: its type, and exact-type predicates for it."""

from __future__ import annotations

from typing import TypeAlias, TypeGuard

JSON: TypeAlias = "bool | int | float | str | list[JSON] | dict[str, JSON] | None"
"""A JSON-compatible value: what crosses between the host and a worker."""


def is_int(value: object) -> TypeGuard[int]:
    """True for an ``int`` that is not a ``bool`` (exactly ``int``: JSON data has no subclasses)."""
    return type(value) is int


def is_number(value: object) -> TypeGuard[int | float]:
    """True for an ``int`` or ``float``, never a ``bool``."""
    return type(value) is int or type(value) is float
