"""The messages between the host and a worker, written down once, with their encoders and decoders.

Framing: a 4-byte big-endian length, then the payload.

Host to worker: ``marshal`` tuples (the worker trusts the host), built by the functions below
(:func:`run`, :func:`ret`, ...); the first item names the kind (:data:`HOST_KINDS`).

Worker to host: one JSON object per frame, ``{"t": kind, ...}``. The host treats it as hostile:
:func:`decode` checks every field by exact type and size and returns a typed message
(:class:`Ready`, :class:`Call`, :class:`NeedCode`, :class:`NestedDone`, :class:`Done`), or
raises :class:`ProtocolViolation`, and the host kills the worker. The worker builds the same
typed messages and sends them with :func:`encode`, so both sides share one definition (a test
round-trips every kind). Never pickle or marshal from a worker.

The fork server's control channel (:mod:`sandbox.zygote`) carries its own small JSON messages,
described there.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from sandbox.jsontypes import JSON

HEADER: Final = struct.Struct(">I")
MAX_WORKER_FRAME: Final = 4 * 1024 * 1024
"""The largest frame the host accepts from a worker; a larger one kills the worker."""
CONTROL_PACKET: Final = 4096
"""The largest message on the fork server's control channel (one JSON object per packet)."""
MAX_CALL_BYTES: Final = 1024 * 1024
"""The largest capability call a worker may send (its encoded arguments)."""
MAX_RUN_CALL_BYTES: Final = 8 * 1024 * 1024
"""The most capability-call bytes one run may send in all; past it, calls are refused."""
MAX_DEFERRED: Final = 1000
"""Deferred calls one run may leave for the host."""
MAX_TRACEBACK: Final = 20
"""Frames of a failure's traceback the host keeps."""
MAX_TEXT: Final = 2000
"""Characters of a failure's message the host keeps."""
MAX_COUNT: Final = 2**53
"""The largest count (bytes, lines) a worker may report."""
MAX_SECONDS: Final = 10.0**6
"""The largest time a worker may report."""


class ProtocolViolation(Exception):
    """The worker sent something that is not a well-formed message."""


def frame(payload: bytes) -> bytes:
    """Prefix ``payload`` with its length."""
    return HEADER.pack(len(payload)) + payload


# --- host to worker ---------------------------------------------------------------------------

RUN: Final = "run"
EXIT: Final = "exit"
RET: Final = "ret"
ERR: Final = "err"
LIMIT: Final = "limit"
STOP: Final = "stop"
EXEC: Final = "exec"
RESP: Final = "resp"
HOST_KINDS: Final = frozenset({RUN, EXIT, RET, ERR, LIMIT, STOP, EXEC, RESP})
"""run a script; exit; a capability's answer: its value, an error, a broken limit, the end of
the script, a script to run in place (``exec``), or a response object (``resp``)."""

HostMessage = tuple[Any, ...]


def run(request: Mapping[str, Any]) -> HostMessage:
    """Run a script: ``key``, ``code`` (or None if cached), ``filename``, ``limits``,
    ``capabilities``, ``exceptions``, ``globals``, ``deferred`` (and ``escape`` in tests)."""
    return (RUN, request)


def exit_worker() -> HostMessage:
    """Leave the run loop and exit."""
    return (EXIT,)


def ret(value: JSON) -> HostMessage:
    """A capability call's value."""
    return (RET, value)


def response(fields: Mapping[str, JSON]) -> HostMessage:
    """A capability call's value, seen by the script as a response object: ``status``,
    ``headers``, ``text``, ``url`` (see :class:`sandbox.capability.Response`)."""
    return (RESP, dict(fields))


def err(kind: str, message: str, data: Mapping[str, JSON]) -> HostMessage:
    """A capability call refused: the script sees an exception of class ``kind``."""
    return (ERR, kind, message, dict(data))


def limit(name: str) -> HostMessage:
    """A capability call that broke a limit of the run (``capability_calls``)."""
    return (LIMIT, name)


