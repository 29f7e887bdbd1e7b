"""The store Protocol and its value types: every backend (SQLite, later PostgreSQL) speaks this.

Design for several server processes (and later machines): every method is one atomic
operation; queue items are *claimed* with a lease by an owner, so a crashed owner's items are
picked up again: at once when the owner is a registered instance whose heartbeat stopped (or
that stopped cleanly), else when the lease ends (processing is at least once); within one
``(bot_id, chat_key)`` items are handed out strictly in order and one at a time. Across bots,
claims are fair: the next item goes to the bot with the fewest items in flight (live leases),
oldest item first among equals, so one bot's backlog never holds up another bot's updates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol

from runtime.errors import StoreError
from runtime.store.broadcasts import Progress, Step
from runtime.store.pacing import Window
from sandbox import JSON


class _Missing:
    """The type of :data:`MISSING`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()
"""Returned by :meth:`Store.get_property` when a property is not set."""

Scope = str
"""Whose property: ``"bot"`` for bot-wide, ``"user:<id>"`` or ``"chat:<id>"`` for one user or
chat of the bot."""

ItemKind = Literal["update", "run"]


@dataclass(frozen=True, slots=True)
class QueuedItem:
    """A queue item: a Telegram update (``kind="update"``) or a scheduled run (``"run"``)."""

    bot_id: str
    seq: int
    kind: ItemKind
    chat_key: str
    payload: JSON
    update_id: int | None = None
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class PropertyWrite:
    """One buffered property change: a value to set, ``delete=True``, or a number to ``add``.

    ``add`` is applied at commit to whatever the property then holds (not set counts as 0), so
    concurrent adds never conflict.
    """

    scope: Scope
    name: str
    value: JSON = None
    delete: bool = False
    add: int | float | None = None


@dataclass(frozen=True, slots=True)
class Versioned:
    """A property's value (or :data:`MISSING`) and its version (0 when it is not set)."""

    value: JSON | _Missing
    version: int


@dataclass(frozen=True, slots=True)
class PropertyRead:
    """A version a commit requires a property to still have (0: still not set)."""

    scope: Scope
    name: str
    version: int


@dataclass(frozen=True, slots=True)
class NewRun:
    """A scheduled run (``Bot.run``) to enqueue with the commit of the run that asked for it."""

    chat_key: str
    payload: JSON
    run_after: float = 0.0
    label: str | None = None


@dataclass(frozen=True, slots=True)
class Waiting:
    """A ``need_reply`` command waiting for the next message of a user in a chat."""

    bot_id: str
    chat_id: int
    user_id: int
    command: str


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run of a command, as the run log keeps it."""

    bot_id: str
    command: str
    trigger: str
    user_id: int | None
    chat_id: int | None
    status: str
    started_at: float
    cpu_seconds: float
    wall_seconds: float
    output: str = ""
    calls: Sequence[JSON] = ()
    error: JSON = None
    id: int | None = None
    extra: dict[str, JSON] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RateHit:
    """One rate-limited thing being used once: at most ``limit`` uses per ``period`` seconds."""

    key: str
    limit: int
    period: float
    name: str = ""


@dataclass(frozen=True, slots=True)
class Instance:
    """A server process as the store knows it: the owner of its leases, and where it runs."""

    instance_id: str
    host: str
    pid: int
    started: str = ""


@dataclass(frozen=True, slots=True)
class BotVersion:
    """One immutable version of a bot's code: its number, content digest, when and how made."""

    bot_id: str
    version: int
    digest: str
    created_at: float
    origin: str
    """``folder`` (hot reload), ``api``, ``cli`` or ``rollback``."""
    rollback_of: int | None = None


@dataclass(frozen=True, slots=True)
class LiveState:
    """What serves for one bot now (every process follows it), and its latest refused deploy."""

    bot_id: str
    version: int | None
    """The version serving now; ``None`` when none ever loaded."""
    digest: str | None
    origin: str
    """``folder`` when the bot follows its folder under ``BOTBOX_BOTS_DIR``, else ``api``."""
    changed_at: float
    stamp: int
    refused_digest: str | None = None
    refused: JSON = None
    """The refused deploy's problems, as plain data (see ``runtime.bots.versions``)."""
    refused_at: float | None = None
    disabled: bool = False
    """Disabled by an admin or author: no process serves it; versions and data stay."""
    created_at: float | None = None
    """When it was created through the admin API (it is listed before its first version)."""
    created_by: str | None = None


