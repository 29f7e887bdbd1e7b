"""Run-time guards the compiled code calls, and the builtins a script sees (worker side).

Guarantees (with the policy): attribute reads refuse names starting with ``_``, frame and code
attributes, and exception internals (``AttributeError.obj`` and the like); ``str.format`` and
``format_map`` accept only simple fields, so a format string cannot walk attributes; attribute and
item writes are allowed only on plain containers and on instances of classes the script defined
itself; output is capped; every builtin handed over is on an explicit list.

Not guaranteed: that an escape is impossible. If one is found, the worker's process isolation
and resource limits still hold (``sandbox.isolation``).
"""

from __future__ import annotations

import builtins
import collections
import decimal
import functools
import operator
import re
import string
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Final

from RestrictedPython.Guards import guarded_iter_unpack_sequence, guarded_unpack_sequence
from RestrictedPython.transformer import INSPECT_ATTRIBUTES

from sandbox.policy import EXCEPTION_BLOCKED, RUNTIME_BLOCKED

BLOCKED_ATTRIBUTES: Final = INSPECT_ATTRIBUTES | RUNTIME_BLOCKED

WRITABLE_TYPES: Final = (dict, list, bytearray, collections.deque, decimal.Context)
"""Plain containers, and decimal contexts (``with localcontext() as ctx: ctx.prec = 4``; the
worker installs a fresh context before every run, so a change cannot outlive its run)."""

SAFE_BUILTIN_NAMES: Final = frozenset(
    {
        "abs",
        "all",
        "any",
        "ascii",
        "bin",
        "bool",
        "bytearray",
        "bytes",
        "callable",
        "chr",
        "classmethod",
        "complex",
        "dict",
        "divmod",
        "enumerate",
        "filter",
        "float",
        "format",
        "frozenset",
        "hash",
        "hex",
        "id",
        "int",
        "isinstance",
        "issubclass",
        "iter",
        "len",
        "list",
        "map",
        "max",
        "min",
        "next",
        "object",
        "oct",
        "ord",
        "pow",
        "property",
        "range",
        "repr",
        "reversed",
        "round",
        "set",
        "slice",
        "sorted",
        "staticmethod",
        "str",
        "sum",
        "tuple",
        "zip",
        "None",
        "True",
        "False",
        "Ellipsis",
        "NotImplemented",
    }
)

SAFE_EXCEPTION_NAMES: Final = frozenset(
    {
        "ArithmeticError",
        "AssertionError",
        "AttributeError",
        "BaseException",
        "BufferError",
        "EOFError",
        "Exception",
        "FloatingPointError",
        "ImportError",
        "IndexError",
        "KeyError",
        "LookupError",
        "MemoryError",
        "NameError",
        "NotImplementedError",
        "OverflowError",
        "RecursionError",
        "ReferenceError",
        "RuntimeError",
        "StopIteration",
        "SyntaxError",
        "TypeError",
        "UnicodeDecodeError",
        "UnicodeEncodeError",
        "UnicodeError",
        "ValueError",
        "ZeroDivisionError",
        "TimeoutError",
        "ConnectionError",
        "Warning",
        "UserWarning",
        "DeprecationWarning",
    }
)

_SIMPLE_FIELD: Final = re.compile(r"(?:\d+|[^\W\d]\w*)?")
_MISSING: Final = object()

_INPLACE: Final[Mapping[str, Callable[[Any, Any], Any]]] = {
    "+=": operator.iadd,
    "-=": operator.isub,
    "*=": operator.imul,
    "/=": operator.itruediv,
    "//=": operator.ifloordiv,
    "%=": operator.imod,
    "**=": operator.ipow,
    "<<=": operator.ilshift,
    ">>=": operator.irshift,
    "&=": operator.iand,
    "|=": operator.ior,
    "^=": operator.ixor,
    "@=": operator.imatmul,
}


class LimitExceeded(BaseException):
    """Raised inside a script when it breaks a limit; a subclass of BaseException on purpose."""

    def __init__(self, limit: str) -> None:
        super().__init__(f"{limit} limit exceeded")
        self.limit = limit


class ScriptReturn(BaseException):
    """Raised by a top-level ``return`` to end the script early."""

    def __init__(self, value: object) -> None:
        super().__init__()
        self.value = value


