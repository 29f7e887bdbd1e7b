"""The runtime in-process, for tests: real store, pool, Bot API stand-in, runner and processor.

:class:`Hosted` is what ``create_app`` builds, without the web layer: a test writes bot folders,
posts updates into the store and starts the processor, then waits for observable effects.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from runtime.runs.pipeline import Runner
from runtime.runs.processor import Processor
from runtime.runs.registry import Registry
from runtime.runs.runlog import RunLog
from runtime.runs.secrets import BotSecrets
from runtime.runs.session import Services
from runtime.signing.keys import KeyFile
from runtime.signing.sealing import SecretBox
from runtime.store import SqliteStore
from runtime.telegram.client import TelegramClient
from runtime.telegram.update import parse_update
from sandbox import WorkerPool
from tests.support.telegram_standin import TelegramStandIn
from tests.support.updates import make_update

TOKEN = "123456789:AAFakeRuntimeTokenForTestsOnly_abcdefgh"
MASTER_KEY = b"k" * 32


def write_bot(root: Path, bot_id: str, files: Mapping[str, str], *, yaml: str = "") -> Path:
    """Write a bot folder (flood limits off, token in TEST_TOKEN) with its command files."""
    folder = root / bot_id
    folder.mkdir(parents=True)
    header = f"id: {bot_id}\ntoken_env: TEST_TOKEN\ntelegram:\n  flood_limits: false\n"
    (folder / "bot.yaml").write_text(header + yaml)
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)  # lib/quiz.py
        (folder / name).write_text(text)
    return folder


def store_path(tmp_path: Path) -> Path:
    """Where :func:`hosted` keeps its store file."""
    return tmp_path / "botbox.sqlite3"


@dataclass
class Hosted:
    """A running runtime: the store, the registry, the runner and its processor."""

    store: SqliteStore
    registry: Registry
    services: Services
    runner: Runner
    processor: Processor
    telegram: TelegramStandIn

    async def post(self, bot_id: str, update_id: int, text: str, *, chat: int) -> None:
        """Store a text message from user ``chat`` in private chat ``chat``, as the webhook does."""
        payload = make_update(
            update_id=update_id, user_id=chat, chat_id=chat, text=text, bot_token=TOKEN
        )
        update = parse_update(payload)
        await self.store.enqueue(bot_id, "update", update.chat_key, payload, update_id=update_id)
        self.processor.wake()


async def wait_until(
    check: Callable[[], object], *, timeout: float, what: str, every: float = 0.01
) -> None:
    """Poll an (async or plain) condition until it is true; fail naming ``what`` after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout} s")
        await asyncio.sleep(every)


@asynccontextmanager
async def hosted(
    pool: WorkerPool,
    tmp_path: Path,
    folders: list[Path],
    *,
    concurrency: int = 4,
    store_class: type[SqliteStore] = SqliteStore,
) -> AsyncIterator[Hosted]:
    """Host the bot folders on a fresh store at ``store_path(tmp_path)``; processor not started."""
    store = store_class(store_path(tmp_path))
    await store.open()
    with TelegramStandIn(tokens={TOKEN}) as standin:
        telegram = TelegramClient(standin.base_url)
        registry = Registry.load(
            folders, env={"TEST_TOKEN": TOKEN}, master_key=MASTER_KEY, cache=pool.cache
        )
        services = Services(
            pool,
            store,
            telegram,
            KeyFile(tmp_path / "keys.json"),
            "http://test",
            RunLog(store),
            secrets=BotSecrets(store, SecretBox(MASTER_KEY)),
        )
        runner = Runner(services)
        processor = Processor(registry, services, runner, concurrency=concurrency, owner="test")
        try:
            yield Hosted(store, registry, services, runner, processor, standin)
        finally:
            await processor.stop()
            await services.runlog.close()
            await services.outbound.close()
            await telegram.close()
            await store.close()