# -- accounts, API tokens, audit (the admin API, issue 10) --
UserRole = Literal["admin", "author", "viewer"]
"""A user's role server-wide: admin (everything), author (granted bots), viewer (read-only)."""

GrantRole = Literal["author", "viewer"]
"""What a grant allows on one bot: author (read and write), viewer (read)."""


@dataclass(frozen=True, slots=True)
class User:
    """An account of the admin API: a name, a server-wide role, and its grants by bot id."""

    id: int
    name: str
    role: UserRole
    created_at: float
    grants: dict[str, GrantRole] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ApiToken:
    """An API token as the store keeps it: never the token itself, only its SHA-256 digest."""

    id: int
    user: str
    prefix: str
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None
    last_used_at: float | None = None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a valid token speaks for: the user, its role and grants, and the token's id."""

    user_id: int
    name: str
    role: UserRole
    token_id: int
    grants: dict[str, GrantRole] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One change made through the API or the CLI: who, how, what, to what, before and after."""

    actor: str
    via: str
    action: str
    at: float
    bot_id: str | None = None
    target: str = ""
    before: JSON = None
    after: JSON = None
    id: int | None = None


@dataclass(frozen=True, slots=True)
class RunQuery:
    """Filters for :meth:`Store.find_runs`; ``before_id`` is the cursor (runs with smaller ids).

    ``failed`` keeps runs whose status is not ``ok``.
    """

    command: str | None = None
    status: str | None = None
    failed: bool = False
    user_id: int | None = None
    since: float | None = None
    until: float | None = None
    before_id: int | None = None
    limit: int = 50


@dataclass(frozen=True, slots=True)
class SecretInfo:
    """A bot secret as listings show it: its name and when it was last set, never its value."""

    name: str
    updated_at: float


# -- schedules and labelled runs (issue 11) --
ScheduleOutcome = Literal["enqueued", "skipped", "full", "taken"]


@dataclass(frozen=True, slots=True)
class ScheduleSync:
    """A recurring schedule as a bot version defines it, for :meth:`Store.sync_schedules`."""

    name: str
    spec: str
    """What decides its occurrences (cron and time zone); a change starts it again."""
    command: str
    first_at: float
    """Its next occurrence from now: its ``due_at`` when new or changed."""


@dataclass(frozen=True, slots=True)
class DueSchedule:
    """A schedule whose occurrence ``due_at`` has come."""

    bot_id: str
    name: str
    spec: str
    command: str
    due_at: float


@dataclass(frozen=True, slots=True)
class ScheduleState:
    """A stored schedule: its next occurrence and the last one enqueued."""

    name: str
    spec: str
    command: str
    due_at: float
    last_run_at: float | None


@dataclass(frozen=True, slots=True)
class PendingRun:
    """A queued run not finished yet (``status`` ``pending``, or ``claimed`` while it runs)."""

    seq: int
    command: str
    run_after: float
    label: str | None
    status: str
    attempts: int = 0


class AccountStore(Protocol):
    """Accounts, tokens, audit and run queries: what the admin API needs from storage.

    Part of :class:`Store` (kept apart so the admin API's needs read as one list).
    """

    async def create_user(self, name: str, role: UserRole, *, now: float) -> User:
        """Add a user; raise AlreadyExists if the name is taken."""

    async def get_user(self, name: str) -> User | None:
        """Return a user (with its grants) by name."""

    async def list_users(self) -> list[User]:
        """Return every user, by name."""

    async def set_user_role(self, name: str, role: UserRole) -> User | None:
        """Change a user's role; None if there is no such user."""

    async def delete_user(self, name: str) -> bool:
        """Delete a user, its grants and its tokens; False if there was none."""

    async def set_grant(self, name: str, bot_id: str, role: GrantRole) -> User | None:
        """Grant a user a role on one bot (replacing any grant); None if no such user."""

    async def remove_grant(self, name: str, bot_id: str) -> User | None:
        """Remove a user's grant on one bot; None if no such user."""

    async def create_token(
        self, name: str, *, prefix: str, digest: str, now: float, expires_at: float | None
    ) -> ApiToken:
        """Store a new token's digest for a user; raise NotFound if there is no such user."""

    async def list_tokens(self, name: str | None = None) -> list[ApiToken]:
        """Return every token (of one user), newest first."""

    async def revoke_token(self, token_id: int, *, now: float) -> ApiToken | None:
        """Revoke a token (a revoked one stays revoked at its first time); None if unknown."""

    async def authenticate(self, digest: str, *, now: float) -> Principal | None:
        """The principal of a live token (not revoked, not expired), noting its last use."""

    async def record_audit(self, entry: AuditEntry) -> int:
        """Append a change to the audit log; return its id."""

    async def list_audit(
        self, *, bot_id: str | None = None, before_id: int | None = None, limit: int = 50
    ) -> list[AuditEntry]:
        """Return audit entries, newest first (ids below ``before_id``, of one bot)."""

    async def find_runs(self, bot_id: str, query: RunQuery) -> list[RunRecord]:
        """Return a bot's runs matching ``query``, newest first."""

    async def get_run(self, bot_id: str, run_id: int) -> RunRecord | None:
        """Return one run of a bot, in full."""


class Store(AccountStore, Protocol):
    """What the runtime needs from storage. Every method is atomic."""

    async def open(self) -> None:
        """Create the schema if needed and get ready."""

    async def close(self) -> None:
        """Release every connection."""

    # -- the queue (updates and scheduled runs) --
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

    async def claim(
        self, owner: str, *, now: float, lease_seconds: float, bot_ids: Sequence[str] | None = None
    ) -> QueuedItem | None:
        """Lease the next ready item, one at a time per ``(bot_id, chat_key)``.

        It is the oldest ready item of the bot with the fewest live leases (ties: the oldest
        item of them all), so one bot's backlog cannot starve another bot.
        """

    # -- server instances: a lease is live only while its owner's heartbeat is --
    async def register_instance(
        self, instance: Instance, *, now: float, alive_until: float
    ) -> None:
        """Record (or revive) a server instance, alive until ``alive_until``."""

    async def heartbeat(self, instance_id: str, *, alive_until: float) -> bool:
        """Keep an instance alive; False if it is unknown or was marked stopped."""

    async def stop_instance(self, instance_id: str, *, now: float) -> None:
        """Mark an instance stopped: every lease it holds is claimable at once."""

    async def live_instances(self, host: str, *, now: float) -> list[Instance]:
        """The instances on ``host`` whose heartbeat is current."""

    async def finish(self, item: QueuedItem, owner: str, *, failed: bool = False) -> None:
        """Mark a claimed item done (or failed for good); its chat's next item becomes ready."""

    async def retry(self, item: QueuedItem, owner: str, *, run_after: float) -> None:
        """Give a claimed item back to the queue, ready again at ``run_after``."""

    async def prune(self, before: float) -> int:
        """Delete queue items finished, and runs logged, before ``before``; return how many."""

    async def pending_count(
        self, bot_id: str | None = None, *, kind: ItemKind | None = None
    ) -> int:
        """Count items not yet finished (of one bot, of one kind)."""

    # -- properties --
    async def get_property(self, bot_id: str, scope: Scope, name: str) -> JSON | _Missing:
        """Return one property's value, or :data:`MISSING`."""

    async def read_property(self, bot_id: str, scope: Scope, name: str) -> Versioned:
        """Return one property's value and version.

        Versions grow with every commit that writes the property (also after a delete), and a
        property never gets back a version it had: equal versions mean nothing changed.
        """

    async def property_names(
        self, bot_id: str, scope: Scope, *, prefix: str = "", after: str = "", limit: int = 100
    ) -> list[str]:
        """Return up to ``limit`` property names of a scope that start with ``prefix`` and sort
        after ``after`` (by code point), in order: pass the last name back to get the next page.
        """

    async def bot_data_bytes(self, bot_id: str) -> int:
        """Return the bytes a bot's properties take (keys and JSON values)."""

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
        """Apply a run's property writes and enqueue its scheduled runs in one transaction.

        Raises ConflictError when a property in ``expected`` no longer has that version, and
        NotANumber when an ``add`` meets a value that is not a number.
        Raises QuotaExceeded past ``max_bot_bytes`` (a commit that does not grow the bot's data is
        accepted even over it, so a bot left over a lowered quota can delete its way back), or its
        subclass PendingRunsExceeded when the bot's unfinished ``run`` items plus ``runs`` would
        pass ``max_pending_runs``; either way nothing is written. The check and the writes are
        one atomic step: concurrent commits (from any process) never pass the cap together.
        """

    # -- need_reply waits --
    async def set_waiting(self, waiting: Waiting) -> None:
        """Remember that the next message of this user in this chat answers ``command``."""

    async def take_waiting(self, bot_id: str, chat_id: int, user_id: int) -> Waiting | None:
        """Return and forget the wait for this user in this chat, if any."""

    async def clear_waiting(self, bot_id: str, chat_id: int, user_id: int) -> None:
        """Forget any wait for this user in this chat."""

    # -- run log --
    async def record_run(self, record: RunRecord) -> int:
        """Append a run to the log; return its id."""

    async def record_runs(self, records: Sequence[RunRecord]) -> dict[int, StoreError]:
        """Append several runs in one transaction; return those that could not be stored.

        The run log is written behind, in batches. A record that cannot be stored (a value the
        backend cannot hold) is refused alone, keyed by its index; every other one is stored.
        """

    # -- signed links --
    async def claim_nonce(self, bot_id: str, nonce: str, *, expires_at: float, now: float) -> bool:
        """Claim a one-time link's nonce: True exactly once, across every server process."""

    async def hit_rates(self, hits: Sequence[RateHit], *, now: float) -> RateHit | None:
        """Count one use of each key; return the first over its limit (None when all fit)."""

    # -- send pacing (see runtime.store.pacing) --
    async def reserve_send(
        self,
        bot_id: str,
        windows: Sequence[Window],
        pause_keys: Sequence[str],
        *,
        now: float,
        horizon: float,
    ) -> float | None:
        """Reserve the earliest time >= ``now`` at which one more send fits every window and no
        pause under ``pause_keys`` holds it, shared by every server process. Return that time,
        or None (nothing reserved) when it is more than ``horizon`` seconds away."""

    async def pause_sends(self, bot_id: str, key: str, *, until: float, now: float) -> None:
        """Hold every send under ``key`` until ``until`` (Telegram answered 429)."""

    # -- broadcasts (see runtime.store.broadcasts) --
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
        """Do one step of the broadcast queue item ``seq``: queue the runs of the next ``chunk``
        users (spread over ``period`` seconds) and the next step, atomically, exactly once per
        step; hold back while the bot has more than ``max_backlog`` unfinished runs."""

    async def broadcasts(self, bot_id: str, *, limit: int = 10) -> list[Progress]:
        """The bot's newest broadcasts and how far they are."""

    async def list_runs(
        self, bot_id: str, *, failed_only: bool = False, limit: int = 50
    ) -> list[RunRecord]:
        """Return the newest runs first."""

    # -- bot identities --
    async def bot_generations(self, bot_ids: Sequence[str], *, now: float) -> dict[str, str]:
        """Return each bot's link generation; one never seen, or retired, gets a new random one."""

    async def retire_bots(self, keep: Sequence[str], *, now: float) -> list[str]:
        """Retire every live bot not in ``keep``; return the ids this call retired, sorted."""

    # -- bot versions (issue 10): the store is the source of truth for what serves --
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
        """Make these (already checked) files the bot's live version, atomically.

        Returns the live version and whether it is new: files with the live version's digest
        make no new version (unless ``rollback_of`` is given), and clear a refused deploy.
        """

    async def refuse_version(
        self, bot_id: str, digest: str, problems: JSON, *, origin: str, now: float
    ) -> None:
        """Record a refused deploy of the bot; its live version (if any) keeps serving."""

    async def undeploy(self, bot_id: str, *, now: float) -> bool:
        """Stop the bot everywhere (no live version); False if it was not live or refused."""

    async def live_stamp(self) -> int:
        """A number that grows with every change of any bot's live state (cheap to poll)."""

    async def live_states(self) -> list[LiveState]:
        """Every bot with a live version or a refused deploy, by id."""

    async def bot_versions(self, bot_id: str) -> list[BotVersion]:
        """A bot's versions, newest first (empty for a bot never deployed)."""

    async def version_files(self, bot_id: str, version: int) -> dict[str, str] | None:
        """The files of one version, or None if the bot has no such version."""

    # -- bot secrets (sealed by the runtime; the store never sees a plaintext value) --
    async def put_secret(self, bot_id: str, name: str, sealed: bytes, *, now: float) -> bool:
        """Store a bot's sealed secret (replacing one of that name); True if it is new."""

    async def delete_secret(self, bot_id: str, name: str) -> bool:
        """Delete a bot's secret; False if it had none of that name."""

    async def list_secrets(self, bot_id: str) -> list[SecretInfo]:
        """A bot's secrets, by name: names and times, never values."""

    async def sealed_secrets(
        self, bot_id: str, names: Sequence[str] | None = None
    ) -> dict[str, bytes]:
        """A bot's sealed secrets by name (all of them, or only those named that exist)."""

    async def secret_bots(self) -> list[str]:
        """Every bot id that has at least one secret, sorted (for a master key rotation)."""

    # -- schedules and labelled runs (issue 11) --
    async def sync_schedules(
        self, bot_id: str, version: int, entries: Sequence[ScheduleSync]
    ) -> bool:
        """Make a bot's recurring schedules those of ``version`` in one transaction: new ones
        start at ``first_at``, unchanged ones (same name and spec) keep their next occurrence,
        changed ones start again at ``first_at``, missing ones are deleted. False (and nothing
        changed) when a newer version already synced."""

    async def due_schedules(self, bot_ids: Sequence[str], *, now: float) -> list[DueSchedule]:
        """The schedules of these bots whose next occurrence is at or before ``now``."""

    async def advance_schedule(
        self, due: DueSchedule, *, next_at: float, run: NewRun | None, max_pending: int
    ) -> ScheduleOutcome:
        """Move a due schedule to ``next_at`` and enqueue ``run`` (a ``run`` item) in the same
        transaction, if nobody did it first (``"taken"``: nothing changed). ``"full"``: advanced,
        but the bot already has ``max_pending`` unfinished runs, so nothing was enqueued."""

    async def bot_schedules(self, bot_id: str) -> list[ScheduleState]:
        """A bot's stored schedules, by name."""

    async def pending_runs(
        self,
        bot_id: str,
        *,
        label: str | None = None,
        command: str | None = None,
        after: int = 0,
        limit: int = 50,
    ) -> list[PendingRun]:
        """A bot's unfinished queued runs with seq above ``after`` (the cursor), oldest first."""

    async def cancel_runs(
        self, bot_id: str, *, label: str | None = None, seq: int | None = None
    ) -> int:
        """Delete this bot's queued runs not yet claimed, by label and/or seq; how many. A run
        claimed meanwhile runs and is not counted; one counted never runs."""

    async def oldest_pending(self, *, now: float) -> dict[str, float]:
        """Per bot with unfinished queue items due by ``now``: the oldest one's enqueue time
        (for the queue age metric)."""

    # -- the bots catalog (issue 10): created, disabled, deleted --
    async def bot_catalog(self) -> list[LiveState]:
        """Every known bot (live, refused, disabled, or created with no version yet), by id."""

    async def create_bot(
        self, bot_id: str, *, created_by: str, now: float, reuse: bool = False
    ) -> Literal["created", "exists", "used"]:
        """Create a bot with no version. ``exists``: it is known already; ``used``: the id has
        history (versions or data) and ``reuse`` is False (only admins reuse an id)."""

    async def set_bot_disabled(self, bot_id: str, disabled: bool, *, now: float) -> bool:
        """Disable (no process serves it) or enable a known bot; False if unknown or unchanged."""

    async def delete_bot(self, bot_id: str, *, now: float) -> bool:
        """Stop a known bot everywhere, drop it from the catalog, retire its links, drop the
        grants on it; its versions, properties and run log stay. False if it was not known."""
