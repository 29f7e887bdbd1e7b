"""The worker protocol: both sides share one definition, and the host refuses anything else."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox import protocol
from sandbox.protocol import (
    Call,
    Deferred,
    Done,
    Failure,
    NeedCode,
    NestedDone,
    ProtocolViolation,
    Ready,
    decode,
    encode,
)

EVERY_KIND = [
    Ready({"network": "namespace"}, 1234),
    Call("Api.sendMessage", [1, "x", None], {"text": "hi", "opts": {"a": [True]}}),
    NeedCode(),
    NestedDone(),
    Done(
        output="hello\n",
        failure=Failure("ValueError", "bad", 3, ((3, "<module>", "start.py"),)),
        breach=None,
        returned=True,
        value={"k": [1, 2.5]},
        cpu=0.001,
        wall=0.002,
        maxrss_kib=20000,
        deferred=(Deferred("res.text", ["pong"], {}, 7), Deferred("res.set", [], {}, None)),
    ),
    Done("", None, "cpu_seconds", False, None, 1.0, 1.1, 1, ()),
]


@pytest.mark.parametrize("message", EVERY_KIND, ids=lambda m: type(m).__name__)
def test_what_the_worker_encodes_the_host_decodes_unchanged(message):
    """Every worker message kind survives encode then decode exactly."""
    assert decode(encode(message)) == message


def test_every_host_message_names_a_known_kind():
    """The host's messages all start with a kind the worker's loop handles."""
    built = [
        protocol.run({}),
        protocol.exit_worker(),
        protocol.ret(1),
        protocol.err("ApiError", "no", {"code": 400}),
        protocol.limit("capability_calls"),
        protocol.stop(None),
        protocol.exec_nested({}),
        protocol.response({"status": 200, "headers": {}, "text": "", "url": "http://x/"}),
    ]
    assert {m[0] for m in built} == protocol.HOST_KINDS


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"t": "launch"}', "unexpected message"),
        (b'{"t": "call", "name": 1, "args": [], "kwargs": {}}', "malformed name"),
        (b'{"t": "call", "name": "x", "args": {}, "kwargs": {}}', "malformed args"),
        (b'{"t": "ready", "isolation": {"a": 1}, "baseline": 0}', "malformed ready"),
        (
            b'{"t": "done", "output": "", "failure": null, "breach": null, "returned": 1,'
            b' "value": null, "cpu": 0, "wall": 0, "maxrss_kib": 0, "deferred": []}',
            "returned",
        ),
        (
            b'{"t": "done", "output": "", "failure": null, "breach": null, "returned": true,'
            b' "value": null, "cpu": 0, "wall": 0, "maxrss_kib": true, "deferred": []}',
            "maxrss_kib",
        ),
        (
            b'{"t": "done", "output": "", "failure": {"type": "E", "message": "m", "line": "3",'
            b' "traceback": []}, "breach": null, "returned": false, "value": null, "cpu": 0,'
            b' "wall": 0, "maxrss_kib": 0, "deferred": []}',
            "failure line",
        ),
        (
            b'{"t": "done", "output": "", "failure": null, "breach": null, "returned": false,'
            b' "value": null, "cpu": 0, "wall": 0, "maxrss_kib": 0,'
            b' "deferred": [["res.text", [], {}, "7"]]}',
            "deferred call",
        ),
    ],
    ids=[
        "not-json",
        "not-object",
        "unknown-kind",
        "call-name",
        "call-args",
        "ready-isolation",
        "done-returned",
        "done-bool-as-int",
        "failure-line",
        "deferred-line",
    ],
)
def test_a_malformed_frame_is_a_protocol_violation(raw, problem):
    """Wrong kinds, wrong types (a bool is not an int) and bad JSON are refused by name."""
    with pytest.raises(ProtocolViolation, match=problem):
        decode(raw)


def test_too_many_deferred_calls_are_refused():
    """A worker claiming more deferred calls than a run may make is cut off."""
    done = Done("", None, None, False, None, 0, 0, 0, ())
    body = json.loads(encode(done))
    body["deferred"] = [["res.set", [], {}, 1]] * (protocol.MAX_DEFERRED + 1)
    with pytest.raises(ProtocolViolation, match="too many"):
        decode(json.dumps(body).encode())


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(
    kind=st.sampled_from(["call", "done", "ready", "need_code", "nested_done", "x", None]),
    fields=st.dictionaries(
        st.sampled_from(
            [
                *("name", "args", "kwargs", "output", "failure", "breach", "returned"),
                *("value", "cpu", "wall", "maxrss_kib", "deferred", "isolation", "baseline"),
            ]
        ),
        JSON_VALUES,
    ),
)
def test_any_json_object_decodes_to_a_message_or_a_violation(kind, fields):
    """Whatever a compromised worker sends, decode returns a typed message or refuses it."""
    body = json.dumps({"t": kind, **fields}).encode()
    try:
        message = decode(body)
    except ProtocolViolation:
        return
    assert type(message) in (Ready, Call, NeedCode, NestedDone, Done)
    assert decode(encode(message)) == message
