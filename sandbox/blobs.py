"""File content held by the host for one run: spooled to a temporary file, counted.

A :class:`Blob` is what the host keeps of a file that crossed from a worker (an upload pulled
in chunks, :class:`sandbox.conversation.RunFiles`) or that goes to one (a download): in memory
up to :data:`SPOOL_BYTES`, on disk above, never more than it declared. Every byte held counts
against a :class:`FileBudget` shared by all runs of the pool (``BOTBOX_FILE_BUDGET_MB``), so
many large files at once are refused, not a reason for the server to run out of memory.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from typing import Final

from sandbox.errors import FileRefused

MIB: Final = 1024 * 1024
SPOOL_BYTES: Final = 1 * MIB
"""A blob larger than this is written to a temporary file instead of held in memory."""
DEFAULT_FILE_BUDGET: Final = 256 * MIB
"""Bytes of files all runs of one pool may hold at once, unless the pool is told otherwise."""


class FileBudget:
    """Bytes of file content held by the host across all runs (one per pool)."""

    def __init__(self, total: int = DEFAULT_FILE_BUDGET) -> None:
        self.total = total
        self.used = 0

    def reserve(self, size: int) -> None:
        """Count ``size`` more bytes, or raise :class:`FileRefused` (503) if they do not fit."""
        if self.used + size > self.total:
            raise FileRefused(
                f"the server holds {self.used // MIB} MiB of other files right now and may hold "
                f"{self.total // MIB} MiB (BOTBOX_FILE_BUDGET_MB); try again shortly",
                status=503,
            )
        self.used += size

    def release(self, size: int) -> None:
        """Give back ``size`` bytes."""
        self.used = max(0, self.used - size)


class Blob:
    """File content the host holds: written once (``write``), then read (``reader``,
    ``chunks``), and closed, which gives its bytes back to the budget."""

    def __init__(self, budget: FileBudget) -> None:
        self.budget = budget
        self.size = 0
        self.reserved = 0
        self.closed = False
        self._file = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115

    def reserve(self, size: int) -> None:
        """Count ``size`` bytes against the budget before they are written (see :meth:`write`)."""
        self.budget.reserve(size)
        self.reserved += size

    def write(self, data: bytes) -> None:
        """Append ``data``; what was not reserved beforehand is reserved now (FileRefused)."""
        if self.size + len(data) > self.reserved:
            self.reserve(self.size + len(data) - self.reserved)
        self._file.write(data)
        self.size += len(data)

    def reader(self) -> BlobReader:
        """A file object over the content (read, seek, tell), at its start: what httpx streams
        from (and seeks back to the start of, when a call is retried)."""
        self._file.seek(0)
        return BlobReader(self._file, self.size)

    def chunks(self, size: int) -> Iterator[bytes]:
        """The content in pieces of at most ``size`` bytes."""
        self._file.seek(0)
        while chunk := self._file.read(size):
            yield chunk

    def read(self) -> bytes:
        """The whole content (for small blobs and tests)."""
        self._file.seek(0)
        return self._file.read()

    def close(self) -> None:
        """Drop the content (and its temporary file) and give its bytes back; idempotent."""
        if not self.closed:
            self.closed = True
            self._file.close()
            self.budget.release(self.reserved)

    def __repr__(self) -> str:
        return f"<Blob {self.size} bytes>"


class BlobReader:
    """Read-only access to a blob's content, without ``fileno`` (which would make a spooled
    file roll over to disk just to be measured)."""

    def __init__(self, file: tempfile.SpooledTemporaryFile[bytes], size: int) -> None:
        self._file = file
        self._size = size

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes from the current position."""
        return self._file.read(size)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move the position (as ``io``'s ``seek``)."""
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        """The current position."""
        return self._file.tell()

    def __len__(self) -> int:
        return self._size