class RunState:
    """Mutable state of one run: its output, the classes it defined, what it broke."""

    def __init__(self, *, output_limit: int) -> None:
        self.output_limit = output_limit
        self.output: list[str] = []
        self.output_size = 0
        self.script_classes: list[type] = []
        self.script_class_ids: set[int] = set()
        self.breach: str | None = None
        self.calls = 0
        self.closed = False
        self.deferred: list[Any] = []  # protocol.Deferred, in call order

    def write(self, text: str) -> None:
        """Append printed text, ending the run when the output limit is crossed."""
        size = len(text.encode("utf-8", "surrogatepass"))
        if self.output_size + size > self.output_limit:
            room = self.output_limit - self.output_size
            if room > 0:
                self.output.append(
                    text.encode("utf-8", "surrogatepass")[:room].decode("utf-8", "ignore")
                )
            self.output_size = self.output_limit
            self.exceed("output_bytes")
        self.output.append(text)
        self.output_size += size

    def exceed(self, limit: str) -> None:
        """Record the first limit broken and raise :class:`LimitExceeded` into the script."""
        if self.breach is None:
            self.breach = limit
        raise LimitExceeded(limit)

    def add_script_class(self, cls: type) -> None:
        """Remember ``cls`` as the script's own (kept alive, so its id is never reused)."""
        self.script_classes.append(cls)
        self.script_class_ids.add(id(cls))

    def is_script_object(self, obj: object) -> bool:
        """True for classes the script defined and for their instances.

        Decided by identity (``id``), never by ``==`` or ``hash``, which a class could define.
        """
        kind = type(obj)
        if issubclass(kind, type):
            return id(obj) in self.script_class_ids
        return id(kind) in self.script_class_ids


def exact_name(name: object, what: str = "attribute name") -> str:
    """Return ``name`` if it is exactly a ``str``; refuse anything else, subclasses included.

    A ``str`` subclass can override ``startswith``, ``__eq__`` or ``__hash__`` and lie to any
    test made through it, so no test is made through it.
    """
    if type(name) is not str:
        raise TypeError(f"{what} must be a str, not {type(name).__name__!s}")
    return name


