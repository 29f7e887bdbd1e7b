"""The ``Keyboard`` helpers: script code run in real workers, returning plain reply markup."""

from __future__ import annotations

import pytest

from runtime.bots import keyboard
from sandbox import JSON, Status, WorkerPool


async def build(pool: WorkerPool, expression: str) -> JSON:
    """Evaluate ``expression`` in a script with ``Keyboard`` bound, as every run has it."""
    result = await pool.run(
        f"return {expression}",
        modules={keyboard.MODULE: keyboard.script()},
        bind={keyboard.GLOBAL: keyboard.MODULE},
    )
    assert result.ok, result.describe()
    return result.value


async def fails(pool: WorkerPool, expression: str) -> str:
    """The error of a script whose line 2 is ``expression``."""
    result = await pool.run(
        f"x = 1\n{expression}",
        modules={keyboard.MODULE: keyboard.script()},
        bind={keyboard.GLOBAL: keyboard.MODULE},
    )
    assert result.status is Status.SCRIPT_ERROR
    assert result.error is not None and result.error.line == 2  # the author's line
    return f"{result.error.type}: {result.error.message}"


@pytest.mark.parametrize(
    ("expression", "markup"),
    [
        (
            'Keyboard.inline([["Yes", ("Site", "https://example.org")], [("Chat", "tg://resolve?domain=x")]])',
            {
                "inline_keyboard": [
                    [
                        {"text": "Yes", "callback_data": "Yes"},
                        {"text": "Site", "url": "https://example.org"},
                    ],
                    [{"text": "Chat", "url": "tg://resolve?domain=x"}],
                ]
            },
        ),
        (
            'Keyboard.inline("A, B\\nC")',
            {
                "inline_keyboard": [
                    [{"text": "A", "callback_data": "A"}, {"text": "B", "callback_data": "B"}],
                    [{"text": "C", "callback_data": "C"}],
                ]
            },
        ),
        (
            'Keyboard.inline([[{"text": "App", "web_app": {"url": "https://example.org"}}]])',
            {"inline_keyboard": [[{"text": "App", "web_app": {"url": "https://example.org"}}]]},
        ),
        (
            'Keyboard.reply(["A", ["B", {"text": "Phone", "request_contact": True}]], '
            'one_time=True, placeholder="pick", persistent=True, selective=True)',
            {
                "keyboard": [
                    [{"text": "A"}],
                    [{"text": "B"}, {"text": "Phone", "request_contact": True}],
                ],
                "resize_keyboard": True,
                "one_time_keyboard": True,
                "is_persistent": True,
                "selective": True,
                "input_field_placeholder": "pick",
            },
        ),
        ("Keyboard.remove(selective=True)", {"remove_keyboard": True, "selective": True}),
    ],
)
async def test_keyboard_helpers_return_plain_reply_markup(
    pool: WorkerPool, expression: str, markup: JSON
) -> None:
    assert await build(pool, expression) == markup


@pytest.mark.parametrize(
    ("expression", "error"),
    [
        ("Keyboard.inline(5)", "TypeError: Keyboard.inline() takes a list of rows"),
        ("Keyboard.inline([5])", "TypeError: Keyboard.inline(): each row is a list of buttons"),
        (
            "Keyboard.inline([[5]])",
            "TypeError: Keyboard.inline(): a button is a text, a (text, data)",
        ),
        ('Keyboard.inline([[("A", 5)]])', "TypeError: Keyboard.inline(): a button's text and data"),
        (
            'Keyboard.inline([[("A", "")]])',
            "ValueError: Keyboard.inline(): the callback data of button 'A' is 0 bytes",
        ),
        ("Keyboard.reply([[5]])", "TypeError: Keyboard.reply(): a button is a text or a dict"),
        ("Keyboard.missing()", "AttributeError"),
    ],
)
async def test_a_bad_keyboard_fails_at_the_authors_line(
    pool: WorkerPool, expression: str, error: str
) -> None:
    assert (await fails(pool, expression)).startswith(error)


async def test_a_script_cannot_change_the_helpers_for_itself_or_the_next_run(
    pool: WorkerPool,
) -> None:
    message = await fails(pool, "Keyboard.MAX_CALLBACK_BYTES = 1000")
    assert "cannot change attributes" in message
    assert await build(pool, "Keyboard.MAX_CALLBACK_BYTES") == 64
