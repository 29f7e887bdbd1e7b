"""``/bots``: the bots a token may see, with their status; create, enable, disable, delete.

Status comes from the store's catalog (every process serves what it says) and this process's
registry (the commands of the version it serves):

- ``serving``: a version serves; ``stale``: an older version serves, the latest change was
  refused (its problems listed); ``failed``: nothing serves, its deploys were refused;
- ``disabled``: stopped by an admin or author, versions and data kept; Telegram's updates for
  it are acknowledged and dropped (``runtime/web/app.telegram_update``);
- ``new``: created through the API, nothing deployed yet.

Who creates: an admin (any id, even one with history: it gets the old data back) or an author
(an id never used: no versions and no data, so an author never inherits another's data); the
author is granted the new bot. Ids are one namespace: a 409 says an id is taken, nothing more.
"""

from __future__ import annotations

from typing import Final

from runtime.api import auth
from runtime.api.models import BotIn, BotList, BotOut, BotState, CheckProblem, Deleted
from runtime.api.operation import Call, Routes
from runtime.bots.config import assigned_token_env
from runtime.errors import Problem
from runtime.runs.deployments import BotStatus
from runtime.web.responses import HttpError

ROUTES = Routes("bots", "The bots this server runs, as your token may see them.")

STATUS: Final[dict[str, BotState]] = {
    "ok": "serving",
    "failed": "failed",
    "stale": "stale",
    "disabled": "disabled",
    "new": "new",
}


def check_problem(problem: Problem) -> CheckProblem:
    """A check's problem as the API shows it."""
    return CheckProblem(
        file=problem.file, line=problem.line, message=problem.message, warning=problem.warning
    )


def bot_out(call: Call, bot_id: str, status: BotStatus | None) -> BotOut:
    """A bot as the API shows it: the store's status, this process's served version."""
    access = auth.bot_access(call.principal, bot_id) or "read"
    served = call.state.registry.find(bot_id)
    problems = list(status.problems) if status is not None else []
    state: BotState
    if status is not None:
        state = STATUS[status.state]
    else:  # served without a store row (a bot handed to the registry directly, as tests do)
        state = "serving" if served is not None else "failed"
    if served is None and state in ("serving", "stale"):
        # The store says it serves, but this process does not: either it is still loading
        # the new version (within its 0.5 s poll), or the version does not load here.
        here = call.state.registry.refused.get(bot_id)
        if here:
            state, problems = "failed", list(here)
    return BotOut(
        id=bot_id,
        status=state,
        errors=[problem.describe() for problem in problems if not problem.warning],
        problems=[check_problem(problem) for problem in problems],
        version=status.version if status is not None else (served.version if served else None),
        commands=[c.name for c in served.definition.commands.commands] if served else [],
        has_token=served is not None and served.token is not None,
        access=access,
    )


async def statuses(call: Call) -> dict[str, BotStatus | None]:
    """Every known bot (the store's catalog, and bots this process serves)."""
    found: dict[str, BotStatus | None] = {
        status.bot_id: status for status in await call.state.deployments.catalog()
    }
    for bot_id in call.state.registry.ids:
        found.setdefault(bot_id, None)
    return dict(sorted(found.items()))


async def one(call: Call, bot_id: str) -> BotOut:
    """One bot as the API shows it (it is known: the operation checked)."""
    return bot_out(call, bot_id, await call.state.deployments.find(bot_id))


@ROUTES.add("GET", "/bots", need="any", response=BotList)
async def list_bots(call: Call, body: None, query: None) -> BotList:
    """List the bots your token may see, with their status and errors."""
    known = await statuses(call)
    visible = auth.visible_bots(call.principal, list(known))
    return BotList(bots=[bot_out(call, bot_id, known[bot_id]) for bot_id in visible])


@ROUTES.add("GET", "/bots/{bot_id}", need="read", response=BotOut)
async def get_bot(call: Call, body: None, query: None) -> BotOut:
    """Show one bot: status, the version serving, the problems of a refused change."""
    return await one(call, call.bot_id)


@ROUTES.add("POST", "/bots", need="any", response=BotOut, body=BotIn, status=201, errors=(409,))
async def create_bot(call: Call, body: BotIn, query: None) -> BotOut:
    """Create a bot (admins; authors too, for an id never used: they are granted it)."""
    principal = call.principal
    if principal.role not in ("admin", "author"):
        raise HttpError(403, f"your role ({principal.role}) may not do this", code="forbidden")
    admin = principal.role == "admin"
    if not admin:
        # An author's bot reads TELEGRAM_TOKEN_<ID>: two ids may not share that variable.
        variable = assigned_token_env(body.id)
        twin = next(
            (
                status.bot_id
                for status in await call.state.deployments.catalog()
                if status.bot_id != body.id and assigned_token_env(status.bot_id) == variable
            ),
            None,
        )
        if twin is not None:
            raise HttpError(
                409,
                f"the bot id {body.id!r} would read its token from {variable}, as another bot "
                "does: choose another id",
                code="conflict",
            )
    outcome = await call.state.deployments.create(body.id, created_by=principal.name, reuse=admin)
    if outcome != "created":
        why = "exists" if outcome == "exists" else "was used before (only an admin may reuse it)"
        raise HttpError(409, f"the bot id {body.id!r} {why}", code="conflict")
    if not admin:
        await call.state.store.set_grant(principal.name, body.id, "author")
        principal.grants[body.id] = "author"
    await call.audit("bot.create", body.id, after={"by": principal.name}, bot_id=body.id)
    await call.state.live.refresh()
    return await one(call, body.id)


async def _set_disabled(call: Call, disabled: bool) -> BotOut:
    before = await call.state.deployments.find(call.bot_id)
    changed = await call.state.deployments.set_disabled(call.bot_id, disabled)
    if changed:
        action = "bot.disable" if disabled else "bot.enable"
        await call.audit(
            action,
            call.bot_id,
            before={"disabled": not disabled, "version": before.version if before else None},
            after={"disabled": disabled},
        )
        await call.state.live.refresh()
    return await one(call, call.bot_id)


@ROUTES.add("POST", "/bots/{bot_id}/disable", need="write", response=BotOut)
async def disable_bot(call: Call, body: None, query: None) -> BotOut:
    """Disable a bot: it stops serving everywhere; its versions and data stay."""
    return await _set_disabled(call, True)


@ROUTES.add("POST", "/bots/{bot_id}/enable", need="write", response=BotOut)
async def enable_bot(call: Call, body: None, query: None) -> BotOut:
    """Enable a disabled bot: its live version serves again."""
    return await _set_disabled(call, False)


@ROUTES.add("DELETE", "/bots/{bot_id}", need="admin-bot", response=Deleted)
async def delete_bot(call: Call, body: None, query: None) -> Deleted:
    """Delete a bot (admin): stopped everywhere, links retired; versions and data are kept."""
    before = await call.state.deployments.find(call.bot_id)
    if not await call.state.deployments.delete(call.bot_id):
        raise HttpError(404, "no such bot", code="not_found")
    await call.audit(
        "bot.delete", call.bot_id, before={"version": before.version if before else None}
    )
    await call.state.live.refresh()
    return Deleted(deleted=call.bot_id)
