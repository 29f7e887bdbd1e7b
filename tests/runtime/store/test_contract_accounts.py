"""The Store contract for the admin API: users, grants, tokens, the audit log, run queries."""

from __future__ import annotations

import pytest

from runtime.errors import AlreadyExists, NotFound
from runtime.store import AuditEntry, RunQuery, RunRecord, Store


async def test_a_user_name_is_taken_once(store: Store) -> None:
    alice = await store.create_user("alice", "admin", now=1.0)
    assert (await store.get_user("alice")) == alice
    with pytest.raises(AlreadyExists):
        await store.create_user("alice", "viewer", now=2.0)
    assert [user.name for user in await store.list_users()] == ["alice"]


async def test_grants_come_with_the_user_and_go_with_it(store: Store) -> None:
    await store.create_user("bob", "author", now=1.0)
    await store.set_grant("bob", "shop", "author")
    user = await store.set_grant("bob", "blog", "viewer")
    assert user is not None and user.grants == {"blog": "viewer", "shop": "author"}
    user = await store.remove_grant("bob", "blog")
    assert user is not None and user.grants == {"shop": "author"}
    assert await store.set_grant("nobody", "shop", "author") is None
    token = await store.create_token("bob", prefix="p", digest="d1", now=1.0, expires_at=None)
    assert await store.delete_user("bob")
    assert await store.get_user("bob") is None
    assert await store.authenticate("d1", now=2.0) is None
    assert token.id not in [t.id for t in await store.list_tokens()]


async def test_a_token_authenticates_until_it_expires_or_is_revoked(store: Store) -> None:
    await store.create_user("carol", "viewer", now=1.0)
    await store.set_grant("carol", "shop", "viewer")
    live = await store.create_token("carol", prefix="bbx_a", digest="a", now=1.0, expires_at=None)
    brief = await store.create_token("carol", prefix="bbx_b", digest="b", now=1.0, expires_at=10.0)
    principal = await store.authenticate("a", now=5.0)
    assert principal is not None
    assert (principal.name, principal.role, principal.token_id) == ("carol", "viewer", live.id)
    assert principal.grants == {"shop": "viewer"}
    assert await store.authenticate("b", now=9.0) is not None
    assert await store.authenticate("b", now=10.0) is None
    assert await store.authenticate("unknown", now=5.0) is None
    revoked = await store.revoke_token(live.id, now=6.0)
    assert revoked is not None and revoked.revoked_at == 6.0
    assert await store.authenticate("a", now=7.0) is None
    again = await store.revoke_token(live.id, now=8.0)
    assert again is not None and again.revoked_at == 6.0
    assert await store.revoke_token(9999, now=8.0) is None
    listed = {t.id: t for t in await store.list_tokens("carol")}
    assert listed[live.id].last_used_at == 5.0
    assert listed[brief.id].expires_at == 10.0
    with pytest.raises(NotFound):
        await store.create_token("nobody", prefix="x", digest="x", now=1.0, expires_at=None)


async def test_the_audit_log_lists_newest_first_by_bot_with_a_cursor(store: Store) -> None:
    for n in range(3):
        await store.record_audit(
            AuditEntry("alice", "api", "property.set", float(n), "shop", "bot/x", n, n + 1)
        )
    await store.record_audit(AuditEntry("root", "cli", "token.create", 9.0, None, "token 1"))
    everything = await store.list_audit()
    assert everything[0].action == "token.create"
    shop = await store.list_audit(bot_id="shop", limit=2)
    assert [(e.before, e.after) for e in shop] == [(2, 3), (1, 2)]
    rest = await store.list_audit(bot_id="shop", before_id=shop[-1].id)
    assert [e.before for e in rest] == [0]


def _run(command: str, status: str, user: int, started: float) -> RunRecord:
    return RunRecord("shop", command, "message", user, user, status, started, 0.01, 0.02, "out")


async def test_runs_are_found_by_command_status_user_time_and_cursor(store: Store) -> None:
    ids = [
        await store.record_run(_run("/buy", "ok", 1, 10.0)),
        await store.record_run(_run("/buy", "error", 2, 20.0)),
        await store.record_run(_run("/sell", "ok", 1, 30.0)),
    ]
    await store.record_run(RunRecord("other", "/buy", "m", 1, 1, "ok", 15.0, 0, 0))

    async def found(**filters: object) -> list[int | None]:
        return [r.id for r in await store.find_runs("shop", RunQuery(**filters))]  # type: ignore[arg-type]

    assert await found() == ids[::-1]
    assert await found(command="/buy") == [ids[1], ids[0]]
    assert await found(status="ok") == [ids[2], ids[0]]
    assert await found(failed=True) == [ids[1]]
    assert await found(user_id=1) == [ids[2], ids[0]]
    assert await found(since=15.0, until=30.0) == [ids[1]]
    assert await found(limit=1) == [ids[2]]
    assert await found(before_id=ids[2], limit=1) == [ids[1]]
    run = await store.get_run("shop", ids[1])
    assert run is not None and run.status == "error" and run.output == "out"
    assert await store.get_run("other", ids[1]) is None
