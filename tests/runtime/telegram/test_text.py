"""Telegram's text limit: UTF-16 counting, the refusal message, and splitting at lines or words."""

from __future__ import annotations

import pytest

from runtime.telegram.text import MAX_TEXT, split_text, too_long, utf16_len


def test_emoji_outside_the_bmp_count_as_two_units() -> None:
    """A pile of poo is two UTF-16 units, an accented letter one."""
    assert utf16_len("a\U0001f4a9é") == 4


def test_a_text_of_4096_emoji_characters_is_too_long() -> None:
    """4,096 Python characters of emoji are 8,192 units: refused, with the count in the reason."""
    assert too_long("x" * MAX_TEXT) is None
    reason = too_long("\U0001f600" * MAX_TEXT)
    assert reason is not None and "8192 UTF-16 units" in reason and "4096" in reason


def test_a_short_text_is_one_part() -> None:
    """A text that fits (even an empty one) comes back unchanged as one part."""
    assert split_text("hello") == ["hello"]
    assert split_text("") == [""]


def test_split_prefers_the_last_line_break_that_fits() -> None:
    """Lines stay whole: the cut is at the last newline within the limit, which is dropped."""
    text = "aaaa bb\ncccc\ndddd"
    assert split_text(text, limit=12) == ["aaaa bb\ncccc", "dddd"]


def test_split_falls_back_to_spaces_then_characters() -> None:
    """With no line break, the cut is at a space; a word longer than the limit is cut in it."""
    assert split_text("one two three", limit=8) == ["one two", "three"]
    assert split_text("abcdefghij", limit=4) == ["abcd", "efgh", "ij"]


def test_split_never_cuts_a_surrogate_pair_and_every_part_fits() -> None:
    """Emoji count as two units, and no part exceeds the limit."""
    parts = split_text("\U0001f600" * 5, limit=4)
    assert parts == ["\U0001f600" * 2, "\U0001f600" * 2, "\U0001f600"]


def test_split_long_text_keeps_every_word() -> None:
    """10,000 characters of words and emoji become parts within 4,096 units holding every word."""
    words = [f"w{i}\U0001f600" for i in range(1500)]
    text = " ".join(words)
    parts = split_text(text)
    assert len(parts) > 1
    assert all(utf16_len(part) <= MAX_TEXT for part in parts)
    assert " ".join(parts).split(" ") == words


def test_split_refuses_a_limit_below_one_emoji() -> None:
    """A limit under 2 units could not hold an emoji at all."""
    with pytest.raises(ValueError, match="at least 2"):
        split_text("x", limit=1)
