"""Compile author scripts under the policy; errors come back as data, code is cached by hash.

Compilation happens in the host (it is pure and never runs the script); workers receive the
marshalled code object and keep their own cache keyed by the same hash.
"""

from __future__ import annotations

import ast
import gc
import hashlib
import marshal
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

from sandbox.policy import CompileIssue, transform
from sandbox.result import ScriptFailure

MAX_SOURCE_BYTES: Final = 256 * 1024
DEFAULT_FILENAME: Final = "<script>"


@dataclass(frozen=True, slots=True)
class Script:
    """A compiled script (or the reasons it did not compile), ready to run in any worker."""

    key: str
    filename: str
    code: bytes | None
    issues: tuple[CompileIssue, ...]
    lines: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when the script compiled and can run."""
        return self.code is not None

    def failure(self) -> ScriptFailure | None:
        """Return the compile errors as a :class:`ScriptFailure` (``None`` if it compiled)."""
        if not self.issues:
            return None
        first = self.issues[0]
        rest = "".join(f"; {issue.describe()}" for issue in self.issues[1:])
        return ScriptFailure(first.kind, first.message + rest, first.line, first.column)

    def line_text(self, line: int) -> str:
        """Return the stripped text of one line of the author's file (1-based), or ``''``."""
        if 1 <= line <= len(self.lines):
            return self.lines[line - 1].strip()
        return ""


def script_key(source: str, filename: str, first_line: int) -> str:
    """Return the cache key of a script: a SHA-256 over its name, offset and source."""
    digest = hashlib.sha256()
    for part in (filename, str(first_line), source):
        encoded = part.encode("utf-8", "surrogatepass")
        digest.update(len(encoded).to_bytes(8, "big"))
        digest.update(encoded)
    return digest.hexdigest()


def compile_script(source: str, *, filename: str = DEFAULT_FILENAME, first_line: int = 1) -> Script:
    """Compile ``source`` under the sandbox policy.

    ``first_line`` is the line of the author's file where ``source`` starts (scripts may sit
    below a metadata header), so every line number reported matches the author's file.
    """
    key = script_key(source, filename, first_line)
    padded_lines = ("",) * (first_line - 1) + tuple(source.splitlines())

    def failed(*issues: CompileIssue) -> Script:
        return Script(key, filename, None, issues, padded_lines)

    if first_line < 1:
        raise ValueError("first_line must be 1 or more")
    if len(source.encode("utf-8", "surrogatepass")) > MAX_SOURCE_BYTES:
        return failed(
            CompileIssue(f"script is larger than {MAX_SOURCE_BYTES} bytes", kind="SizeError")
        )
    padded = "\n" * (first_line - 1) + source
    try:
        tree = _parse(padded, filename)
    except SyntaxError as exc:
        return failed(_syntax_issue(exc))
    except (ValueError, MemoryError, RecursionError) as exc:
        return failed(CompileIssue(f"cannot parse the script: {_plain(exc)}"))
    try:
        new_tree, issues = transform(tree)
    except RecursionError:
        return failed(CompileIssue("the script is nested too deeply"))
    if issues:
        return failed(*issues)
    try:
        code = compile(new_tree, filename, "exec", dont_inherit=True)
    except SyntaxError as exc:
        return failed(_syntax_issue(exc))
    except (ValueError, MemoryError, RecursionError) as exc:
        return failed(CompileIssue(f"cannot compile the script: {_plain(exc)}"))
    return Script(key, filename, marshal.dumps(code), (), padded_lines)


def _parse(source: str, filename: str) -> ast.Module:
    """``ast.parse`` with the garbage collector held off while it builds the tree.

    CPython 3.11 counts the AST constructor's recursion in one counter per interpreter. If a
    collection during the build runs Python code (a finalizer, a ``gc`` callback) that parses
    too, or lets another thread parse, the counter comes back off and ``ast.parse`` raises
    ``SystemError: AST constructor recursion depth mismatch`` for a good script
    (python/cpython#106905; seen here under a loaded test run). Without a collection, the
    build runs no Python code, so nothing can interleave.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        return ast.parse(source, filename, "exec")
    finally:
        if enabled:
            gc.enable()


def _syntax_issue(exc: SyntaxError) -> CompileIssue:
    return CompileIssue(exc.msg, exc.lineno, exc.offset, type(exc).__name__)


def _plain(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


class ScriptCache:
    """A bounded LRU of compiled scripts, so a script is compiled once and not per run."""

    def __init__(self, max_entries: int = 1024) -> None:
        self._max = max_entries
        self._entries: OrderedDict[str, Script] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def compile(
        self, source: str, *, filename: str = DEFAULT_FILENAME, first_line: int = 1
    ) -> Script:
        """Return the compiled script for ``source``, compiling it only on a cache miss."""
        key = script_key(source, filename, first_line)
        found = self._entries.get(key)
        if found is not None:
            self.hits += 1
            self._entries.move_to_end(key)
            return found
        self.misses += 1
        script = compile_script(source, filename=filename, first_line=first_line)
        self._entries[key] = script
        if len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return script

    def __len__(self) -> int:
        return len(self._entries)
