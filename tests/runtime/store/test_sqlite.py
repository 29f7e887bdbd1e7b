"""SQLite specifics: file mode, WAL, schema version, lifecycle errors and multi-process claims."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from runtime.errors import ConflictError, StoreError
from runtime.store import PropertyRead, PropertyWrite, SqliteStore, Versioned, properties
from runtime.store.schema import MIGRATIONS
from runtime.store.sqlite import SCHEMA_VERSION
from tests.runtime.store.test_contract import commit_writes

REPO_ROOT = Path(__file__).resolve().parents[3]
LEASE = 60.0

CHILD_CLAIMER = """
import asyncio, json, sys, time
from runtime.store import SqliteStore

async def main():
    store = SqliteStore(sys.argv[1])
    await store.open()
    print("ready", flush=True)
    sys.stdin.readline()
    claimed = []
    while await store.pending_count() > 0:
        item = await store.claim("child", now=time.time(), lease_seconds=60.0)
        if item is None:
            await asyncio.sleep(0.001)
            continue
        claimed.append(item.seq)
        await store.finish(item, "child")
    await store.close()
    print(json.dumps(claimed), flush=True)

asyncio.run(main())
"""


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """Where the store file goes, under a directory that does not exist yet."""
    return tmp_path / "data" / "nested" / "botbox.sqlite3"


@pytest.fixture
async def store(path: Path) -> AsyncIterator[SqliteStore]:
    """An opened SqliteStore, closed after the test."""
    opened = SqliteStore(path)
    await opened.open()
    yield opened
    await opened.close()


def mode_of(path: Path) -> int:
    """The permission bits of a file."""
    return stat.S_IMODE(path.stat().st_mode)


async def fill(store: SqliteStore, chats: int, per_chat: int) -> list[int]:
    """Enqueue ``per_chat`` updates in each of ``chats`` chats; return their seqs in order."""
    for n in range(chats * per_chat):
        await store.enqueue("bot", "update", f"chat{n % chats}", {"n": n}, update_id=n)
    probe = sqlite3.connect(store.path)
    try:
        return [seq for (seq,) in probe.execute("SELECT seq FROM queue ORDER BY seq")]
    finally:
        probe.close()


async def drain(
    store: SqliteStore, owner: str, claimed: list[tuple[str, int]], *, finish: bool
) -> None:
    """Claim (and maybe finish) until nothing is left, appending (chat, seq) per claim."""
    while await store.pending_count() > 0:
        item = await store.claim(owner, now=time.time(), lease_seconds=LEASE)
        if item is None:
            if not finish:
                return
            await asyncio.sleep(0.001)
            continue
        claimed.append((item.chat_key, item.seq))
        if finish:
            await store.finish(item, owner)


def store_threads() -> int:
    """How many store threads are alive."""
    return sum(t.name.startswith("botbox-store") for t in threading.enumerate())


# -- the file --
async def test_open_creates_parent_directories_and_a_private_file(store: SqliteStore) -> None:
    """The store file, and its WAL companions, are readable by the owner only (0600)."""
    await store.enqueue("bot", "update", "c1", {"secret": True})
    assert mode_of(store.path) == 0o600
    for companion in ("-wal", "-shm"):
        sibling = store.path.with_name(store.path.name + companion)
        if sibling.exists():
            assert mode_of(sibling) == 0o600


async def test_the_file_is_in_wal_mode(store: SqliteStore) -> None:
    """Another connection sees the journal mode as WAL, so readers do not block writers."""
    probe = sqlite3.connect(store.path)
    try:
        assert probe.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        probe.close()


async def test_schema_version_is_kept_in_user_version(store: SqliteStore) -> None:
    """The schema version is recorded for future migrations."""
    probe = sqlite3.connect(store.path)
    try:
        assert probe.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        probe.close()


async def test_a_newer_schema_version_is_refused(path: Path) -> None:
    """A file written by a newer botbox raises StoreError instead of being misread."""
    path.parent.mkdir(parents=True)
    probe = sqlite3.connect(path)
    probe.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    probe.close()
    with pytest.raises(StoreError, match="schema version"):
        await SqliteStore(path).open()


async def test_data_survives_closing_and_reopening(path: Path) -> None:
    """A new store on the same file sees what the last one wrote."""
    first = SqliteStore(path)
    await first.open()
    await first.enqueue("bot", "update", "c1", {}, update_id=5)
    await commit_writes(first, "bot", [PropertyWrite("bot", "k", [1, 2])], max_bot_bytes=99)
    await first.close()
    second = SqliteStore(path, synchronous="normal")
    await second.open()
    try:
        assert not await second.enqueue("bot", "update", "c1", {}, update_id=5)
        assert await second.get_property("bot", "bot", "k") == [1, 2]
    finally:
        await second.close()


def test_an_unknown_synchronous_mode_is_refused(path: Path) -> None:
    """The synchronous pragma only takes SQLite's own values."""
    with pytest.raises(ValueError, match="synchronous"):
        SqliteStore(path, synchronous="FULL; DROP TABLE queue")


