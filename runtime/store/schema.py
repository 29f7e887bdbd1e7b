"""The SQLite store's schema (as migrations) and its longer SQL statements."""

from __future__ import annotations

from typing import Final

from runtime.store import (
    accounts,
    bots,
    broadcasts,
    catalog,
    counters,
    instances,
    pacing,
    properties,
    schedules,
    secrets,
    versions,
)

SCHEMA_VERSION: Final = 12
"""The schema this code writes; kept in ``PRAGMA user_version``."""

SYNCHRONOUS_MODES: Final = frozenset({"OFF", "NORMAL", "FULL", "EXTRA"})
"""The values ``PRAGMA synchronous`` accepts."""

# MIGRATIONS[n] takes a database from user_version n to n + 1.
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        """CREATE TABLE queue (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            bot_id TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('update', 'run')),
            chat_key TEXT NOT NULL,
            payload TEXT NOT NULL,  -- JSON
            update_id INTEGER,
            run_after REAL NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'claimed', 'done', 'failed')),
            owner TEXT, lease_until REAL,  -- set while claimed; owner kept once finished
            attempts INTEGER NOT NULL DEFAULT 0,  -- claims so far; fences late finish/retry
            enqueued_at REAL NOT NULL,
            finished_at REAL  -- NULL until done or failed
        )""",
        # Finished rows stay (until pruned) so a redelivered update_id is still refused.
        """CREATE UNIQUE INDEX queue_update ON queue (bot_id, update_id)
            WHERE update_id IS NOT NULL""",
        # Only unfinished rows: claim walks this in seq order and stops at the first ready one.
        """CREATE INDEX queue_open ON queue (seq, run_after, status, lease_until)
            WHERE finished_at IS NULL""",
        """CREATE INDEX queue_open_bot ON queue (bot_id, seq) WHERE finished_at IS NULL""",
        """CREATE INDEX queue_open_chat ON queue (bot_id, chat_key, seq)
            WHERE finished_at IS NULL""",
        # Live leases block their chat; there are only as many as items being worked on.
        """CREATE INDEX queue_leased ON queue (lease_until, bot_id, chat_key)
            WHERE status = 'claimed'""",
        """CREATE INDEX queue_finished ON queue (finished_at) WHERE finished_at IS NOT NULL""",
        """CREATE TABLE property (
            bot_id TEXT NOT NULL, scope TEXT NOT NULL, name TEXT NOT NULL,
            value TEXT NOT NULL,  -- compact JSON
            size INTEGER NOT NULL,  -- UTF-8 bytes of name and value, summed for the quota
            PRIMARY KEY (bot_id, scope, name)
        )""",
        """CREATE TABLE waiting (
            bot_id TEXT NOT NULL, chat_id INTEGER NOT NULL, user_id INTEGER NOT NULL,
            command TEXT NOT NULL,
            PRIMARY KEY (bot_id, chat_id, user_id)
        )""",
        """CREATE TABLE run (
            id INTEGER PRIMARY KEY,  -- the rowid: cheaper than AUTOINCREMENT for an append log
            bot_id TEXT NOT NULL, command TEXT NOT NULL, trigger TEXT NOT NULL,
            user_id INTEGER, chat_id INTEGER, status TEXT NOT NULL,
            started_at REAL NOT NULL, cpu_seconds REAL NOT NULL, wall_seconds REAL NOT NULL,
            output TEXT NOT NULL,
            calls TEXT NOT NULL, error TEXT NOT NULL, extra TEXT NOT NULL  -- JSON
        )""",
        """CREATE INDEX run_bot ON run (bot_id, id)""",
    ),
    counters.MIGRATION,
    bots.MIGRATION,
    properties.MIGRATION,
    instances.MIGRATION,
    versions.MIGRATION,
    pacing.MIGRATION,
    accounts.MIGRATION,
    broadcasts.MIGRATION,
    secrets.MIGRATION,
    schedules.MIGRATION,
    catalog.MIGRATION,
)

CLAIM_SQL: Final = """
    WITH RECURSIVE
      -- Instances whose heartbeat stopped (or that stopped): their leases are over now.
      gone(instance_id) AS MATERIALIZED (
          SELECT instance_id FROM instance WHERE alive_until <= :now),
      -- The bots with unfinished items, by skip-scan of queue_open_bot: one seek per bot.
      waiting(bot_id) AS (
          SELECT MIN(bot_id) FROM queue WHERE finished_at IS NULL
          UNION ALL
          SELECT (SELECT MIN(bot_id) FROM queue
                  WHERE finished_at IS NULL AND bot_id > waiting.bot_id)
          FROM waiting WHERE waiting.bot_id IS NOT NULL),
      -- Per bot: its oldest ready item, and how many of its items are in flight.
      first(bot_id, seq, in_flight) AS MATERIALIZED (
          SELECT w.bot_id,
                 (SELECT q.seq FROM queue AS q
                  WHERE q.bot_id = w.bot_id AND q.finished_at IS NULL
                    AND q.run_after <= :now
                    AND (q.status = 'pending' OR q.lease_until <= :now
                         OR q.owner IN (SELECT instance_id FROM gone))
                    AND (q.bot_id, q.chat_key) NOT IN (
                        SELECT bot_id, chat_key FROM queue
                        WHERE status = 'claimed' AND lease_until > :now
                          AND owner NOT IN (SELECT instance_id FROM gone))
                    -- An earlier unfinished update holds its chat even while it waits to be
                    -- retried, so updates stay in order; scheduled runs waiting for their
                    -- time hold nothing.
                    AND NOT EXISTS (
                        SELECT 1 FROM queue AS e
                        WHERE e.finished_at IS NULL AND e.bot_id = q.bot_id
                          AND e.chat_key = q.chat_key AND e.seq < q.seq AND e.kind = 'update')
                  ORDER BY q.seq
                  LIMIT 1),
                 (SELECT COUNT(*) FROM queue AS c
                  WHERE c.status = 'claimed' AND c.lease_until > :now AND c.bot_id = w.bot_id
                    AND c.owner NOT IN (SELECT instance_id FROM gone))
          FROM waiting AS w
          WHERE w.bot_id IS NOT NULL
            AND (:bots IS NULL OR w.bot_id IN (SELECT value FROM json_each(:bots))))
    -- Fair across bots: the bot with the fewest items in flight goes first, oldest item first
    -- among equals; within a bot (and so within a chat), items keep their order.
    SELECT q.seq, q.bot_id, q.kind, q.chat_key, q.payload, q.update_id, q.attempts, q.status,
           q.owner
    FROM first JOIN queue AS q ON q.seq = first.seq
    ORDER BY first.in_flight, first.seq
    LIMIT 1
"""
RUN_JSON_FIELDS: Final = ("calls", "error", "extra")
RECORD_RUN_SQL: Final = """
    INSERT INTO run (bot_id, command, trigger, user_id, chat_id, status, started_at, cpu_seconds,
                     wall_seconds, output, calls, error, extra)
    VALUES (:bot_id, :command, :trigger, :user_id, :chat_id, :status, :started_at, :cpu_seconds,
            :wall_seconds, :output, :calls, :error, :extra)
"""
LIST_RUNS_SQL: Final = """
    SELECT id, bot_id, command, trigger, user_id, chat_id, status, started_at, cpu_seconds,
           wall_seconds, output, calls, error, extra
    FROM run
    WHERE bot_id = :bot_id AND (NOT :failed_only OR status != 'ok')
    ORDER BY id DESC
    LIMIT :limit
"""
