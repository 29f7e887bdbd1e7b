"""The guards, called directly with hostile arguments: names, objects and classes that lie.

A script cannot define dunder methods (names starting with ``_`` do not compile), but these tests
assume it found a way: every lying object below overrides the methods (dunder or not) a guard
could be tempted to call. The guards must decide by exact type and identity alone.
"""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from RestrictedPython.transformer import INSPECT_ATTRIBUTES

from sandbox.guards import BLOCKED_ATTRIBUTES, RunState, make_guards
from sandbox.policy import EXCEPTION_BLOCKED, GUARDED_ATTRIBUTES

TARGETS = (1, "text", [1], {"a": 1}, len, lambda: 0, ValueError("x"), object(), int, str)
DUNDERS = sorted(
    {name for target in TARGETS for name in dir(target) if name.startswith("_")}
    | {"__globals__", "__subclasses__", "__builtins__", "__code__", "__dict__", "__class__"}
)


def lying_str_classes() -> list[type]:
    """str subclasses that answer every question a guard might ask with a lie."""

    class Startswith(str):
        def startswith(self, *args, **kwargs):
            return False

    class Equal(str):
        def __eq__(self, other):
            return False

        def __hash__(self):
            return hash("harmless")

    class Contains(Startswith):
        def __contains__(self, item):
            return False

        def __len__(self):
            return 0

    class Pretends(Startswith):
        def __str__(self):
            return "harmless"

        def __repr__(self):
            return "'harmless'"

        def __getitem__(self, index):
            return "h"

    return [Startswith, Equal, Contains, Pretends]


LIARS = lying_str_classes()


def guards() -> tuple[RunState, dict]:
    state = RunState(output_limit=1000)
    return state, make_guards(state)


@settings(max_examples=300, deadline=None)
@given(
    target=st.sampled_from(TARGETS),
    name=st.sampled_from(DUNDERS),
    liar=st.sampled_from(LIARS),
)
def test_a_lying_name_never_reaches_an_attribute(target, name, liar):
    """getattr, hasattr and setattr refuse a str subclass name, whatever it claims to be."""
    _, table = guards()
    lying = liar(name)
    with pytest.raises(TypeError, match="must be a str"):
        table["getattr"](target, lying)
    with pytest.raises(TypeError, match="must be a str"):
        table["getattr"](target, lying, None)
    with pytest.raises(TypeError, match="must be a str"):
        table["hasattr"](target, lying)

    class Mine:
        pass

    state, table = guards()
    state.add_script_class(Mine)
    mine = Mine()
    with pytest.raises(TypeError, match="must be a str"):
        table["setattr"](mine, lying, {"x": 1})
    assert vars(mine) == {}


@settings(max_examples=500, deadline=None)
@given(
    target=st.sampled_from(TARGETS),
    name=st.one_of(
        st.sampled_from(DUNDERS + sorted(BLOCKED_ATTRIBUTES)),
        st.text(alphabet=string.ascii_letters + "_", min_size=1, max_size=12),
        st.lists(
            st.sampled_from(["_", "__", "class", "globals", "sub", "mro", "f_"]), min_size=1
        ).map("".join),
    ),
)
def test_an_exact_name_is_refused_exactly_when_it_is_private_or_blocked(target, name):
    """A plain name gets through only if it does not start with _ and is not on the block list."""
    _, table = guards()
    refused = name.startswith("_") or name in BLOCKED_ATTRIBUTES
    if isinstance(target, BaseException) and name in EXCEPTION_BLOCKED:
        refused = True
    if refused:
        with pytest.raises(AttributeError, match="not allowed"):
            table["getattr"](target, name)
        assert table["hasattr"](target, name) is False
        return
    expected = getattr(target, name, AttributeError)
    got = table["getattr"](target, name, AttributeError)
    if name in ("format", "format_map") and (target is str or type(target) is str):
        assert callable(got) and got != expected  # the safe formatter, not str's own
    else:
        assert got == expected