# -- lifecycle errors --
async def test_using_a_store_before_open_raises_store_error(path: Path) -> None:
    """Calls before open() fail clearly."""
    with pytest.raises(StoreError, match="not open"):
        await SqliteStore(path).pending_count()


async def test_using_a_closed_store_raises_store_error(path: Path) -> None:
    """Calls after close() fail with StoreError; closing twice is fine, reopening is not."""
    store = SqliteStore(path)
    await store.open()
    await store.close()
    await store.close()
    with pytest.raises(StoreError, match="not open"):
        await store.enqueue("bot", "update", "c1", {})
    with pytest.raises(StoreError):
        await store.open()


async def test_close_lets_operations_already_started_finish(path: Path) -> None:
    """Operations issued before close() complete; close waits for them."""
    store = SqliteStore(path)
    await store.open()
    writes = [store.enqueue("bot", "update", f"c{n}", {}) for n in range(10)]
    results = await asyncio.gather(*writes, store.close())
    assert results[:10] == [True] * 10
    reopened = SqliteStore(path)
    await reopened.open()
    try:
        assert await reopened.pending_count() == 10
    finally:
        await reopened.close()


async def test_a_corrupt_file_gives_store_error_on_open(path: Path) -> None:
    """Garbage in the file is a StoreError caused by the sqlite3 error, leaving no thread behind."""
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not a database, just garbage bytes " * 100)
    threads = store_threads()
    with pytest.raises(StoreError) as info:
        await SqliteStore(path).open()
    assert not isinstance(info.value, sqlite3.Error)
    assert isinstance(info.value.__cause__, sqlite3.DatabaseError)
    assert store_threads() == threads


async def test_a_directory_in_place_of_the_file_gives_store_error(path: Path) -> None:
    """An unusable path is reported as StoreError."""
    path.mkdir(parents=True)
    with pytest.raises(StoreError, match="store file"):
        await SqliteStore(path).open()


async def test_a_second_store_on_the_same_file_keeps_the_first_ones_locks(
    store: SqliteStore, path: Path
) -> None:
    """Opening (and closing) another store on a file this process has open drops none of the
    first store's POSIX locks: otherwise another process that closes its connection believes
    it is the last one and deletes the WAL under the first store ("file is not a database")."""
    await commit_writes(store, "b", [PropertyWrite("bot", "k", 1)], max_bot_bytes=1 << 20)
    second = SqliteStore(path)
    await second.open()
    await second.close()
    reader = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
        "c.execute('select count(*) from property').fetchone(); c.close()"
    )
    subprocess.run([sys.executable, "-c", reader, str(path)], check=True, timeout=30)
    assert path.with_name(path.name + "-wal").exists()
    assert (await store.read_property("b", "bot", "k")).value == 1


# -- the queue across connections and processes --
async def test_two_stores_on_one_file_never_claim_the_same_item(
    store: SqliteStore, path: Path
) -> None:
    """Two stores (as two server processes would) racing to claim get each item exactly once."""
    seqs = await fill(store, chats=200, per_chat=1)
    other = SqliteStore(path)
    await other.open()
    try:
        mine: list[tuple[str, int]] = []
        theirs: list[tuple[str, int]] = []
        await asyncio.gather(
            drain(store, "a", mine, finish=False), drain(other, "b", theirs, finish=False)
        )
    finally:
        await other.close()
    claimed = [seq for _, seq in mine + theirs]
    assert sorted(claimed) == seqs
    assert mine and theirs


async def test_two_racing_stores_keep_each_chat_in_order(store: SqliteStore, path: Path) -> None:
    """With claims and finishes racing, each chat's items are still handed out in seq order."""
    seqs = await fill(store, chats=5, per_chat=10)
    other = SqliteStore(path)
    await other.open()
    claimed: list[tuple[str, int]] = []
    try:
        await asyncio.gather(
            drain(store, "a", claimed, finish=True), drain(other, "b", claimed, finish=True)
        )
    finally:
        await other.close()
    assert sorted(seq for _, seq in claimed) == seqs
    per_chat: defaultdict[str, list[int]] = defaultdict(list)
    for chat, seq in claimed:
        per_chat[chat].append(seq)
    assert all(order == sorted(order) for order in per_chat.values())


