"""The modules scripts may import, each handed over as a facade with an explicit list of names.

Guarantees: ``import x`` in a script never yields the real module, only a new facade module
exposing the names listed in :data:`ALLOWED_MODULES` (``uuid.os`` does not exist for a script).
Module state a script could change for the next run (``random``'s seed,
``decimal``'s context) is per run: ``random`` is bound to a fresh generator each run and
``decimal`` offers ``localcontext`` but not ``getcontext``/``setcontext``.
"""

from __future__ import annotations

import importlib
import random
import types
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, Final, Protocol

RANDOM_NAMES: Final = (
    "random",
    "randint",
    "randrange",
    "choice",
    "choices",
    "shuffle",
    "sample",
    "uniform",
    "gauss",
    "normalvariate",
    "triangular",
    "betavariate",
    "expovariate",
    "seed",
    "getrandbits",
    "randbytes",
)

ALLOWED_MODULES: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "json": ("dumps", "loads", "JSONDecodeError"),
        "math": (
            "pi",
            "e",
            "tau",
            "inf",
            "nan",
            "ceil",
            "floor",
            "trunc",
            "fabs",
            "sqrt",
            "isqrt",
            "exp",
            "log",
            "log2",
            "log10",
            "log1p",
            "pow",
            "sin",
            "cos",
            "tan",
            "asin",
            "acos",
            "atan",
            "atan2",
            "sinh",
            "cosh",
            "tanh",
            "hypot",
            "degrees",
            "radians",
            "factorial",
            "gcd",
            "lcm",
            "comb",
            "perm",
            "prod",
            "fsum",
            "isclose",
            "isfinite",
            "isinf",
            "isnan",
            "copysign",
            "fmod",
            "modf",
            "frexp",
            "ldexp",
            "dist",
            "remainder",
        ),
        "random": RANDOM_NAMES,
        "re": (
            "compile",
            "match",
            "fullmatch",
            "search",
            "sub",
            "subn",
            "split",
            "findall",
            "finditer",
            "escape",
            "error",
            "IGNORECASE",
            "I",
            "MULTILINE",
            "M",
            "DOTALL",
            "S",
            "VERBOSE",
            "X",
            "ASCII",
            "A",
            "UNICODE",
            "U",
        ),
        "datetime": ("date", "datetime", "time", "timedelta", "timezone", "MINYEAR", "MAXYEAR"),
        "time": (
            "time",
            "time_ns",
            "monotonic",
            "monotonic_ns",
            "perf_counter",
            "perf_counter_ns",
            "process_time",
            "gmtime",
            "localtime",
            "mktime",
            "strftime",
            "strptime",
            "asctime",
            "ctime",
            "struct_time",
            "timezone",
            "altzone",
            "daylight",
            "tzname",
        ),
        "decimal": (
            "Decimal",
            "Context",
            "localcontext",
            "InvalidOperation",
            "DivisionByZero",
            "Overflow",
            "ROUND_UP",
            "ROUND_DOWN",
            "ROUND_CEILING",
            "ROUND_FLOOR",
            "ROUND_HALF_UP",
            "ROUND_HALF_DOWN",
            "ROUND_HALF_EVEN",
            "ROUND_05UP",
            "DecimalException",
        ),
        "statistics": (
            "mean",
            "fmean",
            "geometric_mean",
            "harmonic_mean",
            "median",
            "median_low",
            "median_high",
            "median_grouped",
            "mode",
            "multimode",
            "quantiles",
            "pstdev",
            "pvariance",
            "stdev",
            "variance",
            "StatisticsError",
        ),
        "collections": ("Counter", "OrderedDict", "defaultdict", "deque", "namedtuple", "ChainMap"),
        "itertools": (
            "accumulate",
            "chain",
            "combinations",
            "combinations_with_replacement",
            "compress",
            "count",
            "cycle",
            "dropwhile",
            "filterfalse",
            "groupby",
            "islice",
            "pairwise",
            "permutations",
            "product",
            "repeat",
            "starmap",
            "takewhile",
            "tee",
            "zip_longest",
        ),
        "functools": ("reduce", "partial", "cmp_to_key", "lru_cache", "cache", "total_ordering"),
        "string": (
            "ascii_letters",
            "ascii_lowercase",
            "ascii_uppercase",
            "digits",
            "hexdigits",
            "octdigits",
            "punctuation",
            "printable",
            "whitespace",
            "capwords",
            "Template",
        ),
        "textwrap": ("wrap", "fill", "shorten", "dedent", "indent"),
        "html": ("escape", "unescape"),
        "urllib.parse": (
            "quote",
            "quote_plus",
            "unquote",
            "unquote_plus",
            "urlencode",
            "urlparse",
            "urlsplit",
            "urlunparse",
            "urlunsplit",
            "urljoin",
            "urldefrag",
            "parse_qs",
            "parse_qsl",
            "quote_from_bytes",
            "unquote_to_bytes",
        ),
        "base64": (
            "b64encode",
            "b64decode",
            "urlsafe_b64encode",
            "urlsafe_b64decode",
            "b32encode",
            "b32decode",
            "b16encode",
            "b16decode",
            "standard_b64encode",
            "standard_b64decode",
            "a85encode",
            "a85decode",
            "b85encode",
            "b85decode",
        ),
        "hashlib": (
            "md5",
            "sha1",
            "sha224",
            "sha256",
            "sha384",
            "sha512",
            "sha3_256",
            "sha3_512",
            "blake2b",
            "blake2s",
            "new",
            "algorithms_guaranteed",
            "pbkdf2_hmac",
        ),
        "hmac": ("new", "compare_digest", "digest"),
        "uuid": (
            "UUID",
            "uuid3",
            "uuid4",
            "uuid5",
            "NAMESPACE_DNS",
            "NAMESPACE_URL",
            "NAMESPACE_OID",
            "NAMESPACE_X500",
        ),
    }
)
"""Module name -> the names a script may use from it. Nothing else is importable."""


