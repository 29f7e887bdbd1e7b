"""The deployments service and each process following the store (runtime/runs/deployments.py,
runtime/runs/reload.py), on a real SQLite store."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from runtime.errors import NotFound
from runtime.runs.deployments import Deployed, Deployments, Refused
from runtime.runs.registry import Registry
from runtime.runs.reload import FolderSync, LiveSync, bot_problems
from runtime.signing.keys import KeyFile
from runtime.store import SqliteStore
from sandbox import ScriptCache

V1 = {"bot.yaml": "token_env: T\n", "hi.py": "# command: /hi\n# answer: one\n"}
V2 = {"bot.yaml": "token_env: T\n", "hi.py": "# command: /hi\n# answer: two\n"}
BROKEN = {"bot.yaml": "token_env: T\n", "hi.py": "# command: /hi\nif True\n"}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "botbox.sqlite3")
    await opened.open()
    yield opened
    await opened.close()


def follower(store: SqliteStore, tmp_path: Path, name: str) -> LiveSync:
    """One server process's view: a registry kept equal to the store's live versions."""
    return LiveSync(
        store,
        Registry(),
        env={"T": "123:token"},
        master_key=b"k" * 32,
        cache=ScriptCache(),
        keys=KeyFile(tmp_path / f"{name}-keys.json"),
    )


def answer(sync: LiveSync, bot_id: str = "shop") -> str | None:
    bot = sync.registry.get(bot_id)
    (command,) = bot.definition.commands.commands
    return command.answer


async def test_deploy_list_diff_and_rollback(store: SqliteStore) -> None:
    """Two deploys are versions 2 and 1 (newest first); the diff shows the change; a rollback
    is version 3 with version 1's files; the same files again make no version."""
    deployments = Deployments(store)
    first = await deployments.deploy("shop", V1)
    assert isinstance(first, Deployed) and (first.version.version, first.created) == (1, True)
    assert isinstance(await deployments.deploy("shop", V2), Deployed)
    assert [v.version for v in await deployments.versions("shop")] == [2, 1]
    assert "-# answer: one\n+# answer: two\n" in await deployments.diff("shop", 1, 2)
    back = await deployments.rollback("shop", 1)
    assert isinstance(back, Deployed)
    assert (back.version.version, back.version.rollback_of) == (3, 1)
    assert back.version.digest == first.version.digest
    again = await deployments.deploy("shop", V1)
    assert isinstance(again, Deployed) and (again.version.version, again.created) == (3, False)
    with pytest.raises(NotFound):
        await deployments.diff("shop", 1, 9)
    with pytest.raises(NotFound):
        await deployments.versions("nobody")


async def test_a_refused_deploy_changes_nothing_and_is_listed(store: SqliteStore) -> None:
    """A broken deploy returns every problem, makes no version; the bot is stale until fixed."""
    deployments = Deployments(store)
    await deployments.deploy("shop", V1)
    refused = await deployments.deploy("shop", BROKEN)
    assert isinstance(refused, Refused)
    assert refused.problems[0].describe().startswith("hi.py:2: SyntaxError")
    assert [v.version for v in await deployments.versions("shop")] == [1]
    (status,) = await deployments.failed()
    assert (status.bot_id, status.state, status.version) == ("shop", "stale", 1)
    await deployments.deploy("shop", V1)  # back to the live files: nothing is refused now
    assert await deployments.failed() == []


async def test_every_process_follows_the_store(store: SqliteStore, tmp_path: Path) -> None:
    """Two followers on one store serve the same version after each deploy and rollback; a
    bot that never loaded is failed, one with a refused change is stale; a run holding the
    old LiveBot keeps its version; each version is its own pool tenant."""
    deployments = Deployments(store)
    first, second = follower(store, tmp_path, "a"), follower(store, tmp_path, "b")
    await deployments.deploy("shop", V1)
    await deployments.deploy("wreck", BROKEN)
    for sync in (first, second):
        await sync.refresh()
        assert answer(sync) == "one"
        assert sync.registry.failed == ["wreck"]
        assert bot_problems(sync.registry) == ["1 bot failed to load"]
    in_flight = first.registry.get("shop")
    await deployments.deploy("shop", V2)
    await deployments.deploy("shop", BROKEN)
    for sync in (first, second):
        await sync.refresh()
        assert answer(sync) == "two"
        assert sync.registry.stale == ["shop"]
    assert in_flight.version == 1 and in_flight.tenant == "shop@1"
    assert first.registry.get("shop").tenant == "shop@2"
    await deployments.rollback("shop", 1)
    await deployments.undeploy("wreck")
    for sync in (first, second):
        await sync.refresh()
        assert answer(sync) == "one"
        assert sync.registry.refused == {}
        assert bot_problems(sync.registry) == []


async def test_two_folders_with_one_id_deploy_the_first_and_report_the_second(
    store: SqliteStore, tmp_path: Path
) -> None:
    """The first folder (by name) is the bot; the second is skipped, named in the problem and
    counted without names for /health; a removed folder stops its bot."""
    bots = tmp_path / "bots"
    for name in ("a", "b"):
        (bots / name).mkdir(parents=True)
        (bots / name / "bot.yaml").write_text("id: same\ntoken_env: T\n")
    sync = FolderSync(Deployments(store), bots, None)
    await sync.sync()
    (state,) = await store.live_states()
    assert (state.bot_id, state.version, state.origin) == ("same", 1, "folder")
    (skipped,) = sync.skipped
    assert skipped.file == str(bots / "b" / "bot.yaml")
    assert sync.folder_problems() == ["1 bot folder was skipped: its bot id is another folder's"]
    for name in ("a", "b"):
        shutil.rmtree(bots / name)
    await sync.sync()
    assert await store.live_states() == []
    assert sync.folder_problems() == []


async def test_an_api_deploy_carries_lib_modules_to_every_follower(
    store: SqliteStore, tmp_path: Path
) -> None:
    """Files given to a deploy (as the API or the CLI would) with lib/quiz.py: each follower's
    LiveBot holds the compiled module of its version; a broken module refuses the deploy with
    its file and line, and the version before keeps serving its own module."""
    deployments = Deployments(store)
    first, second = follower(store, tmp_path, "a"), follower(store, tmp_path, "b")
    await deployments.deploy("shop", {**V1, "lib/quiz.py": "PROMPT = 'one'\n"})
    refused = await deployments.deploy("shop", {**V1, "lib/quiz.py": "PROMPT = (\n"})
    assert isinstance(refused, Refused)
    assert refused.problems[0].describe().startswith("lib/quiz.py:1: SyntaxError")
    await deployments.deploy("shop", {**V2, "lib/quiz.py": "PROMPT = 'two'\n"})
    for sync in (first, second):
        await sync.refresh()
        bot = sync.registry.get("shop")
        assert bot.version == 2 and list(bot.modules) == ["lib.quiz"]
        assert bot.modules["lib.quiz"].filename == "lib/quiz.py"
        assert bot.modules["lib.quiz"].lines == ("PROMPT = 'two'",)
    assert "+PROMPT = 'two'" in await deployments.diff("shop", 1, 2)
