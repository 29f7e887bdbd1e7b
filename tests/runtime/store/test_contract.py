"""The Store contract: every backend must pass this suite unchanged.

To add a backend, add one entry to ``STORE_FACTORIES``: a function building an unopened store
whose data is empty (for a server backend, a fresh database or schema per test), and one to
``CHILD_STORES``: how a second process opens the same store (for the concurrency cases).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from runtime.errors import PendingRunsExceeded, QuotaExceeded, StoreError
from runtime.store import (
    MISSING,
    Instance,
    NewRun,
    PropertyWrite,
    QueuedItem,
    RateHit,
    RunRecord,
    SqliteStore,
    Store,
    Waiting,
)
from sandbox import JSON

STORE_FACTORIES: dict[str, Callable[[Path], Store]] = {
    "sqlite": lambda tmp_path: SqliteStore(tmp_path / "store" / "botbox.sqlite3"),
}
CHILD_STORES: dict[str, tuple[str, Callable[[Path], str]]] = {
    "sqlite": (
        "from runtime.store import SqliteStore\nstore = SqliteStore(ARG)",
        lambda tmp_path: str(tmp_path / "store" / "botbox.sqlite3"),
    ),
}
"""Per backend: Python that binds ``store`` (unopened) from the text ``ARG``, and that text."""
REPO_ROOT = Path(__file__).resolve().parents[3]

NOW = 1_000_000.0
LEASE = 30.0
BOT = "bot-a"
OTHER_BOT = "bot-b"


async def commit_writes(
    store: Store, bot_id: str, writes: Sequence[PropertyWrite], *, max_bot_bytes: int
) -> None:
    """Commit property writes as a run that schedules nothing does (``Store.commit_run``)."""
    await store.commit_run(bot_id, writes, [], max_bot_bytes=max_bot_bytes, max_pending_runs=10**6)


def same_json(got: object, expected: object) -> bool:
    """Whether two values are equal with the same JSON types all the way down."""
    if type(got) is not type(expected):
        return False
    if isinstance(expected, dict):
        assert isinstance(got, dict)
        return got.keys() == expected.keys() and all(
            same_json(got[k], v) for k, v in expected.items()
        )
    if isinstance(expected, list):
        assert isinstance(got, list)
        return len(got) == len(expected) and all(map(same_json, got, expected))
    return got == expected


async def claim(
    store: Store, owner: str = "w1", *, now: float = NOW, bot_ids: list[str] | None = None
) -> QueuedItem | None:
    """Claim with the suite's default clock and lease."""
    return await store.claim(owner, now=now, lease_seconds=LEASE, bot_ids=bot_ids)


async def claim_one(
    store: Store, owner: str = "w1", *, now: float = NOW, bot_ids: list[str] | None = None
) -> QueuedItem:
    """Claim an item that must be there."""
    item = await claim(store, owner, now=now, bot_ids=bot_ids)
    assert item is not None
    return item


def run_record(status: str = "ok", *, bot_id: str = BOT, started_at: float = NOW) -> RunRecord:
    """A run record with every field set."""
    return RunRecord(
        bot_id=bot_id,
        command="/start",
        trigger="message",
        user_id=7,
        chat_id=-100,
        status=status,
        started_at=started_at,
        cpu_seconds=0.01,
        wall_seconds=0.02,
        output="héllo\n",
        calls=({"method": "sendMessage", "ok": True},),
        error=None if status == "ok" else {"line": 3, "message": "boom"},
        extra={"attempt": 1, "tags": ["a"]},
    )


CHILD_COMMITTER = """
import asyncio, json, sys
from runtime.errors import PendingRunsExceeded
from runtime.store import NewRun, PropertyWrite
ARG = sys.argv[1]
{opener}

async def main():
    await store.open()
    print("ready", flush=True)
    sys.stdin.readline()
    accepted = []
    for n in range(int(sys.argv[3])):
        try:
            await store.commit_run(
                "bot-a", [PropertyWrite("bot", f"{{sys.argv[2]}}-{{n}}", n)],
                [NewRun("c", {{"n": n}}), NewRun("d", {{"n": n}})],
                max_bot_bytes=10**6, max_pending_runs=int(sys.argv[4]))
            accepted.append(n)
        except PendingRunsExceeded:
            pass
    await store.close()
    print(json.dumps(accepted), flush=True)

asyncio.run(main())
"""


async def commit_two_runs(store: Store, who: str, n: int, cap: int) -> bool:
    """Commit a property ``who-n`` and two runs under ``cap``; True if accepted."""
    try:
        await store.commit_run(
            BOT,
            [PropertyWrite("bot", f"{who}-{n}", n)],
            [NewRun("c", {"n": n}), NewRun("d", {"n": n})],
            max_bot_bytes=10**6,
            max_pending_runs=cap,
        )
    except PendingRunsExceeded:
        return False
    return True