INTERNAL_IMPORTS: Final[Mapping[str, Callable[[], object]]] = MappingProxyType(
    {
        "_strptime": lambda: importlib.import_module("_strptime"),
    }
)
"""Helpers that allowed modules import lazily from C, through the caller's ``__import__``."""


ModuleFacade = types.ModuleType
"""What a script gets for ``import x``: a *new* module object holding only the allowed names.

It is never the real module (``uuid.os`` does not exist in it). Reads are ordinary module
attribute reads, which CPython makes fast (a class with ``__getattr__`` made every
``math.sqrt`` cost half a microsecond). Scripts cannot change it: attribute writes go through
the ``_write_`` guard, which refuses modules, and a missing name gets an error listing what the
module offers (a PEP 562 ``__getattr__`` in the facade, called only on a miss).
"""


def _frozen(value: Any) -> Any:
    """An immutable copy of a mutable module constant, so no run can change it for the next."""
    if isinstance(value, set):
        return frozenset(value)
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, dict):
        return MappingProxyType(dict(value))
    return value


def make_facade(name: str, members: Mapping[str, Any]) -> ModuleFacade:
    """Build a facade module named ``name`` holding exactly ``members``."""
    # Not the real name: `from json import decoder` falls back to sys.modules["json.decoder"]
    # when the facade has no `decoder`; under this name that lookup can never succeed.
    facade = types.ModuleType(f"<sandboxed {name}>")
    facade.__dict__.update({key: _frozen(value) for key, value in members.items()})
    offered = ", ".join(sorted(members))

    def missing(attr: str) -> Any:
        raise AttributeError(
            f"module {name!r} offers no {attr!r} in scripts (it offers: {offered})"
        )

    facade.__dict__["__getattr__"] = missing
    return facade


def load_facades() -> dict[str, ModuleFacade]:
    """Import every allowed module once and return its facade (``random`` is per run)."""
    facades: dict[str, ModuleFacade] = {}
    for name, members in ALLOWED_MODULES.items():
        if name == "random":
            continue
        module = importlib.import_module(name)
        facades[name] = make_facade(name, {m: getattr(module, m) for m in members})
    facades["urllib"] = make_facade("urllib", {"parse": facades["urllib.parse"]})
    return facades


def random_facade() -> ModuleFacade:
    """Return a ``random`` facade bound to a fresh generator, so runs cannot share a seed."""
    generator = random.Random()  # noqa: S311 - scripts get ordinary, not cryptographic, randomness
    return make_facade("random", {m: getattr(generator, m) for m in RANDOM_NAMES})


