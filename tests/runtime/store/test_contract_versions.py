"""The store contract for bot versions: every store keeps immutable versions and one live row
per bot that every server process follows (``store`` runs against each implementation)."""

from __future__ import annotations

from runtime.bots.versions import digest
from runtime.store import Store

V1 = {"bot.yaml": "token_env: T\n", "a.py": "# command: /a\n# answer: one\n"}
V2 = {"bot.yaml": "token_env: T\n", "a.py": "# command: /a\n# answer: two\n"}


async def deploy(store: Store, files: dict[str, str], now: float = 1.0) -> tuple[int, bool]:
    version, created = await store.deploy_version(
        "shop", files, digest(files), origin="api", now=now
    )
    return version.version, created


async def test_versions_are_numbered_per_bot_and_files_come_back_unchanged(store: Store) -> None:
    """Each new content is the next version; each version's files are kept as they were."""
    assert await deploy(store, V1) == (1, True)
    assert await deploy(store, V2) == (2, True)
    assert await store.version_files("shop", 1) == V1
    assert await store.version_files("shop", 2) == V2
    assert await store.version_files("shop", 3) is None
    assert [v.version for v in await store.bot_versions("shop")] == [2, 1]
    assert await store.bot_versions("other") == []


async def test_deploying_the_live_content_again_makes_no_version(store: Store) -> None:
    """Idempotent: every process watching one folder may deploy it; one version results."""
    await deploy(store, V1)
    stamp = await store.live_stamp()
    assert await deploy(store, V1) == (1, False)
    assert await store.live_stamp() == stamp
    assert len(await store.bot_versions("shop")) == 1


async def test_a_rollback_is_a_new_version_pointing_at_old_content(store: Store) -> None:
    """Rolling back to 1 makes version 3 with version 1's digest; 3 is live."""
    await deploy(store, V1)
    await deploy(store, V2)
    made, created = await store.deploy_version(
        "shop", V1, digest(V1), origin="rollback", now=3.0, rollback_of=1
    )
    assert (made.version, created, made.rollback_of) == (3, True, 1)
    (state,) = await store.live_states()
    assert (state.version, state.digest) == (3, digest(V1))


async def test_a_refused_deploy_keeps_the_live_version_and_is_cleared_by_a_good_one(
    store: Store,
) -> None:
    """Refusals are recorded beside the live version and moved the stamp; a good deploy
    (even of the live content) clears them."""
    await deploy(store, V1)
    before = await store.live_stamp()
    problems = [{"message": "boom", "file": "a.py", "line": 2, "warning": False}]
    await store.refuse_version("shop", "bad", problems, origin="api", now=2.0)
    assert await store.live_stamp() > before
    (state,) = await store.live_states()
    assert (state.version, state.refused_digest, state.refused) == (1, "bad", problems)
    assert await deploy(store, V1) == (1, False)
    (state,) = await store.live_states()
    assert (state.version, state.refused_digest, state.refused) == (1, None, None)


async def test_a_bot_that_never_loaded_is_live_with_no_version(store: Store) -> None:
    """A first deploy that is refused leaves a live row with no version and its problems."""
    await store.refuse_version("new", "bad", [{"message": "x"}], origin="folder", now=1.0)
    (state,) = await store.live_states()
    assert (state.bot_id, state.version, state.origin) == ("new", None, "folder")


async def test_undeploy_stops_a_bot_and_keeps_its_versions(store: Store) -> None:
    """An undeployed bot has no live state; a second undeploy reports nothing to stop."""
    await deploy(store, V1)
    assert await store.undeploy("shop", now=2.0)
    assert await store.live_states() == []
    assert not await store.undeploy("shop", now=3.0)
    assert [v.version for v in await store.bot_versions("shop")] == [1]
    assert await deploy(store, V1) == (2, True)  # back again: a new version goes live
