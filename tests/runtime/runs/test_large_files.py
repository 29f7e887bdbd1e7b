"""Files up to Telegram's caps: a script's File of many megabytes reaches the Bot API stand-in
intact through the file channel, a file over the bot's cap is refused naming the cap, and a
15 MB download reaches the script intact; real workers, real HTTP, real SQLite."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sandbox import WorkerPool
from tests.support.runtime import Hosted, hosted, wait_until, write_bot
from tests.support.telegram_standin import RecordedCall

MIB = 1024 * 1024
CONTENT = "bytes(range(256)) * (4096 * {mib})"

UPLOAD = (
    '"""\ncommand: /up\n"""\n'
    "mib = int(params)\n"
    f"Api.sendDocument(document=File('big.bin', {CONTENT.format(mib='mib')}))\n"
)
OVER = (
    '"""\ncommand: /over\n"""\n'
    "try:\n"
    "    if params == 'photo':\n"
    f"        Api.sendPhoto(photo=File('p.png', {CONTENT.format(mib=11)}))\n"
    "    else:\n"
    f"        Bot.sendDocument(File('big.bin', {CONTENT.format(mib=26)}))\n"
    "except ApiError as e:\n"
    "    Bot.sendMessage(f'{e.code} {e}')\n"
)
DOWNLOAD = (
    '"""\ncommand: /down\n"""\n'
    "f = Api.downloadFile('big')\n"
    f"Bot.sendMessage(f'{{f.name}} {{f.size}} {{f.data == {CONTENT.format(mib=15)}}}')\n"
)


def content(mib: int) -> bytes:
    """The bytes the scripts' CONTENT makes."""
    return bytes(range(256)) * (4096 * mib)


@pytest.fixture
async def lab(pool: WorkerPool, tmp_path: Path) -> AsyncIterator[Hosted]:
    """Bot ``big``: a 25 MB upload cap, Telegram's 20 MB download cap, room in memory."""
    folder = write_bot(
        tmp_path / "bots",
        "big",
        {"up.py": UPLOAD, "over.py": OVER, "down.py": DOWNLOAD},
        yaml=(
            "limits:\n  memory_mb: 200\n  cpu_seconds: 5\n  wall_seconds: 30\n"
            "files:\n  max_upload_mb: 25\n"
        ),
    )
    async with hosted(pool, tmp_path, [folder]) as running:
        running.processor.start()
        yield running


async def sent(lab: Hosted, method: str) -> RecordedCall:
    await wait_until(lambda: lab.telegram.calls_to(method), timeout=60, what=method)
    return lab.telegram.calls_to(method)[0]


@pytest.mark.parametrize("mib", [5, 20])
async def test_a_large_script_made_file_reaches_telegram_intact(lab: Hosted, mib: int) -> None:
    await lab.post("big", 1, f"/up {mib}", chat=7)
    call = await sent(lab, "sendDocument")
    document = call.params["document"]
    assert document.filename == "big.bin"  # type: ignore[attr-defined]
    received = hashlib.sha256(document.data).hexdigest()  # type: ignore[attr-defined]
    assert received == hashlib.sha256(content(mib)).hexdigest()
    # Given back once Telegram answered and the call was answered.
    budget = lab.services.pool.file_budget
    await wait_until(lambda: budget.used == 0, timeout=20, what="the file budget given back")


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        (
            "document",
            "413 sendDocument: document ('big.bin') is 27262976 bytes; at most 26214400 may be "
            "uploaded here (files.max_upload_mb in bot.yaml)",
        ),
        (
            "photo",
            "413 sendPhoto: photo ('p.png') is 11534336 bytes; at most 10485760 may be "
            "uploaded here (Telegram's cap for photo)",
        ),
    ],
)
async def test_a_file_over_its_cap_is_refused_with_413_naming_the_cap(
    lab: Hosted, case: str, expected: str
) -> None:
    await lab.post("big", 1, f"/over {case}", chat=7)
    call = await sent(lab, "sendMessage")
    assert call.params["text"] == expected
    assert lab.telegram.calls_to("sendDocument") == lab.telegram.calls_to("sendPhoto") == []


async def test_a_15_mb_download_reaches_the_script_intact(lab: Hosted) -> None:
    lab.telegram.add_file("big", content(15), "documents/file_9.bin")
    await lab.post("big", 1, "/down", chat=7)
    call = await sent(lab, "sendMessage")
    assert call.params["text"] == f"file_9.bin {15 * MIB} True"
    assert lab.telegram.downloads == ["documents/file_9.bin"]
    assert lab.services.pool.file_budget.used == 0


async def test_past_the_servers_file_budget_a_run_gets_503_and_the_next_one_works(
    tmp_path: Path,
) -> None:
    """BOTBOX_FILE_BUDGET_MB, here 8: a 20 MB upload is refused (an ApiError the script can
    catch, not a crash), and a 5 MB one from the next run goes through."""
    script = (
        '"""\ncommand: /up\n"""\n'
        "try:\n"
        f"    Api.sendDocument(document=File('big.bin', {CONTENT.format(mib='int(params)')}))\n"
        "except ApiError as e:\n"
        "    Bot.sendMessage(f'{e.code} {e}')\n"
    )
    folder = write_bot(
        tmp_path / "bots",
        "big",
        {"up.py": script},
        yaml="limits:\n  memory_mb: 200\n  cpu_seconds: 5\n  wall_seconds: 30\n",
    )
    async with (
        WorkerPool(2, file_budget_bytes=8 * MIB) as pool,
        hosted(pool, tmp_path, [folder]) as lab,
    ):
        lab.processor.start()
        await lab.post("big", 1, "/up 20", chat=7)
        refusal = await sent(lab, "sendMessage")
        assert str(refusal.params["text"]).startswith(
            "503 sendDocument: the server holds 0 MiB of other files right now and may hold 8 MiB"
        )
        await lab.post("big", 2, "/up 5", chat=7)
        call = await sent(lab, "sendDocument")
        assert call.params["document"].data == content(5)  # type: ignore[attr-defined]
