"""Files sent to and fetched from Telegram: the plain ``File`` form, size caps, multipart parts.

Pure. A script's ``File`` reaches the host as ``{"$file": {"name", "mime", "text" | "base64"}}``
(:mod:`sandbox.files`); :func:`take_uploads` turns each into an :class:`Upload`, checking its
shape and size, and :func:`multipart_parts` lays a call with uploads out as multipart/form-data:
a file in a top-level field (``document``, ``photo``...) is a part of that name; a file inside a
field (``sendMediaGroup``'s ``media`` items, a ``thumbnail``) becomes ``attach://fileN`` and a
part named ``fileN``, as the Bot API asks.

Caps: Telegram takes photos up to 10 MB and other uploads up to 50 MB through the Bot API, and
``getFile`` serves downloads up to 20 MB. A bot's ``files:`` settings in ``bot.yaml`` may set
lower caps. A script's own file is smaller still: it crosses the worker boundary in one call
(see :data:`sandbox.files.MAX_FILE_BYTES`).
"""

from __future__ import annotations

import base64
import binascii
import json
import mimetypes
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from runtime.errors import FileRefused
from sandbox.files import FILE_KEY, MIME

MB: Final = 1024 * 1024
TELEGRAM_MAX_UPLOAD: Final = 50 * MB
TELEGRAM_MAX_PHOTO: Final = 10 * MB
TELEGRAM_MAX_DOWNLOAD: Final = 20 * MB
PHOTO_FIELDS: Final = frozenset({"photo"})
FILE_PATH: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-/]{0,254}")
"""What a ``file_path`` from ``getFile`` may look like (``documents/file_12.pdf``)."""


@dataclass(frozen=True, slots=True)
class Upload:
    """A file to upload: its name, media type and bytes."""

    name: str
    mime: str
    data: bytes

    def __repr__(self) -> str:
        return f"Upload({self.name!r}, {self.mime!r}, <{len(self.data)} bytes>)"


def is_file(value: object) -> bool:
    """Whether a plain value is a File's plain form."""
    return type(value) is dict and len(value) == 1 and FILE_KEY in value


def upload_of(value: Mapping[str, Any], where: str) -> Upload:
    """The :class:`Upload` of a File's plain form; FileRefused if it is malformed."""
    body = value[FILE_KEY]
    if type(body) is not dict:
        raise FileRefused(f"{where} is not a File")
    name, mime = body.get("name"), body.get("mime")
    if type(name) is not str or not name or "/" in name or "\\" in name or len(name) > 255:
        raise FileRefused(f"{where}: a File needs a plain name (no /)")
    if mime is not None and (type(mime) is not str or not MIME.fullmatch(mime)):
        raise FileRefused(f"{where}: mime must look like 'text/csv'")
    if type(body.get("text")) is str:
        data = body["text"].encode("utf-8", "surrogatepass")
    elif type(body.get("base64")) is str:
        try:
            data = base64.b64decode(body["base64"], validate=True)
        except (binascii.Error, ValueError):
            raise FileRefused(f"{where}: a File's content is damaged") from None
    else:
        raise FileRefused(f"{where}: a File has text or bytes")
    guessed = mimetypes.guess_type(name)[0]
    return Upload(name, mime or guessed or "application/octet-stream", data)


def take_uploads(
    params: Mapping[str, Any], file_fields: frozenset[str], *, max_bytes: int
) -> tuple[dict[str, Any], bool]:
    """The call's parameters with every File turned into an :class:`Upload`, and whether any was.

    A File may stand for a whole field only when the method's field takes an ``InputFile``
    (``file_fields``); inside a field's value (``media`` items) anywhere. Each file is checked
    against ``max_bytes`` (the bot's cap) and Telegram's: 10 MB for photos, 50 MB otherwise.
    Raises FileRefused.
    """
    found = [False]

    def convert(value: Any, where: str, field_name: str) -> Any:
        if is_file(value):
            upload = upload_of(value, where)
            limit = min(
                max_bytes, TELEGRAM_MAX_PHOTO if field_name in PHOTO_FIELDS else TELEGRAM_MAX_UPLOAD
            )
            if len(upload.data) > limit:
                raise FileRefused(
                    f"{where} ({upload.name!r}) is {len(upload.data)} bytes; "
                    f"at most {limit} may be uploaded here",
                    status=413,
                )
            found[0] = True
            return upload
        if type(value) is dict:
            return {key: convert(item, f"{where}.{key}", key) for key, item in value.items()}
        if type(value) is list:
            return [
                convert(item, f"{where}[{index}]", field_name) for index, item in enumerate(value)
            ]
        return value

    converted: dict[str, Any] = {}
    for key, value in params.items():
        if is_file(value) and key not in file_fields:
            raise FileRefused(f"{key} does not take a file")
        converted[key] = convert(value, key, key)
    return converted, found[0]


def multipart_parts(
    params: Mapping[str, Any],
) -> tuple[dict[str, str], list[tuple[str, tuple[str, bytes, str]]]]:
    """A call with uploads as multipart/form-data: text fields and file parts (httpx's shape)."""
    files: list[tuple[str, tuple[str, bytes, str]]] = []

    def attach(value: Any) -> Any:
        if isinstance(value, Upload):
            part = f"file{len(files)}"
            files.append((part, (value.name, value.data, value.mime)))
            return f"attach://{part}"
        if isinstance(value, dict):
            return {key: attach(item) for key, item in value.items()}
        if isinstance(value, list):
            return [attach(item) for item in value]
        return value

    fields: dict[str, str] = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, Upload):
            files.append((key, (value.name, value.data, value.mime)))
        elif isinstance(value, str):
            fields[key] = value
        elif isinstance(value, bool):
            fields[key] = "true" if value else "false"
        elif isinstance(value, int | float):
            fields[key] = str(value)
        else:
            fields[key] = json.dumps(attach(value), ensure_ascii=False)
    return fields, files


def file_path_of(result: object) -> tuple[str, int | None]:
    """The ``file_path`` and ``file_size`` of a ``getFile`` result; FileRefused if unusable."""
    if not isinstance(result, dict):
        raise FileRefused("getFile answered something that is not a File")
    path, size = result.get("file_path"), result.get("file_size")
    if not isinstance(path, str) or not FILE_PATH.fullmatch(path) or ".." in path:
        raise FileRefused("Telegram gave no downloadable path for this file")
    return path, size if type(size) is int else None


def downloaded(path: str, data: bytes) -> dict[str, Any]:
    """What a script gets back: a File (its name is the path's last part)."""
    name = path.rsplit("/", 1)[-1] or "file"
    mime = mimetypes.guess_type(name)[0]
    return {FILE_KEY: {"name": name, "mime": mime, "data": data}}


def for_log(value: Any) -> Any:
    """A call's arguments for the run log: each File as its name, type and size, not its content."""
    if is_file(value):
        body = value[FILE_KEY]
        if type(body) is not dict:
            return value
        text, encoded = body.get("text"), body.get("base64")
        size = (
            len(text.encode("utf-8", "surrogatepass"))
            if type(text) is str
            else len(encoded) * 3 // 4 - (len(encoded) - len(encoded.rstrip("=")))
            if type(encoded) is str
            else None
        )
        return {FILE_KEY: {"name": body.get("name"), "mime": body.get("mime"), "size": size}}
    if type(value) is dict:
        return {key: for_log(item) for key, item in value.items()}
    if type(value) is list:
        return [for_log(item) for item in value]
    return value
