"""The runtime's exception tree. Foreign errors are translated once, at the edge that meets them.

::

    BotboxError
    ├── ConfigError            bad settings or bot.yaml (``problems`` lists each one)
    ├── BotFolderError         a bot folder with problems (``problems``: file, line, message)
    ├── NotFound               unknown bot or command (HTTP 404)
    ├── LinkError              a webhook link that cannot be minted or is refused (``status``)
    ├── SecretError            a bot secret refused (name, value), or one that does not open
    ├── UploadRefused          an uploaded archive or file refused as such (HTTP 400)
    ├── StoreError             the store failed (``sqlite3.Error`` is translated in the store)
    │   ├── QuotaExceeded      a property value or a bot's data is over its size limit
    │   │   └── PendingRunsExceeded  a commit would queue more runs than ``runs.max_pending``
    │   ├── ConflictError      a property a run read changed before the run committed
    │   └── NotANumber         ``incProperty`` on a property whose value is not a number
    ├── TelegramError          talking to the Bot API failed
    │   ├── ApiError           Telegram refused a call (``code``, ``description``, ``retry_after``)
    │   ├── CallRefused        a call failed the spec check before it was sent
    │   ├── TransportError     the network failed (``httpx.HTTPError`` is translated in the client)
    │   └── FileRefused        a file to upload or download is malformed or over a size cap
    └── OutboundError          a script's HTTP request was refused or failed (``reason``, ``host``)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem in a bot folder or configuration, located where possible."""

    message: str
    file: str | None = None
    line: int | None = None
    warning: bool = False
    """A warning is reported but does not stop the bot from loading."""

    def describe(self) -> str:
        """Return ``'file:line: message'`` style text (``'file:line: warning: ...'``)."""
        where = self.file or ""
        if self.line is not None:
            where += f":{self.line}"
        message = f"warning: {self.message}" if self.warning else self.message
        return f"{where}: {message}" if where else message


class BotboxError(Exception):
    """Base class of every runtime error."""


class ConfigError(BotboxError):
    """Settings or a bot's configuration are invalid."""

    def __init__(self, problems: Sequence[Problem] | str) -> None:
        if isinstance(problems, str):
            problems = [Problem(problems)]
        self.problems = tuple(problems)
        super().__init__("; ".join(p.describe() for p in self.problems))


class SecretError(BotboxError):
    """A bot secret's name or value is refused, or a sealed secret does not open."""


class BotFolderError(ConfigError):
    """A bot folder has problems (bad YAML, unknown fields, duplicates, compile errors)."""


class NotFound(BotboxError):
    """An unknown bot or command."""


class LinkError(BotboxError):
    """A signed link was refused (``status`` is the HTTP status) or cannot be minted."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class StoreError(BotboxError):
    """The store could not do what was asked."""


class QuotaExceeded(StoreError):
    """A property value, or a bot's total data, is over its size limit."""


class PendingRunsExceeded(QuotaExceeded):
    """A commit would leave more unfinished ``Bot.run`` runs queued than the bot may have."""

    def __init__(self, bot_id: str, pending: int, adding: int, limit: int) -> None:
        super().__init__(
            f"bot {bot_id!r} has {pending} unfinished scheduled runs; {adding} more would pass "
            f"its limit of {limit} (runs.max_pending in bot.yaml)"
        )
        self.pending = pending
        self.adding = adding
        self.limit = limit


class ConflictError(StoreError):
    """A property a run read (or compared with ``if_version``) changed before the run committed."""

    def __init__(self, scope: str, name: str, read: int, now: int) -> None:
        super().__init__(
            f"property {name!r} ({scope}) changed while this run used it (read at version "
            f"{read}, now {now}); nothing this run wrote was kept"
        )
        self.scope = scope
        self.name = name


class AlreadyExists(StoreError):
    """A user (or another named thing) with this name is already in the store."""


class NotANumber(StoreError):
    """``incProperty`` met a property whose value is not a number (or would stop being finite)."""


class TelegramError(BotboxError):
    """Talking to the Telegram Bot API failed."""


class ApiError(TelegramError):
    """Telegram answered a call with ``ok: false``."""

    def __init__(
        self, method: str, code: int, description: str, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{method}: {code} {description}")
        self.method = method
        self.code = code
        self.description = description
        self.retry_after = retry_after


class CallRefused(TelegramError):
    """A call was refused before sending: unknown method or fields (see ``problems``)."""

    def __init__(self, method: str, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.method = method
        self.problems = tuple(problems)


class TransportError(TelegramError):
    """The Bot API could not be reached, or answered with something that is not its JSON."""


class OutboundError(BotboxError):
    """A script's outbound HTTP request was refused or failed.

    ``reason`` is one of ``refused`` (the SSRF rules or the bot's allow/deny lists), ``limit``
    (requests per run or per minute), ``timeout``, ``too_large``, ``redirects``,
    ``unreachable`` or ``bad_request``. ``host`` is the host concerned, when there is one.
    Messages name the host, never the path or query (they may carry secrets).
    """

    def __init__(self, message: str, *, reason: str, host: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.host = host


class FileRefused(TelegramError):
    """A file to upload or download is refused: malformed (``status`` 400), or over a size cap
    (413)."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class UploadRefused(BotboxError):
    """An uploaded archive or file was refused before any check of its contents (HTTP 400):
    too large, a path outside the bot, a link or device, an unknown file type..."""
