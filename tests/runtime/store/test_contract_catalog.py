"""The store contract for the bots catalog: create, disable, enable, delete (``store`` runs
against each implementation)."""

from __future__ import annotations

import asyncio

from runtime.bots.versions import digest
from runtime.store import Store

V1 = {"bot.yaml": "token_env: T\n", "a.py": "# command: /a\n# answer: one\n"}


async def test_a_created_bot_is_known_with_no_version_and_created_once(store: Store) -> None:
    assert await store.create_bot("shop", created_by="ann", now=1.0) == "created"
    (state,) = await store.bot_catalog()
    assert (state.bot_id, state.version, state.created_by, state.disabled) == (
        "shop",
        None,
        "ann",
        False,
    )
    assert await store.create_bot("shop", created_by="bob", now=2.0) == "exists"
    assert await store.live_states() == []  # nothing for the processes to serve yet


async def test_of_many_concurrent_creates_of_one_id_exactly_one_wins(store: Store) -> None:
    outcomes = await asyncio.gather(
        *(store.create_bot("race", created_by=f"u{n}", now=1.0) for n in range(10))
    )
    assert sorted(outcomes) == ["created"] + ["exists"] * 9


async def test_disabling_moves_the_stamp_and_marks_the_live_state(store: Store) -> None:
    await store.deploy_version("shop", V1, digest(V1), origin="api", now=1.0)
    stamp = await store.live_stamp()
    assert await store.set_bot_disabled("shop", True, now=2.0) is True
    assert await store.set_bot_disabled("shop", True, now=2.0) is False  # already
    assert await store.live_stamp() > stamp
    (state,) = await store.live_states()
    assert state.disabled and state.version == 1  # its version stays, unserved
    assert await store.set_bot_disabled("shop", False, now=3.0) is True
    assert not (await store.live_states())[0].disabled
    assert await store.set_bot_disabled("ghost", True, now=3.0) is False


async def test_a_deleted_bot_is_forgotten_its_versions_kept_and_its_id_guarded(
    store: Store,
) -> None:
    await store.create_bot("shop", created_by="ann", now=1.0)
    await store.create_user("ann", "author", now=1.0)
    await store.set_grant("ann", "shop", "author")
    await store.deploy_version("shop", V1, digest(V1), origin="api", now=1.0)
    before = (await store.bot_generations(["shop"], now=1.0))["shop"]
    assert await store.delete_bot("shop", now=2.0) is True
    assert await store.delete_bot("shop", now=2.0) is False
    assert await store.bot_catalog() == [] and await store.live_states() == []
    assert [v.version for v in await store.bot_versions("shop")] == [1]
    ann = await store.get_user("ann")
    assert ann is not None and ann.grants == {}  # nobody keeps access to a deleted bot
    # Only a reuse (an admin's) may create an id that has history.
    assert await store.create_bot("shop", created_by="bob", now=3.0) == "used"
    assert await store.create_bot("shop", created_by="root", now=3.0, reuse=True) == "created"
    # Its links were retired: it gets a new generation when it is loaded again.
    assert (await store.bot_generations(["shop"], now=4.0))["shop"] != before


async def test_oldest_pending_is_the_enqueue_time_of_each_bots_oldest_due_item(
    store: Store,
) -> None:
    assert await store.oldest_pending(now=100.0) == {}
    await store.enqueue("shop", "update", "c:1", {"update_id": 1}, update_id=1)
    await store.enqueue("shop", "update", "c:2", {"update_id": 2}, update_id=2)
    await store.enqueue("later", "run", "c:3", {"n": 1}, run_after=10.0**10)
    found = await store.oldest_pending(now=10.0**9)
    assert list(found) == ["shop"] and found["shop"] > 0  # "later" is not due yet
    assert set(await store.oldest_pending(now=10.0**10)) == {"shop", "later"}


async def test_an_id_that_only_has_secrets_or_data_is_used_for_an_author(store: Store) -> None:
    """A bot created, given a secret (or a queued run) and deleted before anything served
    never goes to another author with them: its id is used (an admin may reuse it)."""
    assert await store.create_bot("shop", created_by="root", now=1.0) == "created"
    await store.put_secret("shop", "STRIPE_KEY", b"sealed", now=1.0)
    assert await store.delete_bot("shop", now=2.0)
    assert await store.create_bot("shop", created_by="mallory", now=3.0) == "used"
    await store.enqueue("cart", "run", "c:1", {"command": "x"})  # never created, but has data
    assert await store.create_bot("cart", created_by="mallory", now=3.0) == "used"
    assert await store.create_bot("shop", created_by="root", now=3.0, reuse=True) == "created"
