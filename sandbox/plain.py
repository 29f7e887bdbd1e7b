"""Turn what a script hands out into plain JSON data, without asking the script's objects anything.

Guarantees: :func:`to_plain` returns a value built only of exact ``dict`` (with exact ``str``
keys), ``list``, ``str``, ``int``, ``float`` (finite), ``bool`` and ``None`` (a
:class:`~sandbox.files.File`, exactly, becomes its plain ``{"$file": ...}`` form). It decides by
``type(x) is ...``, never by ``isinstance``, and reads a subclass of a container or a scalar
through the *base* type's own slots (``dict.items(x)``, ``str.__str__(x)``), so a method a
script overrode (``items``, ``keys``, ``get``, ``startswith``...) is never called. It runs in the
worker, inside the run's limits, so a hostile value costs its own run's budget and no one else's.

Not guaranteed: that the value is small. The caller checks the encoded size.
"""

from __future__ import annotations

import math
from typing import Any, Final

from sandbox.files import File

MAX_VALUE_DEPTH: Final = 32
"""How deep a value that leaves a script may nest (lists and dicts)."""
MAX_CONTAINERS: Final = 10_000
"""How many lists and dicts one value that leaves a script may hold (``[[]] * 10**6`` is a
megabyte of JSON but tens of megabytes of objects for whoever parses it)."""


class NotPlain(TypeError):
    """A value that cannot leave a script as JSON data; the message names where it is."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path: list[str] = []


def to_plain(value: object, *, where: str = "value") -> Any:
    """Return a plain-JSON copy of ``value`` or raise :class:`NotPlain` naming the bad part."""
    try:
        return _plain(value, 0, [MAX_CONTAINERS])
    except NotPlain as exc:
        spot = where + "".join(reversed(exc.path))
        raise NotPlain(f"{spot} {exc.reason}") from None


_SCALARS: Final = frozenset({bool, str, int, type(None)})


def _plain(value: object, depth: int, budget: list[int]) -> Any:
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is float:
        return _finite(value)  # type: ignore[arg-type]
    items = _contents(value, kind)
    if items is None:
        return _scalar(value, kind)
    if depth >= MAX_VALUE_DEPTH:
        raise NotPlain(f"nests deeper than {MAX_VALUE_DEPTH} levels")
    budget[0] -= 1
    if budget[0] < 0:
        raise NotPlain(f"holds more than {MAX_CONTAINERS} lists and dicts")
    scalars = _SCALARS  # a local: this loop runs for every capability call
    if type(items) is dict:
        plain: dict[str, Any] = {}
        for key, item in dict.items(items):
            name = key if type(key) is str else _key(key)
            if type(item) in scalars:
                plain[name] = item
                continue
            try:
                plain[name] = _plain(item, depth + 1, budget)
            except NotPlain as exc:
                exc.path.append(f"[{name!r}]")
                raise
        return plain
    out: list[Any] = []
    for index, item in enumerate(items):
        if type(item) in scalars:
            out.append(item)
            continue
        try:
            out.append(_plain(item, depth + 1, budget))
        except NotPlain as exc:
            exc.path.append(f"[{index}]")
            raise
    return out


def _contents(value: Any, kind: type) -> dict[Any, Any] | list[Any] | tuple[Any, ...] | None:
    """A container's items, read through the base type's own slots; ``None`` if no container."""
    if kind is dict or kind is list or kind is tuple:
        return value  # type: ignore[no-any-return]
    if issubclass(kind, dict):
        return dict(dict.items(value))
    if issubclass(kind, list):
        return list.copy(value)
    if issubclass(kind, tuple):
        return list(tuple.__iter__(value))
    return None


def _scalar(value: Any, kind: type) -> Any:
    """A subclass of ``str``, ``int`` or ``float`` as its exact base value; a File's plain form."""
    if kind is File:
        return value.plain()
    if issubclass(kind, str):
        return str.__str__(value)
    if issubclass(kind, int):
        return int.__int__(value)
    if issubclass(kind, float):
        return _finite(float.__float__(value))
    raise NotPlain(
        f"is a {kind.__name__!s}; only str, int, float, bool, None, list and dict "
        "(with str keys) can leave a script"
    )


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise NotPlain(f"is {value!r}, which JSON cannot hold")
    return value


def _key(key: object) -> str:
    """A dict key as JSON writes it: strings as they are, numbers and literals spelled out."""
    kind = type(key)
    if kind is str:
        return key  # type: ignore[return-value]
    if key is None:
        return "null"
    if kind is bool:
        return "true" if key else "false"
    if issubclass(kind, str):
        return str.__str__(key)
    if issubclass(kind, int):
        return int.__repr__(int.__int__(key))  # type: ignore[arg-type]
    if issubclass(kind, float):
        return float.__repr__(_finite(float.__float__(key)))  # type: ignore[arg-type]
    raise NotPlain(f"has a key of type {kind.__name__!s}; JSON keys are strings")
