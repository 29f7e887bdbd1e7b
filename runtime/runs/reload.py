"""Hot reload: each server process follows the store's live versions; folders are deployed.

Two parts, both per server process:

- :class:`LiveSync` makes this process's :class:`~runtime.runs.registry.Registry` match the
  store's ``bot_live`` rows: it polls one cheap ``MAX(stamp)`` every :data:`POLL_EVERY` seconds
  and, when it moved, loads each changed bot's live version (checked and compiled here), drops
  removed bots, and notes refused deploys. Runs in flight keep the :class:`LiveBot` they started
  with, so they finish on their version. Every process (``BOTBOX_SERVER_WORKERS``, other servers
  on the same store) serves what the store says, within about half a second.
- :class:`FolderSync` deploys ``BOTBOX_BOTS_DIR`` (and the demo) into the store through
  :class:`~runtime.runs.deployments.Deployments`: every folder at start, then, watched with
  ``watchfiles``, each folder that changed; folders that disappeared are undeployed. Deploys
  are idempotent (files equal to the live version make none), so several processes watching one
  folder agree.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Final

import watchfiles

from runtime.bots.folder import bot_folders, read_files
from runtime.bots.versions import bot_id_of, check_version, digest, problems_from_json
from runtime.errors import BotboxError, ConfigError, Problem
from runtime.runs.deployments import Deployments
from runtime.runs.processor import backoff
from runtime.runs.registry import (
    LiveBot,
    Registry,
    compile_bot,
    compile_modules,
    derive_secret,
    live_bot,
)
from runtime.signing.keys import KeyFile
from runtime.store import LiveState, Store
from sandbox import ScriptCache

logger = logging.getLogger(__name__)

POLL_EVERY: Final = 0.5
"""How often each process asks the store whether any bot's live version changed."""
DEBOUNCE_MS: Final = 100
"""How long the watcher groups file events before it deploys (an editor's save is several)."""


def plural(count: int, one: str, many: str) -> str:
    """``1 bot`` / ``2 bots``."""
    return f"{count} {one if count == 1 else many}"


def bot_problems(registry: Registry) -> list[str]:
    """What ``/health`` says about bots, naming none (it is public)."""
    lines: list[str] = []
    if failed := registry.failed:
        lines.append(f"{plural(len(failed), 'bot', 'bots')} failed to load")
    if stale := registry.stale:
        lines.append(
            f"{plural(len(stale), 'bot serves', 'bots serve')} an older version: "
            "the latest change was refused"
        )
    return lines


