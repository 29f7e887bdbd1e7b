"""Files: a script's ``File`` uploaded as multipart (documents, photos, media groups), and
``Api.downloadFile`` through the host, each held to its caps; against the Bot API stand-in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sandbox import WorkerPool
from tests.support.runtime import Hosted, hosted, wait_until, write_bot
from tests.support.telegram_standin import RecordedCall

REPORT = (
    '"""\ncommand: /report\n"""\n'
    'Api.sendDocument(document=File("report.csv", "name,score\\nann,3\\n"), caption="weekly")\n'
)
PHOTO = (
    '"""\ncommand: /photo\n"""\n'
    "png = bytes([137, 80, 78, 71]) + bytes(range(256))\n"
    'Api.sendPhoto({"photo": File("dot.png", png)})\n'
)
ALBUM = (
    '"""\ncommand: /album\n"""\n'
    "Api.sendMediaGroup(media=[\n"
    '    {"type": "photo", "media": File("a.png", b"A" * 10), "caption": "first"},\n'
    '    {"type": "document", "media": File("b.txt", "bee", mime="text/plain")},\n'
    "])\n"
)
FETCH = (
    '"""\ncommand: /fetch\n"""\n'
    'got = Api.downloadFile(params or "doc1")\n'
    'same = Api.call("downloadFile", {"file_id": params or "doc1"})\n'
    'assert same.data == Api.downloadFile(file_id=params or "doc1").data == got.data\n'
    'Bot.sendMessage(f"{got.name} {got.size} {got.mime} {got.text!r}")\n'
    'Api.sendDocument(document=File("copy-" + got.name, got.data))\n'
)
TRY = (
    '"""\ncommand: /try\n"""\n'
    "try:\n"
    '    if params == "big":\n'
    '        File("big.bin", b"x" * 800000)\n'
    '    elif params == "field":\n'
    '        Api.sendMessage(text=File("a.txt", "x"))\n'
    '    elif params == "upload":\n'
    '        Api.sendDocument(document=File("c.bin", b"c" * 5000))\n'
    '    elif params == "download":\n'
    '        Api.downloadFile("huge")\n'
    '    elif params == "unknown":\n'
    '        Api.downloadFile("nope")\n'
    '    elif params == "name":\n'
    '        File("../etc/passwd", "x")\n'
    '    elif params == "type":\n'
    '        File("a.txt", 42)\n'
    '    Bot.sendMessage("no error")\n'
    "except ValueError as e:\n"
    '    Bot.sendMessage(f"ValueError: {e}")\n'
    "except TypeError as e:\n"
    '    Bot.sendMessage(f"TypeError: {e}")\n'
    "except ApiError as e:\n"
    '    Bot.sendMessage(f"ApiError: {e}")\n'
)
CHANGE = (
    '"""\ncommand: /change\n"""\n'
    'f = File("a.txt", "x")\n'
    "try:\n"
    '    f.name = "b.txt"\n'
    "except TypeError as e:\n"
    '    Bot.sendMessage(f"TypeError: {e}")\n'
)


@pytest.fixture
async def lab(pool: WorkerPool, tmp_path: Path) -> AsyncIterator[Hosted]:
    """Bot ``files`` with small caps (4 KB up, 2 KB down), processed in-process."""
    folder = write_bot(
        tmp_path / "bots",
        "files",
        {
            "report.py": REPORT,
            "photo.py": PHOTO,
            "album.py": ALBUM,
            "fetch.py": FETCH,
            "try.py": TRY,
            "change.py": CHANGE,
        },
        yaml="files:\n  max_upload_mb: 0.004\n  max_download_mb: 0.002\n",
    )
    async with hosted(pool, tmp_path, [folder]) as running:
        running.processor.start()
        yield running


async def sent(lab: Hosted, method: str, n: int = 1) -> list[RecordedCall]:
    """Wait (without blocking the event loop) for ``n`` calls of ``method``; return them."""
    await wait_until(
        lambda: len(lab.telegram.calls_to(method)) >= n, timeout=20, what=f"{n} {method}"
    )
    return lab.telegram.calls_to(method)


async def said(lab: Hosted, n: int) -> list[str]:
    """Wait for ``n`` sendMessage calls; return their texts."""
    await wait_until(
        lambda: len(lab.telegram.calls_to("sendMessage")) >= n, timeout=20, what=f"{n} messages"
    )
    return [str(call.params["text"]) for call in lab.telegram.calls_to("sendMessage")]


async def test_a_script_made_csv_is_uploaded_as_a_multipart_document(lab: Hosted) -> None:
    await lab.post("files", 1, "/report", chat=7)
    (call,) = await sent(lab, "sendDocument")
    document = call.params["document"]
    assert call.params["caption"] == "weekly" and call.params["chat_id"] == 7
    assert document.filename == "report.csv"  # type: ignore[attr-defined]
    assert document.content_type == "text/csv"  # type: ignore[attr-defined]
    assert document.data == b"name,score\nann,3\n"  # type: ignore[attr-defined]


async def test_the_run_log_names_an_uploaded_file_without_its_content(lab: Hosted) -> None:
    await lab.post("files", 1, "/photo", chat=7)
    await sent(lab, "sendPhoto")

    async def logged() -> bool:
        return bool(await lab.store.list_runs("files", limit=1))

    await wait_until(logged, timeout=20, what="the run in the log")
    (run,) = await lab.store.list_runs("files", limit=1)
    params = str(run.calls[0]["params"])  # type: ignore[index]
    assert '{"$file": {"name": "dot.png", "mime": null, "size": 260}}' in params
    assert "base64" not in params


async def test_bytes_cross_the_worker_boundary_unchanged(lab: Hosted) -> None:
    await lab.post("files", 1, "/photo", chat=7)
    (call,) = await sent(lab, "sendPhoto")
    photo = call.params["photo"]
    assert photo.data == bytes([137, 80, 78, 71]) + bytes(range(256))  # type: ignore[attr-defined]
    assert photo.content_type == "image/png"  # type: ignore[attr-defined]


async def test_a_media_group_sends_its_files_as_attach_parts(lab: Hosted) -> None:
    await lab.post("files", 1, "/album", chat=7)
    (call,) = await sent(lab, "sendMediaGroup")
    media = call.params["media"]
    assert media == [
        {"type": "photo", "media": "attach://file0", "caption": "first"},
        {"type": "document", "media": "attach://file1"},
    ]
    assert call.attachments["file0"].data == b"A" * 10
    assert call.attachments["file1"].data == b"bee"
    assert call.attachments["file1"].content_type == "text/plain"


async def test_a_user_file_is_downloaded_through_the_host_and_sent_back(lab: Hosted) -> None:
    lab.telegram.add_file("doc1", "héllo".encode(), "documents/file_1.txt")
    await lab.post("files", 1, "/fetch", chat=7)
    (text,) = await said(lab, 1)
    assert text == "file_1.txt 6 text/plain 'héllo'"
    assert lab.telegram.downloads == ["documents/file_1.txt"] * 3  # three spellings, one file
    (call,) = await sent(lab, "sendDocument")
    assert call.params["document"].data == "héllo".encode()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("big", "ValueError: File: 'big.bin' holds 800000 bytes; a file a script makes holds"),
        ("field", "ApiError: sendMessage: text does not take a file"),
        ("upload", "ApiError: sendDocument: document ('c.bin') is 5000 bytes; at most 4194 may"),
        ("download", "ApiError: downloadFile: the file is 3000 bytes; at most 2097 may be"),
        ("unknown", "ApiError: downloadFile: Telegram gave no downloadable path for this file"),
        ("name", "ValueError: File: the name must be 1 to 255 characters without /"),
        ("type", "TypeError: File: data must be text (str) or bytes, not int"),
    ],
)
async def test_files_over_a_cap_or_malformed_fail_with_a_clear_error(
    lab: Hosted, case: str, expected: str
) -> None:
    lab.telegram.add_file("huge", b"h" * 3000, "documents/huge.bin")
    await lab.post("files", 1, f"/try {case}", chat=7)
    (text,) = await said(lab, 1)
    assert text.startswith(expected), text
    assert lab.telegram.calls_to("sendDocument") == []
    assert lab.telegram.downloads == []  # refused on getFile's declared size, before any byte


async def test_a_download_larger_than_it_said_stops_at_the_cap(lab: Hosted) -> None:
    lab.telegram.add_file("liar", b"z" * 5000, "documents/liar.bin", declared_size=10)
    await lab.post("files", 1, "/fetch liar", chat=7)

    async def failed() -> bool:
        return bool(await lab.store.list_runs("files", failed_only=True, limit=1))

    await wait_until(failed, timeout=20, what="the failed run in the log")
    (run,) = await lab.store.list_runs("files", limit=1)
    assert run.status == "script_error"
    # getFile said 10 bytes; the download itself says 5000 and is refused before its body.
    assert "downloadFile: the file is 5000 bytes; at most 2097 here" in str(run.error)
    assert lab.telegram.downloads == ["documents/liar.bin"]
    assert lab.telegram.calls_to("sendMessage") == []


async def test_a_file_cannot_be_changed_by_its_script(lab: Hosted) -> None:
    await lab.post("files", 1, "/change", chat=7)
    (text,) = await said(lab, 1)
    assert text.startswith("TypeError: cannot change attributes"), text
