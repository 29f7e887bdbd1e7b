"""The Store contract for properties: versions, compare-and-set, adds, listing, and processes
racing on one property. Runs against every store of ``test_contract.STORE_FACTORIES``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from runtime.errors import ConflictError, NotANumber
from runtime.store import MISSING, NewRun, PropertyRead, PropertyWrite, Store
from tests.runtime.store.children import at_once

BOT = "bot-a"
LOTS = 10**6


async def put(
    store: Store, *writes: PropertyWrite, expected: tuple[PropertyRead, ...] = ()
) -> None:
    """Commit writes as one run would, requiring ``expected`` versions."""
    await store.commit_run(
        BOT, list(writes), [], max_bot_bytes=LOTS, max_pending_runs=LOTS, expected=expected
    )


CHILD_RACER = """
import asyncio, json, sys
from runtime.errors import ConflictError
from runtime.store import MISSING, PropertyRead, PropertyWrite
ARG = sys.argv[1]
{opener}

async def main():
    await store.open()
    print("ready", flush=True)
    sys.stdin.readline()
    conflicts = 0
    for _ in range(int(sys.argv[3])):
        while True:
            if sys.argv[2] == "add":
                write, expected = PropertyWrite("bot", "n", add=1), []
            else:
                seen = await store.read_property("bot-a", "bot", "n")
                now = 0 if seen.value is MISSING else seen.value
                write = PropertyWrite("bot", "n", now + 1)
                expected = [PropertyRead("bot", "n", seen.version)]
            try:
                await store.commit_run("bot-a", [write], [], max_bot_bytes=10**6,
                                       max_pending_runs=10, expected=expected)
                break
            except ConflictError:
                conflicts += 1
    await store.close()
    print(json.dumps(conflicts), flush=True)

asyncio.run(main())
"""


async def race(
    store: Store, backend: str, tmp_path: Path, mode: str, n: int, children: int
) -> list[int]:
    """Let ``children`` processes each make ``n`` increments of ``n`` (``mode``: cas or add) at
    once; return each one's conflict count."""
    results = await at_once(backend, tmp_path, CHILD_RACER, [[mode, str(n)]] * children)
    return [int(count) for count in results]  # type: ignore[call-overload]


