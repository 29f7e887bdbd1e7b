"""The Store contract for bot secrets: sealed bytes kept per bot and name, names listed."""

from __future__ import annotations

from runtime.store import Store


async def test_a_secret_is_kept_per_bot_and_replaced_by_name(store: Store) -> None:
    assert await store.put_secret("shop", "KEY", b"\x01sealed-one", now=1.0) is True
    assert await store.put_secret("shop", "KEY", b"\x01sealed-two", now=2.0) is False
    assert await store.put_secret("blog", "KEY", b"\x01blog", now=3.0) is True
    assert await store.sealed_secrets("shop") == {"KEY": b"\x01sealed-two"}
    assert await store.sealed_secrets("blog", ["KEY", "NONE"]) == {"KEY": b"\x01blog"}
    listed = await store.list_secrets("shop")
    assert [(info.name, info.updated_at) for info in listed] == [("KEY", 2.0)]


async def test_deleting_a_secret_touches_only_that_bot_and_name(store: Store) -> None:
    await store.put_secret("shop", "A", b"a", now=1.0)
    await store.put_secret("shop", "B", b"b", now=1.0)
    await store.put_secret("blog", "A", b"x", now=1.0)
    assert await store.delete_secret("shop", "A") is True
    assert await store.delete_secret("shop", "A") is False
    assert [info.name for info in await store.list_secrets("shop")] == ["B"]
    assert await store.sealed_secrets("blog") == {"A": b"x"}
    assert await store.list_secrets("nobody") == []


async def test_the_bots_with_secrets_are_listed_once_each(store: Store) -> None:
    assert await store.secret_bots() == []
    await store.put_secret("shop", "A", b"a", now=1.0)
    await store.put_secret("shop", "B", b"b", now=1.0)
    await store.put_secret("blog", "A", b"x", now=1.0)
    assert await store.secret_bots() == ["blog", "shop"]
    await store.delete_secret("blog", "A")
    assert await store.secret_bots() == ["shop"]