def stop(value: JSON) -> HostMessage:
    """End the script now, as a top-level ``return value``."""
    return (STOP, value)


def exec_nested(nested: Mapping[str, Any]) -> HostMessage:
    """Run another script in place of the call's answer: ``key``, ``code``, ``filename``,
    ``globals``, ``capabilities``, ``exceptions``."""
    return (EXEC, nested)


# --- worker to host ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ready:
    """The worker is isolated and waits for runs."""

    isolation: dict[str, str]
    baseline: int


@dataclass(frozen=True, slots=True)
class Call:
    """A capability call: its full name and its plain-data arguments."""

    name: str
    args: list[JSON]
    kwargs: dict[str, JSON]


@dataclass(frozen=True, slots=True)
class NeedCode:
    """The worker evicted the script's code: send the run again with ``code``."""


@dataclass(frozen=True, slots=True)
class NestedDone:
    """A script run in place (``exec``) ended; the caller's capabilities apply again."""


@dataclass(frozen=True, slots=True)
class Deferred:
    """A deferred capability call, answered by the host after the script."""

    name: str
    args: list[JSON]
    kwargs: dict[str, JSON]
    line: int | None


@dataclass(frozen=True, slots=True)
class Failure:
    """An exception that ended the script, with the frames in the author's files."""

    type: str
    message: str
    line: int | None
    traceback: tuple[tuple[int, str, str], ...]


@dataclass(frozen=True, slots=True)
class Done:
    """The run ended: output, how it ended, what it used, and its deferred calls."""

    output: str
    failure: Failure | None
    breach: str | None
    returned: bool
    value: JSON
    cpu: float
    wall: float
    maxrss_kib: int
    deferred: tuple[Deferred, ...]


WorkerMessage = Ready | Call | NeedCode | NestedDone | Done


