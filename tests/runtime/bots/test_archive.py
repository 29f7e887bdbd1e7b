"""Uploaded archives are hostile input: each refusal, with a crafted archive."""

from __future__ import annotations

import io
import stat
import tarfile

import pytest

from runtime.bots.archive import MAX_ARCHIVE_BYTES, MAX_TOTAL_BYTES, check_name, unpack
from runtime.errors import UploadRefused
from tests.support.archives import zipped

BOT = {"bot.yaml": "id: shop\ntoken_env: SHOP_TOKEN\n", "start.py": "# command: /start\n"}


def tarred(members: list[tarfile.TarInfo], data: dict[str, bytes], *, gz: bool = False) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if gz else "w") as archive:
        for member in members:
            content = data.get(member.name)
            archive.addfile(member, io.BytesIO(content) if content is not None else None)
    return buffer.getvalue()


def regular(name: str, content: bytes) -> tuple[tarfile.TarInfo, dict[str, bytes]]:
    info = tarfile.TarInfo(name)
    info.size = len(content)
    return info, {name: content}


def refused(data: bytes) -> str:
    with pytest.raises(UploadRefused) as caught:
        unpack(data)
    return str(caught.value)


def test_a_zip_of_the_files_or_of_their_folder_unpacks_to_the_bots_files() -> None:
    assert unpack(zipped(dict(BOT))) == BOT
    assert unpack(zipped({f"shop/{name}": text for name, text in BOT.items()})) == BOT


def test_lib_modules_come_with_the_bot_with_or_without_an_enclosing_folder() -> None:
    with_lib = {**BOT, "lib/quiz.py": "QUESTIONS = []\n"}
    assert unpack(zipped(with_lib)) == with_lib
    nested = {f"shop/{name}": text for name, text in with_lib.items()}
    assert unpack(zipped({"shop/": "", "shop/lib/": "", **nested})) == with_lib


def test_a_tar_and_a_tar_gz_unpack_to_the_bots_files() -> None:
    members, data = [], {}
    for name, text in BOT.items():
        member, content = regular(f"./shop/{name}", text.encode())
        members.append(member)
        data.update(content)
    assert unpack(tarred(members, data)) == BOT
    # `tar czf bot.tgz -C shop .`: a "./" folder entry, then "./bot.yaml"...
    root = tarfile.TarInfo("./")
    root.type = tarfile.DIRTYPE
    flat = [root]
    for name, text in BOT.items():
        member, content = regular(f"./{name}", text.encode())
        flat.append(member)
        data.update(content)
    assert unpack(tarred(flat, data, gz=True)) == BOT
    assert unpack(tarred(members, data, gz=True)) == BOT


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../evil.py", "leaves the bot folder"),
        ("shop/../../evil.py", "leaves the bot folder"),
        ("/etc/evil.py", "absolute path"),
        ("C:/evil.py", "absolute path"),
        ("shop\\evil.py", "backslash"),
        ("shop/evil.py", "not a file of a bot"),
        ("sub/evil.py", "not a file of a bot"),
        ("lib/deep/evil.py", "not a file of a bot"),
        ("lib/notes.txt", "not a file of a bot"),
        ("lib/_private.py", "not a file of a bot"),
        ("notes.txt", "not a bot file"),
        ("_private.py", "not a bot file"),
        ("evil\x01.py", "control character"),
    ],
)
def test_a_path_outside_the_bot_or_an_unknown_file_type_is_refused(name: str, reason: str) -> None:
    assert reason in refused(zipped({**BOT, name: "x = 1\n"}))


def test_a_symlink_in_a_zip_is_refused() -> None:
    assert "symbolic link" in refused(
        zipped({"start.py": "/etc/passwd"}, mode=stat.S_IFLNK | 0o777)
    )


@pytest.mark.parametrize(
    "kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.FIFOTYPE]
)
def test_links_and_devices_in_a_tar_are_refused(kind: bytes) -> None:
    member = tarfile.TarInfo("start.py")
    member.type = kind
    member.linkname = "/etc/passwd"
    message = refused(tarred([member], {}))
    assert "start.py" in message and ("link" in message or "not a regular file" in message)


def test_an_archive_over_the_upload_limit_is_refused() -> None:
    assert "larger than" in refused(b"PK\x03\x04" + b"\0" * MAX_ARCHIVE_BYTES)


def test_a_zip_bomb_is_refused_without_inflating_it_whole() -> None:
    # 200 command files of 500 KiB of zeros each: about 100 MiB inflated, a few hundred KiB sent.
    files = {f"c{n}.py": b"#" + b"\0" * (500 * 1024) for n in range(20)}
    data = zipped(files)
    assert len(data) < MAX_ARCHIVE_BYTES
    assert f"more than {MAX_TOTAL_BYTES} bytes" in refused(data)


def test_a_zip_entry_larger_than_its_header_claims_is_refused() -> None:
    data = bytearray(zipped({"start.py": "#" * 600_000}))
    # Make the local and central headers claim 10 bytes: reading stops at the file limit anyway.
    central = data.rfind(b"PK\x01\x02")
    data[central + 24 : central + 28] = (10).to_bytes(4, "little")
    message = refused(bytes(data))
    assert "start.py" in message


def test_a_gzip_bomb_is_refused() -> None:
    member, content = regular("start.py", b"\0" * (MAX_TOTAL_BYTES + 10))
    bomb = tarred([member], content, gz=True)
    assert len(bomb) < MAX_ARCHIVE_BYTES
    assert f"more than {MAX_TOTAL_BYTES} bytes" in refused(bomb)


def test_too_many_files_are_refused() -> None:
    assert "entries" in refused(zipped({f"c{n}.py": "" for n in range(300)}))


def test_a_file_over_its_size_limit_is_refused() -> None:
    assert "bot.yaml: larger than" in refused(zipped({"bot.yaml": "#" * (65 * 1024)}))


def test_text_that_is_not_utf8_is_refused() -> None:
    assert "not UTF-8" in refused(zipped({**BOT, "start.py": b"\xff\xfe"}))


def test_a_name_given_twice_and_two_top_folders_are_refused() -> None:
    assert "given twice" in refused(zipped({"start.py": "a", "./start.py": "b"}))
    assert "not a file of a bot" in refused(zipped({"a/start.py": "", "b/bot.yaml": ""}))


def test_an_encrypted_zip_entry_is_refused() -> None:
    data = bytearray(zipped({"start.py": "x"}))
    for marker in (b"PK\x03\x04", b"PK\x01\x02"):
        at = data.find(marker)
        offset = 6 if marker == b"PK\x03\x04" else 8
        data[at + offset] |= 1
    assert "encrypted" in refused(bytes(data))


def test_bytes_that_are_no_archive_are_refused() -> None:
    assert "not a zip, tar or tar.gz" in refused(b"hello")
    assert "gzip" in refused(b"\x1f\x8b\x08garbage")
    assert "zip" in refused(b"PK\x03\x04garbage")


def test_one_file_names_are_plain_bot_files() -> None:
    assert check_name("start.py") == "start.py"
    for bad in ("../x.py", "a/b.py", "x.txt", "C:x.py", "", ".hidden.py"):
        with pytest.raises(UploadRefused):
            check_name(bad)
