"""``File(name, data, mime=None)``: file content a script makes or receives, as plain data.

A :class:`File` is an immutable value with exact-typed parts: a name (``str``), the content
(``str`` or ``bytes``) and an optional media type. It crosses the worker boundary as plain JSON
(:func:`sandbox.plain.to_plain` turns it into ``{"$file": {"name", "mime", "text" | "base64"}}``),
and the host hands one back the same way, with ``data`` as ``bytes`` (:func:`from_host`, on
the trusted host-to-worker channel). The sandbox knows nothing of what a file is for; the
runtime decides (uploads to Telegram, downloads).

Size: a file goes to the host inside one capability call, whose encoded arguments are at most
:data:`sandbox.protocol.MAX_CALL_BYTES` (1 MiB), and bytes travel as base64 (4/3 larger), so a
file holds at most :data:`MAX_FILE_BYTES` (756 KiB). That is checked when the File is made.
"""

from __future__ import annotations

import base64
import re
from typing import Any, Final

from sandbox.protocol import MAX_CALL_BYTES

FILE_KEY: Final = "$file"
"""The one key of the plain form of a File."""
MAX_FILE_BYTES: Final = 3 * (MAX_CALL_BYTES - 16 * 1024) // 4
"""The largest content of a File (encoded as base64 it still fits one call, with room to spare)."""
MAX_NAME_CHARS: Final = 255
MIME: Final = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}"
)
"""A media type without parameters (``text/csv``): it becomes a part's header, so no spaces,
quotes or line breaks."""


def _exact_text(value: object, what: str) -> str:
    kind = type(value)
    if kind is str:
        return value  # type: ignore[return-value]
    if issubclass(kind, str):
        return str.__str__(value)
    raise TypeError(f"File: {what} must be text, not {kind.__name__}")


def _exact_content(value: Any) -> str | bytes:
    kind = type(value)
    if kind is str or kind is bytes:
        return value  # type: ignore[no-any-return]
    if kind is bytearray:
        return bytes(value)
    if issubclass(kind, str):
        return str.__str__(value)
    if issubclass(kind, bytes):
        return bytes.__getitem__(value, slice(None))
    raise TypeError(f"File: data must be text (str) or bytes, not {kind.__name__}")


class File:
    """A file: ``File("report.csv", "a,b\\n1,2\\n")`` or ``File("chart.png", png_bytes)``.

    Attributes: ``name``, ``mime`` (None: guessed from the name by whoever sends it), ``data``
    (``bytes``), ``text`` (the content as text, or None if it is not UTF-8) and ``size``.
    """

    __slots__ = ("_content", "_mime", "_name")
    _name: str
    _content: str | bytes
    _mime: str | None

    def __init__(self, name: object, data: object, mime: object = None) -> None:
        name = _exact_text(name, "name")
        if not name or len(name) > MAX_NAME_CHARS or "/" in name or "\\" in name or "\x00" in name:
            raise ValueError(
                f"File: the name must be 1 to {MAX_NAME_CHARS} characters without / \\ or NUL"
            )
        content = _exact_content(data)
        size = (
            len(content.encode("utf-8", "surrogatepass")) if type(content) is str else len(content)
        )
        if size > MAX_FILE_BYTES:
            raise ValueError(
                f"File: {name!r} holds {size} bytes; a file a script makes holds at most "
                f"{MAX_FILE_BYTES} bytes (it goes to the host in one call of at most "
                f"{MAX_CALL_BYTES // 1024} KiB)"
            )
        if mime is not None:
            mime = _exact_text(mime, "mime")
            if not MIME.fullmatch(mime):
                raise ValueError("File: mime must look like 'text/csv' or 'image/png'")
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_content", content)
        object.__setattr__(self, "_mime", mime)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("a File cannot be changed; make a new one")

    @property
    def name(self) -> str:
        """The file's name (what the receiver sees)."""
        return self._name

    @property
    def mime(self) -> str | None:
        """The media type, or None."""
        return self._mime

    @property
    def data(self) -> bytes:
        """The content as bytes (text is UTF-8 encoded)."""
        content = self._content  # exact str or bytes: set by this class only
        if isinstance(content, str):
            return content.encode("utf-8", "surrogatepass")
        return content

    @property
    def text(self) -> str | None:
        """The content as text, or None when it is bytes that are not UTF-8."""
        content = self._content
        if isinstance(content, str):
            return content
        try:
            return content.decode("utf-8")
        except UnicodeDecodeError:
            return None

    @property
    def size(self) -> int:
        """The content's size in bytes."""
        return len(self.data)

    def __repr__(self) -> str:
        return f"File({self._name!r}, <{self.size} bytes>)"

    def plain(self) -> dict[str, Any]:
        """The plain-JSON form that crosses to the host."""
        content = self._content
        body: dict[str, Any] = {"name": self._name, "mime": self._mime}
        if isinstance(content, str):
            body["text"] = content
        else:
            body["base64"] = base64.b64encode(content).decode("ascii")
        return {FILE_KEY: body}


def from_host(value: object) -> object:
    """A host's answer with a file in it (``{"$file": {"name", "mime", "data": bytes}}``) as a
    :class:`File`; anything else unchanged. The host is trusted; the shape is still checked."""
    if type(value) is not dict or len(value) != 1 or FILE_KEY not in value:
        return value
    body = value[FILE_KEY]
    if type(body) is not dict:
        return value
    name, data, mime = body.get("name"), body.get("data"), body.get("mime")
    if type(name) is not str or type(data) is not bytes:
        return value
    made = File.__new__(File)
    object.__setattr__(made, "_name", name)
    object.__setattr__(made, "_content", data)
    object.__setattr__(made, "_mime", mime if type(mime) is str else None)
    return made
