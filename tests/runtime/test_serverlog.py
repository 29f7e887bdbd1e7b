"""The server log: redaction of secrets, and short rate-limited lines for failed runs."""

from __future__ import annotations

import logging
import sys

import pytest

from runtime.serverlog import FailureLog, Redactor, configure, redact

MAC = "ZqVcOrVhL6SxWOJWo4173emKCWIT-SNjCr0ahUAPTWM"
TOKEN = "123456789:AAFakeDemoTokenForTestsOnly_abcdefghijk"
SECRET = "7c8bf4694d2d7bf67633f32341fa76644f4becf5b07af93320be7ad3c69f96ec"

SECRETS = [
    ("query-of-a-link", f"GET /webhook/demo?command=stats&user=5&sig=k1.{MAC} 200", MAC),
    ("bytes-repr-with-control", f"b'/webhook/demo?user=5\\x01&sig=k1.{MAC}'", MAC),
    ("sig-without-a-question-mark", f"user=5&sig=k1.{MAC}", MAC),
    ("sig-encoded-dot", f"s=k1%2E{MAC} ", MAC),
    ("sig-encoded-equals", f"sig%3Dk1.{MAC}", MAC),
    ("bare-signature", f"the link k12.{MAC} failed", MAC),
    ("bot-token", f"token {TOKEN} refused", TOKEN.partition(":")[2]),
    ("bot-token-in-a-url", f"POST https://api.telegram.org/bot{TOKEN}/sendMessage", TOKEN),
    ("secret-header-colon", f"X-Telegram-Bot-Api-Secret-Token: {SECRET}", SECRET),
    ("secret-header-dict", f"{{'x-telegram-bot-api-secret-token': 'abc{SECRET[:10]}'}}", "abc"),
    ("hex-key", f"key {SECRET} loaded", SECRET[:32]),
]


@pytest.mark.parametrize(
    ("text", "secret"), [(t, s) for _, t, s in SECRETS], ids=[i for i, _, _ in SECRETS]
)
def test_redact_hides_every_kind_of_secret(text, secret):
    """Queries, signatures, tokens, the secret header's value and hex keys are replaced."""
    redacted = redact(text)
    assert secret not in redacted
    assert "[redacted]" in redacted


@pytest.mark.parametrize(
    "text",
    [
        "bot demo: command /crash failed (script_error, ZeroDivisionError)",
        "what? nothing = secret here",
        "worker 4242 broke the protocol: short read",
        "SQLite store /tmp/data/botbox.sqlite3 migrated to schema version 3",
    ],
)
def test_redact_leaves_ordinary_lines_alone(text):
    """Lines without secrets come out unchanged."""
    assert redact(text) == text


def test_the_redactor_rewrites_arguments_and_tracebacks():
    """A record's arguments and its exception text are redacted before any handler formats it."""
    try:
        raise ValueError(f"Bad URL: /webhook/demo?user=1&sig=k1.{MAC}")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "sanic.error", logging.ERROR, __file__, 1, "uncaught %s", (TOKEN,), exc_info
    )
    assert Redactor().filter(record)
    text = logging.Formatter("%(message)s").format(record)
    assert "Traceback" in text
    assert MAC not in text
    assert TOKEN not in text


def test_configure_puts_one_redactor_on_every_root_handler():
    """Calling configure twice leaves exactly one Redactor per handler."""
    handler = logging.NullHandler()
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    root.handlers = [handler]  # pytest's own handlers stay as they are
    try:
        configure("INFO")
        configure("INFO")
        assert root.handlers == [handler]
        assert sum(isinstance(f, Redactor) for f in handler.filters) == 1
    finally:
        root.handlers = saved
        root.setLevel(level)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_failed_runs_are_rate_limited_per_bot_and_the_gap_is_counted(caplog):
    """Per bot: 3 lines at once, then silence counted; after 20 s one token and a count line."""
    clock = Clock()
    failures = FailureLog(per_minute=3, clock=clock)
    with caplog.at_level(logging.WARNING, logger="runtime.serverlog"):
        for _ in range(10):
            failures.run_failed("demo", "/crash", "script_error", "ZeroDivisionError")
        failures.run_failed("other", "/x", "limit_exceeded", "LimitExceeded")
        assert [r.getMessage().split(":")[0] for r in caplog.records] == ["bot demo"] * 3 + [
            "bot other"
        ]
        caplog.clear()
        clock.now += 20  # one token back at 3 a minute
        failures.run_failed("demo", "/crash", "script_error", "ZeroDivisionError")
        failures.run_failed("demo", "/crash", "script_error", "ZeroDivisionError")
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("bot demo: command /crash failed (script_error, ZeroDivisionError)")
    assert "(7 similar line(s) suppressed before this one)" in line


def test_a_failed_run_line_never_carries_a_strange_error_type(caplog):
    """An error type that is not a plain name is logged as ``?``."""
    with caplog.at_level(logging.WARNING, logger="runtime.serverlog"):
        FailureLog().run_failed("demo", "/x", "script_error", "Evil\nINFO forged line")
        FailureLog().run_failed("demo", "/x", "script_error", None)
    assert all("(script_error, ?)" in r.getMessage() for r in caplog.records)
    assert len(caplog.records) == 2


def test_unexpected_errors_keep_their_traceback_but_are_rate_limited(caplog):
    """A server bug is an ERROR with its traceback, at most per_minute of them at once."""
    failures = FailureLog(per_minute=2, clock=Clock())
    with caplog.at_level(logging.ERROR, logger="runtime.serverlog"):
        for _ in range(5):
            failures.unexpected("request to /webhook/demo", RuntimeError("bug"))
    assert len(caplog.records) == 2
    assert all(r.exc_info or r.exc_text for r in caplog.records)
