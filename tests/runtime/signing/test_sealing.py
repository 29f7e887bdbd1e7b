"""Sealing bot secrets: AES-GCM under a key derived from the master key, bound to bot and name."""

from __future__ import annotations

import pytest

from runtime.errors import SecretError
from runtime.signing.sealing import (
    MAX_VALUE_CHARS,
    SecretBox,
    check_name,
    check_value,
    masked,
)

MASTER = bytes(range(32))


def test_a_sealed_secret_opens_for_its_bot_and_name_only() -> None:
    box = SecretBox(MASTER)
    sealed = box.seal("shop", "STRIPE_KEY", "sk_live_12345678")
    assert b"sk_live" not in sealed
    assert box.open("shop", "STRIPE_KEY", sealed) == "sk_live_12345678"
    with pytest.raises(SecretError, match="does not open"):
        box.open("blog", "STRIPE_KEY", sealed)  # copied to another bot
    with pytest.raises(SecretError, match="does not open"):
        box.open("shop", "OTHER_KEY", sealed)  # renamed


def test_two_seals_of_one_value_differ_and_both_open() -> None:
    box = SecretBox(MASTER)
    first, second = (box.seal("shop", "K", "the same value") for _ in range(2))
    assert first != second
    assert box.open("shop", "K", first) == box.open("shop", "K", second) == "the same value"


def test_another_master_key_or_a_changed_byte_does_not_open() -> None:
    sealed = SecretBox(MASTER).seal("shop", "K", "unicode: ключ ✓")
    with pytest.raises(SecretError):
        SecretBox(bytes(32)).open("shop", "K", sealed)
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(SecretError):
        SecretBox(MASTER).open("shop", "K", tampered)
    with pytest.raises(SecretError, match="not a sealed value"):
        SecretBox(MASTER).open("shop", "K", b"\x02" + sealed[1:])
    assert SecretBox(MASTER).open("shop", "K", sealed) == "unicode: ключ ✓"


def test_the_box_never_shows_its_key() -> None:
    assert MASTER.hex() not in repr(SecretBox(MASTER))


@pytest.mark.parametrize("name", ["", "1KEY", "KEY-1", "a" * 65, "ключ", "KEY "])
def test_bad_secret_names_are_refused(name: str) -> None:
    with pytest.raises(SecretError):
        check_name(name)


def test_good_names_and_values_pass_and_bad_values_are_refused() -> None:
    assert check_name("_x") == "_x" and check_name("STRIPE_KEY_2") == "STRIPE_KEY_2"
    for value in ("", "x" * (MAX_VALUE_CHARS + 1), "\ud800"):
        with pytest.raises(SecretError):
            check_value(value)


def test_values_shorter_than_eight_characters_are_not_masked() -> None:
    assert not masked("1234567") and masked("12345678")