async def start_child(script: str, store: SqliteStore) -> asyncio.subprocess.Process:
    """Start ``script`` on the store's file in a second process; return once it said ready and
    was told to go (the race starts now)."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        str(store.path),
        cwd=REPO_ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert child.stdin is not None and child.stdout is not None
    ready = await asyncio.wait_for(child.stdout.readline(), timeout=30)
    assert ready == b"ready\n"
    child.stdin.write(b"go\n")
    await child.stdin.drain()
    return child


async def test_a_second_process_racing_never_double_claims(store: SqliteStore) -> None:
    """A real second process claiming from the same file never gets an item we also got."""
    seqs = await fill(store, chats=20, per_chat=25)
    child = await start_child(CHILD_CLAIMER, store)
    mine: list[tuple[str, int]] = []
    await drain(store, "parent", mine, finish=True)
    out, err = await asyncio.wait_for(child.communicate(), timeout=60)
    assert child.returncode == 0, err.decode()
    theirs: list[int] = json.loads(out)
    assert sorted([seq for _, seq in mine] + theirs) == seqs
    assert mine and theirs


CHILD_GENERATION = """
import asyncio, sys, time
from runtime.store import SqliteStore

async def main():
    store = SqliteStore(sys.argv[1])
    await store.open()
    print("ready", flush=True)
    sys.stdin.readline()
    generations = await store.bot_generations(["fresh-bot"], now=time.time())
    await store.close()
    print(generations["fresh-bot"], flush=True)

asyncio.run(main())
"""


async def test_two_processes_seeing_a_new_bot_at_once_agree_on_its_generation(
    store: SqliteStore,
) -> None:
    """A second process asking for a new bot's generation at the same time gets the same one."""
    child = await start_child(CHILD_GENERATION, store)
    mine = (await store.bot_generations(["fresh-bot"], now=time.time()))["fresh-bot"]
    out, err = await asyncio.wait_for(child.communicate(), timeout=60)
    assert child.returncode == 0, err.decode()
    assert out.decode().strip() == mine


async def test_bots_with_data_from_before_generations_keep_their_old_links(path: Path) -> None:
    """Upgrading a version-2 store gives bots that have data generation '' (links unchanged)."""
    path.parent.mkdir(parents=True)
    conn = sqlite3.connect(path)
    for statement in (*MIGRATIONS[0], *MIGRATIONS[1]):
        conn.execute(statement)
    conn.execute(
        "INSERT INTO property (bot_id, scope, name, value, size) VALUES ('old', 'bot', 'n', '1', 2)"
    )
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    store = SqliteStore(path)
    await store.open()
    try:
        found = await store.bot_generations(["old", "new"], now=time.time())
    finally:
        await store.close()
    assert found["old"] == ""
    assert len(found["new"]) >= 16


async def test_properties_from_before_versions_read_as_version_1_and_move_on(path: Path) -> None:
    """Upgrading a store from before property versions: old rows are version 1, the next
    commit of their bot writes a higher one, and a commit that read version 1 then conflicts."""
    path.parent.mkdir(parents=True)
    step = MIGRATIONS.index(properties.MIGRATION)
    conn = sqlite3.connect(path)
    for statements in MIGRATIONS[:step]:
        for statement in statements:
            conn.execute(statement)
    conn.execute(
        "INSERT INTO property (bot_id, scope, name, value, size) VALUES ('old', 'bot', 'n', '1', 2)"
    )
    conn.execute(f"PRAGMA user_version = {step}")
    conn.commit()
    conn.close()
    store = SqliteStore(path)
    await store.open()
    try:
        assert await store.read_property("old", "bot", "n") == Versioned(1, 1)
        limits = {"max_bot_bytes": 1000, "max_pending_runs": 1}
        await store.commit_run("old", [PropertyWrite("bot", "m", 2)], [], **limits)
        await store.commit_run("old", [PropertyWrite("bot", "n", 5)], [], **limits)
        assert (await store.read_property("old", "bot", "n")).version > 1
        with pytest.raises(ConflictError):
            await store.commit_run(
                "old",
                [PropertyWrite("bot", "n", 2)],
                [],
                expected=[PropertyRead("bot", "n", 1)],
                **limits,
            )
    finally:
        await store.close()


# -- pruning --
async def test_prune_deletes_only_items_finished_before_the_time(store: SqliteStore) -> None:
    """Finished items older than the cutoff go; open ones stay; their update_ids free up."""
    await store.enqueue("bot", "update", "c1", {}, update_id=1)
    await store.enqueue("bot", "update", "c2", {}, update_id=2)
    item = await store.claim("w", now=time.time(), lease_seconds=LEASE)
    assert item is not None
    await store.finish(item, "w")
    assert await store.prune(time.time() - 3600) == 0
    assert await store.prune(time.time() + 1) == 1
    assert await store.pending_count() == 1
    assert await store.enqueue("bot", "update", "c1", {}, update_id=1)
    assert not await store.enqueue("bot", "update", "c2", {}, update_id=2)
