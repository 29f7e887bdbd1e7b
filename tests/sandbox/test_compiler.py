"""Compiling scripts: errors as data with the author's line numbers, and the cache."""

from __future__ import annotations

import ast
import gc

import pytest

from sandbox import ScriptCache, compile_script
from sandbox.compiler import MAX_SOURCE_BYTES


def test_a_valid_script_compiles_to_code():
    """A plain script compiles, has code, and no issues."""
    script = compile_script("x = 1\nprint(x)\n")
    assert script.ok
    assert script.code
    assert script.issues == ()
    assert script.failure() is None


def test_a_syntax_error_reports_line_and_column():
    """A syntax error comes back as data naming its line and column."""
    script = compile_script("x = 1\ny = (\n")
    assert not script.ok
    issue = script.issues[0]
    assert issue.kind == "SyntaxError"
    assert issue.line == 2
    assert issue.column == 5


def test_line_numbers_match_the_authors_file_below_a_header():
    """With first_line, errors point at the line of the file, not of the extracted script."""
    script = compile_script("ok = 1\nbad = (\n", first_line=11)
    assert script.issues[0].line == 12


@pytest.mark.parametrize(
    ("source", "line", "fragment"),
    [
        ("x = 1\ny = x.__class__\n", 2, '"__class__" is an invalid attribute name'),
        ("_secret = 1\n", 1, '"_secret" is an invalid variable name'),
        ("exec('1')\n", 1, "Exec calls are not allowed"),
        ("eval('1')\n", 1, "Eval calls are not allowed"),
        ("async def f():\n    pass\n", 1, "AsyncFunctionDef statements are not allowed"),
        ("try:\n    pass\nexcept* ValueError:\n    pass\n", 1, "TryStar statements"),
        ("g = (i for i in [])\nf = g.gi_frame\n", 2, '"gi_frame" is a restricted name'),
        ("from os import *\n", 1, '"*" imports are not allowed'),
        ("class A(metaclass=type):\n    pass\n", 1, '"metaclass" is not allowed'),
    ],
    ids=[
        "dunder-attribute",
        "underscore-name",
        "exec",
        "eval",
        "async",
        "except-star",
        "generator-frame",
        "star-import",
        "metaclass",
    ],
)
def test_policy_violations_are_reported_with_their_line(source, line, fragment):
    """Each policy violation is a PolicyError issue at the offending line."""
    script = compile_script(source)
    assert not script.ok
    assert any(
        i.kind == "PolicyError" and i.line == line and fragment in i.message for i in script.issues
    ), script.issues


def test_every_violation_is_reported_not_just_the_first():
    """A script with several violations lists all of them."""
    script = compile_script("a = x.__dict__\nb = y.__class__\n")
    assert [i.line for i in script.issues] == [1, 2]
    failure = script.failure()
    assert failure is not None
    assert "line 2" in failure.message


def test_top_level_return_compiles_but_return_in_a_class_body_does_not():
    """`return` at module level ends the script; elsewhere outside functions it is an error."""
    assert compile_script("if True:\n    return 5\n").ok
    bad = compile_script("class A:\n    return 1\n")
    assert not bad.ok
    assert bad.issues[0].kind == "SyntaxError"


def test_oversized_scripts_are_refused():
    """A script over the size limit gets a clear error instead of being parsed."""
    script = compile_script("#" * (MAX_SOURCE_BYTES + 1))
    assert not script.ok
    assert "larger than" in script.issues[0].message


def test_deeply_nested_source_is_an_error_not_a_crash():
    """Pathological nesting is reported as an issue; the host does not crash."""
    script = compile_script("x = " + "(" * 5000 + ")" * 5000 + "\n")
    assert not script.ok


def test_null_bytes_are_an_error():
    """Source with a NUL byte is refused cleanly."""
    assert not compile_script("x = 1\x00\n").ok


def test_the_cache_compiles_each_source_once():
    """The same source hits the cache; a change or a different offset is a miss."""
    cache = ScriptCache(max_entries=2)
    first = cache.compile("x = 1\n")
    assert cache.compile("x = 1\n") is first
    cache.compile("x = 2\n")
    cache.compile("x = 1\n", first_line=3)
    assert (cache.hits, cache.misses) == (1, 3)
    assert len(cache) == 2


def test_keys_differ_by_source_filename_and_offset():
    """Cache keys are content hashes that also cover the filename and line offset."""
    keys = {
        compile_script("x = 1\n").key,
        compile_script("x = 2\n").key,
        compile_script("x = 1\n", filename="a.py").key,
        compile_script("x = 1\n", first_line=2).key,
    }
    assert len(keys) == 4


def test_a_collection_that_parses_during_a_parse_does_not_break_compiling():
    """CPython 3.11's AST counter survives a gc callback that parses (python/cpython#106905)."""

    def nested(depth: int) -> None:
        if depth:
            nested(depth - 1)
        else:
            ast.parse("y = 2")

    def callback(phase: str, info: dict) -> None:
        if phase == "start":
            nested(30)

    source = "\n".join(f"x{i} = [{i}, {{'a': ({i},)}}]" for i in range(2000))
    threshold = gc.get_threshold()
    gc.callbacks.append(callback)
    gc.set_threshold(50)
    try:
        script = compile_script(source)
    finally:
        gc.callbacks.remove(callback)
        gc.set_threshold(*threshold)
    assert script.ok, script.failure()