class ScriptModuleLoader(Protocol):
    """The script modules of one run (the worker's :class:`sandbox.worker.ScriptModules`)."""

    def find(self, name: str) -> ModuleFacade | None:
        """The module or package ``name`` (imported now if need be), or None if not one."""

    def names(self) -> list[str]:
        """Every importable script module name."""

    def is_package(self, name: str) -> bool:
        """True if ``name`` is a package of script modules (``lib``)."""


def check_module_names(names: Iterable[str]) -> None:
    """Refuse script module names a script could not import, or that would shadow something.

    A name is dotted identifiers, none starting with ``_``; it may not be (or sit under) an
    allowed standard module, nor be the package of another script module (``lib`` and
    ``lib.quiz`` together), so every package is a plain namespace.
    """
    chosen = frozenset(names)
    if chosen in _CHECKED_NAMES:
        return
    if len(chosen) > MAX_SCRIPT_MODULES:
        raise ValueError(f"a run may have at most {MAX_SCRIPT_MODULES} script modules")
    tops = _ALLOWED_TOPS
    for name in chosen:
        parts = name.split(".") if type(name) is str else [""]
        if not all(part.isidentifier() and not part.startswith("_") for part in parts):
            raise ValueError(f"script module name {name!r} must be dotted identifiers, no _")
        if parts[0] in tops:
            raise ValueError(f"script module {name!r} would shadow the module {parts[0]!r}")
        for end in range(1, len(parts)):
            if ".".join(parts[:end]) in chosen:
                raise ValueError(f"script module {name!r} sits under another script module")
    if len(_CHECKED_NAMES) >= MAX_CHECKED_NAMES:
        _CHECKED_NAMES.clear()
    _CHECKED_NAMES.add(chosen)


MAX_SCRIPT_MODULES: Final = 256
"""Script modules one run may have (a worker caches 512 code objects: the script and its
modules must fit at once)."""
_ALLOWED_TOPS: Final = frozenset(name.partition(".")[0] for name in ALLOWED_MODULES)
MAX_CHECKED_NAMES: Final = 1024
_CHECKED_NAMES: set[frozenset[str]] = set()
"""Tables of module names already found good (a bot's runs pass the same one each time)."""


def make_import(
    facades: Mapping[str, ModuleFacade],
    per_run: Mapping[str, Callable[[], ModuleFacade]],
    scripts: ScriptModuleLoader | None = None,
) -> Callable[..., ModuleFacade]:
    """Return the ``__import__`` a script sees: facades and this run's script modules only, a
    clear error for anything else."""
    cache: dict[str, ModuleFacade] = {}
    allowed = ", ".join(sorted(ALLOWED_MODULES))

    def lookup(name: str) -> ModuleFacade:
        if name in INTERNAL_IMPORTS:
            # C code of an allowed module importing its helper (datetime.strptime needs
            # _strptime); a script cannot ask for it: `_` names do not compile.
            return INTERNAL_IMPORTS[name]()  # type: ignore[return-value]
        if scripts is not None:
            found = scripts.find(name)
            if found is not None:
                return found
        if name in per_run:
            if name not in cache:
                cache[name] = per_run[name]()
            return cache[name]
        try:
            return facades[name]
        except KeyError:
            own = "" if scripts is None else ", ".join(scripts.names())
            extra = f"; this run's own modules: {own}" if own else ""
            raise ImportError(
                f"import of {name!r} is not allowed in scripts; allowed modules: {allowed}{extra}"
            ) from None

    def guarded_import(
        name: str,
        globals: object = None,
        locals: object = None,
        fromlist: tuple[str, ...] | None = (),
        level: int = 0,
    ) -> ModuleFacade:
        if level != 0:
            raise ImportError("relative imports are not allowed in scripts")
        if type(name) is not str:  # a str subclass could lie to `in` and `partition`
            raise ImportError("module name must be a str")
        target = lookup(name)
        if fromlist:
            if scripts is not None and type(fromlist) is tuple:
                for item in fromlist:  # `from lib import quiz` imports the module lib.quiz
                    if type(item) is not str or item == "*":
                        continue
                    if scripts.find(f"{name}.{item}") is None and scripts.is_package(name):
                        raise ImportError(
                            f"there is no module {name}.{item}; this run's own modules: "
                            + ", ".join(scripts.names())
                        )
            return target
        return lookup(name.partition(".")[0])

    return guarded_import