def _safe_vformat(template: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str:
    return _SafeFormatter().vformat(template, args, kwargs)


class _SafeFormatter(string.Formatter):
    """A formatter that refuses ``{0.attr}`` and ``{0[key]}`` fields (attribute walks)."""

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> Any:
        if not _SIMPLE_FIELD.fullmatch(field_name):
            raise ValueError(
                f"format field {field_name!r} is not allowed: use plain names or positions, "
                "and compute attributes or items before formatting"
            )
        return super().get_field(field_name, args, kwargs)


def _exact_str(value: object) -> str:
    """The characters of a ``str`` (or ``str`` subclass) as a plain ``str``, read by ``str``'s own
    slot; anything else is refused as ``str.format`` itself would."""
    if type(value) is str:
        return value
    if issubclass(type(value), str):
        return str.__str__(value)
    raise TypeError(f"format() needs a str template, not {type(value).__name__!s}")


def _format_method(obj: Any, name: str) -> Callable[..., str]:
    if issubclass(type(obj), type):  # str.format(template, ...) called on the class itself

        def unbound(template: object, /, *args: Any, **kwargs: Any) -> str:
            if name == "format_map":
                if len(args) != 1 or kwargs:
                    raise TypeError("format_map() takes exactly one mapping")
                return _safe_vformat(_exact_str(template), (), args[0])
            return _safe_vformat(_exact_str(template), args, kwargs)

        return unbound
    template = _exact_str(obj)

    def bound(*args: Any, **kwargs: Any) -> str:
        if name == "format_map":
            if len(args) != 1 or kwargs:
                raise TypeError("format_map() takes exactly one mapping")
            return _safe_vformat(template, (), args[0])
        return _safe_vformat(template, args, kwargs)

    return bound


class PrintCollector:
    """The ``print`` a script sees: writes to the run's capped output, never to a file."""

    __slots__ = ("parts", "state")

    def __init__(self, state: RunState, _getattr_: object = None) -> None:
        self.state = state
        self.parts: list[str] = []

    def _call_print(
        self,
        *objects: object,
        sep: str | None = " ",
        end: str | None = "\n",
        file: object = None,
        flush: bool = False,
    ) -> None:
        if file is not None:
            raise TypeError("print(file=...) is not supported in scripts")
        text = (" " if sep is None else str(sep)).join(str(o) for o in objects)
        text += "\n" if end is None else str(end)
        self.parts.append(text)
        self.state.write(text)

    def __call__(self) -> str:
        return "".join(self.parts)


def make_guards(state: RunState) -> dict[str, Any]:
    """Return the guard functions RestrictedPython's compiled code expects, bound to ``state``."""

    def guarded_getattr(obj: Any, name: Any, default: Any = _MISSING) -> Any:
        """``obj.name`` for names the compiler could not clear, and ``getattr()``."""
        name = exact_name(name)
        if name.startswith("_") or name in BLOCKED_ATTRIBUTES:
            raise AttributeError(f"access to attribute {name!r} is not allowed")
        kind = type(obj)
        if (
            name in EXCEPTION_BLOCKED
            and issubclass(kind, BaseException)
            and not state.is_script_object(obj)
        ):
            raise AttributeError(f"access to attribute {name!r} of exceptions is not allowed")
        if name in ("format", "format_map") and (
            issubclass(kind, str) or (issubclass(kind, type) and issubclass(obj, str))
        ):
            return _format_method(obj, name)
        try:
            return getattr(obj, name)
        except AttributeError as exc:
            if default is not _MISSING:
                return default
            # A new exception: the original's .obj and .name point at objects we never hand out.
            raise AttributeError(str(exc)) from None

    def guarded_hasattr(obj: Any, name: Any) -> bool:
        """``hasattr()`` through the same checks as ``getattr()``."""
        try:
            guarded_getattr(obj, name)
        except AttributeError:
            return False
        return True

    def guarded_write(obj: Any) -> Any:
        """Let writes through only to plain containers and the script's own objects."""
        if issubclass(type(obj), WRITABLE_TYPES) or state.is_script_object(obj):
            return obj
        raise TypeError(f"cannot change attributes or items of {type(obj).__name__!r} objects")

    def guarded_setattr(obj: Any, name: Any, value: Any) -> None:
        """``setattr()`` through the write guard, never for ``_`` names."""
        name = exact_name(name)
        if name.startswith("_"):
            raise AttributeError(f"setting attribute {name!r} is not allowed")
        setattr(guarded_write(obj), name, value)

    def guarded_getitem(obj: Any, key: Any) -> Any:
        """``obj[key]``: the policy emits it; the compiler then inlines it as a plain subscript."""
        return obj[key]

    def guarded_getiter(obj: Iterable[Any]) -> Iterator[Any]:
        """``iter(obj)`` for loops and comprehensions."""
        return iter(obj)

    def inplace(op: str, target: Any, value: Any) -> Any:
        """Apply an augmented operator (``+=``...) for item and attribute targets."""
        return _INPLACE[op](target, value)

    def apply(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call with ``*args``/``**kwargs`` (RestrictedPython routes such calls here)."""
        return func(*args, **kwargs)

    def make_class(name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> type:
        """Build a class for a script and remember it as the script's own (writable)."""
        cls = type(name, bases, namespace)
        state.add_script_class(cls)
        return cls

    def script_return(value: object = None) -> None:
        """End the script: what a top-level ``return`` compiles to."""
        raise ScriptReturn(value)

    return {
        "_getattr_": guarded_getattr,
        "_getitem_": guarded_getitem,
        "_write_": guarded_write,
        "_getiter_": guarded_getiter,
        "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
        "_unpack_sequence_": guarded_unpack_sequence,
        "_inplacevar_": inplace,
        "_apply_": apply,
        "_print_": functools.partial(PrintCollector, state),
        "__metaclass__": make_class,
        "__script_return__": script_return,
        "getattr": guarded_getattr,
        "hasattr": guarded_hasattr,
        "setattr": guarded_setattr,
    }


def base_builtins() -> dict[str, Any]:
    """Return a fresh dict of the plain builtins scripts may use (no guards bound yet)."""
    names = SAFE_BUILTIN_NAMES | SAFE_EXCEPTION_NAMES
    table = {name: getattr(builtins, name) for name in names}
    table["__build_class__"] = builtins.__build_class__
    return table
