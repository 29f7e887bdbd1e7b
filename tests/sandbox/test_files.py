"""``File``: exact-typed, immutable, plain data at the worker boundary, capped to fit one call."""

from __future__ import annotations

import base64
import json

import pytest

from sandbox.files import FILE_KEY, MAX_FILE_BYTES, File, from_host
from sandbox.plain import NotPlain, to_plain
from sandbox.protocol import MAX_CALL_BYTES, Call, encode


class Sneaky(str):
    """A str subclass whose methods lie; File reads it through str's own slot."""

    def encode(self, *args: object, **kwargs: object) -> bytes:  # type: ignore[override]
        raise AssertionError("File called a script's method")


def test_a_file_becomes_plain_json_with_text_or_base64() -> None:
    assert to_plain([File("a.csv", "x,y\n")]) == [
        {FILE_KEY: {"name": "a.csv", "mime": None, "text": "x,y\n"}}
    ]
    plain = to_plain(File("b.bin", b"\x00\xff", mime="application/x-b"))
    assert plain == {FILE_KEY: {"name": "b.bin", "mime": "application/x-b", "base64": "AP8="}}
    json.dumps(plain)  # it is JSON


def test_subclassed_parts_are_read_through_the_base_types() -> None:
    made = File(Sneaky("n.txt"), Sneaky("hello"))
    assert type(made.name) is str and made.text == "hello" and made.data == b"hello"


def test_a_file_subclass_does_not_pass_as_a_file() -> None:
    class Fake(File):
        pass

    with pytest.raises(NotPlain, match="Fake"):
        to_plain(Fake("a.txt", "x"))


def test_the_largest_file_still_fits_one_call() -> None:
    biggest = File("big.bin", b"\xff" * MAX_FILE_BYTES)
    payload = encode(Call("Api.sendDocument", [], {"document": to_plain(biggest), "chat_id": 1}))
    assert len(payload) <= MAX_CALL_BYTES
    with pytest.raises(ValueError, match="holds at most"):
        File("big.bin", b"\xff" * (MAX_FILE_BYTES + 1))


def test_a_file_from_the_host_is_a_file_and_other_answers_are_untouched() -> None:
    made = from_host({FILE_KEY: {"name": "doc.pdf", "mime": "application/pdf", "data": b"%PDF"}})
    assert isinstance(made, File) and made.name == "doc.pdf" and made.size == 4
    assert made.text == "%PDF" and made.mime == "application/pdf"
    assert from_host({FILE_KEY: {"name": 1, "data": b""}}) == {FILE_KEY: {"name": 1, "data": b""}}
    assert from_host({"a": 1}) == {"a": 1}
    binary = from_host({FILE_KEY: {"name": "x", "mime": None, "data": b"\xff\xfe"}})
    assert isinstance(binary, File) and binary.text is None
    assert base64.b64decode(to_plain(binary)[FILE_KEY]["base64"]) == b"\xff\xfe"


def test_a_file_cannot_be_changed() -> None:
    made = File("a.txt", "x")
    with pytest.raises(AttributeError):
        made.name = "b.txt"  # type: ignore[misc]


@pytest.mark.parametrize("mime", ["text", "text/plain; charset=utf-8", "text/plain\r\nX: 1", ""])
def test_a_mime_type_that_could_break_a_header_is_refused(mime: str) -> None:
    with pytest.raises(ValueError, match="mime must look like"):
        File("a.txt", "x", mime=mime)
