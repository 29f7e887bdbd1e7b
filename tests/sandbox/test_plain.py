"""Plain data: what leaves a script is rebuilt from exact types, never by asking its objects."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.plain import MAX_CONTAINERS, MAX_VALUE_DEPTH, NotPlain, to_plain

JSON_DATA = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


class LyingDict(dict):
    """Overrides every read a serializer could use."""

    def items(self):
        return [("lie", True)]

    def keys(self):
        return ["lie"]

    def values(self):
        return [True]

    def get(self, key, default=None):
        return "lie"

    def __iter__(self):
        return iter(["lie"])

    def __getitem__(self, key):
        return "lie"

    def __len__(self):
        return 1


class LyingList(list):
    """Overrides iteration, indexing and copying."""

    def __iter__(self):
        return iter(["lie"])

    def __getitem__(self, index):
        return "lie"

    def __len__(self):
        return 1

    def copy(self):
        return ["lie"]


class LyingTuple(tuple):
    """Overrides iteration and indexing."""

    def __iter__(self):
        return iter(["lie"])

    def __getitem__(self, index):
        return "lie"


class LyingStr(str):
    """Overrides conversion and the methods a check might call."""

    def __str__(self):
        return "lie"

    def __repr__(self):
        return "'lie'"

    def encode(self, *args, **kwargs):
        return b"lie"

    def __eq__(self, other):
        return True

    def __hash__(self):
        return 0


class LyingInt(int):
    """Overrides every conversion."""

    def __int__(self):
        return -1

    def __index__(self):
        return -1

    def __repr__(self):
        return "-1"


class LyingFloat(float):
    """Overrides every conversion."""

    def __float__(self):
        return -1.0

    def __repr__(self):
        return "-1.0"


class LyingKey(str):
    """A key that lies in conversion but hashes honestly (so a dict can hold several)."""

    def __str__(self):
        return "lie"

    def __repr__(self):
        return "'lie'"


def disguise(value):
    """Rebuild ``value`` from lying subclasses holding the same data."""
    if isinstance(value, dict):
        return LyingDict({LyingKey(k): disguise(v) for k, v in value.items()})
    if isinstance(value, list):
        return LyingList(disguise(v) for v in value)
    if isinstance(value, str):
        return LyingStr(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return LyingInt(value)
    if isinstance(value, float):
        return LyingFloat(value)
    raise AssertionError(value)


def exact(value) -> bool:
    """True if ``value`` is built only of exact JSON types."""
    kind = type(value)
    if kind is dict:
        return all(type(k) is str and exact(v) for k, v in value.items())
    if kind is list:
        return all(exact(v) for v in value)
    return value is None or kind in (bool, int, float, str)


@settings(max_examples=300, deadline=None)
@given(JSON_DATA)
def test_plain_data_comes_back_equal(value):
    """Plain JSON data passes through unchanged."""
    assert to_plain(value) == value
    assert exact(to_plain(value))


@settings(max_examples=300, deadline=None)
@given(JSON_DATA)
def test_lying_subclasses_cross_as_the_data_they_really_hold(value):
    """Subclasses that lie in every method still cross as exactly the data they hold."""
    plain = to_plain(disguise(value))
    assert json.dumps(plain, sort_keys=True) == json.dumps(value, sort_keys=True)
    assert exact(plain)


def test_a_lying_tuple_and_str_cross_as_their_items():
    """A tuple subclass is read through tuple's iterator, a str subclass through str's slot."""
    assert to_plain(LyingTuple((1, 2))) == [1, 2]
    plain = to_plain({"k": LyingStr("real")})
    assert plain == {"k": "real"} and type(plain["k"]) is str


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (object(), "value is a object"),
        ({"a": [1, {2}]}, "value['a'][1] is a set"),
        ({(1, 2): 1}, "value has a key of type tuple"),
        ([math.nan], "value[0] is nan"),
        ({"x": math.inf}, "value['x'] is inf"),
        (b"bytes", "value is a bytes"),
    ],
    ids=["object", "set-inside", "tuple-key", "nan", "inf", "bytes"],
)
def test_what_is_not_data_is_refused_with_its_place(value, message):
    """A value JSON cannot hold is refused, naming where it sits."""
    with pytest.raises(NotPlain) as caught:
        to_plain(value)
    assert str(caught.value).startswith(message)


def test_nesting_is_capped():
    """A value deeper than MAX_VALUE_DEPTH is refused (a cycle ends the same way)."""
    deep: list = []
    for _ in range(MAX_VALUE_DEPTH + 1):
        deep = [deep]
    with pytest.raises(NotPlain, match="nests deeper"):
        to_plain(deep)
    cycle: list = []
    cycle.append(cycle)
    with pytest.raises(NotPlain, match="nests deeper"):
        to_plain(cycle)


def test_keys_are_spelled_as_json_spells_them():
    """Non-string keys become the strings json.dumps would write."""
    assert to_plain({2: "a", None: "b", True: "c", 1.5: "d", LyingInt(7): "e"}) == {
        "2": "a",
        "null": "b",
        "true": "c",
        "1.5": "d",
        "7": "e",
    }


def test_a_value_made_of_too_many_containers_is_refused():
    """[[]] * n is small as JSON but huge as objects: more than MAX_CONTAINERS is refused."""
    assert len(to_plain([[]] * (MAX_CONTAINERS - 1))) == MAX_CONTAINERS - 1
    with pytest.raises(NotPlain, match=f"more than {MAX_CONTAINERS} lists and dicts"):
        to_plain([[]] * MAX_CONTAINERS)
