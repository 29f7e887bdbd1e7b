"""The Telegram Bot API spec packaged with botbox, and checks of calls against it.

The data comes from ``bot_api.json`` next to this module (regenerate it with
``scripts/gen_bot_api.py``). Everything here is pure: no I/O beyond reading that packaged file.
"""

from __future__ import annotations

import difflib
import functools
import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from types import MappingProxyType, UnionType
from typing import Final, Literal

logger = logging.getLogger(__name__)

SPEC_RESOURCE: Final = "bot_api.json"

ProblemKind = Literal["unknown_method", "missing_field", "unknown_field", "wrong_type"]

_ARRAY_PREFIX: Final = "Array of "
_INT_RE: Final = re.compile(r"[+-]?\d+")
_FLOAT_RE: Final = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_BOOL_STRINGS: Final = frozenset({"true", "false", "1", "0"})
_SUGGEST_CUTOFF: Final = 0.6
_MAX_UNION_DEPTH: Final = 12


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of a Bot API method or type: its name, allowed types and whether required."""

    name: str
    types: tuple[str, ...]
    required: bool


@dataclass(frozen=True, slots=True)
class MethodSpec:
    """One Bot API method: its fields by name and its possible return types."""

    name: str
    fields: Mapping[str, FieldSpec]
    returns: tuple[str, ...]

    @property
    def required_fields(self) -> tuple[str, ...]:
        """Names of the fields a call must include, sorted."""
        return tuple(sorted(name for name, spec in self.fields.items() if spec.required))


@dataclass(frozen=True, slots=True)
class TypeSpec:
    """One Bot API type: its fields by name, and its subtypes when it is a union."""

    name: str
    fields: Mapping[str, FieldSpec]
    subtypes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CallProblem:
    """One reason a Bot API call (or object) does not match the spec, phrased for an author."""

    kind: ProblemKind
    field: str | None
    message: str


_EMPTY_FIELDS: Final[Mapping[str, FieldSpec]] = MappingProxyType({})


class UnknownMethodError(KeyError):
    """Raised by :meth:`BotApiSpec.method` for a name that is not a Bot API method."""

    def __init__(self, name: str, suggestion: str | None) -> None:
        """Remember the unknown name and the closest known method, if any."""
        super().__init__(name)
        self.name = name
        self.suggestion = suggestion

    def __str__(self) -> str:
        """Describe the unknown method with its suggestion."""
        return _unknown_method_message(self.name, self.suggestion)


@dataclass(frozen=True, slots=True)
class BotApiSpec:
    """The Bot API methods and types, with lookups, suggestions and call checks."""

    version: str
    methods: Mapping[str, MethodSpec]
    types: Mapping[str, TypeSpec]
    _method_by_lower: Mapping[str, str] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> BotApiSpec:
        """Build a spec from the compact document written by ``scripts/gen_bot_api.py``."""
        methods_in = _as_mapping(data.get("methods"), "methods")
        types_in = _as_mapping(data.get("types"), "types")
        methods: dict[str, MethodSpec] = {}
        for name, raw in methods_in.items():
            entry = _as_mapping(raw, f"methods.{name}")
            methods[name] = MethodSpec(
                name=name,
                fields=_parse_fields(entry.get("fields", {}), f"methods.{name}"),
                returns=_as_str_tuple(entry.get("returns", []), f"methods.{name}.returns"),
            )
        types: dict[str, TypeSpec] = {}
        for name, raw in types_in.items():
            entry = _as_mapping(raw, f"types.{name}")
            types[name] = TypeSpec(
                name=name,
                fields=_parse_fields(entry.get("fields", {}), f"types.{name}"),
                subtypes=_as_str_tuple(entry.get("subtypes", []), f"types.{name}.subtypes"),
            )
        return cls(
            version=str(data.get("version", "unknown")),
            methods=MappingProxyType(dict(sorted(methods.items()))),
            types=MappingProxyType(dict(sorted(types.items()))),
            _method_by_lower=MappingProxyType({name.lower(): name for name in methods}),
        )

    def update_kinds(self) -> tuple[str, ...]:
        """Every kind of Update (``message``, ``chat_member``...), the fields of ``Update``."""
        fields = self.types["Update"].fields if "Update" in self.types else {}
        return tuple(sorted(name for name in fields if name != "update_id"))

    def has_method(self, name: str) -> bool:
        """Whether ``name`` is exactly (case-sensitively) a Bot API method."""
        return name in self.methods

    def canonical_name(self, name: str) -> str | None:
        """The method's canonical spelling, matching case-insensitively as Telegram does."""
        return self._method_by_lower.get(name.lower())

    def method(self, name: str) -> MethodSpec:
        """The spec of method ``name``; raises :class:`UnknownMethodError` if there is none."""
        try:
            return self.methods[name]
        except KeyError:
            raise UnknownMethodError(name, self.suggest(name)) from None

    def has_type(self, name: str) -> bool:
        """Whether ``name`` is a Bot API type."""
        return name in self.types

    def type_spec(self, name: str) -> TypeSpec:
        """The spec of type ``name``; raises KeyError if there is none."""
        return self.types[name]

    def suggest(self, name: str) -> str | None:
        """The method name closest to ``name`` (case-insensitive match first), or None."""
        return _closest(name, self.methods)

    def check_call(self, name: str, params: Mapping[str, object]) -> tuple[CallProblem, ...]:
        """Every way the call ``name(**params)`` breaks the spec; empty if it looks valid.

        A parameter whose value is None counts as absent. Type checks are coarse and lenient:
        they only reject values that cannot be right for any of the field's types.
        """
        spec = self.methods.get(name)
        if spec is None:
            message = _unknown_method_message(name, self.suggest(name))
            return (CallProblem("unknown_method", None, message),)
        problems: list[CallProblem] = []
        for required in spec.required_fields:
            if params.get(required) is None:
                problems.append(
                    CallProblem(
                        "missing_field",
                        required,
                        f"{name} is missing the required field {required!r}",
                    )
                )
        for key, value in params.items():
            field_spec = spec.fields.get(key)
            if field_spec is None:
                hint = _closest(key, spec.fields)
                message = f"{name} has no field {key!r}"
                if hint is not None:
                    message += f"; did you mean {hint!r}?"
                elif spec.fields:
                    message += f"; its fields are {', '.join(sorted(spec.fields))}"
                else:
                    message += "; it takes no parameters"
                problems.append(CallProblem("unknown_field", key, message))
            elif value is not None and not self._accepts_any(field_spec.types, value):
                problems.append(
                    CallProblem(
                        "wrong_type",
                        key,
                        f"{name} field {key!r} must be {_describe_types(field_spec.types)}, "
                        f"but got {_describe_value(value)}",
                    )
                )
        return tuple(problems)

    def check_object(self, type_name: str, value: object) -> tuple[CallProblem, ...]:
        """Every way ``value`` (decoded JSON) breaks the spec of type ``type_name``.

        Unlike :meth:`check_call` this is strict about nested objects: each key must be a field
        of its type and required fields must be present. Union types accept any subtype.
        Problem fields are dotted paths such as ``message.chat.id``.
        """
        return tuple(self._object_problems(type_name, value, "", 0))

    def _object_problems(
        self, type_name: str, value: object, path: str, depth: int
    ) -> list[CallProblem]:
        """Problems of ``value`` as an instance of ``type_name`` at ``path``."""
        type_spec = self.types.get(type_name)
        if type_spec is None:
            return []
        if type_spec.subtypes and depth < _MAX_UNION_DEPTH:
            return self._best_of(
                self._typed_problems(subtype, value, path, depth + 1)
                for subtype in type_spec.subtypes
            )
        if not type_spec.fields:
            return []
        if not isinstance(value, Mapping):
            label = path or type_name
            message = f"{label} must be a {type_name} object, but got {_describe_value(value)}"
            return [CallProblem("wrong_type", path or None, message)]
        return self._field_problems(type_spec, value, path, depth)

    def _field_problems(
        self, type_spec: TypeSpec, value: Mapping[object, object], path: str, depth: int
    ) -> list[CallProblem]:
        """Missing, unknown and mistyped fields of a mapping that should be ``type_spec``."""
        label = f"{path} ({type_spec.name})" if path else type_spec.name
        problems = [
            CallProblem(
                "missing_field",
                _join(path, name),
                f"{label} is missing the required field {name!r}",
            )
            for name, field_spec in type_spec.fields.items()
            if field_spec.required and value.get(name) is None
        ]
        for key, item in value.items():
            where = _join(path, str(key))
            known = type_spec.fields.get(str(key))
            if known is None:
                hint = _closest(str(key), type_spec.fields)
                message = f"{type_spec.name} has no field {key!r}"
                if hint is not None:
                    message += f"; did you mean {hint!r}?"
                problems.append(CallProblem("unknown_field", where, message))
            elif item is not None:
                problems.extend(
                    self._best_of(
                        self._typed_problems(type_str, item, where, depth)
                        for type_str in known.types
                    )
                )
        return problems

    @staticmethod
    def _best_of(alternatives: Iterable[list[CallProblem]]) -> list[CallProblem]:
        """No problems if any alternative has none, else the alternative with the fewest."""
        best: list[CallProblem] | None = None
        for problems in alternatives:
            if not problems:
                return []
            if best is None or len(problems) < len(best):
                best = problems
        return best or []

    def _typed_problems(
        self, type_str: str, value: object, path: str, depth: int
    ) -> list[CallProblem]:
        """Problems of ``value`` against one type string such as ``Array of PhotoSize``."""
        if type_str.startswith(_ARRAY_PREFIX):
            inner = type_str.removeprefix(_ARRAY_PREFIX)
            if not isinstance(value, list | tuple):
                message = f"{path} must be {type_str}, but got {_describe_value(value)}"
                return [CallProblem("wrong_type", path, message)]
            problems: list[CallProblem] = []
            for index, item in enumerate(value):
                problems.extend(self._typed_problems(inner, item, f"{path}[{index}]", depth))
            return problems
        type_spec = self.types.get(type_str)
        if type_spec is not None and (type_spec.fields or type_spec.subtypes):
            return self._object_problems(type_str, value, path, depth)
        if not self._accepts(type_str, value):
            message = f"{path} must be {type_str}, but got {_describe_value(value)}"
            return [CallProblem("wrong_type", path, message)]
        return []

    def _accepts_any(self, types: Iterable[str], value: object) -> bool:
        """Whether ``value`` could be valid for at least one of ``types``."""
        return any(self._accepts(type_str, value) for type_str in types)

    def _accepts(self, type_str: str, value: object) -> bool:
        """Coarse, lenient check of one value against one Bot API type string."""
        kind = _kind(value)
        if kind == "other":
            return True  # an object the client knows how to serialise; give it the benefit
        if type_str.startswith(_ARRAY_PREFIX):
            if isinstance(value, list | tuple):
                inner = type_str.removeprefix(_ARRAY_PREFIX)
                return all(self._accepts(inner, item) for item in value)
            return kind == "str"  # already JSON-serialised
        scalar = _SCALAR_CHECKS.get(type_str)
        if scalar is not None:
            return scalar(value, kind)
        if type_str == "InputFile":
            return kind in {"str", "bytes"}
        type_spec = self.types.get(type_str)
        if type_spec is None:
            return True  # a type this spec does not know: do not guess
        if kind in {"object", "str"}:
            return True  # a mapping, or one already JSON-serialised
        # Some unions (RichText) also admit scalars or arrays.
        return any(self._accepts(subtype, value) for subtype in type_spec.subtypes)


