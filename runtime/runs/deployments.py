"""Bots as versioned deployments: the service the CLI, the folder watcher and the admin API call.

:class:`Deployments` is the one way to change what a bot runs. Every deploy is checked like
``run.py check`` (every problem with file and line) and refused as a whole when anything is
wrong: the refusal is recorded in the store (so ``/health`` and every process report it) and
the live version keeps serving. The store's ``bot_live`` row is the source of truth; each server
process follows it (:mod:`runtime.runs.reload`).

Usage (no HTTP here)::

    deployments = Deployments(store)
    outcome = await deployments.deploy("shop", {"bot.yaml": "...", "start.py": "..."})
    if isinstance(outcome, Refused): ...      # outcome.problems: file, line, message
    else: ...                                 # outcome.version.version, outcome.created
    await deployments.versions("shop")        # newest first
    await deployments.diff("shop", 1, 2)      # unified diff text
    await deployments.rollback("shop", 1)     # a new version with version 1's content
    await deployments.statuses()              # every bot: live version, refused problems
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from runtime.bots.folder import BotFiles, read_files
from runtime.bots.versions import (
    bot_id_of,
    check_version,
    digest,
    problems_from_json,
    problems_to_json,
    unified_diff,
)
from runtime.errors import NotFound, Problem
from runtime.store import BotVersion, LiveState, Store

logger = logging.getLogger(__name__)

ORIGINS = frozenset({"folder", "api", "cli"})
"""Who may deploy: the folder watcher, the admin API, ``run.py deploy``."""


@dataclass(frozen=True, slots=True)
class Deployed:
    """A deploy that went live: the version now serving, and whether the deploy made it."""

    version: BotVersion
    created: bool
    problems: tuple[Problem, ...] = ()
    """Warnings only (a deploy with an error is :class:`Refused`)."""


@dataclass(frozen=True, slots=True)
class Refused:
    """A deploy refused as a whole: every problem, with file and line."""

    bot_id: str
    problems: tuple[Problem, ...]


@dataclass(frozen=True, slots=True)
class BotStatus:
    """One bot as every server process serves it (see :meth:`Deployments.statuses`)."""

    bot_id: str
    version: int | None
    """The version serving; ``None``: the bot failed to load and serves nothing."""
    origin: str
    problems: tuple[Problem, ...]
    """The latest refused deploy's problems, while it is not fixed."""
    disabled: bool = False
    created_at: float | None = None
    created_by: str | None = None

    @property
    def state(self) -> str:
        """``ok``, ``failed`` (serves nothing: its deploys were refused), ``stale`` (a newer
        change was refused), ``disabled``, or ``new`` (created, nothing deployed yet)."""
        if self.disabled:
            return "disabled"
        if self.version is None:
            return "failed" if self.problems else "new"
        return "stale" if self.problems else "ok"


