"""``/bots/{bot_id}/runs``: a bot's run log, filtered and paged, and one run in full."""

from __future__ import annotations

from runtime.api.models import RunFull, RunPage, RunsQuery, RunSummary
from runtime.api.operation import ID_SCHEMA, Call, Routes, whole_number
from runtime.store import RunQuery, RunRecord
from runtime.web.responses import HttpError

ROUTES = Routes("runs", "A bot's run log: every run of a command, what it did and how it ended.")


def summary(record: RunRecord) -> RunSummary:
    """A run as a listing shows it."""
    return RunSummary(
        id=record.id or 0,
        command=record.command,
        trigger=record.trigger,
        status=record.status,
        user_id=record.user_id,
        chat_id=record.chat_id,
        started_at=record.started_at,
        cpu_seconds=record.cpu_seconds,
        wall_seconds=record.wall_seconds,
        error=record.error,
    )


@ROUTES.add("GET", "/bots/{bot_id}/runs", need="read", response=RunPage, query=RunsQuery)
async def list_runs(call: Call, body: None, query: RunsQuery) -> RunPage:
    """List a bot's runs, newest first (filter by command, status, user, time)."""
    found = await call.state.store.find_runs(
        call.bot_id,
        RunQuery(
            command=query.command,
            status=None if query.status == "failed" else query.status,
            failed=query.status == "failed",
            user_id=query.user,
            since=query.since,
            until=query.until,
            before_id=query.cursor,
            limit=query.limit + 1,
        ),
    )
    page = found[: query.limit]
    more = len(found) > query.limit and page[-1].id is not None
    return RunPage(runs=[summary(r) for r in page], next_cursor=page[-1].id if more else None)


@ROUTES.add(
    "GET",
    "/bots/{bot_id}/runs/{run_id}",
    need="read",
    response=RunFull,
    path_schemas={"run_id": ID_SCHEMA},
    errors=(422,),
)
async def get_run(call: Call, body: None, query: None) -> RunFull:
    """Show one run in full: output, Telegram calls, error."""
    record = await call.state.store.get_run(call.bot_id, whole_number(call, "run_id"))
    if record is None:
        raise HttpError(404, "no such run", code="not_found")
    return RunFull(
        **summary(record).model_dump(),
        output=record.output,
        calls=list(record.calls),
        extra=record.extra,
    )
