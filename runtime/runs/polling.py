"""Long polling (``getUpdates``): for bots without a public HTTPS address.

Each bot with a token gets one loop: ``deleteWebhook`` once, then ``getUpdates`` with a long
timeout; every update is enqueued durably (deduplicated by ``update_id``) before the next poll
confirms it to Telegram by moving the offset.

An update :func:`~runtime.telegram.update.parse_update` refuses is skipped the way the webhook
answers it 400: it runs nothing and is logged once. When its ``update_id`` is usable the offset
moves past it, so Telegram drops it; when not, it cannot be confirmed by offset, and it is
logged only the first time it comes back. A bad update never holds up the ones after it.

Each poll sends ``allowed_updates``: the update kinds the bot's commands handle
(:func:`runtime.bots.dispatch.update_types`), so ``/handle_chat_member`` and the reaction
handlers get their updates, which Telegram sends only when asked. When a loop starts it also
registers the bot's command menu (:func:`set_commands`), once.

A failed poll (Telegram or the store unreachable, or a bug) never ends a bot's loop: it waits
(``retry_after``, else :data:`ERROR_BACKOFF`) and polls again with the same offset, so nothing
is lost; while it fails, :meth:`Poller.problems` names the bot and the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final

from runtime.bots import dispatch
from runtime.bots.dispatch import CommandTable
from runtime.errors import ApiError, StoreError, TelegramError
from runtime.runs.processor import Processor
from runtime.runs.registry import LiveBot, Registry
from runtime.runs.session import Services
from runtime.telegram.client import TelegramClient
from runtime.telegram.update import MAX_ID, parse_update
from sandbox.jsontypes import is_int

logger = logging.getLogger(__name__)

POLL_TIMEOUT: Final = 25
ERROR_BACKOFF: Final = 3.0
MAX_REMEMBERED: Final = 100
"""Refusals of updates that cannot be confirmed, remembered per bot so each is logged once."""


async def set_commands(telegram: TelegramClient, token: str, table: CommandTable) -> int:
    """Register the menu of described commands with ``setMyCommands``; return how many.

    A bot with no described command registers nothing, so a menu set in BotFather stays.
    """
    commands = dispatch.menu(table)
    if commands:
        await telegram.call(token, "setMyCommands", {"commands": commands})
    return len(commands)


def allowed_updates(telegram: TelegramClient, table: CommandTable) -> list[str]:
    """The ``allowed_updates`` for a bot: the update kinds its commands handle."""
    return list(dispatch.update_types(table, telegram.spec.update_kinds()))


class Poller:
    """Polls Telegram for every bot that has a token."""

    def __init__(self, registry: Registry, services: Services, processor: Processor) -> None:
        self.registry = registry
        self.services = services
        self.processor = processor
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._polling: dict[str, LiveBot] = {}
        self._unconfirmable: dict[str, set[str]] = {}
        self._down: dict[str, str] = {}
        self._allowed: dict[str, list[str]] = {}
        self._stopping = False

    def start(self) -> None:
        """Start one polling loop per bot with a token."""
        self.refresh()

    def refresh(self) -> None:
        """Follow the registry (hot reload): poll bots that appeared or changed version, stop
        polling removed ones. A restarted loop asks for the new version's update kinds and
        command menu; updates it fetches again are refused as duplicates by the store."""
        if self._stopping:
            return
        serving = {bot.id: bot for bot in self.registry if bot.token}
        for bot_id in list(self._tasks):
            if serving.get(bot_id) is not self._polling.get(bot_id):
                self._tasks.pop(bot_id).cancel()
                self._polling.pop(bot_id, None)
                self._allowed.pop(bot_id, None)
                self._down.pop(bot_id, None)
        for bot_id, bot in serving.items():
            if bot_id not in self._tasks:
                self._polling[bot_id] = bot
                self._tasks[bot_id] = asyncio.create_task(self.poll(bot))

    async def stop(self) -> None:
        """Stop polling."""
        self._stopping = True
        for task in self._tasks.values():
            task.cancel()
        for task in self._tasks.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def problems(self) -> list[str]:
        """Why a bot's polling loop is down right now (failing, or ended), one line each."""
        found = [f"polling {bot_id}: {reason}" for bot_id, reason in sorted(self._down.items())]
        for bot_id, task in sorted(self._tasks.items()):
            if task.done() and not self._stopping:
                found.append(f"polling {bot_id} ended")
        return found

    async def poll_once(self, bot: LiveBot, offset: int | None, timeout: int) -> int | None:
        """Fetch one batch, enqueue it, and return the next offset."""
        assert bot.token is not None
        allowed = self._allowed.get(bot.id)
        if allowed is None:
            allowed = allowed_updates(self.services.telegram, bot.definition.commands)
            self._allowed[bot.id] = allowed
        params: dict[str, object] = {"timeout": timeout, "allowed_updates": allowed}
        if offset is not None:
            params["offset"] = offset
        result = await self.services.telegram.call(
            bot.token, "getUpdates", params, timeout=timeout + 10
        )
        for payload in result if isinstance(result, list) else []:
            try:
                update = parse_update(payload)
            except (ValueError, RecursionError) as exc:
                offset = self._skip(bot, payload, str(exc), offset)
                continue
            await self.services.store.enqueue(
                bot.id, "update", update.chat_key, payload, update_id=update.update_id
            )
            offset = update.update_id + 1
        self.processor.wake()
        return offset

    def _skip(self, bot: LiveBot, payload: object, reason: str, offset: int | None) -> int | None:
        """Skip a refused update: move the offset past it if its id allows; log it once."""
        update_id = payload.get("update_id") if isinstance(payload, dict) else None
        if is_int(update_id) and 0 <= update_id <= MAX_ID:
            logger.warning("bot %s: skipping a malformed update: %s", bot.id, reason)
            return max(offset or 0, update_id + 1)
        seen = self._unconfirmable.setdefault(bot.id, set())
        if reason not in seen:
            if len(seen) >= MAX_REMEMBERED:
                seen.clear()
            seen.add(reason)
            logger.warning("bot %s: skipping a malformed update: %s", bot.id, reason)
        return offset

    async def poll(self, bot: LiveBot) -> None:
        """Poll one bot until cancelled."""
        assert bot.token is not None
        offset: int | None = None
        try:
            await self.services.telegram.call(bot.token, "deleteWebhook", {})
        except TelegramError as exc:
            logger.warning("bot %s: deleteWebhook failed: %s", bot.id, exc)
        try:
            await set_commands(self.services.telegram, bot.token, bot.definition.commands)
        except TelegramError as exc:
            logger.warning("bot %s: setMyCommands failed: %s", bot.id, exc)
        while True:
            try:
                offset = await self.poll_once(bot, offset, POLL_TIMEOUT)
            except Exception as exc:  # the offset stays: nothing is lost
                self._fail(bot, exc)
                retry_after = exc.retry_after if isinstance(exc, ApiError) else None
                await asyncio.sleep(retry_after or ERROR_BACKOFF)
            else:
                if self._down.pop(bot.id, None) is not None:
                    logger.info("bot %s: polling works again", bot.id)

    def _fail(self, bot: LiveBot, exc: Exception) -> None:
        """Record (and log, once per outage) why a bot's poll failed."""
        if bot.id not in self._down:
            if isinstance(exc, (TelegramError, StoreError)):
                logger.warning("bot %s: polling failed: %s", bot.id, exc)
            else:
                logger.exception("bot %s: polling failed", bot.id)
        self._down[bot.id] = f"{type(exc).__name__}: {exc}"