def _check_integer(value: object, kind: str) -> bool:
    """Integer accepts ints and decimal integer strings (Telegram parses those)."""
    return kind == "int" or (kind == "str" and _INT_RE.fullmatch(str(value).strip()) is not None)


def _check_float(value: object, kind: str) -> bool:
    """Float accepts ints, floats and numeric strings."""
    if kind in {"int", "float"}:
        return True
    return kind == "str" and _FLOAT_RE.fullmatch(str(value).strip()) is not None


def _check_string(value: object, kind: str) -> bool:
    """String accepts strings and numbers (Telegram stringifies numbers)."""
    return kind in {"str", "int", "float"} or isinstance(value, str)


def _check_boolean(value: object, kind: str) -> bool:
    """Boolean accepts bools, 0/1 and the strings true/false/1/0."""
    if kind == "bool":
        return True
    if kind == "int":
        return value in {0, 1}
    return kind == "str" and str(value).strip().lower() in _BOOL_STRINGS


_KINDS: Final[tuple[tuple[type | UnionType, str], ...]] = (
    (type(None), "null"),
    (bool, "bool"),
    (int, "int"),
    (float, "float"),
    (str, "str"),
    (bytes | bytearray | memoryview, "bytes"),
    (Mapping, "object"),
    (list | tuple, "array"),
)

