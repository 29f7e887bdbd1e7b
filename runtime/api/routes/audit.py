"""``/audit``: every change made through the API or the CLI (admins only)."""

from __future__ import annotations

from runtime.api.models import AuditOut, AuditPage, AuditQuery
from runtime.api.operation import Call, Routes

ROUTES = Routes("audit", "Who changed what, when, how, and the value before and after.")


@ROUTES.add("GET", "/audit", need="admin", response=AuditPage, query=AuditQuery, errors=(422,))
async def list_audit(call: Call, body: None, query: AuditQuery) -> AuditPage:
    """List changes, newest first (of one bot with ``bot``)."""
    found = await call.state.store.list_audit(
        bot_id=query.bot, before_id=query.cursor, limit=query.limit + 1
    )
    page = found[: query.limit]
    more = len(found) > query.limit and page[-1].id is not None
    return AuditPage(
        entries=[
            AuditOut(
                id=entry.id or 0,
                at=entry.at,
                actor=entry.actor,
                via=entry.via,
                action=entry.action,
                bot_id=entry.bot_id,
                target=entry.target,
                before=entry.before,
                after=entry.after,
            )
            for entry in page
        ],
        next_cursor=page[-1].id if more else None,
    )
