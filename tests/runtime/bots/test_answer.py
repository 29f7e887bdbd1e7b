"""Rendering a command's answer and keyboard."""

from __future__ import annotations

import pytest

from runtime.bots.answer import escape, render_answer, reply_keyboard, unescapable_placeholders

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


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Hi {{user.first_name}}, *welcome*", []),
        ("Hi *{{user.first_name}}*", ["{{user.first_name}}"]),
        ("_dear {{ user.username }}_ and {{chat.id}}", ["{{ user.username }}"]),
        (
            "`{{params}}` [{{user.id}}](http://x/{{chat.id}})",
            ["{{params}}", "{{user.id}}", "{{chat.id}}"],
        ),
        ("```\n{{params}}\n``` {{user.id}}", ["{{params}}"]),
        ("\\*{{user.first_name}}\\*", []),
    ],
    ids=["outside", "bold", "italic", "code-and-link", "pre", "escaped-stars"],
)
def test_placeholders_inside_legacy_markdown_entities_are_found(template, expected):
    """Only placeholders inside an entity, where legacy Markdown allows no escape, are reported."""
    assert unescapable_placeholders(template) == expected