_SCALAR_CHECKS: Final = MappingProxyType(
    {
        "Integer": _check_integer,
        "Float": _check_float,
        "String": _check_string,
        "Boolean": _check_boolean,
    }
)


def _kind(value: object) -> str:
    """The coarse JSON-ish kind of a Python value (bool before int: bool is an int)."""
    for kind_type, kind in _KINDS:
        if isinstance(value, kind_type):
            return kind
    return "other"


_KIND_NAMES: Final = MappingProxyType(
    {
        "null": "null",
        "bool": "a boolean",
        "int": "an integer",
        "float": "a float",
        "str": "a string",
        "bytes": "bytes",
        "object": "an object",
        "array": "a list",
    }
)


def _describe_value(value: object) -> str:
    """A short description of a value for error messages, e.g. ``a string 'abc'``."""
    kind = _kind(value)
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    name = _KIND_NAMES.get(kind, f"a {type(value).__name__}")
    return name if kind == "null" else f"{name} {text}"


def _describe_types(types: tuple[str, ...]) -> str:
    """Join type names for a message: ``Integer or String``."""
    if len(types) <= 1:
        return types[0] if types else "a value"
    return f"{', '.join(types[:-1])} or {types[-1]}"


def _join(path: str, name: str) -> str:
    """Append a field name to a dotted path."""
    return f"{path}.{name}" if path else name