class Deployments:
    """Deploy, list, diff and roll back bot versions in a store (any process, any server)."""

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    async def deploy(
        self, bot_id: str, files: BotFiles, *, origin: str = "api"
    ) -> Deployed | Refused:
        """Check ``files`` as a version of ``bot_id``; make it live, or refuse it as a whole.

        Files equal to the live version's make no new version (``created`` is False). A refusal
        is recorded (the live version keeps serving) and returned with every problem.
        """
        if origin not in ORIGINS:
            raise ValueError(f"origin must be one of {sorted(ORIGINS)}")
        definition, problems, texts = await asyncio.to_thread(check_version, bot_id, files)
        content = digest(texts)
        if definition is None:
            await self.store.refuse_version(
                bot_id, content, problems_to_json(problems), origin=origin, now=self.clock()
            )
            logger.error(
                "bot %s: deploy refused, %d problem(s):\n%s",
                bot_id,
                len(problems),
                "\n".join(f"  {problem.describe()}" for problem in problems),
            )
            return Refused(bot_id, tuple(problems))
        version, created = await self.store.deploy_version(
            bot_id, texts, content, origin=origin, now=self.clock()
        )
        if created:
            logger.info("bot %s: version %d deployed (%s)", bot_id, version.version, origin)
        return Deployed(version, created, tuple(problems))

    async def deploy_folder(self, folder: Path, *, origin: str = "cli") -> Deployed | Refused:
        """Deploy a bot folder's files; its id is ``bot.yaml``'s (else the folder's name)."""
        files = await asyncio.to_thread(read_files, folder)
        return await self.deploy(bot_id_of(files, folder.name), files, origin=origin)

    async def versions(self, bot_id: str) -> list[BotVersion]:
        """The bot's versions, newest first; NotFound for a bot never deployed."""
        found = await self.store.bot_versions(bot_id)
        if not found:
            raise NotFound(f"bot {bot_id!r} has no versions")
        return found

    async def files(self, bot_id: str, version: int) -> dict[str, str]:
        """The files of one version; NotFound if there is no such version."""
        files = await self.store.version_files(bot_id, version)
        if files is None:
            raise NotFound(f"bot {bot_id!r} has no version {version}")
        return files

    async def diff(self, bot_id: str, old: int, new: int) -> str:
        """A unified diff from version ``old`` to version ``new`` ("" when their files match)."""
        before, after = await self.files(bot_id, old), await self.files(bot_id, new)
        return unified_diff(before, after, old_label=f"v{old}", new_label=f"v{new}")

    async def rollback(self, bot_id: str, version: int) -> Deployed | Refused:
        """Make a new version with version ``version``'s content and make it live.

        The old content is checked again (the rules may have changed since); refused as a
        whole like any deploy.
        """
        files = await self.files(bot_id, version)
        definition, problems, texts = await asyncio.to_thread(check_version, bot_id, files)
        if definition is None:
            return Refused(bot_id, tuple(problems))
        made, created = await self.store.deploy_version(
            bot_id, texts, digest(texts), origin="rollback", now=self.clock(), rollback_of=version
        )
        logger.info(
            "bot %s: rolled back to version %d as version %d", bot_id, version, made.version
        )
        return Deployed(made, created, tuple(problems))

    async def undeploy(self, bot_id: str) -> bool:
        """Stop a bot on every server process (its versions and data stay)."""
        stopped = await self.store.undeploy(bot_id, now=self.clock())
        if stopped:
            logger.warning("bot %s stopped", bot_id)
        return stopped

    async def statuses(self) -> list[BotStatus]:
        """Every bot with a live version or a refused deploy: what serves, what was refused."""
        return [_status(state) for state in await self.store.live_states()]

    async def failed(self) -> list[BotStatus]:
        """The bots that failed to load (no version serves) or run an older version."""
        return [status for status in await self.statuses() if status.state in FAILING]

    # -- the bots catalog: create, disable, enable, delete (the admin API and the CLI) --
    async def catalog(self) -> list[BotStatus]:
        """Every known bot: live, refused, disabled, or created with nothing deployed yet."""
        return [_status(state) for state in await self.store.bot_catalog()]

    async def find(self, bot_id: str) -> BotStatus | None:
        """One known bot, or None."""
        return next((status for status in await self.catalog() if status.bot_id == bot_id), None)

    async def create(
        self, bot_id: str, *, created_by: str, reuse: bool = False
    ) -> Literal["created", "exists", "used"]:
        """Create a bot with no version (``exists``/``used``: refused, see Store.create_bot)."""
        outcome = await self.store.create_bot(
            bot_id, created_by=created_by, now=self.clock(), reuse=reuse
        )
        if outcome == "created":
            logger.info("bot %s created by %s", bot_id, created_by)
        return outcome

    async def set_disabled(self, bot_id: str, disabled: bool) -> bool:
        """Disable (no process serves it; its data and versions stay) or enable a bot."""
        changed = await self.store.set_bot_disabled(bot_id, disabled, now=self.clock())
        if changed:
            logger.warning("bot %s %s", bot_id, "disabled" if disabled else "enabled")
        return changed

    async def delete(self, bot_id: str) -> bool:
        """Stop a bot everywhere and drop it from the catalog; its links stop working. Its
        versions, properties and run log are kept (an admin may create the id again)."""
        deleted = await self.store.delete_bot(bot_id, now=self.clock())
        if deleted:
            logger.warning("bot %s deleted: stopped, links retired, data kept", bot_id)
        return deleted


FAILING: Final = frozenset({"failed", "stale"})


def _status(state: LiveState) -> BotStatus:
    return BotStatus(
        state.bot_id,
        state.version,
        state.origin,
        tuple(problems_from_json(state.refused)),
        state.disabled,
        state.created_at,
        state.created_by,
    )


__all__ = ["BotStatus", "Deployed", "Deployments", "Refused"]
