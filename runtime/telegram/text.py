"""Telegram's message-length limit, counted the way Telegram counts: in UTF-16 code units (pure).

A character outside the Basic Multilingual Plane (most emoji) is two units, so a text of 4,096
Python characters can be too long. :func:`split_text` cuts a long text into messages that fit,
at a line break if it can, else at a space, else between characters (never inside a surrogate
pair).
"""

from __future__ import annotations

from typing import Final

MAX_TEXT: Final = 4096
"""The most UTF-16 units one message's text may have (after entity parsing)."""


def utf16_len(text: str) -> int:
    """The length of ``text`` in UTF-16 code units, as Telegram counts it."""
    return len(text) + sum(1 for char in text if ord(char) > 0xFFFF)


def too_long(text: str, limit: int = MAX_TEXT) -> str | None:
    """Why ``text`` cannot be one message, or ``None`` when it fits."""
    size = utf16_len(text)
    if size <= limit:
        return None
    return (
        f"the text is {size} UTF-16 units long and Telegram allows at most {limit} per message "
        "(emoji count as 2); Bot.sendMessage splits long texts into several messages"
    )


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Cut ``text`` into parts of at most ``limit`` UTF-16 units, at lines or words if possible.

    The break is at the last line break that fits (dropped), else the last space (dropped), else
    as many characters as fit. Parts joined with the dropped separators give ``text`` back.
    """
    if limit < 2:
        raise ValueError("limit must be at least 2 UTF-16 units")
    parts: list[str] = []
    rest = text
    while utf16_len(rest) > limit:
        end = _fitting_prefix(rest, limit)
        cut = rest.rfind("\n", 0, end + 1)
        if cut <= 0:
            cut = rest.rfind(" ", 0, end + 1)
        if cut <= 0:
            parts.append(rest[:end])
            rest = rest[end:]
        else:
            parts.append(rest[:cut])
            rest = rest[cut + 1 :]
    if rest or not parts:
        parts.append(rest)
    return parts


def _fitting_prefix(text: str, limit: int) -> int:
    """The largest ``n`` such that ``text[:n]`` is at most ``limit`` UTF-16 units."""
    units = 0
    for index, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > limit:
            return index
    return len(text)
