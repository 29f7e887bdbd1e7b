"""Benchmark of the file channel: a script's File uploaded to the Bot API stand-in through a
real worker, against a direct multipart httpx upload of the same bytes in the same run.

Run it from the project root: ``.venv/bin/python bench/files.py`` (``--quick``: fewer and
smaller files, a smoke run).

What is measured, for each size (5 and 20 MiB; 1 and 5 with ``--quick``), median of the runs:

1. Direct: ``httpx.AsyncClient.post(.../sendDocument, files=...)`` of bytes already in memory to
   the stand-in (``tests/support/telegram_standin.py``, in this process: its multipart parsing
   costs both sides the same).
2. Through the sandbox: ``pool.run`` of a script that builds the bytes and calls
   ``upload(File("big.bin", data))``; the handler pulls the File through the file channel
   (1 MiB chunks, spooled; to disk above 1 MiB) and posts it with the real ``TelegramClient``
   (multipart from the spool). The script's own time to build the bytes (a run that only
   builds them) is subtracted.
3. Download: ``Api.downloadFile``'s path: ``TelegramClient.download`` into a spool, streamed to
   the worker in 1 MiB pieces, against a direct httpx GET of the file; same subtraction.

Throughput is MiB/s of file content; the overhead is the sandbox time over the direct time.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from runtime.telegram.client import TelegramClient  # noqa: E402
from runtime.telegram.files import Upload  # noqa: E402
from sandbox import JSON, CallRequest, FileReply, Limits, WorkerPool  # noqa: E402
from tests.support.telegram_standin import TelegramStandIn  # noqa: E402

TOKEN = "123456789:AAFakeBenchTokenForFilesOnly_abcdefghij"
MIB = 1024 * 1024
LIMITS = Limits(memory_bytes=256 * MIB, cpu_seconds=10.0, wall_seconds=60.0)
BUILD = "data = bytes(range(256)) * (4096 * {mib})\n"


def content(mib: int) -> bytes:
    return bytes(range(256)) * (4096 * mib)


async def timed(make: object) -> float:
    started = time.perf_counter()
    await make()  # type: ignore[operator]
    return time.perf_counter() - started


async def main(quick: bool) -> None:
    sizes = [1, 5] if quick else [5, 20]
    runs = 3 if quick else 5
    with TelegramStandIn(tokens={TOKEN}) as standin:
        telegram = TelegramClient(standin.base_url)
        direct = httpx.AsyncClient(timeout=60)
        async with WorkerPool(2) as pool:

            async def upload(call: CallRequest) -> JSON:
                assert call.files is not None
                blob = await call.files.receive(0)
                params = {"chat_id": 1, "document": Upload("big.bin", "application/x-b", blob)}
                await telegram.call(TOKEN, "sendDocument", params, multipart=True)
                return None

            async def download(call: CallRequest) -> FileReply:
                assert call.files is not None
                spool = call.files.spool()
                await telegram.download(TOKEN, "documents/big.bin", max_bytes=64 * MIB, into=spool)
                return FileReply("big.bin", None, spool)

            caps = {"upload": upload, "download": download}
            print(f"{'size':>6} {'what':<34} {'median s':>9} {'MiB/s':>8}")
            for mib in sizes:
                data = content(mib)
                standin.add_file("big", data, "documents/big.bin")
                url = f"{standin.base_url}/bot{TOKEN}/sendDocument"
                get_url = f"{standin.base_url}/file/bot{TOKEN}/documents/big.bin"

                async def post_direct(data: bytes = data, url: str = url) -> None:
                    answer = await direct.post(
                        url,
                        data={"chat_id": "1"},
                        files={"document": ("big.bin", data, "application/x-b")},
                    )
                    answer.raise_for_status()

                async def get_direct(get_url: str = get_url) -> None:
                    (await direct.get(get_url)).raise_for_status()

                async def script(source: str) -> None:
                    result = await pool.run(
                        source,
                        tenant="bench",
                        capabilities=caps,
                        limits=LIMITS,
                        file_bytes=64 * MIB,
                    )
                    assert result.ok, result.error

                build = BUILD.format(mib=mib)
                rows = {
                    "direct httpx multipart upload": post_direct,
                    "script builds the bytes only": lambda b=build: script(b),
                    "script upload(File(...)) via host": lambda b=build: script(
                        b + "upload(File('big.bin', data))\n"
                    ),
                    "direct httpx GET": get_direct,
                    "script downloadFile via host": lambda: script("f = download()\n"),
                }
                medians: dict[str, float] = {}
                for name, make in rows.items():
                    await timed(make)  # warm up
                    medians[name] = statistics.median([await timed(make) for _ in range(runs)])
                medians["script upload(File(...)) via host"] -= medians[
                    "script builds the bytes only"
                ]
                for name, seconds in medians.items():
                    rate = mib / seconds if seconds > 0 else float("inf")
                    print(f"{mib:>4}Mi {name:<34} {seconds:>9.4f} {rate:>8.1f}")
                ratio = (
                    medians["script upload(File(...)) via host"]
                    / medians["direct httpx multipart upload"]
                )
                print(f"{mib:>4}Mi upload overhead: {ratio:.2f}x the direct upload")
            await direct.aclose()
            await telegram.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, smaller files")
    asyncio.run(main(parser.parse_args().quick))
