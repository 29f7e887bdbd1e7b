"""``Keyboard``: the helpers scripts use to build reply markup, as a script module (pure).

The helpers are ordinary policy-compiled script code (:data:`SOURCE`), bound to the global
``Keyboard`` of every run (``WorkerPool.run(bind=...)``) and imported in the worker on first
use: building a keyboard costs no round trip to the server. They return plain data
(Telegram's ``reply_markup``), check what they can early (a callback data over 64 UTF-8 bytes
fails at the script's line), and the server checks the markup again before sending
(:func:`runtime.telegram.markup.markup_problem`), whoever built it.

- ``Keyboard.inline(rows)``: rows of buttons; a button is ``"text"`` (its own callback data),
  ``("text", "data")`` (a data that is an ``http(s)://`` or ``tg://`` URL makes a URL button),
  or a dict passed as is (``{"text": ..., "web_app": {...}}``). ``rows`` may also be the TBL
  notation, ``"A,B\\nC"``.
- ``Keyboard.reply(rows, resize=True, one_time=False, placeholder=None, persistent=False,
  selective=False)``: rows of texts (or dicts such as ``{"text": ..., "request_contact":
  True}``), or ``"A,B\\nC"``.
- ``Keyboard.remove(selective=False)``: take the reply keyboard away.
"""

from __future__ import annotations

from functools import cache
from typing import Final

from sandbox import Script, compile_script

MODULE: Final = "keyboard"
"""The script module name the helpers are bound from."""
GLOBAL: Final = "Keyboard"
FILENAME: Final = "<Keyboard>"
"""A ``<`` name: a failure inside a helper points at the author's line, not at the helper."""

SOURCE: Final = '''
MAX_CALLBACK_BYTES = 64
URL_PREFIXES = ("http://", "https://", "tg://")


def rows_of(rows, what):
    if isinstance(rows, str):
        found = []
        for line in rows.splitlines():
            labels = [label.strip() for label in line.split(",") if label.strip()]
            if labels:
                found.append(labels)
        return found
    if not isinstance(rows, (list, tuple)):
        raise TypeError(what + "() takes a list of rows (lists of buttons) or 'A,B\\\\nC' text")
    found = []
    for row in rows:
        if isinstance(row, str) or isinstance(row, dict):
            found.append([row])
        elif isinstance(row, list):
            found.append(row)
        else:
            raise TypeError(what + "(): each row is a list of buttons")
    return found


def inline_button(item):
    if isinstance(item, dict):
        return dict(item)
    if isinstance(item, str):
        text, data = item, item
    elif isinstance(item, tuple) and len(item) == 2:
        text, data = item
    else:
        raise TypeError(
            "Keyboard.inline(): a button is a text, a (text, data) pair or a dict, not "
            + repr(item)[:60]
        )
    if not isinstance(text, str) or not isinstance(data, str):
        raise TypeError("Keyboard.inline(): a button's text and data are texts")
    if data.startswith(URL_PREFIXES):
        return {"text": text, "url": data}
    size = len(data.encode("utf-8"))
    if size < 1 or size > MAX_CALLBACK_BYTES:
        raise ValueError(
            "Keyboard.inline(): the callback data of button "
            + repr(text)[:60]
            + " is "
            + str(size)
            + " bytes; Telegram takes 1 to 64 bytes (UTF-8)"
        )
    return {"text": text, "callback_data": data}


def inline(rows):
    """Rows of buttons as an inline keyboard (reply_markup)."""
    rows = rows_of(rows, "Keyboard.inline")
    return {"inline_keyboard": [[inline_button(b) for b in row] for row in rows]}


def reply_button(item):
    if isinstance(item, dict):
        return dict(item)
    if isinstance(item, str):
        return {"text": item}
    raise TypeError("Keyboard.reply(): a button is a text or a dict, not " + repr(item)[:60])


def reply(rows, resize=True, one_time=False, placeholder=None, persistent=False, selective=False):
    """Rows of texts as a reply keyboard (reply_markup)."""
    markup = {
        "keyboard": [[reply_button(b) for b in row] for row in rows_of(rows, "Keyboard.reply")],
        "resize_keyboard": bool(resize),
    }
    if one_time:
        markup["one_time_keyboard"] = True
    if persistent:
        markup["is_persistent"] = True
    if selective:
        markup["selective"] = True
    if placeholder is not None:
        markup["input_field_placeholder"] = str(placeholder)
    return markup


def remove(selective=False):
    """Take the reply keyboard away (reply_markup)."""
    markup = {"remove_keyboard": True}
    if selective:
        markup["selective"] = True
    return markup
'''


@cache
def script() -> Script:
    """The helpers, compiled once per process."""
    compiled = compile_script(SOURCE, filename=FILENAME)
    if not compiled.ok:  # pragma: no cover - a test compiles it
        raise RuntimeError(f"the Keyboard helpers do not compile: {compiled.failure()}")
    return compiled
