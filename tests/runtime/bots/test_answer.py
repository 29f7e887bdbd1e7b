"""Rendering a command's answer and keyboard."""

from __future__ import annotations

import pytest

from runtime.bots.answer import escape, render_answer, reply_keyboard

CONTEXT = {"user": {"first_name": "<Ada & *Bob*_>", "id": 7}, "chat": {"title": "x.y"}}


@pytest.mark.parametrize(
    ("template", "mode", "expected"),
    [
        ("Hi {{user.first_name}}", None, "Hi <Ada & *Bob*_>"),
        ("<b>Hi</b> {{user.first_name}}", "HTML", "<b>Hi</b> &lt;Ada &amp; *Bob*_&gt;"),
        ("Hi {{ user.first_name }}", "Markdown", "Hi <Ada & \\*Bob\\*\\_>"),
        ("{{chat.title}}!", "MarkdownV2", "x\\.y!"),
        ("id {{user.id}}", "HTML", "id 7"),
        ("{{user.missing}}|{{nothing.at.all}}", None, "|"),
    ],
    ids=["plain", "html", "markdown", "markdown-v2", "number", "unknown-placeholders"],
)
def test_placeholders_are_filled_and_escaped_for_the_parse_mode(template, mode, expected):
    """Values are escaped; the template's own markup stays as written."""
    assert render_answer(template, CONTEXT, mode) == expected


def test_escape_leaves_text_alone_without_a_parse_mode():
    """No parse mode means Telegram shows text literally, so nothing is escaped."""
    assert escape("<b>*", None) == "<b>*"


def test_a_keyboard_layout_becomes_rows_of_buttons():
    """Commas separate buttons, new lines start rows, blanks are dropped."""
    assert reply_keyboard("A, B\n\nC,") == {
        "keyboard": [[{"text": "A"}, {"text": "B"}], [{"text": "C"}]],
        "resize_keyboard": True,
    }
