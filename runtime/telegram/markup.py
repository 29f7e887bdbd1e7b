"""Checks on ``reply_markup`` made before a call goes out (pure).

Telegram refuses an inline button whose ``callback_data`` is not 1 to 64 bytes (UTF-8) with a
terse "BUTTON_DATA_INVALID"; this names the button instead, before any HTTP.
"""

from __future__ import annotations

from typing import Any, Final

MAX_CALLBACK_BYTES: Final = 64


def markup_problem(markup: Any) -> str | None:
    """Why ``markup`` (a ``reply_markup`` value) would be refused, or None.

    Only what Telegram leaves unexplained is checked here: the size of each inline button's
    ``callback_data``. The shape is the Bot API spec's check (``runtime.telegram.spec``).
    """
    if type(markup) is not dict:
        return None
    rows = markup.get("inline_keyboard")
    if type(rows) is not list:
        return None
    for row_index, row in enumerate(rows, 1):
        if type(row) is not list:
            continue
        for button in row:
            if type(button) is not dict:
                continue
            data = button.get("callback_data")
            if type(data) is not str:
                continue
            size = len(data.encode("utf-8", "surrogatepass"))
            if not 1 <= size <= MAX_CALLBACK_BYTES:
                text = str(button.get("text", ""))[:40]
                return (
                    f"reply_markup: the callback_data of button {text!r} (row {row_index}) is "
                    f"{size} bytes; Telegram takes 1 to {MAX_CALLBACK_BYTES} bytes (UTF-8)"
                )
    return None
