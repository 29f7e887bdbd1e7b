"""The compile-time policy: RestrictedPython's transformer, tightened, with errors as data.

Guarantees: a script that compiles under this policy reaches attributes only through the
``_getattr_`` guard, writes attributes and items only through ``_write_``, iterates only through
``_getiter_``, cannot name anything starting with ``_`` (so it cannot rebind the guards), cannot
use ``exec``/``eval``, ``async``/``await``, ``except*`` or ``nonlocal``, and cannot name the frame
and code attributes of generators, coroutines and tracebacks.

Not guaranteed here: anything at run time. The guards (``sandbox.guards``) and, above all, the
worker process's isolation and limits (``sandbox.isolation``) are what hold an attacker.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Final

from RestrictedPython.transformer import RestrictingNodeTransformer

RETURN_HOOK: Final = "__script_return__"
"""Global the compiled code calls for a top-level ``return``; scripts cannot name it."""


@dataclass(frozen=True, slots=True)
class CompileIssue:
    """One problem found while compiling a script, located in the author's file."""

    message: str
    line: int | None = None
    column: int | None = None
    kind: str = "PolicyError"

    def describe(self) -> str:
        """Return ``'line 3, column 5: message'`` style text."""
        if self.line is None:
            return self.message
        where = f"line {self.line}" + (f", column {self.column}" if self.column else "")
        return f"{where}: {self.message}"


class SandboxPolicy(RestrictingNodeTransformer):
    """RestrictedPython's transformer recording errors as :class:`CompileIssue` values."""

    def __init__(self) -> None:
        super().__init__()
        self.issues: list[CompileIssue] = []

    def error(self, node: ast.AST, info: str) -> None:
        """Record a policy violation with the node's line and column."""
        line = getattr(node, "lineno", None)
        col = getattr(node, "col_offset", None)
        self.issues.append(CompileIssue(info, line, None if col is None else col + 1))
        self.errors.append(info)  # keep the base class's bookkeeping consistent


class TopLevelReturn(ast.NodeTransformer):
    """Turn ``return`` at module level into a call of :data:`RETURN_HOOK`.

    Bot scripts are function bodies in spirit: ``return`` ends the script (and its value tells
    the host to stop a pipeline). Nested functions and classes keep their own ``return``.
    """

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        """Leave function bodies alone."""
        return node

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> ast.AST:
        """Leave function bodies alone (the policy refuses them anyway)."""
        return node

    def visit_Lambda(self, node: ast.Lambda) -> ast.AST:
        """Leave lambdas alone."""
        return node

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        """Leave class bodies alone."""
        return node

    def visit_Return(self, node: ast.Return) -> ast.AST:
        """Replace ``return value`` by ``__script_return__(value)``, which raises."""
        value = node.value if node.value is not None else ast.Constant(None)
        call = ast.Expr(ast.Call(ast.Name(RETURN_HOOK, ast.Load()), [value], []))
        return ast.copy_location(call, node)


def transform(tree: ast.Module) -> tuple[ast.Module, list[CompileIssue]]:
    """Apply the policy to a parsed module; return the new tree and any issues found."""
    policy = SandboxPolicy()
    new_tree = policy.visit(tree)
    if policy.issues:
        return tree, policy.issues
    new_tree = TopLevelReturn().visit(new_tree)
    ast.fix_missing_locations(new_tree)
    return new_tree, []
