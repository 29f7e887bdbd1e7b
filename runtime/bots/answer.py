"""A command's ``answer`` and ``keyboard`` header fields, rendered for Telegram (pure)."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any, Final

PLACEHOLDER: Final = re.compile(r"\{\{\s*([A-Za-z_][\w.]*)\s*\}\}")
MARKDOWN_V2_SPECIAL: Final = re.compile(r"([_*\[\]()~`>#+\-=|{}.!\\])")
MARKDOWN_SPECIAL: Final = re.compile(r"([_*`\[])")


def escape(text: str, parse_mode: str | None) -> str:
    """Escape ``text`` so Telegram shows it literally under ``parse_mode``."""
    if parse_mode is None:
        return text
    mode = parse_mode.lower()
    if mode == "html":
        return html.escape(text, quote=False)
    if mode == "markdownv2":
        return MARKDOWN_V2_SPECIAL.sub(r"\\\1", text)
    if mode == "markdown":
        return MARKDOWN_SPECIAL.sub(r"\\\1", text)
    return text


def _lookup(context: Mapping[str, Any], path: str) -> str:
    value: Any = context
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        else:
            return ""
    return "" if value is None else str(value)


def render_answer(template: str, context: Mapping[str, Any], parse_mode: str | None) -> str:
    """Fill ``{{user.first_name}}``-style placeholders, each value escaped for ``parse_mode``.

    Unknown placeholders become empty text; the template's own markup is kept as written.
    """
    return PLACEHOLDER.sub(lambda m: escape(_lookup(context, m.group(1)), parse_mode), template)


def unescapable_placeholders(template: str) -> list[str]:
    """The placeholders of a legacy-Markdown template that sit inside an entity.

    Legacy ``Markdown`` allows no escaping inside ``*bold*``, ``_italic_``, `` `code` ``,
    ```` ```pre``` ```` or ``[text](url)``, so a value there with ``_``, ``*``, `` ` `` or ``[``
    makes Telegram refuse the whole message.
    """
    found: list[str] = []
    closing: str | None = None
    i = 0
    while i < len(template):
        placeholder = PLACEHOLDER.match(template, i)
        if placeholder is not None:
            if closing is not None:
                found.append(placeholder.group(0))
            i = placeholder.end()
        elif closing is None:
            i, closing = _opening(template, i)
        elif template.startswith(closing, i):
            i += len(closing)
            if closing == "]" and template.startswith("(", i):
                closing, i = ")", i + 1
            else:
                closing = None
        else:
            i += 1
    return found


def _opening(template: str, i: int) -> tuple[int, str | None]:
    """Where scanning goes on after ``template[i]`` outside an entity, and what closes the
    entity it opens (None if it opens none)."""
    char = template[i]
    if char == "\\":
        return i + 2, None
    if template.startswith("```", i):
        return i + 3, "```"
    if char in "*_`":
        return i + 1, char
    if char == "[":
        return i + 1, "]"
    return i + 1, None


def reply_keyboard(layout: str) -> dict[str, Any]:
    """Turn ``"A,B\\nC"`` into a ReplyKeyboardMarkup with rows [A, B] and [C]."""
    rows = []
    for line in layout.splitlines():
        buttons = [{"text": label.strip()} for label in line.split(",") if label.strip()]
        if buttons:
            rows.append(buttons)
    return {"keyboard": rows, "resize_keyboard": True}
