"""Storage for bots: the durable update queue, properties, run logs and reply waits.

:class:`~runtime.store.base.Store` is the Protocol; :class:`~runtime.store.sqlite.SqliteStore`
is the embedded default. A PostgreSQL store must pass ``tests/runtime/store/test_contract.py``
unchanged.
"""

from runtime.store.base import (
    MISSING,
    ApiToken,
    AuditEntry,
    BotVersion,
    DueSchedule,
    Instance,
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
    SecretInfo,
    Store,
    User,
    Versioned,
    Waiting,
)
from runtime.store.pacing import Window
from runtime.store.sqlite import SqliteStore

__all__ = [
    "MISSING",
    "ApiToken",
    "AuditEntry",
    "BotVersion",
    "DueSchedule",
    "Instance",
    "LiveState",
    "NewRun",
    "PendingRun",
    "Principal",
    "PropertyRead",
    "PropertyWrite",
    "QueuedItem",
    "RateHit",
    "RunQuery",
    "RunRecord",
    "ScheduleOutcome",
    "ScheduleState",
    "ScheduleSync",
    "SecretInfo",
    "SqliteStore",
    "Store",
    "User",
    "Versioned",
    "Waiting",
    "Window",
]