def _unknown_method_message(name: str, suggestion: str | None) -> str:
    """The author-facing sentence for an unknown method."""
    message = f"unknown Bot API method {name!r}"
    if suggestion is not None:
        message += f"; did you mean {suggestion!r}?"
    return message


def _closest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to ``name``: a case-insensitive match first, then difflib."""
    by_lower: dict[str, str] = {}
    for candidate in candidates:
        by_lower.setdefault(candidate.lower(), candidate)
    lowered = name.lower()
    if lowered in by_lower:
        return by_lower[lowered]
    matches = difflib.get_close_matches(lowered, list(by_lower), n=1, cutoff=_SUGGEST_CUTOFF)
    return by_lower[matches[0]] if matches else None


def _as_mapping(value: object, where: str) -> Mapping[str, object]:
    """``value`` as a string-keyed mapping, or a TypeError naming ``where``."""
    if not isinstance(value, Mapping):
        raise TypeError(f"bot API spec: {where} must be an object")
    return value


def _as_str_tuple(value: object, where: str) -> tuple[str, ...]:
    """``value`` as a tuple of strings, or a TypeError naming ``where``."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise TypeError(f"bot API spec: {where} must be a list of strings")
    return tuple(value)


def _parse_fields(value: object, where: str) -> Mapping[str, FieldSpec]:
    """Parse ``{name: {"types": [...], "required": bool}}`` into FieldSpecs."""
    raw = _as_mapping(value, f"{where}.fields")
    if not raw:
        return _EMPTY_FIELDS
    fields: dict[str, FieldSpec] = {}
    for name, entry in raw.items():
        entry_map = _as_mapping(entry, f"{where}.fields.{name}")
        fields[name] = FieldSpec(
            name=name,
            types=_as_str_tuple(entry_map.get("types", []), f"{where}.fields.{name}.types"),
            required=bool(entry_map.get("required", False)),
        )
    return MappingProxyType(fields)


@functools.cache
def load_spec() -> BotApiSpec:
    """The Bot API spec packaged with botbox (parsed once, then cached)."""
    package = __name__.rpartition(".")[0]
    text = resources.files(package).joinpath(SPEC_RESOURCE).read_text(encoding="utf-8")
    spec = BotApiSpec.from_json(json.loads(text))
    logger.debug(
        "loaded %s: %d methods, %d types", spec.version, len(spec.methods), len(spec.types)
    )
    return spec
