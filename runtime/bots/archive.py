"""Uploaded bot folders (pure): a zip or a tar (optionally gzip-compressed) to a bot's files.

Uploads are hostile input. :func:`unpack` refuses, with :class:`UploadRefused` and a message
naming the entry, anything that is not a plain bot folder:

- an archive over :data:`MAX_ARCHIVE_BYTES`, or that expands to more than
  :data:`MAX_TOTAL_BYTES` (an archive bomb: a gzip stream is decompressed with a cap, a zip
  entry is read with a cap whatever its header claims), more than :data:`MAX_ENTRIES` entries,
  a file over its size limit (``bot.yaml`` 64 KiB, a command file 512 KiB);
- a path that leaves the bot: absolute, ``..``, a drive letter, a backslash, a NUL or control
  character; anything but ``bot.yaml`` and ``*.py`` command files at the top and ``lib/*.py``
  modules (one enclosing folder, as ``zip -r bot.zip shop/`` makes, is allowed and stripped);
- symbolic and hard links, devices, FIFOs, encrypted zip entries, a name given twice, text
  that is not UTF-8.

Nothing is written to disk: the files come back as text, and are then checked like any deploy
(:func:`runtime.bots.versions.check_version`).
"""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
import zlib
from typing import Final

from runtime.bots.config import CONFIG_FILE
from runtime.bots.folder import (
    LIB_FOLDER,
    MAX_COMMAND_FILE_BYTES,
    MAX_CONFIG_BYTES,
    is_bot_file,
)
from runtime.bots.versions import MAX_FILES
from runtime.errors import UploadRefused

KIB: Final = 1024
MAX_ARCHIVE_BYTES: Final = 1024 * KIB
"""The largest upload (also the server's request size limit)."""
MAX_TOTAL_BYTES: Final = 4 * 1024 * KIB
"""The most an archive may expand to (every file, and for a tar its headers)."""
MAX_ENTRIES: Final = MAX_FILES + 3
"""Files, plus the folder entries: the enclosing one, ``lib/`` and ``./``."""
NESTED: Final = (
    "not a file of a bot (a bot is bot.yaml and *.py command files at its top, and lib/*.py "
    "modules; no other folders)"
)
ZIP_METHODS: Final = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})


def limit_of(name: str) -> int:
    """The largest a bot file may be."""
    return MAX_CONFIG_BYTES if name == CONFIG_FILE else MAX_COMMAND_FILE_BYTES


def check_name(name: str) -> str:
    """A file name as a bot file, or UploadRefused saying why not (used for one-file puts)."""
    if not name or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise UploadRefused("a file name may not be empty or hold control characters")
    if "\\" in name or "/" in name or name in (".", "..") or (len(name) > 1 and name[1] == ":"):
        raise UploadRefused(f"{name!r}: a bot file is a plain name, without folders or drives")
    if not is_bot_file(name):
        raise UploadRefused(
            f"{name!r}: not a bot file (a bot is bot.yaml and *.py command files, "
            "names not starting with _ or .)"
        )
    return name


