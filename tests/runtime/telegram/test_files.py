"""Uploads as multipart parts, size caps per field, and getFile results (pure)."""

from __future__ import annotations

import pytest

from runtime.errors import FileRefused
from runtime.telegram.files import (
    TELEGRAM_MAX_PHOTO,
    Upload,
    downloaded,
    file_path_of,
    multipart_parts,
    take_uploads,
)


def plain(name: str, text: str) -> dict[str, object]:
    return {"$file": {"name": name, "mime": None, "text": text}}


def test_top_level_files_are_parts_and_nested_ones_attach() -> None:
    params, found = take_uploads(
        {
            "chat_id": 1,
            "document": plain("a.csv", "x"),
            "media": [{"type": "photo", "media": plain("p.png", "P")}],
            "disable_notification": True,
        },
        frozenset({"document"}),
        max_bytes=100,
    )
    assert found and params["document"] == Upload("a.csv", "text/csv", b"x")
    fields, files = multipart_parts(params)
    assert fields == {
        "chat_id": "1",
        "media": '[{"type": "photo", "media": "attach://file1"}]',
        "disable_notification": "true",
    }
    assert files == [
        ("document", ("a.csv", b"x", "text/csv")),
        ("file1", ("p.png", b"P", "image/png")),
    ]


def test_a_file_where_the_method_takes_none_is_refused() -> None:
    with pytest.raises(FileRefused, match="text does not take a file"):
        take_uploads({"text": plain("a", "b")}, frozenset({"document"}), max_bytes=10)


def test_photos_are_held_to_ten_megabytes_and_everything_to_the_bots_cap() -> None:
    big = {"$file": {"name": "p.png", "mime": None, "base64": ""}}
    take_uploads({"photo": big}, frozenset({"photo"}), max_bytes=10)  # empty is fine
    with pytest.raises(FileRefused, match="at most 3") as caught:
        take_uploads({"document": plain("d", "four")}, frozenset({"document"}), max_bytes=3)
    assert caught.value.status == 413
    assert TELEGRAM_MAX_PHOTO == 10 * 1024 * 1024


@pytest.mark.parametrize(
    "body",
    [
        {"name": "a/b", "text": "x"},
        {"name": "a", "base64": "not base64!"},
        {"name": "a"},
        {"name": "a", "text": "x", "mime": "nonsense"},
        {"name": "a", "text": "x", "mime": "text/plain\r\nX-Injected: 1"},
        "not a mapping",
    ],
)
def test_malformed_files_are_refused(body: object) -> None:
    with pytest.raises(FileRefused):
        take_uploads({"document": {"$file": body}}, frozenset({"document"}), max_bytes=100)


def test_only_a_plain_file_path_is_downloaded() -> None:
    assert file_path_of({"file_path": "documents/file_1.pdf", "file_size": 3}) == (
        "documents/file_1.pdf",
        3,
    )
    for bad in ("../etc/passwd", "/abs", "a/../b", "x?y", ""):
        with pytest.raises(FileRefused):
            file_path_of({"file_path": bad})
    assert downloaded("photos/file_2.jpg", b"J") == {
        "$file": {"name": "file_2.jpg", "mime": "image/jpeg", "data": b"J"}
    }
