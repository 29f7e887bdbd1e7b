"""The server's own log: no secret in any line, and failures that cannot flood it.

What is guaranteed: a record that reaches a handler carrying a :class:`Redactor` (``configure``
puts one on every handler of the root logger and of Sanic's loggers, in every server process)
has these replaced by ``[redacted]``, in its message, its arguments, its traceback and its stack:
the query of any URL (``?name=value...``), any ``sig`` value, anything shaped like a link
signature (``k1.<MAC>``), Telegram bot tokens (``123:ABC...``), the value of Telegram's
``X-Telegram-Bot-Api-Secret-Token`` header, and runs of 32 or more hex digits (derived secrets
and keys). Failed runs are one short line each (bot, command, status, error type: never the
script's message, which it controls), at most ``per_minute`` lines per bot per minute, then one
line counting what was left out; the whole error, with its traceback, is in the run log.

What is not: text written with ``print`` is not a log line (``run.py`` prints the quick-start
link on purpose), and a secret spelled in a way none of the patterns knows is not recognised:
code must still never log a secret; the redactor is the second wall, not the first.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

logger = logging.getLogger(__name__)

FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
SANIC_LOGGERS: Final = ("sanic.root", "sanic.error", "sanic.access", "sanic.server")
REDACTED: Final = "[redacted]"
PATTERNS: Final = (
    # The query of a URL: every signed link's whole content, whatever it is spelled like.
    re.compile(r"(?<=\?)[^\s\"'<>]*=[^\s\"'<>]*"),
    re.compile(r"(?i)(?<=\bsig=)[^\s&\"'<>]+"),
    re.compile(r"(?i)(?<=\bsig%3D)[^\s&\"'<>]+"),
    re.compile(r"\bk[0-9]{1,6}(?:\.|%2[Ee])[A-Za-z0-9_-]{16,}"),
    re.compile(r"[0-9]{3,}:[A-Za-z0-9_-]{30,}"),
    re.compile(r"(?i)(?<=x-telegram-bot-api-secret-token)(['\"]?\s*[:=,]\s*['\"]?)[^\s'\",)}]+"),
    re.compile(r"\b[0-9A-Fa-f]{32,}\b"),
)
TYPE_NAME: Final = re.compile(r"[A-Za-z0-9_.]{1,60}")


def _replace(match: re.Match[str]) -> str:
    """Keep a secret header's separator (group 1, if any); drop what follows it."""
    kept = match.group(1) if match.re.groups else ""
    return f"{kept}{REDACTED}"


def redact(text: str) -> str:
    """``text`` with every query, signature, token, secret header value and long hex run hidden."""
    for pattern in PATTERNS:
        text = pattern.sub(_replace, text)
    return text


class Redactor(logging.Filter):
    """Redact a record's message, arguments, traceback and stack in place; keep the record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record (so every later handler sees the redacted text too)."""
        try:
            message = record.getMessage()
        except (TypeError, ValueError, KeyError):  # a bad format string: keep its parts
            message = f"{record.msg} {record.args!r}"
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.exc_info = None  # formatters print exc_text, already redacted, instead
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def configure(level: str | int) -> None:
    """Log at ``level`` to stderr (unless a handler exists), every handler with a Redactor.

    Safe to call again (in each server process): handlers and filters are added once.
    """
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=level, format=FORMAT)
    root.setLevel(level)
    handlers = [
        *root.handlers,
        *(h for name in SANIC_LOGGERS for h in logging.getLogger(name).handlers),
    ]
    for handler in handlers:
        if not any(isinstance(f, Redactor) for f in handler.filters):
            handler.addFilter(Redactor())


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float
    suppressed: int = 0


@dataclass(slots=True)
class FailureLog:
    """Short, rate-limited log lines for failures that users can cause at will.

    A token bucket per key (a bot id, or ``"server"``): ``per_minute`` lines at once, refilled
    at ``per_minute`` a minute. A line refused is counted; the next line allowed says how many.
    """

    per_minute: int = 10
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def allow(self, key: str) -> int | None:
        """Take a token for ``key``: the lines suppressed before this one, or None if over."""
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self.per_minute), now)
        rate = self.per_minute / 60.0
        bucket.tokens = min(float(self.per_minute), bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        if bucket.tokens < 1.0:
            bucket.suppressed += 1
            return None
        bucket.tokens -= 1.0
        suppressed, bucket.suppressed = bucket.suppressed, 0
        return suppressed

    def run_failed(self, bot_id: str, command: str, status: str, error_type: object) -> None:
        """One WARNING line for a failed run (its full error is in the run log)."""
        suppressed = self.allow(f"bot:{bot_id}")
        if suppressed is None:
            return
        kind = error_type if type(error_type) is str and TYPE_NAME.fullmatch(error_type) else "?"
        logger.warning(
            "bot %s: command %s failed (%s, %s); see python run.py logs %s%s",
            bot_id,
            command,
            status,
            kind,
            bot_id,
            _suppressed(suppressed),
        )

    def unexpected(self, where: str, exc: BaseException) -> None:
        """An ERROR with the traceback for a bug in the server (redacted like every line)."""
        suppressed = self.allow("server")
        if suppressed is not None:
            logger.error("%s failed%s", where, _suppressed(suppressed), exc_info=exc)


def _suppressed(count: int) -> str:
    """The note on a line that follows suppressed ones."""
    return f" ({count} similar line(s) suppressed before this one)" if count else ""