def decode(name: str, data: bytes) -> str:
    """A file's text: UTF-8 within its size limit, or UploadRefused."""
    if len(data) > limit_of(name):
        raise UploadRefused(f"{name}: larger than {limit_of(name)} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UploadRefused(f"{name}: not UTF-8 text (byte {exc.start})") from None


def unpack(data: bytes) -> dict[str, str]:
    """The bot files in an uploaded zip, tar or tar.gz (told apart by their first bytes)."""
    if len(data) > MAX_ARCHIVE_BYTES:
        raise UploadRefused(f"the archive is larger than {MAX_ARCHIVE_BYTES} bytes")
    if data.startswith(b"PK\x03\x04") or data.startswith(b"PK\x05\x06"):
        return _unzip(data)
    if data.startswith(b"\x1f\x8b"):
        return _untar(_gunzip(data))
    if len(data) >= 262 and data[257:262] == b"ustar":
        return _untar(data)
    raise UploadRefused("the body is not a zip, tar or tar.gz archive")


def _gunzip(data: bytes) -> bytes:
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(data, MAX_TOTAL_BYTES + 1)
    except zlib.error as exc:
        raise UploadRefused(f"the gzip stream is damaged: {exc}") from None
    if len(out) > MAX_TOTAL_BYTES:
        raise UploadRefused(f"the archive expands to more than {MAX_TOTAL_BYTES} bytes")
    if not inflater.eof or inflater.unused_data:
        raise UploadRefused("the gzip stream is truncated or has data after its end")
    return out


class _Entries:
    """Collects entries: names checked, one enclosing folder stripped, totals capped."""

    def __init__(self) -> None:
        self.files: dict[tuple[str, ...], bytes] = {}
        self.count = 0
        self.total = 0

    def name(self, raw: str, *, is_dir: bool) -> tuple[str, ...] | None:
        """The path parts of a file entry (None for a folder entry, checked and skipped)."""
        self.count += 1
        if self.count > MAX_ENTRIES:
            raise UploadRefused(f"the archive has more than {MAX_ENTRIES} entries")
        if any(ord(c) < 32 or ord(c) == 127 for c in raw):
            raise UploadRefused(f"{raw!r}: a name with a control character")
        if "\\" in raw:
            raise UploadRefused(f"{raw!r}: a backslash in a path")
        if raw.startswith("/") or (len(raw) > 1 and raw[1] == ":"):
            raise UploadRefused(f"{raw!r}: an absolute path")
        parts = tuple(part for part in raw.split("/") if part not in ("", "."))
        if ".." in parts:
            raise UploadRefused(f"{raw!r}: a path that leaves the bot folder")
        if is_dir:  # "./", "shop/", "lib/", "shop/lib/": anything deeper is refused
            if len(parts) > 2 or (len(parts) == 2 and parts[1] != LIB_FOLDER):
                raise UploadRefused(f"{raw}: {NESTED}")
            return None
        if not parts:
            raise UploadRefused(f"{raw!r}: an entry with no name")
        if len(parts) > 3:
            raise UploadRefused(f"{raw}: {NESTED}")
        return parts

    def add(self, parts: tuple[str, ...], data: bytes) -> None:
        self.total += len(data)
        if self.total > MAX_TOTAL_BYTES:
            raise UploadRefused(f"the archive expands to more than {MAX_TOTAL_BYTES} bytes")
        if parts in self.files:
            raise UploadRefused(f"{'/'.join(parts)}: given twice")
        self.files[parts] = data

    def result(self) -> dict[str, str]:
        """The files by their name in the bot (the one enclosing folder, if every file is in
        it and ``bot.yaml`` is not at the top, stripped), decoded."""
        if not self.files:
            raise UploadRefused("the archive holds no files")
        tops = {parts[0] for parts in self.files}
        strip = (
            (CONFIG_FILE,) not in self.files
            and len(tops) == 1
            and all(len(parts) > 1 for parts in self.files)
        )
        files: dict[str, str] = {}
        for parts, data in sorted(self.files.items()):
            inner = parts[1:] if strip else parts
            name = "/".join(inner)
            if len(inner) == 1:
                check_name(name)
            elif len(inner) != 2 or inner[0] != LIB_FOLDER or not is_bot_file(name):
                raise UploadRefused(f"{'/'.join(parts)}: {NESTED}")
            files[name] = decode(name, data)
        return files


def _unzip(data: bytes) -> dict[str, str]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError, NotImplementedError, EOFError, OSError) as exc:
        raise UploadRefused(f"not a readable zip archive: {exc}") from None
    entries = _Entries()
    for info in infos:
        mode = info.external_attr >> 16
        is_dir = info.is_dir()
        if mode and stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
            kind = "a symbolic link" if stat.S_ISLNK(mode) else "not a regular file"
            raise UploadRefused(f"{info.filename}: {kind}")
        name = entries.name(info.filename, is_dir=is_dir)
        if name is None:
            continue
        if info.flag_bits & 0x1:
            raise UploadRefused(f"{info.filename}: encrypted")
        if info.compress_type not in ZIP_METHODS:
            raise UploadRefused(f"{info.filename}: compressed with an unsupported method")
        limit = limit_of(name[-1])
        if info.file_size > limit:
            raise UploadRefused(f"{info.filename}: larger than {limit} bytes")
        try:
            with archive.open(info) as stream:
                content = stream.read(limit + 1)  # the header may lie: read at most this
        except (
            zipfile.BadZipFile,
            ValueError,
            NotImplementedError,
            EOFError,
            OSError,
            zlib.error,
        ) as exc:
            raise UploadRefused(f"{info.filename}: damaged ({exc})") from None
        if len(content) > limit:
            raise UploadRefused(f"{info.filename}: larger than {limit} bytes")
        entries.add(name, content)
    return entries.result()


def _untar(data: bytes) -> dict[str, str]:
    if len(data) > MAX_TOTAL_BYTES:
        raise UploadRefused(f"the archive expands to more than {MAX_TOTAL_BYTES} bytes")
    entries = _Entries()
    try:
        archive = tarfile.open(fileobj=io.BytesIO(data), mode="r:")  # noqa: SIM115
        with archive:
            for member in archive:
                if member.issym() or member.islnk():
                    raise UploadRefused(f"{member.name}: a link")
                if not (member.isfile() or member.isdir()):
                    raise UploadRefused(f"{member.name}: not a regular file")
                name = entries.name(member.name, is_dir=member.isdir())
                if name is None:
                    continue
                limit = limit_of(name[-1])
                if member.size > limit:
                    raise UploadRefused(f"{member.name}: larger than {limit} bytes")
                stream = archive.extractfile(member)
                content = b"" if stream is None else stream.read(limit + 1)
                entries.add(name, content)
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise UploadRefused(f"not a readable tar archive: {exc}") from None
    return entries.result()


__all__ = ["MAX_ARCHIVE_BYTES", "MAX_TOTAL_BYTES", "check_name", "decode", "unpack"]