def test_a_class_that_equals_every_script_class_is_still_not_the_scripts():
    """Script-class membership is by identity: a metaclass lying in __eq__ and __hash__ fails."""
    state, table = guards()

    class Mine:
        pass

    state.add_script_class(Mine)

    class Liar(type):
        def __eq__(cls, other):
            return True

        def __hash__(cls):
            return hash(Mine)

    Foreign = Liar("Foreign", (), {})
    assert state.is_script_object(Mine) and state.is_script_object(Mine())
    assert not state.is_script_object(Foreign)
    assert not state.is_script_object(Foreign())
    with pytest.raises(TypeError, match="cannot change"):
        table["setattr"](Foreign, "x", 1)
    with pytest.raises(TypeError, match="cannot change"):
        table["_write_"](Foreign())


def test_an_object_claiming_to_be_a_dict_is_not_writable():
    """The write guard asks type(), not __class__: a lying __class__ gets no write access."""
    _, table = guards()

    class Claims:
        @property
        def __class__(self):
            return dict

    claims = Claims()
    assert isinstance(claims, dict)  # the lie works on isinstance...
    with pytest.raises(TypeError, match="cannot change"):
        table["_write_"](claims)  # ...but not on the guard


@settings(max_examples=200, deadline=None)
@given(
    field=st.sampled_from(["0.__class__", "a.__globals__", "0[0]", "a.real", "0.__mro__"]),
    liar=st.sampled_from(LIARS),
    via=st.sampled_from(["bound", "unbound", "format_map"]),
)
def test_a_format_template_is_read_by_its_characters_not_its_methods(field, liar, via):
    """A lying template str subclass still has its real fields checked, and walks are refused."""
    _, table = guards()
    getattr_ = table["getattr"]
    template = liar("{" + field + "}")
    with pytest.raises(ValueError, match="is not allowed"):
        if via == "bound":
            getattr_(template, "format")(1, a=1)
        elif via == "unbound":
            getattr_(str, "format")(template, 1, a=1)
        else:
            getattr_(template, "format_map")({"a": 1})


def test_a_non_str_template_is_refused_like_str_format_would():
    """str.format called on something that is not a str fails with a TypeError."""
    _, table = guards()
    with pytest.raises(TypeError, match="needs a str template"):
        table["getattr"](str, "format")(["{0}"], 1)


def test_simple_format_fields_still_work_through_the_guard():
    """Plain positional and named fields format as usual, from str and str subclasses."""
    _, table = guards()
    assert table["getattr"]("{0}-{name}", "format")(1, name="x") == "1-x"
    assert table["getattr"](LIARS[0]("{a}!"), "format_map")({"a": 2}) == "2!"


def test_every_name_a_guard_decides_by_object_is_read_through_the_guard():
    """Names the guard answers differently from getattr are all in GUARDED_ATTRIBUTES.

    The compiler inlines reads of every other public name as plain attribute access
    (policy.Unguard), so a guard rule for a name missing from that set would never run.
    """

    def gen():
        yield 1

    samples = (
        ValueError("x"),
        AttributeError("x"),
        BaseExceptionGroup("g", [ValueError()]),
        "text",
        str,
        b"bytes",
        1,
        [1],
        {"a": 1},
        len,
        gen(),
        gen,
        object(),
        type,
    )
    _, table = guards()
    decided_by_guard = set()
    for obj in samples:
        for name in dir(obj):
            if name.startswith("_") or name in INSPECT_ATTRIBUTES:
                continue  # refused at compile time already
            try:
                got = table["getattr"](obj, name)
            except AttributeError:
                decided_by_guard.add(name)
                continue
            if got != getattr(obj, name):
                decided_by_guard.add(name)
    assert decided_by_guard, "the sample objects exercise no object-dependent rule"
    assert decided_by_guard <= GUARDED_ATTRIBUTES, decided_by_guard - GUARDED_ATTRIBUTES
