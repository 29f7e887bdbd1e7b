"""``/bots/{bot_id}/scheduled``: a bot's queued runs and recurring schedules; cancelling runs.

Queued runs are the ones ``Bot.run`` and the schedules put in the durable queue and that have
not finished (``running`` while claimed). Cancelling deletes runs not claimed yet: one that
started runs to its end and is not counted (:meth:`Store.cancel_runs`).
"""

from __future__ import annotations

from runtime.api.models import (
    Cancelled,
    CancelQuery,
    RecurringOut,
    ScheduledPage,
    ScheduledQuery,
    ScheduledRunOut,
)
from runtime.api.operation import ID_SCHEMA, Call, Routes, whole_number
from runtime.bots.cron import next_after
from runtime.web.responses import HttpError

ROUTES = Routes(
    "schedules",
    "A bot's queued runs (Bot.run, schedule occurrences) and recurring schedules; cancel runs.",
)


@ROUTES.add(
    "GET", "/bots/{bot_id}/scheduled", need="read", response=ScheduledPage, query=ScheduledQuery
)
async def list_scheduled(call: Call, body: None, query: ScheduledQuery) -> ScheduledPage:
    """List a bot's queued runs and its recurring schedules with their next occurrence."""
    store = call.state.store
    found = await store.pending_runs(
        call.bot_id,
        label=query.label or None,
        command=query.command,
        after=query.cursor or 0,
        limit=query.limit + 1,
    )
    page = found[: query.limit]
    runs = [
        ScheduledRunOut(
            id=run.seq,
            command=run.command,
            run_at=run.run_after,
            label=run.label,
            status="running" if run.status == "claimed" else "pending",
            attempts=run.attempts,
        )
        for run in page
    ]
    stored = {state.name: state for state in await store.bot_schedules(call.bot_id)}
    bot = call.state.registry.find(call.bot_id)
    schedules: list[RecurringOut] = []
    now = call.state.services.clock()
    for schedule in () if bot is None else bot.definition.config.schedules:
        if query.command is not None and schedule.command != query.command:
            continue
        if query.label:
            continue  # a label names queued runs only
        state = stored.get(schedule.name)
        current = state is not None and state.spec == schedule.spec()
        schedules.append(
            RecurringOut(
                name=schedule.name,
                cron=schedule.cron.expression,
                timezone=schedule.cron.timezone,
                command=schedule.command,
                catch_up=schedule.catch_up,
                next_at=state.due_at if current and state else next_after(schedule.cron, now),
                last_run_at=state.last_run_at if current and state else None,
            )
        )
    more = len(found) > query.limit
    return ScheduledPage(runs=runs, next_cursor=page[-1].seq if more else None, schedules=schedules)


@ROUTES.add(
    "DELETE",
    "/bots/{bot_id}/scheduled",
    need="write",
    response=Cancelled,
    query=CancelQuery,
)
async def cancel_scheduled(call: Call, body: None, query: CancelQuery) -> Cancelled:
    """Cancel every queued run of the bot with a label (runs already started go on)."""
    cancelled = await call.state.store.cancel_runs(call.bot_id, label=query.label)
    await call.audit("scheduled.cancel", f"label:{query.label}", before={"cancelled": cancelled})
    return Cancelled(cancelled=cancelled)


@ROUTES.add(
    "DELETE",
    "/bots/{bot_id}/scheduled/{run_id}",
    need="write",
    response=Cancelled,
    path_schemas={"run_id": ID_SCHEMA},
    errors=(409, 422),
)
async def cancel_scheduled_run(call: Call, body: None, query: None) -> Cancelled:
    """Cancel one queued run by id (409 if it already started, 404 if there is none)."""
    seq = whole_number(call, "run_id")
    store = call.state.store
    if await store.cancel_runs(call.bot_id, seq=seq) == 1:
        await call.audit("scheduled.cancel", f"run:{seq}", before={"cancelled": 1})
        return Cancelled(cancelled=1)
    left = await store.pending_runs(call.bot_id, after=seq - 1, limit=1)
    if left and left[0].seq == seq:
        raise HttpError(409, "the run already started", code="conflict")
    raise HttpError(404, "no such queued run", code="not_found")
