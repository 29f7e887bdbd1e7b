"""The callback_data check made before any reply markup is sent."""

from __future__ import annotations

import pytest

from runtime.telegram.markup import markup_problem


def inline(data: str) -> dict[str, object]:
    return {
        "inline_keyboard": [
            [{"text": "ok", "callback_data": "x"}],
            [{"text": "B", "callback_data": data}],
        ]
    }


@pytest.mark.parametrize("data", ["y", "y" * 64, "é" * 32, "👍" * 16])
def test_callback_data_of_1_to_64_utf8_bytes_passes(data: str) -> None:
    assert markup_problem(inline(data)) is None


@pytest.mark.parametrize(
    ("data", "size"), [("", 0), ("y" * 65, 65), ("é" * 33, 66), ("👍" * 17, 68)]
)
def test_callback_data_outside_1_to_64_utf8_bytes_names_the_button_and_row(
    data: str, size: int
) -> None:
    assert markup_problem(inline(data)) == (
        f"reply_markup: the callback_data of button 'B' (row 2) is {size} bytes; "
        "Telegram takes 1 to 64 bytes (UTF-8)"
    )


@pytest.mark.parametrize(
    "markup",
    [
        None,
        "text",
        {"keyboard": [[{"text": "A"}]]},
        {"inline_keyboard": "x"},
        {"inline_keyboard": ["x", [1]]},
    ],
)
def test_other_shapes_are_left_to_the_spec_check(markup: object) -> None:
    assert markup_problem(markup) is None