class TestStoreContract:
    """Behaviour every Store implementation shares."""

    # -- enqueue and deduplication --
    async def test_duplicate_update_is_refused_and_changes_nothing(self, store: Store) -> None:
        """A second enqueue of the same (bot, update_id) returns False and adds nothing."""
        assert await store.enqueue(BOT, "update", "c1", {"n": 1}, update_id=10)
        assert not await store.enqueue(BOT, "update", "c2", {"n": 2}, update_id=10)
        assert await store.pending_count(BOT) == 1
        item = await claim_one(store)
        assert (item.chat_key, item.payload) == ("c1", {"n": 1})

    async def test_duplicate_is_refused_even_after_the_item_finished(self, store: Store) -> None:
        """A finished update still dedupes a redelivery of its update_id."""
        await store.enqueue(BOT, "update", "c1", {}, update_id=10)
        await store.finish(await claim_one(store), "w1")
        assert not await store.enqueue(BOT, "update", "c1", {}, update_id=10)
        assert await store.pending_count() == 0

    async def test_same_update_id_in_another_bot_is_not_a_duplicate(self, store: Store) -> None:
        """Update ids are per bot."""
        assert await store.enqueue(BOT, "update", "c1", {}, update_id=10)
        assert await store.enqueue(OTHER_BOT, "update", "c1", {}, update_id=10)
        assert await store.pending_count() == 2

    async def test_runs_without_update_id_are_never_duplicates(self, store: Store) -> None:
        """Items enqueued with update_id None are all kept."""
        for _ in range(3):
            assert await store.enqueue(BOT, "run", "c1", {"command": "/tick"})
        assert await store.pending_count(BOT) == 3

    async def test_claim_returns_the_item_with_payload_and_first_attempt(
        self, store: Store
    ) -> None:
        """A claimed item carries its fields, its JSON payload decoded and attempts == 1."""
        payload: JSON = {"message": {"text": "hi ✓", "chat": {"id": -5}}, "n": [1, 2.5, None]}
        await store.enqueue(BOT, "update", "chat:-5", payload, update_id=99)
        item = await claim_one(store)
        assert (item.bot_id, item.kind, item.chat_key, item.update_id, item.attempts) == (
            BOT,
            "update",
            "chat:-5",
            99,
            1,
        )
        assert same_json(item.payload, payload)

    async def test_claim_on_an_empty_queue_returns_none(self, store: Store) -> None:
        """Nothing to claim gives None."""
        assert await claim(store) is None

    # -- ordering and leases --
    async def test_seq_increases_in_enqueue_order(self, store: Store) -> None:
        """Items get increasing sequence numbers."""
        for chat in ("c1", "c2", "c3"):
            await store.enqueue(BOT, "update", chat, {})
        seqs = [(await claim_one(store)).seq for _ in range(3)]
        assert seqs == sorted(seqs) and len(set(seqs)) == 3

    async def test_items_are_claimed_oldest_first_across_chats(self, store: Store) -> None:
        """With no chat busy, claims follow enqueue order."""
        for n, chat in enumerate(["c2", "c1", "c3", "c1"]):
            await store.enqueue(BOT, "update", chat, {"n": n})
        claimed = [await claim_one(store) for _ in range(3)]
        assert [i.payload for i in claimed] == [{"n": 0}, {"n": 1}, {"n": 2}]
        assert await claim(store) is None

    async def test_next_update_of_a_chat_waits_until_the_first_finishes(self, store: Store) -> None:
        """A chat's second item is not claimable while its first is leased."""
        await store.enqueue(BOT, "update", "c1", {"n": 1}, update_id=1)
        await store.enqueue(BOT, "update", "c1", {"n": 2}, update_id=2)
        first = await claim_one(store, "w1")
        assert await claim(store, "w2") is None
        await store.finish(first, "w1")
        second = await claim_one(store, "w2")
        assert second.payload == {"n": 2}

    async def test_other_chats_proceed_while_one_is_claimed(self, store: Store) -> None:
        """A busy chat does not hold up items of other chats or other bots."""
        await store.enqueue(BOT, "update", "c1", {"n": 1})
        await store.enqueue(BOT, "update", "c1", {"n": 2})
        await store.enqueue(BOT, "update", "c2", {"n": 3})
        await store.enqueue(OTHER_BOT, "update", "c1", {"n": 4})
        claimed = [await claim_one(store, f"w{n}") for n in range(3)]
        assert [(i.bot_id, i.payload) for i in claimed] == [
            (BOT, {"n": 1}),
            (OTHER_BOT, {"n": 4}),
            (BOT, {"n": 3}),
        ]
        assert await claim(store, "w9") is None

    # -- fairness across bots --
    async def test_the_bot_with_fewer_items_in_flight_is_served_first(self, store: Store) -> None:
        """An older backlog of one bot does not go before another bot with nothing in flight."""
        for n in range(50):
            await store.enqueue(BOT, "run", f"c{n}", {"n": n})
        await store.enqueue(OTHER_BOT, "update", "c0", {"n": "other"}, update_id=1)
        first = await claim_one(store, "w1")
        second = await claim_one(store, "w2")
        assert (first.bot_id, first.payload) == (BOT, {"n": 0})
        assert (second.bot_id, second.payload) == (OTHER_BOT, {"n": "other"})

    async def test_claims_alternate_between_bots_oldest_first_among_equals(
        self, store: Store
    ) -> None:
        """Claims alternate between bots by items in flight; among equals the oldest item wins."""
        await store.enqueue(OTHER_BOT, "update", "c1", {"n": 1})
        await store.enqueue(OTHER_BOT, "update", "c2", {"n": 2})
        await store.enqueue(BOT, "update", "c1", {"n": 3})
        await store.enqueue(BOT, "update", "c2", {"n": 4})
        claimed = [(await claim_one(store, f"w{n}")).payload for n in range(4)]
        assert claimed == [{"n": 1}, {"n": 3}, {"n": 2}, {"n": 4}]

    async def test_another_bots_update_waits_for_no_more_than_one_free_slot(
        self, store: Store
    ) -> None:
        """A 1,000-run due backlog holds four workers; the first slot freed takes B's update."""
        for n in range(1000):
            await store.enqueue(BOT, "run", f"c{n % 200}", {"n": n})
        held = [await claim_one(store, f"w{n}") for n in range(4)]
        assert {item.bot_id for item in held} == {BOT}
        await store.enqueue(OTHER_BOT, "update", "c0", {"n": "b"}, update_id=1)
        await store.finish(held[0], "w0")
        item = await claim_one(store, "w0")
        assert (item.bot_id, item.payload) == (OTHER_BOT, {"n": "b"})
        assert await store.pending_count(BOT) == 999

    async def test_expired_leases_do_not_count_as_in_flight(self, store: Store) -> None:
        """A crashed owner's items stop weighing on their bot once their lease is over."""
        await store.enqueue(BOT, "update", "c1", {"n": 1})
        await store.enqueue(BOT, "update", "c2", {"n": 2})
        await store.enqueue(OTHER_BOT, "update", "c1", {"n": 3})
        await store.enqueue(OTHER_BOT, "update", "c2", {"n": 4})
        await claim_one(store, "crashed", bot_ids=[OTHER_BOT])
        later = NOW + LEASE + 1
        assert (await claim_one(store, "w1", now=later)).payload == {"n": 1}
        assert (await claim_one(store, "w2", now=later)).payload == {"n": 3}

    async def test_failed_finish_also_releases_the_chat(self, store: Store) -> None:
        """An item finished as failed counts as finished and unblocks its chat."""
        await store.enqueue(BOT, "update", "c1", {"n": 1})
        await store.enqueue(BOT, "update", "c1", {"n": 2})
        await store.finish(await claim_one(store), "w1", failed=True)
        assert (await claim_one(store)).payload == {"n": 2}
        assert await store.pending_count(BOT) == 1

    async def test_expired_lease_is_reclaimed_with_attempts_incremented(self, store: Store) -> None:
        """An item whose owner's lease ran out goes to the next claimer, attempts + 1."""
        await store.enqueue(BOT, "update", "c1", {}, update_id=1)
        first = await claim_one(store, "crashed", now=NOW)
        assert await claim(store, "w2", now=NOW + LEASE - 1) is None
        again = await claim_one(store, "w2", now=NOW + LEASE + 1)
        assert (again.seq, again.attempts) == (first.seq, 2)

    async def test_expired_item_is_reclaimed_before_later_items_of_its_chat(
        self, store: Store
    ) -> None:
        """After a crash the chat resumes with the same item, not the one behind it."""
        await store.enqueue(BOT, "update", "c1", {"n": 1})
        await store.enqueue(BOT, "update", "c1", {"n": 2})
        first = await claim_one(store, "crashed")
        again = await claim_one(store, "w2", now=NOW + LEASE + 1)
        assert again.seq == first.seq
        assert await claim(store, "w3", now=NOW + LEASE + 2) is None

    async def test_lease_of_an_instance_whose_heartbeat_stopped_is_claimable_at_once(
        self, store: Store
    ) -> None:
        """Once its holder's heartbeat is stale, a lease is reclaimed long before it ends."""
        await store.register_instance(Instance("dead", "h", 1), now=NOW, alive_until=NOW + 5)
        await store.enqueue(BOT, "update", "c1", {"n": 1})
        await store.enqueue(BOT, "update", "c2", {"n": 2})
        first = await claim_one(store, "dead")
        held = await claim_one(store, "dead")
        again = await claim_one(store, "w2", now=NOW + 6)
        later = await claim_one(store, "w2", now=NOW + 6)
        assert {again.seq, later.seq} == {first.seq, held.seq}
        assert (again.attempts, later.attempts) == (2, 2)
        assert await store.heartbeat("w2", alive_until=NOW + 10) is False  # never registered

    async def test_lease_of_an_instance_with_a_current_heartbeat_is_kept(
        self, store: Store
    ) -> None:
        """A holder that keeps beating keeps its lease, however long it has been alive."""
        await store.register_instance(Instance("slow", "h", 1), now=NOW, alive_until=NOW + 5)
        await store.enqueue(BOT, "update", "c1", {"n": 1})
        await claim_one(store, "slow")
        for beat in range(1, 4):
            assert await store.heartbeat("slow", alive_until=NOW + 4 * beat + 5)
            assert await claim(store, "w2", now=NOW + 4 * beat) is None
        assert await claim(store, "w2", now=NOW + 4 * 3 + 5) is not None

    async def test_lease_of_a_stopped_instance_is_claimable_and_its_heartbeat_refused(
        self, store: Store
    ) -> None:
        """A stopped instance frees its leases at once; a heartbeat cannot bring it back."""
        await store.register_instance(Instance("old", "h", 1), now=NOW, alive_until=NOW + 60)
        await store.enqueue(BOT, "update", "c1", {"n": 1})
        first = await claim_one(store, "old")
        assert await claim(store, "w2", now=NOW + 1) is None
        await store.stop_instance("old", now=NOW + 1)
        assert await store.heartbeat("old", alive_until=NOW + 60) is False
        assert (await claim_one(store, "w2", now=NOW + 1)).seq == first.seq
        await store.register_instance(Instance("old", "h", 1), now=NOW + 2, alive_until=NOW + 9)
        assert await store.heartbeat("old", alive_until=NOW + 10) is True

    async def test_live_instances_are_those_of_the_host_with_a_current_heartbeat(
        self, store: Store
    ) -> None:
        """Only instances of the host asked about, not stopped and not timed out, are listed."""
        for name, host, until in [
            ("a", "h1", 60),
            ("b", "h1", 5),
            ("c", "h2", 60),
            ("d", "h1", 60),
        ]:
            instance = Instance(name, host, 7, "123")
            await store.register_instance(instance, now=NOW, alive_until=NOW + until)
        await store.stop_instance("d", now=NOW + 1)
        assert await store.live_instances("h1", now=NOW + 10) == [Instance("a", "h1", 7, "123")]

    async def test_finish_by_a_non_owner_changes_nothing(self, store: Store) -> None:
        """Only the owner holding the item can finish it."""
        await store.enqueue(BOT, "update", "c1", {"n": 1})
        await store.enqueue(BOT, "update", "c1", {"n": 2})
        item = await claim_one(store, "w1")
        await store.finish(item, "intruder")
        assert await store.pending_count(BOT) == 2
        assert await claim(store, "w2") is None

    async def test_finish_by_an_owner_whose_item_was_reclaimed_changes_nothing(
        self, store: Store
    ) -> None:
        """A late finish from an owner that lost its lease does not end the new attempt."""
        await store.enqueue(BOT, "update", "c1", {})
        stale = await claim_one(store, "w1")
        fresh = await claim_one(store, "w2", now=NOW + LEASE + 1)
        await store.finish(stale, "w1")
        assert await store.pending_count(BOT) == 1
        await store.finish(fresh, "w2")
        assert await store.pending_count(BOT) == 0

    async def test_retry_by_a_non_owner_changes_nothing(self, store: Store) -> None:
        """Only the owner can give an item back."""
        await store.enqueue(BOT, "update", "c1", {})
        item = await claim_one(store, "w1")
        await store.retry(item, "intruder", run_after=NOW)
        assert await claim(store, "w2") is None

    async def test_retry_in_the_future_is_not_claimable_until_then(self, store: Store) -> None:
        """A retried item comes back at its run_after, with attempts counted on."""
        await store.enqueue(BOT, "update", "c1", {"n": 1})
        item = await claim_one(store)
        await store.retry(item, "w1", run_after=NOW + 60)
        assert await store.pending_count(BOT) == 1
        assert await claim(store, now=NOW + 59) is None
        again = await claim_one(store, now=NOW + 60)
        assert (again.seq, again.attempts) == (item.seq, 2)

    async def test_a_future_scheduled_run_does_not_block_its_chat(self, store: Store) -> None:
        """Items still waiting for their run_after let later items of the same chat pass."""
        await store.enqueue(BOT, "run", "c1", {"command": "/later"}, run_after=NOW + 3600)
        await store.enqueue(BOT, "update", "c1", {"n": 1}, update_id=1)
        item = await claim_one(store)
        assert item.payload == {"n": 1}
        await store.finish(item, "w1")
        assert await claim(store) is None
        assert (await claim_one(store, now=NOW + 3600)).payload == {"command": "/later"}

    async def test_claim_takes_only_the_given_bots(self, store: Store) -> None:
        """bot_ids restricts claims to those bots; an empty list claims nothing."""
        await store.enqueue(BOT, "update", "c1", {})
        await store.enqueue(OTHER_BOT, "update", "c1", {})
        assert await claim(store, bot_ids=[]) is None
        item = await claim(store, bot_ids=[OTHER_BOT, "bot-z"])
        assert item is not None and item.bot_id == OTHER_BOT
        assert await claim(store, bot_ids=[OTHER_BOT]) is None

    async def test_pending_count_counts_unfinished_items_per_bot(self, store: Store) -> None:
        """Pending, claimed and scheduled items count; finished ones do not."""
        await store.enqueue(BOT, "update", "c1", {})
        await store.enqueue(BOT, "update", "c2", {})
        await store.enqueue(BOT, "run", "c3", {}, run_after=NOW + 999)
        await store.enqueue(OTHER_BOT, "update", "c1", {})
        await store.finish(await claim_one(store), "w1")
        await claim_one(store)
        assert (await store.pending_count(BOT), await store.pending_count(OTHER_BOT)) == (2, 1)
        assert await store.pending_count() == 3
        assert await store.pending_count("nobody") == 0

    # -- properties --
    @pytest.mark.parametrize(
        "value",
        [
            pytest.param(0, id="zero"),
            pytest.param(-42, id="negative-int"),
            pytest.param(2**62, id="big-int"),
            pytest.param(1.0, id="float-stays-float"),
            pytest.param(0.1, id="inexact-float"),
            pytest.param(-1.5e-300, id="tiny-float"),
            pytest.param(True, id="true"),
            pytest.param(False, id="false"),
            pytest.param(None, id="null"),
            pytest.param("", id="empty-string"),
            pytest.param("héllo wörld ✓ 日本語 🎉", id="unicode"),
            pytest.param('quote " backslash \\ newline \n tab \t', id="escapes"),
            pytest.param([], id="empty-list"),
            pytest.param({}, id="empty-dict"),
            pytest.param([1, 1.0, "1", True, None], id="mixed-list"),
            pytest.param({"ключ": {"nested": [{"deep": [[]]}]}, "n": 3}, id="nested"),
        ],
    )
    async def test_property_values_round_trip_with_their_json_types(
        self, store: Store, value: JSON
    ) -> None:
        """A stored value comes back equal and with the same JSON types."""
        await commit_writes(store, BOT, [PropertyWrite("bot", "key", value)], max_bot_bytes=10_000)
        assert same_json(await store.get_property(BOT, "bot", "key"), value)

    async def test_missing_property_is_missing(self, store: Store) -> None:
        """An unset property reads as MISSING, not None."""
        assert await store.get_property(BOT, "bot", "nothing") is MISSING

    async def test_later_write_to_the_same_key_wins(self, store: Store) -> None:
        """Within one commit, the last write of a key is what stays."""
        await commit_writes(
            store,
            BOT,
            [
                PropertyWrite("bot", "k", 1),
                PropertyWrite("bot", "k", delete=True),
                PropertyWrite("bot", "k", 3),
            ],
            max_bot_bytes=1000,
        )
        assert await store.get_property(BOT, "bot", "k") == 3

    async def test_delete_removes_a_property(self, store: Store) -> None:
        """A delete write removes the key; deleting an absent key is fine."""
        await commit_writes(store, BOT, [PropertyWrite("bot", "k", "v")], max_bot_bytes=1000)
        await commit_writes(
            store,
            BOT,
            [PropertyWrite("bot", "k", delete=True), PropertyWrite("bot", "absent", delete=True)],
            max_bot_bytes=1000,
        )
        assert await store.get_property(BOT, "bot", "k") is MISSING
        assert await store.bot_data_bytes(BOT) == 0

    async def test_scopes_are_separate(self, store: Store) -> None:
        """The same name in the bot scope and a user scope are different properties."""
        await commit_writes(
            store,
            BOT,
            [PropertyWrite("bot", "k", "bot-wide"), PropertyWrite("user:7", "k", "user-7")],
            max_bot_bytes=1000,
        )
        assert await store.get_property(BOT, "bot", "k") == "bot-wide"
        assert await store.get_property(BOT, "user:7", "k") == "user-7"
        assert await store.get_property(BOT, "user:8", "k") is MISSING

    async def test_bot_data_bytes_counts_utf8_names_and_compact_json(self, store: Store) -> None:
        """Size is UTF-8 bytes of each name plus its compact JSON value."""
        await commit_writes(
            store,
            BOT,
            [
                PropertyWrite("bot", "ab", {"a": [1, 2]}),  # 2 + len('{"a":[1,2]}') == 2 + 11
                PropertyWrite("user:1", "é", "✓"),  # 2 + len('"✓"'.encode()) == 2 + 5
            ],
            max_bot_bytes=1000,
        )
        assert await store.bot_data_bytes(BOT) == 20
        assert await store.bot_data_bytes(OTHER_BOT) == 0

    async def test_commit_exactly_at_the_quota_is_accepted(self, store: Store) -> None:
        """The quota is inclusive."""
        await commit_writes(store, BOT, [PropertyWrite("bot", "k", "xyz")], max_bot_bytes=6)
        assert await store.bot_data_bytes(BOT) == 6

    async def test_commit_over_the_quota_raises_and_writes_nothing(self, store: Store) -> None:
        """A commit that ends over the quota is rolled back whole, naming quota and size."""
        await commit_writes(store, BOT, [PropertyWrite("bot", "keep", 1)], max_bot_bytes=100)
        with pytest.raises(QuotaExceeded, match=r"max_bot_bytes.*100|100.*max_bot_bytes") as info:
            await commit_writes(
                store,
                BOT,
                [
                    PropertyWrite("bot", "keep", delete=True),
                    PropertyWrite("bot", "small", 2),
                    PropertyWrite("bot", "big", "x" * 200),
                ],
                max_bot_bytes=100,
            )
        assert "211" in str(info.value)
        assert await store.get_property(BOT, "bot", "keep") == 1
        assert await store.get_property(BOT, "bot", "small") is MISSING
        assert await store.bot_data_bytes(BOT) == 5

    async def test_quota_exceeded_is_a_store_error(self, store: Store) -> None:
        """Callers catching StoreError also catch quota failures."""
        with pytest.raises(StoreError):
            await commit_writes(store, BOT, [PropertyWrite("bot", "k", "x" * 50)], max_bot_bytes=10)

    async def test_commits_that_do_not_grow_data_pass_even_over_the_quota(
        self, store: Store
    ) -> None:
        """A bot over a lowered quota can still shrink its data."""
        await commit_writes(
            store,
            BOT,
            [PropertyWrite("bot", "a", "x" * 50), PropertyWrite("bot", "b", "y" * 50)],
            max_bot_bytes=1000,
        )
        await commit_writes(store, BOT, [PropertyWrite("bot", "a", delete=True)], max_bot_bytes=10)
        assert await store.get_property(BOT, "bot", "a") is MISSING
        with pytest.raises(QuotaExceeded):
            await commit_writes(store, BOT, [PropertyWrite("bot", "c", 1)], max_bot_bytes=10)

    async def test_bots_never_see_each_others_properties(self, store: Store) -> None:
        """Properties, deletes and sizes are per bot."""
        await commit_writes(store, BOT, [PropertyWrite("bot", "k", "mine")], max_bot_bytes=1000)
        await commit_writes(
            store, OTHER_BOT, [PropertyWrite("bot", "k", delete=True)], max_bot_bytes=1000
        )
        assert await store.get_property(OTHER_BOT, "bot", "k") is MISSING
        assert await store.get_property(BOT, "bot", "k") == "mine"
        assert await store.bot_data_bytes(OTHER_BOT) == 0

    async def test_a_value_that_is_not_json_is_refused(self, store: Store) -> None:
        """Non-JSON values raise StoreError and write nothing."""
        with pytest.raises(StoreError, match="JSON"):
            await commit_writes(
                store,
                BOT,
                [PropertyWrite("bot", "ok", 1), PropertyWrite("bot", "k", float("nan"))],
                max_bot_bytes=1000,
            )
        assert await store.get_property(BOT, "bot", "ok") is MISSING

    # -- need_reply waits --
    async def test_take_waiting_returns_the_wait_once(self, store: Store) -> None:
        """A wait is returned by the first take and gone for the second."""
        wait = Waiting(BOT, chat_id=-100, user_id=7, command="/name")
        await store.set_waiting(wait)
        assert await store.take_waiting(BOT, -100, 7) == wait
        assert await store.take_waiting(BOT, -100, 7) is None

    async def test_set_waiting_replaces_the_earlier_wait(self, store: Store) -> None:
        """Per bot, chat and user, the latest wait wins."""
        await store.set_waiting(Waiting(BOT, -100, 7, "/first"))
        await store.set_waiting(Waiting(BOT, -100, 7, "/second"))
        assert await store.take_waiting(BOT, -100, 7) == Waiting(BOT, -100, 7, "/second")

    async def test_waits_are_per_bot_chat_and_user(self, store: Store) -> None:
        """Another bot, chat or user does not take someone else's wait."""
        await store.set_waiting(Waiting(BOT, -100, 7, "/name"))
        assert await store.take_waiting(OTHER_BOT, -100, 7) is None
        assert await store.take_waiting(BOT, -101, 7) is None
        assert await store.take_waiting(BOT, -100, 8) is None
        assert await store.take_waiting(BOT, -100, 7) is not None

    async def test_clear_waiting_forgets_the_wait(self, store: Store) -> None:
        """A cleared wait is not taken; clearing nothing is fine."""
        await store.set_waiting(Waiting(BOT, -100, 7, "/name"))
        await store.clear_waiting(BOT, -100, 7)
        await store.clear_waiting(BOT, -100, 7)
        assert await store.take_waiting(BOT, -100, 7) is None

    # -- run log --
    async def test_runs_round_trip_with_their_ids(self, store: Store) -> None:
        """A recorded run is listed with every field and the id record_run returned."""
        record = run_record("script_error")
        run_id = await store.record_run(record)
        [listed] = await store.list_runs(BOT)
        assert listed.id == run_id
        assert (
            listed.command,
            listed.trigger,
            listed.user_id,
            listed.chat_id,
            listed.status,
            listed.started_at,
            listed.cpu_seconds,
            listed.wall_seconds,
            listed.output,
        ) == ("/start", "message", 7, -100, "script_error", NOW, 0.01, 0.02, "héllo\n")
        assert list(listed.calls) == list(record.calls)
        assert (listed.error, listed.extra) == (record.error, record.extra)

    async def test_runs_are_listed_newest_first(self, store: Store) -> None:
        """list_runs returns the most recent runs first, up to limit."""
        ids = [await store.record_run(run_record(started_at=NOW + n)) for n in range(5)]
        assert ids == sorted(ids) and len(set(ids)) == 5
        assert [r.id for r in await store.list_runs(BOT)] == ids[::-1]
        assert [r.id for r in await store.list_runs(BOT, limit=2)] == ids[:-3:-1]

    async def test_failed_only_lists_runs_whose_status_is_not_ok(self, store: Store) -> None:
        """failed_only keeps every non-ok status, newest first."""
        statuses = ["ok", "script_error", "ok", "timeout", "ok"]
        for status in statuses:
            await store.record_run(run_record(status))
        assert [r.status for r in await store.list_runs(BOT, failed_only=True)] == [
            "timeout",
            "script_error",
        ]

    async def test_runs_of_other_bots_are_not_listed(self, store: Store) -> None:
        """The run log is per bot."""
        await store.record_run(run_record(bot_id=OTHER_BOT))
        assert await store.list_runs(BOT) == []
        assert len(await store.list_runs(OTHER_BOT)) == 1

    async def test_record_runs_appends_a_batch_in_order(self, store: Store) -> None:
        """A batch of runs lands together, in order, newest listed first."""
        await store.record_runs([run_record(started_at=NOW + n) for n in range(3)])
        assert [r.started_at for r in await store.list_runs(BOT)] == [NOW + 2, NOW + 1, NOW]

    async def test_a_run_record_that_cannot_be_stored_fails_alone(self, store: Store) -> None:
        """Unstorable records in a batch are refused by index; every other record is stored."""
        records = [run_record(started_at=NOW + n) for n in range(10)]
        records[3] = dataclasses.replace(records[3], output="bad \ud800")
        records[5] = dataclasses.replace(records[5], user_id=2**70)
        records[7] = dataclasses.replace(records[7], extra={"x": "\udfff"})
        refused = await store.record_runs(records)
        assert sorted(refused) == [3, 5, 7]
        assert all(isinstance(error, StoreError) for error in refused.values())
        stored = sorted(r.started_at for r in await store.list_runs(BOT))
        assert stored == [NOW + n for n in range(10) if n not in {3, 5, 7}]

    # -- one bad item never fails another (group commit) --
    async def test_a_poisoned_enqueue_in_a_concurrent_burst_fails_alone(self, store: Store) -> None:
        """An update_id no column can hold fails its own enqueue; the 40 around it are stored."""
        ids = [*range(1, 21), 2**63, *range(21, 41)]
        results = await asyncio.gather(
            *(store.enqueue(BOT, "update", f"chat:{n}", {"n": n}, update_id=n) for n in ids),
            return_exceptions=True,
        )
        assert isinstance(results[20], StoreError)
        assert [r for i, r in enumerate(results) if i != 20] == [True] * 40
        assert await store.pending_count(BOT) == 40
        claimed = sorted([(await claim_one(store)).update_id or 0 for _ in range(40)])
        assert claimed == list(range(1, 41))

    async def test_a_poisoned_commit_in_a_concurrent_burst_fails_alone(self, store: Store) -> None:
        """A run commit the store cannot hold fails alone; the commits batched with it land."""

        async def commit(n: int) -> None:
            chat_key = "chat:\ud800" if n == 10 else f"chat:{n}"
            await store.commit_run(
                BOT,
                [PropertyWrite("bot", f"p{n}", n)],
                [NewRun(chat_key, {"n": n})],
                max_bot_bytes=10**6,
                max_pending_runs=100,
            )

        results = await asyncio.gather(*(commit(n) for n in range(21)), return_exceptions=True)
        assert isinstance(results[10], StoreError)
        assert [r for i, r in enumerate(results) if i != 10] == [None] * 20
        for n in range(21):
            expected = MISSING if n == 10 else n
            assert await store.get_property(BOT, "bot", f"p{n}") == expected
        assert await store.pending_count(BOT, kind="run") == 20

    # -- links --
    async def test_a_nonce_is_claimed_exactly_once(self, store: Store) -> None:
        """The first claim of a one-time nonce wins; every later one loses."""
        first = await store.claim_nonce(BOT, "n" * 16, expires_at=NOW + 60, now=NOW)
        second = await store.claim_nonce(BOT, "n" * 16, expires_at=NOW + 60, now=NOW)
        assert (first, second) == (True, False)

    async def test_nonces_are_per_bot(self, store: Store) -> None:
        """The same nonce in another bot is another link."""
        assert await store.claim_nonce(BOT, "m" * 16, expires_at=NOW + 60, now=NOW)
        assert await store.claim_nonce(OTHER_BOT, "m" * 16, expires_at=NOW + 60, now=NOW)

    async def test_concurrent_nonce_claims_have_one_winner(self, store: Store) -> None:
        """Ten simultaneous claims of one nonce: exactly one succeeds."""
        results = await asyncio.gather(
            *(store.claim_nonce(BOT, "c" * 16, expires_at=NOW + 60, now=NOW) for _ in range(10))
        )
        assert sorted(results) == [False] * 9 + [True]

    async def test_rate_hits_pass_until_the_limit_then_name_it(self, store: Store) -> None:
        """Three uses fit a 3-per-minute limit; the fourth is reported as over it."""
        hit = RateHit("link:x", 3, 60.0, "link")
        results = [await store.hit_rates([hit], now=NOW) for _ in range(4)]
        assert results == [None, None, None, hit]

    async def test_rate_windows_reset_after_their_period(self, store: Store) -> None:
        """A new window starts fresh."""
        hit = RateHit("user:y", 1, 10.0, "user")
        assert await store.hit_rates([hit], now=NOW) is None
        assert await store.hit_rates([hit], now=NOW + 1) == hit
        assert await store.hit_rates([hit], now=NOW + 20) is None

    async def test_the_first_exceeded_of_several_limits_is_reported(self, store: Store) -> None:
        """Hits count against every key; the first over its limit is returned."""
        wide, narrow = RateHit("bot:z", 100, 60.0, "bot"), RateHit("link:z", 1, 60.0, "link")
        assert await store.hit_rates([wide, narrow], now=NOW) is None
        assert await store.hit_rates([wide, narrow], now=NOW) == narrow

    async def test_prune_drops_old_finished_items_and_old_runs_only(self, store: Store) -> None:
        """Old log entries go; recent ones, and unfinished queue items, stay."""
        await store.record_runs([run_record(started_at=NOW - 100), run_record(started_at=NOW)])
        await store.enqueue(BOT, "update", "c", {}, update_id=1)
        removed = await store.prune(NOW - 50)
        assert removed == 1
        assert [r.started_at for r in await store.list_runs(BOT)] == [NOW]
        assert await store.pending_count(BOT) == 1

    async def test_an_update_waiting_for_its_retry_holds_its_chat(self, store: Store) -> None:
        """A retried update keeps its place: its chat's next update waits for it."""
        await store.enqueue(BOT, "update", "c1", {"n": 1}, update_id=1)
        await store.enqueue(BOT, "update", "c1", {"n": 2}, update_id=2)
        await store.enqueue(BOT, "update", "c2", {"n": 3}, update_id=3)
        first = await claim_one(store)
        await store.retry(first, "w1", run_after=NOW + 60)
        other = await claim_one(store)
        assert other.payload == {"n": 3}
        assert await claim(store) is None
        assert (await claim_one(store, now=NOW + 60)).payload == {"n": 1}

    # -- bot identities --
    async def test_a_bot_keeps_the_generation_it_got_when_first_seen(self, store: Store) -> None:
        """A new bot gets a random generation; asking again returns the same; bots differ."""
        first = await store.bot_generations([BOT, OTHER_BOT], now=NOW)
        again = await store.bot_generations([BOT], now=NOW + 1)
        assert set(first) == {BOT, OTHER_BOT}
        assert again == {BOT: first[BOT]}
        assert len(first[BOT]) >= 16 and first[BOT] != first[OTHER_BOT]

    async def test_a_retired_bot_id_comes_back_with_a_new_generation(self, store: Store) -> None:
        """Retiring a bot and seeing its id again gives the new bot a different generation."""
        old = (await store.bot_generations([BOT, OTHER_BOT], now=NOW))[BOT]
        assert await store.retire_bots([OTHER_BOT], now=NOW + 1) == [BOT]
        new = (await store.bot_generations([BOT], now=NOW + 2))[BOT]
        assert new != old
        assert (await store.bot_generations([BOT], now=NOW + 3))[BOT] == new

    async def test_retire_keeps_the_named_bots_and_reports_only_new_retirements(
        self, store: Store
    ) -> None:
        """Named bots keep their generation; a bot already retired is not reported twice."""
        kept = (await store.bot_generations([BOT, OTHER_BOT, "bot-c"], now=NOW))[BOT]
        assert await store.retire_bots([BOT], now=NOW + 1) == [OTHER_BOT, "bot-c"]
        assert await store.retire_bots([BOT], now=NOW + 2) == []
        assert await store.retire_bots([], now=NOW + 3) == [BOT]
        assert await store.retire_bots([], now=NOW + 4) == []
        fresh = (await store.bot_generations([BOT], now=NOW + 5))[BOT]
        assert fresh != kept

    async def test_concurrent_first_sightings_of_a_bot_agree(self, store: Store) -> None:
        """Ten simultaneous requests for a new bot's generation all get the same one."""
        results = await asyncio.gather(*(store.bot_generations([BOT], now=NOW) for _ in range(10)))
        assert len({result[BOT] for result in results}) == 1

    # -- a run's commit: properties and scheduled runs, all or nothing --
    async def test_a_commit_writes_properties_and_enqueues_runs_together(
        self, store: Store
    ) -> None:
        """commit_run applies the writes and queues each run with its chat, payload and time."""
        await store.commit_run(
            BOT,
            [PropertyWrite("bot", "k", "v")],
            [NewRun("c1", {"command": "a"}), NewRun("c2", {"command": "b"}, run_after=NOW + 60)],
            max_bot_bytes=1000,
            max_pending_runs=10,
        )
        assert await store.get_property(BOT, "bot", "k") == "v"
        assert await store.pending_count(BOT, kind="run") == 2
        first = await claim_one(store)
        assert (first.kind, first.chat_key, first.payload) == ("run", "c1", {"command": "a"})
        await store.finish(first, "w1")
        assert await claim(store) is None
        assert (await claim_one(store, now=NOW + 60)).payload == {"command": "b"}

    async def test_runs_exactly_up_to_the_cap_are_accepted(self, store: Store) -> None:
        """The pending-runs cap is inclusive."""
        await store.enqueue(BOT, "run", "c", {})
        await store.commit_run(
            BOT, [], [NewRun("c", {})] * 2, max_bot_bytes=1000, max_pending_runs=3
        )
        assert await store.pending_count(BOT, kind="run") == 3

    async def test_a_commit_past_the_pending_cap_is_refused_whole(self, store: Store) -> None:
        """Past the cap, neither the runs nor the property writes land; the error names the cap."""
        await store.commit_run(
            BOT,
            [PropertyWrite("bot", "keep", 1)],
            [NewRun("c", {})],
            max_bot_bytes=1000,
            max_pending_runs=2,
        )
        with pytest.raises(PendingRunsExceeded, match=r"limit of 2 \(runs\.max_pending") as info:
            await store.commit_run(
                BOT,
                [PropertyWrite("bot", "keep", delete=True), PropertyWrite("bot", "new", 2)],
                [NewRun("c", {}), NewRun("d", {})],
                max_bot_bytes=1000,
                max_pending_runs=2,
            )
        assert (info.value.pending, info.value.adding, info.value.limit) == (1, 2, 2)
        assert isinstance(info.value, QuotaExceeded)
        assert await store.get_property(BOT, "bot", "keep") == 1
        assert await store.get_property(BOT, "bot", "new") is MISSING
        assert await store.pending_count(BOT, kind="run") == 1

    async def test_a_commit_over_the_data_quota_queues_no_runs(self, store: Store) -> None:
        """A property quota failure also drops the commit's scheduled runs."""
        with pytest.raises(QuotaExceeded, match="max_bot_bytes"):
            await store.commit_run(
                BOT,
                [PropertyWrite("bot", "big", "x" * 200)],
                [NewRun("c", {})],
                max_bot_bytes=100,
                max_pending_runs=10,
            )
        assert await store.pending_count(BOT) == 0

    async def test_a_scheduled_run_that_is_not_json_is_refused_whole(self, store: Store) -> None:
        """A non-JSON payload raises StoreError and writes nothing."""
        with pytest.raises(StoreError, match="JSON"):
            await store.commit_run(
                BOT,
                [PropertyWrite("bot", "ok", 1)],
                [NewRun("c", {"x": float("nan")})],
                max_bot_bytes=1000,
                max_pending_runs=10,
            )
        assert await store.get_property(BOT, "bot", "ok") is MISSING
        assert await store.pending_count(BOT) == 0

    async def test_the_cap_counts_unfinished_runs_of_the_bot_only(self, store: Store) -> None:
        """Runs in flight count; finished runs, updates and other bots' runs do not."""
        await store.enqueue(BOT, "run", "c1", {})
        await store.enqueue(BOT, "run", "c2", {})
        await store.enqueue(BOT, "update", "c3", {}, update_id=1)
        await store.enqueue(OTHER_BOT, "run", "c1", {})
        await store.finish(await claim_one(store, bot_ids=[BOT]), "w1")
        await claim_one(store, bot_ids=[BOT])  # in flight: still counts
        assert await store.pending_count(BOT, kind="run") == 1
        assert await store.pending_count(BOT, kind="update") == 1
        await store.commit_run(BOT, [], [NewRun("c", {})], max_bot_bytes=1, max_pending_runs=2)
        with pytest.raises(PendingRunsExceeded):
            await store.commit_run(BOT, [], [NewRun("c", {})], max_bot_bytes=1, max_pending_runs=2)

    async def test_concurrent_commits_never_pass_the_cap_together(self, store: Store) -> None:
        """Fifty commits at once, two runs each, under a cap of 20: exactly ten land, whole."""
        results = await asyncio.gather(*(commit_two_runs(store, "w", n, 20) for n in range(50)))
        assert sum(results) == 10
        assert await store.pending_count(BOT, kind="run") == 20
        for n, accepted in enumerate(results):
            value = await store.get_property(BOT, "bot", f"w-{n}")
            assert value == (n if accepted else MISSING)

    async def test_two_processes_committing_never_pass_the_cap(
        self, store: Store, backend: str, tmp_path: Path
    ) -> None:
        """A second process racing commits against ours: the cap holds exactly, each commit whole.

        Each side tries 150 commits of two runs and 200 fit under the cap, so neither side alone
        can fill it: both must get commits in, and the total lands exactly on the cap.
        """
        opener, arg = CHILD_STORES[backend]
        attempts, cap = 150, 400
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CHILD_COMMITTER.format(opener=opener),
            arg(tmp_path),
            "child",
            str(attempts),
            str(cap),
            cwd=REPO_ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert child.stdin is not None and child.stdout is not None
        assert await asyncio.wait_for(child.stdout.readline(), timeout=30) == b"ready\n"
        child.stdin.write(b"go\n")
        await child.stdin.drain()
        mine = [n for n in range(attempts) if await commit_two_runs(store, "parent", n, cap)]
        out, err = await asyncio.wait_for(child.communicate(), timeout=60)
        assert child.returncode == 0, err.decode()
        theirs: list[int] = json.loads(out)
        assert len(mine) + len(theirs) == cap // 2
        assert mine and theirs
        assert await store.pending_count(BOT, kind="run") == cap
        for who, accepted in (("parent", set(mine)), ("child", set(theirs))):
            for n in range(attempts):
                value = await store.get_property(BOT, "bot", f"{who}-{n}")
                assert value == (n if n in accepted else MISSING)
