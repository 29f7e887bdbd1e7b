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

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST | list[ast.stmt]:  # noqa: N802
        """Allow ``d[k] += v`` and ``obj.n += v`` (RestrictedPython refuses them), guarded.

        ``a[k] += v`` becomes ``t = a; u = k; _write_(t)[u] = _inplacevar_("+=", t[u], v)``:
        the target is evaluated once, read through the guards and written through ``_write_``,
        exactly as Python itself does get-item, in-place op, set-item.
        """
        if not isinstance(node.target, ast.Attribute | ast.Subscript):
            return super().visit_AugAssign(node)  # type: ignore[return-value]
        node = self.node_contents_visit(node)
        target = node.target
        assert isinstance(target, ast.Attribute | ast.Subscript)
        guarded = target.value
        if not (isinstance(guarded, ast.Call) and guarded.args):
            self.error(node, "unsupported augmented assignment target")
            return node
        holder = self.gen_tmp_name()
        statements: list[ast.stmt] = [ast.Assign([ast.Name(holder, ast.Store())], guarded.args[0])]
        write = ast.Call(ast.Name("_write_", ast.Load()), [ast.Name(holder, ast.Load())], [])
        new_target: ast.Attribute | ast.Subscript
        if isinstance(target, ast.Subscript):
            key = self.gen_tmp_name()
            statements.append(ast.Assign([ast.Name(key, ast.Store())], target.slice))
            read: ast.expr = ast.Call(
                ast.Name("_getitem_", ast.Load()),
                [ast.Name(holder, ast.Load()), ast.Name(key, ast.Load())],
                [],
            )
            new_target = ast.Subscript(write, ast.Name(key, ast.Load()), ast.Store())
        else:
            read = ast.Call(
                ast.Name("_getattr_", ast.Load()),
                [ast.Name(holder, ast.Load()), ast.Constant(target.attr)],
                [],
            )
            new_target = ast.Attribute(write, target.attr, ast.Store())
        operator = next(str(k) for k, v in AUGMENTED.items() if isinstance(node.op, v))
        value = ast.Call(
            ast.Name("_inplacevar_", ast.Load()), [ast.Constant(operator), read, node.value], []
        )
        statements.append(ast.Assign([new_target], value))
        for statement in statements:
            ast.copy_location(statement, node)
            ast.fix_missing_locations(statement)
        return statements


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


EXCEPTION_BLOCKED: Final = frozenset(
    {"obj", "exceptions", "with_traceback", "split", "subgroup", "derive"}
)
"""Attributes refused on exceptions the script did not define: they hand out other objects
(``AttributeError.obj`` is the object whose lookup failed, CVE-2024-47532's way in)."""

RUNTIME_BLOCKED: Final = frozenset(
    {"gi_running", "f_lineno", "tb_lasti", "cr_running", "mro", "func_globals", "format_field"}
)
"""Attributes refused at run time on any object, beyond RestrictedPython's compile-time list."""

GUARDED_ATTRIBUTES: Final = (
    EXCEPTION_BLOCKED | RUNTIME_BLOCKED | frozenset({"format", "format_map"})
)
"""Attribute names whose reads always go through ``_getattr_`` (it decides by the object).

Every other name that passed the policy (no ``_`` prefix, not a frame or code attribute) is
read natively: the guard would only call ``getattr`` for it. This keeps Python's fast attribute
and method lookups (the guard call cost scripts 3-7x on attribute-heavy loops). Keep this set in
step with the object-dependent checks in :func:`sandbox.guards.make_guards`.
"""


class Unguard(ast.NodeTransformer):
    """Undo guard calls that cannot refuse anything, after the policy has checked the tree.

    ``_getattr_(x, "name")`` becomes ``x.name`` unless ``name`` is in :data:`GUARDED_ATTRIBUTES`;
    ``_getitem_(x, k)`` becomes ``x[k]`` (the guard is a plain subscript); and
    ``n = _inplacevar_("+=", n, v)`` becomes ``n += v`` (the guard only applies the operator).
    Only calls the policy generated are touched: scripts cannot name ``_`` globals.
    """

    def visit_Call(self, node: ast.Call) -> ast.AST:
        """Inline ``_getattr_`` and ``_getitem_`` calls that only forward."""
        self.generic_visit(node)
        func = node.func
        if not isinstance(func, ast.Name) or node.keywords or len(node.args) != 2:
            return node
        target, key = node.args
        if (
            func.id == "_getattr_"
            and isinstance(key, ast.Constant)
            and isinstance(key.value, str)
            and not key.value.startswith("_")
            and key.value not in GUARDED_ATTRIBUTES
        ):
            return ast.copy_location(ast.Attribute(target, key.value, ast.Load()), node)
        if func.id == "_getitem_":
            return ast.copy_location(ast.Subscript(target, key, ast.Load()), node)
        return node

    def visit_Assign(self, node: ast.Assign) -> ast.AST:
        """Turn the policy's ``n = _inplacevar_(op, n, v)`` back into ``n op= v``."""
        self.generic_visit(node)
        value = node.value
        if (
            len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(value, ast.Call)
            and isinstance(value.func, ast.Name)
            and value.func.id == "_inplacevar_"
            and len(value.args) == 3
            and isinstance(value.args[0], ast.Constant)
            and value.args[0].value in AUGMENTED
        ):
            target = ast.Name(node.targets[0].id, ast.Store())
            op = AUGMENTED[value.args[0].value]()
            return ast.copy_location(ast.AugAssign(target, op, value.args[2]), node)
        return node


AUGMENTED: Final[dict[object, type[ast.operator]]] = {
    "+=": ast.Add,
    "-=": ast.Sub,
    "*=": ast.Mult,
    "/=": ast.Div,
    "//=": ast.FloorDiv,
    "%=": ast.Mod,
    "**=": ast.Pow,
    "<<=": ast.LShift,
    ">>=": ast.RShift,
    "&=": ast.BitAnd,
    "|=": ast.BitOr,
    "^=": ast.BitXor,
    "@=": ast.MatMult,
}


def transform(tree: ast.Module) -> tuple[ast.Module, list[CompileIssue]]:
    """Apply the policy to a parsed module; return the new tree and any issues found."""
    policy = SandboxPolicy()
    new_tree = policy.visit(tree)
    if policy.issues:
        return tree, policy.issues
    new_tree = TopLevelReturn().visit(new_tree)
    new_tree = Unguard().visit(new_tree)
    ast.fix_missing_locations(new_tree)
    return new_tree, []