class LiveSync:
    """Keeps this process's registry equal to the store's live versions."""

    def __init__(
        self,
        store: Store,
        registry: Registry,
        *,
        env: Mapping[str, str],
        master_key: bytes,
        cache: ScriptCache,
        keys: KeyFile,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.env = env
        self.master_key = master_key
        self.cache = cache
        self.keys = keys
        self.on_change = on_change
        self._stamp: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._problem: str | None = None
        self._lock = asyncio.Lock()

    def start(self) -> None:
        """Poll the store every :data:`POLL_EVERY` seconds until :meth:`stop`."""
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        """Stop polling."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def problems(self) -> list[str]:
        """Why following the store fails right now (a server-wide problem), if it does."""
        return [] if self._problem is None else [f"live versions: {self._problem}"]

    async def _loop(self) -> None:
        failures = 0
        while True:
            try:
                await self.refresh()
            except Exception as exc:
                failures += 1
                if self._problem is None:
                    logger.warning("following the live versions failed: %s; backing off", exc)
                self._problem = f"{type(exc).__name__}: {exc}"
                await asyncio.sleep(backoff(failures))
                continue
            failures, self._problem = 0, None
            await asyncio.sleep(POLL_EVERY)

    async def refresh(self) -> None:
        """Load what changed in the store since the last refresh (one query when nothing did)."""
        async with self._lock:
            stamp = await self.store.live_stamp()
            if stamp == self._stamp:
                return
            changed = False
            states = await self.store.live_states()
            for state in states:
                changed |= await self._follow(state)
            seen = {state.bot_id for state in states}
            for bot_id in [bot_id for bot_id in self.registry.ids if bot_id not in seen]:
                self.registry.remove(bot_id)
                logger.warning("bot %s stopped: it has no live version any more", bot_id)
                changed = True
            for bot_id in [bot_id for bot_id in self.registry.refused if bot_id not in seen]:
                self.registry.refused.pop(bot_id, None)
            for bot_id in [bot_id for bot_id in self.registry.disabled if bot_id not in seen]:
                self.registry.disabled.pop(bot_id, None)
            self._stamp = stamp
        if changed and self.on_change is not None:
            self.on_change()

    async def _follow(self, state: LiveState) -> bool:
        """Serve the state's version; note its refusal. True if what serves changed."""
        changed = False
        current = self.registry.find(state.bot_id)
        if state.disabled:  # serves nothing; its webhook acknowledges and drops (web/app.py)
            if current is not None:
                self.registry.remove(state.bot_id)
                logger.warning("bot %s disabled: it serves nothing until enabled", state.bot_id)
                changed = True
            self.registry.refused.pop(state.bot_id, None)
            self.registry.disabled[state.bot_id] = derive_secret(
                self.master_key, "telegram-webhook-secret", state.bot_id
            )
            return changed
        self.registry.disabled.pop(state.bot_id, None)
        if state.version is None:
            if current is not None:
                self.registry.remove(state.bot_id)
                changed = True
        elif current is None or current.version != state.version:
            loaded = await self._load(state.bot_id, state.version)
            if isinstance(loaded, LiveBot):
                self.registry.add(loaded)
                changed = True
                logger.info("bot %s serves version %d", state.bot_id, state.version)
            elif current is None:  # stored but not loadable here: failed, named in the log
                self._note_refused(state.bot_id, loaded)
                return changed
            else:  # only if this process checks differently (another botbox release)
                logger.error(
                    "bot %s: version %d does not load here, version %d keeps serving: %s",
                    state.bot_id,
                    state.version,
                    current.version,
                    "; ".join(problem.describe() for problem in loaded),
                )
        refused = problems_from_json(state.refused) if state.refused_digest else []
        if refused:
            self._note_refused(state.bot_id, refused)
        else:
            self.registry.refused.pop(state.bot_id, None)
        return changed

    def _note_refused(self, bot_id: str, problems: list[Problem]) -> None:
        if self.registry.refused.get(bot_id) == problems:
            return
        self.registry.refused[bot_id] = problems
        serving = self.registry.find(bot_id)
        what = (
            f"keeps serving version {serving.version}; its latest change was refused"
            if serving is not None
            else "failed to load"
        )
        logger.error(
            "bot %s %s:\n%s",
            bot_id,
            what,
            "\n".join(f"  {problem.describe()}" for problem in problems),
        )

    async def _load(self, bot_id: str, version: int) -> LiveBot | list[Problem]:
        """Load one stored version: checked, compiled, with its token and link generation."""
        files = await self.store.version_files(bot_id, version)
        if files is None:
            return [Problem(f"version {version} is missing from the store")]
        definition, problems, _ = await asyncio.to_thread(check_version, bot_id, files)
        if definition is None:
            return [problem for problem in problems if not problem.warning]
        try:
            scripts = compile_bot(definition, self.cache)
            modules = compile_modules(definition, self.cache)
        except ConfigError as exc:
            return list(exc.problems)
        generations = await self.store.bot_generations([bot_id], now=time.time())
        self.keys.set_generation(bot_id, generations[bot_id])
        bot = live_bot(
            definition,
            scripts,
            env=self.env,
            master_key=self.master_key,
            version=version,
            modules=modules,
        )
        if bot.token is None:
            logger.warning(
                "bot %s has no token: set %s to let it talk to Telegram",
                bot_id,
                definition.config.token_env,
            )
        return bot


class FolderSync:
    """Deploys bot folders into the store (folder mode) and watches them for changes."""

    def __init__(
        self, deployments: Deployments, bots_dir: Path | None, demo_dir: Path | None
    ) -> None:
        self.deployments = deployments
        self.bots_dir = bots_dir
        self.demo_dir = demo_dir
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._problem: str | None = None
        self.skipped: list[Problem] = []
        """Folders not deployed at the last sync (an id another folder already has)."""

    def problems(self) -> list[str]:
        """Why watching the folders fails right now (a server-wide problem), if it does."""
        return [] if self._problem is None else [f"watching the bot folders: {self._problem}"]

    def folder_problems(self) -> list[str]:
        """Folders skipped at the last sync, counted (``/health`` is public: no names)."""
        if not self.skipped:
            return []
        count = plural(len(self.skipped), "bot folder was", "bot folders were")
        return [f"{count} skipped: its bot id is another folder's"]

    async def sync(self, only: set[str] | None = None) -> None:
        """Deploy each folder whose files differ from its bot's live version; undeploy removed.

        ``only``: the names of the folders that changed (the watcher's); others are left alone,
        so a rollback through the API stays until its folder changes.
        """
        try:
            folders = bot_folders(self.bots_dir, self.demo_dir)
        except ConfigError as exc:  # the folder itself is gone: never stop every bot for it
            logger.error("%s; no bot was deployed or stopped", exc)
            return
        store = self.deployments.store
        states = {state.bot_id: state for state in await store.live_states()}
        present: dict[str, Path] = {}
        skipped: list[Problem] = []
        for folder in folders:
            files = await asyncio.to_thread(read_files, folder)
            bot_id = bot_id_of(files, folder.name)
            if bot_id in present:
                message = f"bot id {bot_id!r} is already used by {present[bot_id]}; skipped"
                skipped.append(Problem(message, str(folder / "bot.yaml")))
                continue
            present[bot_id] = folder
            state = states.get(bot_id)
            if only is not None and folder.name not in only and state is not None:
                continue
            if state is not None and _unchanged(state, files):
                continue
            await self.deployments.deploy(bot_id, files, origin="folder")
        for problem in skipped:
            if problem not in self.skipped:
                logger.error("%s", problem.describe())
        self.skipped = skipped
        removed = [
            state.bot_id
            for state in states.values()
            if state.origin == "folder" and state.bot_id not in present
        ]
        for bot_id in removed:
            await self.deployments.undeploy(bot_id)
        if removed or only is None:  # at start too: bots the store knows with no live row
            live = [state.bot_id for state in await store.live_states()]
            for bot_id in await store.retire_bots(live, now=time.time()):
                logger.warning("bot %s was removed: retired, its links no longer work", bot_id)

    def start(self, after_sync: Callable[[], Awaitable[None]]) -> None:
        """Watch ``BOTBOX_BOTS_DIR``; after each deploy, call ``after_sync``."""
        if self.bots_dir is not None:
            self._task = asyncio.create_task(self._watch(self.bots_dir, after_sync))

    async def stop(self) -> None:
        """Stop watching."""
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _watch(self, root: Path, after_sync: Callable[[], Awaitable[None]]) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                async for changes in watchfiles.awatch(
                    root, debounce=DEBOUNCE_MS, step=25, stop_event=self._stop
                ):
                    names = {_top_folder(root, Path(path)) for _, path in changes}
                    await self.sync({name for name in names if name})
                    await after_sync()
                    failures, self._problem = 0, None
            except (BotboxError, OSError, RuntimeError) as exc:
                failures += 1
                if self._problem is None:
                    logger.warning("watching %s failed: %s; backing off", root, exc)
                self._problem = f"{type(exc).__name__}: {exc}"
                await asyncio.sleep(backoff(failures))
                # A change missed while down: deploy every folder that differs.
                with contextlib.suppress(BotboxError, OSError):
                    await self.sync()
                    await after_sync()


def _unchanged(state: LiveState, files: Mapping[str, str | Problem]) -> bool:
    """True if ``files`` are what the bot serves (nothing refused) or its latest refusal."""
    if any(isinstance(text, Problem) for text in files.values()):
        return False
    content = digest({name: text for name, text in files.items() if type(text) is str})
    if state.refused_digest is not None:
        return content == state.refused_digest
    return content == state.digest


def _top_folder(root: Path, path: Path) -> str:
    """The name of the folder under ``root`` that ``path`` is in ("" if none)."""
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        return ""
    return parts[0] if parts else ""


__all__ = ["FolderSync", "LiveSync", "bot_problems"]