class TestPropertyContract:
    """Property behaviour every Store implementation shares."""

    async def test_a_property_not_set_reads_as_missing_at_version_0(self, store: Store) -> None:
        """read_property of an unknown name is MISSING, version 0."""
        seen = await store.read_property(BOT, "bot", "nope")
        assert seen.value is MISSING and seen.version == 0

    async def test_every_commit_gives_a_property_a_new_version_never_an_old_one(
        self, store: Store
    ) -> None:
        """Set, set, delete, set: versions grow, and a re-created property never reuses one."""
        seen = []
        for write in (
            PropertyWrite("bot", "x", 1),
            PropertyWrite("bot", "x", 1),
            PropertyWrite("bot", "x", delete=True),
            PropertyWrite("bot", "x", 1),
        ):
            await put(store, write)
            seen.append((await store.read_property(BOT, "bot", "x")).version)
        assert seen[0] > 0 and seen[1] > seen[0]
        assert seen[2] == 0
        assert seen[3] > seen[1]
        assert (await store.read_property(BOT, "bot", "x")).value == 1

    async def test_a_commit_whose_read_went_stale_is_refused_and_writes_nothing(
        self, store: Store
    ) -> None:
        """A commit expecting an old version raises ConflictError; none of its writes or runs land.

        Its property writes, in any scope, and its scheduled runs are all left out.
        """
        await put(store, PropertyWrite("bot", "n", 1))
        old = (await store.read_property(BOT, "bot", "n")).version
        await put(store, PropertyWrite("bot", "n", 2))
        with pytest.raises(ConflictError, match="'n'"):
            await store.commit_run(
                BOT,
                [PropertyWrite("bot", "n", 99), PropertyWrite("user:1", "other", True)],
                [NewRun("c", {"n": 1})],
                max_bot_bytes=LOTS,
                max_pending_runs=LOTS,
                expected=(PropertyRead("bot", "n", old),),
            )
        assert await store.get_property(BOT, "bot", "n") == 2
        assert await store.get_property(BOT, "user:1", "other") is MISSING
        assert await store.pending_count(BOT, kind="run") == 0

    async def test_compare_and_set_on_version_0_creates_a_property_only_once(
        self, store: Store
    ) -> None:
        """Two commits expecting 'not set' (version 0) race: exactly one lands."""

        async def create(who: str) -> bool:
            try:
                await put(
                    store,
                    PropertyWrite("bot", "owner", who),
                    expected=(PropertyRead("bot", "owner", 0),),
                )
            except ConflictError:
                return False
            return True

        won = await asyncio.gather(create("a"), create("b"))
        assert sorted(won) == [False, True]
        assert await store.get_property(BOT, "bot", "owner") == ("a" if won[0] else "b")

    async def test_adds_apply_to_the_value_at_commit_and_start_from_0(self, store: Store) -> None:
        """add on a missing property starts at 0; adds of ints and floats sum; the version moves."""
        await put(store, PropertyWrite("chat:5", "n", add=2))
        await put(store, PropertyWrite("chat:5", "n", add=3))
        assert await store.get_property(BOT, "chat:5", "n") == 5
        await put(store, PropertyWrite("chat:5", "n", add=0.5))
        assert await store.get_property(BOT, "chat:5", "n") == 5.5
        assert (await store.read_property(BOT, "chat:5", "n")).version > 0

    async def test_an_add_to_a_value_that_is_not_a_number_is_refused_whole(
        self, store: Store
    ) -> None:
        """add on text raises NotANumber naming the property; the commit's other writes are undone.

        The property keeps its text.
        """
        await put(store, PropertyWrite("bot", "t", "text"))
        with pytest.raises(NotANumber, match="'t'"):
            await put(store, PropertyWrite("bot", "ok", 1), PropertyWrite("bot", "t", add=1))
        assert await store.get_property(BOT, "bot", "ok") is MISSING
        assert await store.get_property(BOT, "bot", "t") == "text"

    async def test_names_are_listed_by_scope_and_prefix_in_pages(self, store: Store) -> None:
        """property_names sorts by code point, filters by prefix (no wildcards), pages by after.

        Other scopes and other bots never show.
        """
        names = ["a%1", "a_2", "ab", "b", "a1", "é"]
        await put(store, *(PropertyWrite("user:1", name, 0) for name in names))
        await put(store, PropertyWrite("user:2", "a3", 0), PropertyWrite("bot", "a4", 0))
        await store.commit_run(
            "bot-b", [PropertyWrite("user:1", "a5", 0)], [], max_bot_bytes=LOTS, max_pending_runs=1
        )
        assert await store.property_names(BOT, "user:1") == sorted(names)
        assert await store.property_names(BOT, "user:1", prefix="a") == ["a%1", "a1", "a_2", "ab"]
        assert await store.property_names(BOT, "user:1", prefix="a%") == ["a%1"]
        assert await store.property_names(BOT, "user:1", prefix="a_") == ["a_2"]
        first = await store.property_names(BOT, "user:1", limit=4)
        rest = await store.property_names(BOT, "user:1", after=first[-1], limit=4)
        assert first + rest == sorted(names) and len(rest) == 2
        assert await store.property_names(BOT, "user:1", limit=0) == []

    async def test_two_processes_incrementing_one_property_with_versions_lose_nothing(
        self, store: Store, backend: str, tmp_path: Path
    ) -> None:
        """Three processes each make 60 read-modify-write increments, retrying on conflict: 180."""
        conflicts = await race(store, backend, tmp_path, "cas", 60, 3)
        assert await store.get_property(BOT, "bot", "n") == 180
        assert sum(conflicts) > 0  # they did overlap: the check, not luck, kept the count

    async def test_processes_adding_to_one_property_never_conflict(
        self, store: Store, backend: str, tmp_path: Path
    ) -> None:
        """Three processes each add 1 sixty times: 180, and not one conflict."""
        conflicts = await race(store, backend, tmp_path, "add", 60, 3)
        assert await store.get_property(BOT, "bot", "n") == 180
        assert conflicts == [0, 0, 0]
