"""Long polling (``getUpdates``): for bots without a public HTTPS address.

Each bot with a token gets one loop: ``deleteWebhook`` once, then ``getUpdates`` with a long
timeout; every update is enqueued durably (deduplicated by ``update_id``) before the next poll
confirms it to Telegram by moving the offset.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final

from runtime.errors import ApiError, TelegramError
from runtime.runs.processor import Processor
from runtime.runs.registry import LiveBot, Registry
from runtime.runs.session import Services
from runtime.telegram.update import parse_update

logger = logging.getLogger(__name__)

POLL_TIMEOUT: Final = 25
ERROR_BACKOFF: Final = 3.0


class Poller:
    """Polls Telegram for every bot that has a token."""

    def __init__(self, registry: Registry, services: Services, processor: Processor) -> None:
        self.registry = registry
        self.services = services
        self.processor = processor
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start one polling loop per bot with a token."""
        self._tasks = [
            asyncio.create_task(self.poll(bot)) for bot in self.registry if bot.token is not None
        ]

    async def stop(self) -> None:
        """Stop polling."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def poll_once(self, bot: LiveBot, offset: int | None, timeout: int) -> int | None:
        """Fetch one batch, enqueue it, and return the next offset."""
        assert bot.token is not None
        params: dict[str, object] = {"timeout": timeout}
        if offset is not None:
            params["offset"] = offset
        result = await self.services.telegram.call(
            bot.token, "getUpdates", params, timeout=timeout + 10
        )
        for payload in result if isinstance(result, list) else []:
            try:
                update = parse_update(payload)
            except ValueError as exc:
                logger.warning("bot %s: skipping a malformed update: %s", bot.id, exc)
                continue
            await self.services.store.enqueue(
                bot.id, "update", update.chat_key, payload, update_id=update.update_id
            )
            offset = update.update_id + 1
        self.processor.wake()
        return offset

    async def poll(self, bot: LiveBot) -> None:
        """Poll one bot until cancelled."""
        assert bot.token is not None
        offset: int | None = None
        try:
            await self.services.telegram.call(bot.token, "deleteWebhook", {})
        except TelegramError as exc:
            logger.warning("bot %s: deleteWebhook failed: %s", bot.id, exc)
        while True:
            try:
                offset = await self.poll_once(bot, offset, POLL_TIMEOUT)
            except ApiError as exc:
                await asyncio.sleep(exc.retry_after or ERROR_BACKOFF)
            except TelegramError as exc:
                logger.warning("bot %s: polling failed: %s", bot.id, exc)
                await asyncio.sleep(ERROR_BACKOFF)