def encode(message: WorkerMessage) -> bytes:
    """The JSON frame body for ``message`` (the worker's side)."""
    if type(message) is Call:
        body: dict[str, Any] = {
            "t": "call",
            "name": message.name,
            "args": message.args,
            "kwargs": message.kwargs,
        }
    elif type(message) is Done:
        failure = message.failure
        body = {
            "t": "done",
            "output": message.output,
            "failure": None
            if failure is None
            else {
                "type": failure.type,
                "message": failure.message,
                "line": failure.line,
                "traceback": [list(f) for f in failure.traceback],
            },
            "breach": message.breach,
            "returned": message.returned,
            "value": message.value,
            "cpu": message.cpu,
            "wall": message.wall,
            "maxrss_kib": message.maxrss_kib,
            "deferred": [[d.name, d.args, d.kwargs, d.line] for d in message.deferred],
        }
    elif type(message) is Ready:
        body = {"t": "ready", "isolation": message.isolation, "baseline": message.baseline}
    elif type(message) is NeedCode:
        body = {"t": "need_code"}
    elif type(message) is NestedDone:
        body = {"t": "nested_done"}
    else:  # pragma: no cover - the union is closed
        raise TypeError(f"not a worker message: {message!r}")
    text = json.dumps(body, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate a script printed, raised or passed
        return scrub(text).encode("utf-8")


def scrub(text: str) -> str:
    """``text`` with every lone surrogate (which UTF-8 cannot hold) replaced by U+FFFD."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def decode(body: bytes) -> WorkerMessage:
    """A worker's frame body as a typed message; :class:`ProtocolViolation` if malformed.

    Strict UTF-8 (no surrogates smuggled as bytes), no NaN or Infinity, and lone surrogates
    written as ``\\ud800`` escapes are replaced: every string that reaches the host can be
    stored and logged as UTF-8.
    """
    try:
        text = body.decode("utf-8")
        raw = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise ProtocolViolation("frame is not JSON") from exc
    if "\\ud" in text or "\\uD" in text:  # an honest worker writes no such escape
        raw = _scrubbed(raw)
    if type(raw) is not dict:
        raise ProtocolViolation("frame is not a JSON object")
    kind = raw.get("t")
    if kind == "call":
        return Call(_str(raw, "name"), _list(raw, "args"), _dict(raw, "kwargs"))
    if kind == "done":
        return _done(raw)
    if kind == "need_code":
        return NeedCode()
    if kind == "nested_done":
        return NestedDone()
    if kind == "ready":
        isolation = _dict(raw, "isolation")
        if not all(type(v) is str for v in isolation.values()):
            raise ProtocolViolation("malformed ready message")
        return Ready(isolation, _int(raw, "baseline"))
    raise ProtocolViolation(f"unexpected message {str(kind)[:40]!r}")


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON data")


def _scrubbed(value: Any) -> Any:
    kind = type(value)
    if kind is str:
        return scrub(value)
    if kind is list:
        return [_scrubbed(item) for item in value]
    if kind is dict:
        return {scrub(key): _scrubbed(item) for key, item in value.items()}
    return value


def _done(raw: dict[str, Any]) -> Done:
    deferred_raw = _list(raw, "deferred")
    if len(deferred_raw) > MAX_DEFERRED:
        raise ProtocolViolation("too many deferred calls")
    deferred: list[Deferred] = []
    for item in deferred_raw:
        if not (
            type(item) is list
            and len(item) == 4
            and type(item[0]) is str
            and type(item[1]) is list
            and type(item[2]) is dict
            and (item[3] is None or (type(item[3]) is int and 0 <= item[3] <= MAX_COUNT))
        ):
            raise ProtocolViolation("malformed deferred call")
        deferred.append(Deferred(item[0], item[1], item[2], item[3]))
    breach = raw.get("breach")
    if breach is not None and type(breach) is not str:
        raise ProtocolViolation("malformed breach")
    returned = raw.get("returned")
    if type(returned) is not bool:
        raise ProtocolViolation("malformed returned flag")
    failure = raw.get("failure")
    return Done(
        output=_str(raw, "output"),
        failure=None if failure is None else _failure(failure),
        breach=breach,
        returned=returned,
        value=raw.get("value"),
        cpu=_number(raw, "cpu"),
        wall=_number(raw, "wall"),
        maxrss_kib=_int(raw, "maxrss_kib"),
        deferred=tuple(deferred),
    )


def _failure(raw: object) -> Failure:
    if type(raw) is not dict:
        raise ProtocolViolation("malformed failure")
    line = raw.get("line")
    if line is not None and (type(line) is not int or not 0 <= line <= MAX_COUNT):
        raise ProtocolViolation("malformed failure line")
    frames: list[tuple[int, str, str]] = []
    for item in _list(raw, "traceback")[-MAX_TRACEBACK:]:
        if not (
            type(item) is list
            and len(item) == 3
            and type(item[0]) is int
            and 0 <= item[0] <= MAX_COUNT
            and type(item[1]) is str
            and type(item[2]) is str
        ):
            raise ProtocolViolation("malformed traceback frame")
        frames.append((item[0], item[1][:100], item[2][:200]))
    return Failure(_str(raw, "type")[:100], _str(raw, "message")[:MAX_TEXT], line, tuple(frames))


def _str(raw: dict[str, Any], key: str) -> str:
    value = raw.get(key)
    if type(value) is not str:
        raise ProtocolViolation(f"malformed {key}")
    return value


def _list(raw: dict[str, Any], key: str) -> list[Any]:
    value = raw.get(key)
    if type(value) is not list:
        raise ProtocolViolation(f"malformed {key}")
    return value


def _dict(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key)
    if type(value) is not dict:
        raise ProtocolViolation(f"malformed {key}")
    return value


def _int(raw: dict[str, Any], key: str) -> int:
    value = raw.get(key)
    if type(value) is not int or not 0 <= value <= MAX_COUNT:
        raise ProtocolViolation(f"malformed {key}")
    return value


def _number(raw: dict[str, Any], key: str) -> float:
    value = raw.get(key)
    if (type(value) is not float and type(value) is not int) or not 0 <= value <= MAX_SECONDS:
        raise ProtocolViolation(f"malformed {key}")
    return float(value)
