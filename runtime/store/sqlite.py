"""The embedded store: the queue, properties, waits and run log in one SQLite file.

Every blocking ``sqlite3`` call runs on one thread the store owns, so the event loop never
waits on the disk. The file is opened in WAL mode and may be shared by several server
processes: each read-then-write runs in a ``BEGIN IMMEDIATE`` transaction, which takes the
write lock up front (waiting up to ``busy_timeout``) instead of failing on upgrade.
``sqlite3.Error`` (and a value SQLite cannot bind: an integer past 64 bits, a lone surrogate)
becomes :class:`~runtime.errors.StoreError` in ``SqliteStore._submit`` and nowhere else; the
run log's batch insert isolates such a row itself (:func:`runtime.store.runs.record_runs`).

Queue rows are kept once finished, so a redelivered ``update_id`` is still refused; call
:meth:`SqliteStore.prune` now and then to drop old ones. Claiming is fair across bots
(``CLAIM_SQL``): it finds the bots with unfinished items by a skip-scan of an index (one seek per
bot), takes each bot's oldest ready item by walking only that bot's unfinished rows, and leases
the one of the bot with the fewest live leases. Finished rows cost nothing; a very deep backlog
in one busy chat, or very many items scheduled far ahead, makes each claim scan past them
(about 20 ms per 100k such rows); a bot's scheduled runs are capped by ``runs.max_pending``.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import json
import logging
import math
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Concatenate, Final, Literal, ParamSpec, TypeVar, cast

from runtime.errors import StoreError
from runtime.store import (
    accounts,
    bots,
    broadcasts,
    catalog,
    commit,
    counters,
    instances,
    pacing,
    properties,
    runs,
    schedules,
    versions,
)
from runtime.store import secrets as secrets_sql
from runtime.store.base import (
    MISSING,
    ApiToken,
    AuditEntry,
    BotVersion,
    DueSchedule,
    GrantRole,
    Instance,
    ItemKind,
    LiveState,
    NewRun,
    PendingRun,
    Principal,
    PropertyRead,
    PropertyWrite,
    QueuedItem,
    RateHit,
    RunQuery,
    RunRecord,
    ScheduleOutcome,
    ScheduleState,
    ScheduleSync,
    Scope,
    SecretInfo,
    User,
    UserRole,
    Versioned,
    Waiting,
    _Missing,
)
from runtime.store.batch import Batcher
from runtime.store.broadcasts import Progress, Step
from runtime.store.commit import CommitArgs, RunRow
from runtime.store.pacing import Window
from runtime.store.properties import PropertyRow
from runtime.store.runs import encode as _encode
from runtime.store.schema import (
    CLAIM_SQL,
    MIGRATIONS,
    SCHEMA_VERSION,
    SYNCHRONOUS_MODES,
)
from sandbox import JSON

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


@contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """Run the block in a ``BEGIN IMMEDIATE`` transaction, rolled back on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise
    conn.execute("COMMIT")


class SqliteStore:
    """A :class:`~runtime.store.base.Store` on a SQLite file, safe to share between processes.

    Beyond the Protocol it offers :meth:`prune`, and :attr:`path`.
    """

    def __init__(self, path: str | os.PathLike[str], *, synchronous: str = "FULL") -> None:
        mode = synchronous.upper()
        if mode not in SYNCHRONOUS_MODES:
            raise ValueError(
                f"synchronous must be one of {sorted(SYNCHRONOUS_MODES)}, not {synchronous!r}"
            )
        self.path: Final = Path(path)
        self._synchronous = mode
        self._state: Literal["new", "opening", "open", "closed"] = "new"
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None  # touched only on the executor's thread
        self._fast: sqlite3.Connection | None = None  # the same file, synchronous = OFF
        self._enqueues: Batcher[_EnqueueArgs, bool] = Batcher(self._enqueue_many)
        self._commits: Batcher[CommitArgs, StoreError | None] = Batcher(self._commit_many)
        self._rate_hits: Batcher[tuple[tuple[RateHit, ...], float], RateHit | None] = Batcher(
            self._hit_rates_many
        )

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r}, {self._state})"

    # -- lifecycle --
    async def open(self) -> None:
        """Create the file (mode 0600) and schema if needed, and connect."""
        if self._state != "new":
            raise StoreError(f"{self!r} cannot be opened again")
        self._state = "opening"
        executor = self._executor = ThreadPoolExecutor(1, thread_name_prefix="botbox-store")
        try:
            await self._submit(self._open_sync, executor)
        except BaseException:
            executor.shutdown(wait=True)
            if self._state == "opening":  # let a failed open be tried again
                self._executor, self._state = None, "new"
            raise
        if self._state != "opening":  # close() ran meanwhile and closed the new connection
            raise StoreError(f"{self!r} was closed while opening")
        self._state = "open"

    async def close(self) -> None:
        """Close the connection and stop the store's thread; later use raises StoreError."""
        if self._state == "open":
            await self._enqueues.wait()  # calls made before close() still complete
            await self._commits.wait()
            await self._rate_hits.wait()
        executor, self._executor, self._state = self._executor, None, "closed"
        if executor is None:
            return
        try:
            # Queued after every operation already submitted, which therefore completes first.
            await self._submit(self._close_sync, executor)
        finally:
            executor.shutdown(wait=True)  # the thread is idle by now: this returns at once

    def _open_sync(self) -> None:
        """Create, connect, configure and migrate; runs on the store's thread."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Create the file ourselves so it is never readable by other users, even briefly;
            # SQLite gives the -wal and -shm files the same mode. Only when it does not exist:
            # closing any descriptor of a file drops every POSIX lock this process holds on it,
            # so opening an existing one would unlock another store's connections to it.
            if not self.path.exists():
                os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600))
            elif self.path.is_dir():
                raise IsADirectoryError(errno.EISDIR, "Is a directory")
        except FileExistsError:
            pass  # created meanwhile by another store
        except OSError as exc:
            raise StoreError(f"cannot create the store file {str(self.path)!r}: {exc}") from exc
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=5.0)
        try:
            conn.execute("PRAGMA busy_timeout = 5000")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                log.warning("SQLite store %s runs in journal mode %s, not wal", self.path, mode)
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")  # checked in __init__
            conn.execute("PRAGMA foreign_keys = ON")
            self._migrate(conn)
            fast = sqlite3.connect(self.path, isolation_level=None, timeout=5.0)
            fast.execute("PRAGMA busy_timeout = 5000")
            fast.execute("PRAGMA synchronous = OFF")
        except BaseException:
            conn.close()
            raise
        self._conn, self._fast = conn, fast

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Bring the schema up to :data:`SCHEMA_VERSION`, once, whoever gets there first."""
        with _immediate(conn):
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{str(self.path)!r} has schema version {version}; this botbox "
                    f"knows only up to {SCHEMA_VERSION}"
                )
            for step in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[step]:
                    conn.execute(statement)
            if version == 0:
                log.debug("SQLite store %s created at schema version %d", self.path, SCHEMA_VERSION)
            elif version < SCHEMA_VERSION:
                log.info(
                    "SQLite store %s migrated from schema version %d to %d",
                    self.path,
                    version,
                    SCHEMA_VERSION,
                )
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _close_sync(self) -> None:
        """Close the connection; runs on the store's thread."""
        if self._fast is not None:
            self._fast.close()
            self._fast = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def _call(
        self, fn: Callable[Concatenate[sqlite3.Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``fn(connection, ...)`` on the store's thread, once the store is open."""
        executor = self._executor
        if self._state != "open" or executor is None:
            hint = "; call open() first" if self._state != "closed" else ""
            raise StoreError(f"{self!r} is not open{hint}")

        def operation(conn: sqlite3.Connection) -> T:
            return fn(conn, *args, **kwargs)

        fast = fn in _FAST_OPERATIONS
        return await self._submit(functools.partial(self._with_conn, operation, fast), executor)

    def _with_conn(self, operation: Callable[[sqlite3.Connection], T], fast: bool) -> T:
        """Call ``operation`` with a connection; runs on the store's thread.

        The fast connection skips the fsync at commit: for leases, finishes, rate counters,
        need_reply waits and the run log, whose last moments may be lost to a power cut (never
        to a crash of the process); enqueued updates, properties and nonces always go through
        the synced one.
        """
        conn = self._fast if fast else self._conn
        if conn is None:
            raise StoreError(f"{self!r} has no connection")
        return operation(conn)

    async def _submit(self, job: Callable[[], T], executor: ThreadPoolExecutor) -> T:
        """Run ``job`` on the store's thread, translating ``sqlite3.Error``: the one boundary."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(executor, job)
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite store {str(self.path)!r}: {exc}") from exc
        except (OverflowError, UnicodeEncodeError) as exc:  # a value SQLite cannot hold
            raise StoreError(f"SQLite store {str(self.path)!r}: not storable: {exc}") from exc

    # -- the queue --
    async def enqueue(
        self,
        bot_id: str,
        kind: ItemKind,
        chat_key: str,
        payload: JSON,
        *,
        update_id: int | None = None,
        run_after: float = 0.0,
    ) -> bool:
        """Add an item durably; return False (and change nothing) for a duplicate update_id."""
        text, _ = _encode(payload, "the payload")
        return await self._enqueues.submit((bot_id, kind, chat_key, text, update_id, run_after))

    async def _enqueue_many(self, items: list[_EnqueueArgs]) -> list[bool]:
        """Insert a batch of items in one synced transaction (group commit)."""
        return await self._call(_enqueue_many, items)

    async def _hit_rates_many(
        self, items: list[tuple[tuple[RateHit, ...], float]]
    ) -> list[RateHit | None]:
        """Count a batch of clicks in one transaction."""
        return await self._call(counters.hit_rates_many, items)

    async def claim(
        self, owner: str, *, now: float, lease_seconds: float, bot_ids: Sequence[str] | None = None
    ) -> QueuedItem | None:
        """Lease the next ready item: fewest in flight per bot first, then oldest."""
        if bot_ids is not None and not bot_ids:
            return None
        bots = None if bot_ids is None else tuple(bot_ids)
        return await self._call(_claim, owner, now, lease_seconds, bots)

    async def register_instance(
        self, instance: Instance, *, now: float, alive_until: float
    ) -> None:
        """Record (or revive) a server instance, alive until ``alive_until``."""
        await self._call(instances.register, instance, now, alive_until)

    async def heartbeat(self, instance_id: str, *, alive_until: float) -> bool:
        """Keep an instance alive; False if it is unknown or was marked stopped."""
        return await self._call(instances.heartbeat, instance_id, alive_until)

    async def stop_instance(self, instance_id: str, *, now: float) -> None:
        """Mark an instance stopped: every lease it holds is claimable at once."""
        await self._call(instances.stop, instance_id, now)

    async def live_instances(self, host: str, *, now: float) -> list[Instance]:
        """The instances on ``host`` whose heartbeat is current."""
        return await self._call(instances.live_on, host, now)

    async def finish(self, item: QueuedItem, owner: str, *, failed: bool = False) -> None:
        """Mark a claimed item done (or failed for good); a no-op if ``owner`` lost it."""
        status = "failed" if failed else "done"
        if not await self._call(_finish, item, owner, status, time.time()):
            log.warning("finish of seq=%d ignored: %s no longer holds it", item.seq, owner)

    async def retry(self, item: QueuedItem, owner: str, *, run_after: float) -> None:
        """Give a claimed item back to the queue, ready again at ``run_after``."""
        if not await self._call(_retry, item, owner, run_after):
            log.warning("retry of seq=%d ignored: %s no longer holds it", item.seq, owner)

    async def pending_count(
        self, bot_id: str | None = None, *, kind: ItemKind | None = None
    ) -> int:
        """Count items not yet finished (including ones scheduled for later)."""
        return await self._call(commit.pending_count, bot_id, kind)

    async def prune(self, before: float) -> int:
        """Delete queue items finished, and runs logged, before ``before``; return how many.

        Pruned updates are no longer deduplicated, so keep well past Telegram's redelivery
        window (it holds updates for 24 hours).
        """
        return await self._call(_prune, before)

    # -- properties --
    async def get_property(self, bot_id: str, scope: Scope, name: str) -> JSON | _Missing:
        """Return one property's value, or :data:`~runtime.store.base.MISSING`."""
        text = await self._call(_get_property, bot_id, scope, name)
        return MISSING if text is None else cast(JSON, json.loads(text))

    async def read_property(self, bot_id: str, scope: Scope, name: str) -> Versioned:
        """Return one property's value (or MISSING) and its version (0 when not set)."""
        text, version = await self._call(properties.read, bot_id, scope, name)
        return Versioned(MISSING if text is None else cast(JSON, json.loads(text)), version)

    async def property_names(
        self, bot_id: str, scope: Scope, *, prefix: str = "", after: str = "", limit: int = 100
    ) -> list[str]:
        """Return up to ``limit`` names of a scope with ``prefix``, sorted, after ``after``."""
        if limit <= 0:
            return []
        return await self._call(properties.names, bot_id, scope, prefix, after, limit)

    async def commit_run(
        self,
        bot_id: str,
        writes: Sequence[PropertyWrite],
        runs: Sequence[NewRun],
        *,
        max_bot_bytes: int,
        max_pending_runs: int,
        expected: Sequence[PropertyRead] = (),
    ) -> None:
        """Apply a run's writes and enqueue its runs atomically; see the Protocol for the checks.

        Commits from concurrent runs share one synced transaction (group commit), each in its
        own savepoint, so a refused one is undone alone.
        """
        rows = tuple(_property_rows(writes))
        queued: tuple[RunRow, ...] = tuple(
            (run.chat_key, _encode(run.payload, "the scheduled run")[0], run.run_after, run.label)
            for run in runs
        )
        versions = tuple((read.scope, read.name, read.version) for read in expected)
        if not rows and not queued and not versions:
            return
        refused = await self._commits.submit(
            (bot_id, rows, queued, max_bot_bytes, max_pending_runs, versions)
        )
        if refused is not None:
            raise refused

    async def _commit_many(self, items: list[CommitArgs]) -> list[StoreError | None]:
        """Apply a batch of runs' commits in one synced transaction (group commit)."""
        return await self._call(_commit_many, items)

    async def bot_data_bytes(self, bot_id: str) -> int:
        """Return the bytes a bot's properties take: UTF-8 names plus compact JSON values."""
        return await self._call(properties.bot_data_bytes, bot_id)

    # -- need_reply waits --
    async def set_waiting(self, waiting: Waiting) -> None:
        """Remember that the next message of this user in this chat answers ``command``."""
        await self._call(_set_waiting, waiting)

    async def take_waiting(self, bot_id: str, chat_id: int, user_id: int) -> Waiting | None:
        """Return and forget the wait for this user in this chat, if any."""
        command = await self._call(_take_waiting, bot_id, chat_id, user_id)
        return None if command is None else Waiting(bot_id, chat_id, user_id, command)

    async def clear_waiting(self, bot_id: str, chat_id: int, user_id: int) -> None:
        """Forget any wait for this user in this chat."""
        await self._call(_clear_waiting, bot_id, chat_id, user_id)

    # -- run log --
    async def record_run(self, record: RunRecord) -> int:
        """Append a run to the log (its ``id`` is ignored); return the new id."""
        return await self._call(runs.record_run, runs.run_row(record))

    async def record_runs(self, records: Sequence[RunRecord]) -> dict[int, StoreError]:
        """Append several runs in one transaction; each one that cannot be stored fails alone."""
        refused: dict[int, StoreError] = {}
        rows: list[tuple[int, dict[str, object]]] = []
        for index, record in enumerate(records):
            try:
                rows.append((index, runs.run_row(record)))
            except StoreError as exc:
                refused[index] = exc
        if rows:
            failed = await self._call(runs.record_runs, rows)
            for index, reason in failed.items():
                refused[index] = StoreError(f"SQLite store {str(self.path)!r}: {reason}")
        return dict(sorted(refused.items()))

    # -- links --
    async def claim_nonce(self, bot_id: str, nonce: str, *, expires_at: float, now: float) -> bool:
        """Claim a one-time link's nonce; True exactly once, across every server process."""
        return await self._call(counters.claim_nonce, bot_id, nonce, expires_at, now)

    async def hit_rates(self, hits: Sequence[RateHit], *, now: float) -> RateHit | None:
        """Count one use of each key; return the first over its limit (None when all fit)."""
        return await self._rate_hits.submit((tuple(hits), now))

    async def reserve_send(
        self,
        bot_id: str,
        windows: Sequence[Window],
        pause_keys: Sequence[str],
        *,
        now: float,
        horizon: float,
    ) -> float | None:
        """See :meth:`Store.reserve_send`."""
        return await self._call(
            pacing.reserve, bot_id, list(windows), list(pause_keys), now, horizon
        )

    async def pause_sends(self, bot_id: str, key: str, *, until: float, now: float) -> None:
        """See :meth:`Store.pause_sends`."""
        await self._call(pacing.pause, bot_id, key, until, now)

    async def drive_broadcast(
        self,
        bot_id: str,
        seq: int,
        payload: dict[str, JSON],
        *,
        now: float,
        chunk: int,
        period: float,
        max_backlog: int,
    ) -> Step:
        """See :meth:`Store.drive_broadcast`."""
        return await self._call(
            broadcasts.drive, bot_id, seq, payload, now, chunk, period, max_backlog
        )

    async def broadcasts(self, bot_id: str, *, limit: int = 10) -> list[Progress]:
        """See :meth:`Store.broadcasts`."""
        return await self._call(broadcasts.progress, bot_id, limit)

    async def bot_generations(self, bot_ids: Sequence[str], *, now: float) -> dict[str, str]:
        """Return each bot's link generation; a bot never seen, or retired, gets a new one."""
        return await self._call(bots.generations, list(bot_ids), now)

    async def retire_bots(self, keep: Sequence[str], *, now: float) -> list[str]:
        """Retire every live bot not in ``keep``; return the ids retired now, sorted."""
        return await self._call(bots.retire, list(keep), now)

    async def list_runs(
        self, bot_id: str, *, failed_only: bool = False, limit: int = 50
    ) -> list[RunRecord]:
        """Return up to ``limit`` runs, most recently recorded first; failed: status != 'ok'."""
        if limit <= 0:
            return []
        rows = await self._call(runs.list_runs, bot_id, failed_only, limit)
        return [runs.run_record(row) for row in rows]

    # -- bot versions --
    async def deploy_version(
        self,
        bot_id: str,
        files: Mapping[str, str],
        digest: str,
        *,
        origin: str,
        now: float,
        rollback_of: int | None = None,
    ) -> tuple[BotVersion, bool]:
        """Make the files the bot's live version (a new one unless they already are)."""
        text = versions.encode_files(files)
        return await self._call(versions.deploy, bot_id, text, digest, origin, now, rollback_of)

    async def refuse_version(
        self, bot_id: str, digest: str, problems: JSON, *, origin: str, now: float
    ) -> None:
        """Record a refused deploy; the live version keeps serving."""
        text = json.dumps(problems, ensure_ascii=False)
        await self._call(versions.refuse, bot_id, digest, text, origin, now)

    async def undeploy(self, bot_id: str, *, now: float) -> bool:
        """Stop the bot everywhere; False if it was neither live nor refused."""
        return await self._call(versions.undeploy, bot_id, now)

    async def live_stamp(self) -> int:
        """The newest change stamp of any bot's live state."""
        return await self._call(versions.live_stamp)

    async def live_states(self) -> list[LiveState]:
        """Every bot with a live version or a refused deploy."""
        return await self._call(versions.live_states)

    async def bot_versions(self, bot_id: str) -> list[BotVersion]:
        """A bot's versions, newest first."""
        return await self._call(versions.versions, bot_id)

    async def version_files(self, bot_id: str, version: int) -> dict[str, str] | None:
        """The files of one version, or None."""
        text = await self._call(versions.files_of, bot_id, version)
        return None if text is None else cast(dict[str, str], json.loads(text))

    async def oldest_pending(self, *, now: float) -> dict[str, float]:
        """Per bot: when its oldest unfinished item due by ``now`` was enqueued."""
        return await self._call(commit.oldest_pending, now)

    # -- the bots catalog --
    async def bot_catalog(self) -> list[LiveState]:
        """Every known bot, by id."""
        return await self._call(catalog.catalog)

    async def create_bot(
        self, bot_id: str, *, created_by: str, now: float, reuse: bool = False
    ) -> Literal["created", "exists", "used"]:
        """Create a bot with no version (see :meth:`Store.create_bot`)."""
        return await self._call(catalog.create, bot_id, created_by, now, reuse)

    async def set_bot_disabled(self, bot_id: str, disabled: bool, *, now: float) -> bool:
        """Disable or enable a known bot."""
        return await self._call(catalog.set_disabled, bot_id, disabled, now)

    async def delete_bot(self, bot_id: str, *, now: float) -> bool:
        """Stop and forget a known bot; its data stays."""
        return await self._call(catalog.delete, bot_id, now)

    # -- accounts, API tokens, audit, run queries (the admin API) --
    async def create_user(self, name: str, role: UserRole, *, now: float) -> User:
        """Add a user; raise AlreadyExists if the name is taken."""
        return await self._call(_write, accounts.create_user, name, role, now)

    async def get_user(self, name: str) -> User | None:
        """Return a user (with its grants) by name."""
        return await self._call(accounts.get_user, name)

    async def list_users(self) -> list[User]:
        """Return every user, by name."""
        return await self._call(accounts.list_users)

    async def set_user_role(self, name: str, role: UserRole) -> User | None:
        """Change a user's role; None if there is no such user."""
        return await self._call(_write, accounts.set_user_role, name, role)

    async def delete_user(self, name: str) -> bool:
        """Delete a user, its grants and its tokens; False if there was none."""
        return await self._call(_write, accounts.delete_user, name)

    async def set_grant(self, name: str, bot_id: str, role: GrantRole) -> User | None:
        """Grant a user a role on one bot; None if there is no such user."""
        return await self._call(_write, accounts.set_grant, name, bot_id, role)

    async def remove_grant(self, name: str, bot_id: str) -> User | None:
        """Remove a user's grant on one bot; None if there is no such user."""
        return await self._call(_write, accounts.remove_grant, name, bot_id)

    async def create_token(
        self, name: str, *, prefix: str, digest: str, now: float, expires_at: float | None
    ) -> ApiToken:
        """Store a new token's digest for a user; raise NotFound if there is no such user."""
        return await self._call(
            _write, accounts.create_token, name, prefix, digest, now, expires_at
        )

    async def list_tokens(self, name: str | None = None) -> list[ApiToken]:
        """Return every token (of one user), newest first."""
        return await self._call(accounts.list_tokens, name)

    async def revoke_token(self, token_id: int, *, now: float) -> ApiToken | None:
        """Revoke a token; None if unknown."""
        return await self._call(_write, accounts.revoke_token, token_id, now)

    async def authenticate(self, digest: str, *, now: float) -> Principal | None:
        """The principal of a live token (not revoked, not expired), noting its last use."""
        return await self._call(accounts.authenticate, digest, now)

    async def record_audit(self, entry: AuditEntry) -> int:
        """Append a change to the audit log; return its id."""
        return await self._call(_write, accounts.record_audit, entry)

    async def list_audit(
        self, *, bot_id: str | None = None, before_id: int | None = None, limit: int = 50
    ) -> list[AuditEntry]:
        """Return audit entries, newest first."""
        if limit <= 0:
            return []
        return await self._call(accounts.list_audit, bot_id, before_id, limit)

    async def find_runs(self, bot_id: str, query: RunQuery) -> list[RunRecord]:
        """Return a bot's runs matching ``query``, newest first."""
        if query.limit <= 0:
            return []
        rows = await self._call(accounts.find_runs, bot_id, query)
        return [runs.run_record(row) for row in rows]

    async def get_run(self, bot_id: str, run_id: int) -> RunRecord | None:
        """Return one run of a bot, in full."""
        rows = await self._call(accounts.find_runs, bot_id, RunQuery(limit=1), run_id)
        return runs.run_record(rows[0]) if rows else None

    # -- bot secrets --
    async def put_secret(self, bot_id: str, name: str, sealed: bytes, *, now: float) -> bool:
        """Store a bot's sealed secret (replacing one of that name); True if it is new."""
        return await self._call(_write, secrets_sql.put_secret, bot_id, name, sealed, now)

    async def delete_secret(self, bot_id: str, name: str) -> bool:
        """Delete a bot's secret; False if it had none of that name."""
        return await self._call(_write, secrets_sql.delete_secret, bot_id, name)

    async def list_secrets(self, bot_id: str) -> list[SecretInfo]:
        """A bot's secrets, by name: names and times, never values."""
        return await self._call(secrets_sql.list_secrets, bot_id)

    async def sealed_secrets(
        self, bot_id: str, names: Sequence[str] | None = None
    ) -> dict[str, bytes]:
        """A bot's sealed secrets by name (all of them, or only those named that exist)."""
        wanted = None if names is None else tuple(names)
        return await self._call(secrets_sql.sealed_secrets, bot_id, wanted)

    async def secret_bots(self) -> list[str]:
        """Every bot id that has at least one secret, sorted (for a master key rotation)."""
        return await self._call(secrets_sql.secret_bots)

    # -- schedules and labelled runs (issue 11) --
    async def sync_schedules(
        self, bot_id: str, version: int, entries: Sequence[ScheduleSync]
    ) -> bool:
        """See :meth:`Store.sync_schedules`."""
        rows = [(s.name, s.spec, s.command, s.first_at) for s in entries]
        return await self._call(_write, schedules.sync, bot_id, version, rows)

    async def due_schedules(self, bot_ids: Sequence[str], *, now: float) -> list[DueSchedule]:
        """See :meth:`Store.due_schedules`."""
        if not bot_ids:
            return []
        rows = await self._call(schedules.due, list(bot_ids), now)
        return [DueSchedule(*row) for row in rows]

    async def advance_schedule(
        self, due: DueSchedule, *, next_at: float, run: NewRun | None, max_pending: int
    ) -> ScheduleOutcome:
        """See :meth:`Store.advance_schedule`."""
        queued = None
        if run is not None:
            text = _encode(run.payload, "the scheduled run")[0]
            queued = (run.chat_key, text, run.run_after, run.label)
        outcome = await self._call(
            _write,
            schedules.advance,
            due.bot_id,
            due.name,
            due.spec,
            due.due_at,
            next_at,
            queued,
            max_pending,
        )
        return cast(ScheduleOutcome, outcome)

    async def bot_schedules(self, bot_id: str) -> list[ScheduleState]:
        """See :meth:`Store.bot_schedules`."""
        return [ScheduleState(*row) for row in await self._call(schedules.listed, bot_id)]

    async def pending_runs(
        self,
        bot_id: str,
        *,
        label: str | None = None,
        command: str | None = None,
        after: int = 0,
        limit: int = 50,
    ) -> list[PendingRun]:
        """See :meth:`Store.pending_runs`."""
        if limit <= 0:
            return []
        rows = await self._call(schedules.pending, bot_id, label, command, after, limit)
        return [PendingRun(*row) for row in rows]

    async def cancel_runs(
        self, bot_id: str, *, label: str | None = None, seq: int | None = None
    ) -> int:
        """See :meth:`Store.cancel_runs`."""
        return await self._call(_write, schedules.cancel, bot_id, label, seq)


def _property_rows(writes: Sequence[PropertyWrite]) -> list[PropertyRow]:
    """Encode property writes as rows (JSON text and size); raise StoreError for non-JSON."""
    rows: list[PropertyRow] = []
    for write in writes:
        if write.add is not None:
            if type(write.add) not in (int, float) or not math.isfinite(write.add):
                raise StoreError(f"property {write.name!r}: add needs a finite number")
            rows.append((write.scope, write.name, None, 0, write.add))
        elif write.delete:
            rows.append((write.scope, write.name, None, 0, None))
        else:
            text, size = _encode(write.value, f"property {write.name!r}")
            try:
                name_size = len(write.name.encode())
            except UnicodeEncodeError as exc:
                raise StoreError(f"property name {write.name!r} is not storable: {exc}") from exc
            rows.append((write.scope, write.name, text, size + name_size, None))
    return rows


# -- blocking operations: each runs on the store's thread with its connection --
_EnqueueArgs = tuple[str, str, str, str, "int | None", float]


def _write(
    conn: sqlite3.Connection,
    fn: Callable[Concatenate[sqlite3.Connection, P], T],
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    """Run ``fn(connection, ...)`` in one ``BEGIN IMMEDIATE`` transaction."""
    with _immediate(conn):
        return fn(conn, *args, **kwargs)


def _enqueue_many(conn: sqlite3.Connection, items: list[_EnqueueArgs]) -> list[bool]:
    """Insert several items in one transaction; True for each that was new."""
    with _immediate(conn):
        return [commit.enqueue(conn, *item) for item in items]


def _commit_many(conn: sqlite3.Connection, items: list[CommitArgs]) -> list[StoreError | None]:
    """Apply several runs' commits in one transaction, each all or nothing on its own."""
    with _immediate(conn):
        return [commit.commit_one(conn, *item) for item in items]


def _claim(
    conn: sqlite3.Connection,
    owner: str,
    now: float,
    lease_seconds: float,
    bot_ids: tuple[str, ...] | None,
) -> QueuedItem | None:
    """Find and lease the next ready item in one write transaction."""
    params = {"now": now, "bots": None if bot_ids is None else json.dumps(bot_ids)}
    with _immediate(conn):
        row = conn.execute(CLAIM_SQL, params).fetchone()
        if row is None:
            return None
        seq, bot_id, kind, chat_key, payload, update_id, attempts, status, previous = row
        conn.execute(
            "UPDATE queue SET status = 'claimed', owner = ?, lease_until = ?,"
            " attempts = attempts + 1 WHERE seq = ?",
            (owner, now + lease_seconds, seq),
        )
    if status == "claimed":
        log.warning("reclaimed seq=%d: %s stopped or its lease expired", seq, previous)
    item = QueuedItem(bot_id, seq, kind, chat_key, json.loads(payload), update_id, attempts + 1)
    return item


def _finish(
    conn: sqlite3.Connection, item: QueuedItem, owner: str, status: str, finished_at: float
) -> bool:
    """Finish the item if this owner's claim (this attempt) still holds it."""
    cursor = conn.execute(
        "UPDATE queue SET status = ?, finished_at = ?, lease_until = NULL"
        " WHERE seq = ? AND status = 'claimed' AND owner = ? AND attempts = ?",
        (status, finished_at, item.seq, owner, item.attempts),
    )
    return cursor.rowcount == 1


def _retry(conn: sqlite3.Connection, item: QueuedItem, owner: str, run_after: float) -> bool:
    """Put the item back to pending if this owner's claim still holds it."""
    cursor = conn.execute(
        "UPDATE queue SET status = 'pending', owner = NULL, lease_until = NULL, run_after = ?"
        " WHERE seq = ? AND status = 'claimed' AND owner = ? AND attempts = ?",
        (run_after, item.seq, owner, item.attempts),
    )
    return cursor.rowcount == 1


def _prune(conn: sqlite3.Connection, before: float) -> int:
    """Delete items finished, and runs started, before a time."""
    with _immediate(conn):
        items = conn.execute(
            "DELETE FROM queue WHERE finished_at IS NOT NULL AND finished_at < ?", (before,)
        ).rowcount
        runs = conn.execute("DELETE FROM run WHERE started_at < ?", (before,)).rowcount
    return items + runs


def _get_property(conn: sqlite3.Connection, bot_id: str, scope: str, name: str) -> str | None:
    """Return a property's JSON text, or None."""
    row = conn.execute(
        "SELECT value FROM property WHERE bot_id = ? AND scope = ? AND name = ?",
        (bot_id, scope, name),
    ).fetchone()
    return None if row is None else str(row[0])


def _set_waiting(conn: sqlite3.Connection, waiting: Waiting) -> None:
    """Upsert the wait of one user in one chat."""
    conn.execute(
        "INSERT INTO waiting (bot_id, chat_id, user_id, command) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (bot_id, chat_id, user_id) DO UPDATE SET command = excluded.command",
        (waiting.bot_id, waiting.chat_id, waiting.user_id, waiting.command),
    )


def _take_waiting(conn: sqlite3.Connection, bot_id: str, chat_id: int, user_id: int) -> str | None:
    """Read and delete a wait in one transaction; return its command."""
    key = (bot_id, chat_id, user_id)
    with _immediate(conn):
        row = conn.execute(
            "SELECT command FROM waiting WHERE bot_id = ? AND chat_id = ? AND user_id = ?", key
        ).fetchone()
        if row is None:
            return None
        conn.execute("DELETE FROM waiting WHERE bot_id = ? AND chat_id = ? AND user_id = ?", key)
    return str(row[0])


def _clear_waiting(conn: sqlite3.Connection, bot_id: str, chat_id: int, user_id: int) -> None:
    """Delete a wait, if any."""
    conn.execute(
        "DELETE FROM waiting WHERE bot_id = ? AND chat_id = ? AND user_id = ?",
        (bot_id, chat_id, user_id),
    )


_FAST_OPERATIONS: Final = frozenset(
    {
        _claim,
        _finish,
        _retry,
        runs.record_run,
        runs.record_runs,
        counters.hit_rates_many,
        pacing.reserve,
        pacing.pause,
        _set_waiting,
        _take_waiting,
        _clear_waiting,
        instances.heartbeat,
        instances.stop,
        accounts.authenticate,
    }
)
"""Operations that run on the connection without fsync at commit (see ``_with_conn``): a crash
of the process loses none of them; a power cut may lose the last moments of leases, finishes,
rate counts, log lines, need_reply waits and API tokens' last use (the update itself was stored
fully synced)."""
