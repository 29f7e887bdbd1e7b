"""A bot's ``bot.yaml``: every key parsed and checked here, every problem at its line.

:func:`parse_config` is pure: the file's text in, a :class:`BotConfig` or the list of problems
out. Limits are written in friendly units (``memory_mb``, ``output_kb``) and converted to the
sandbox's :class:`Limits` here; ``webhook`` becomes :class:`WebhookSettings`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, TypeGuard

from runtime.bots.command import YamlDocument, load_yaml, suggest
from runtime.bots.cron import DEFAULT_CATCH_UP, MAX_CATCH_UP, Cron, CronError, parse_cron
from runtime.errors import LinkError, Problem
from runtime.outbound.policy import HttpPolicy, parse_patterns
from runtime.signing.links import ClickRate, WebhookSettings
from sandbox import JSON, Limits
from sandbox.jsontypes import is_int
from sandbox.limits import KIB, MIB

CONFIG_FILE: Final = "bot.yaml"
CONFIG_KEYS: Final = (
    "id",
    "name",
    "token_env",
    "username",
    "limits",
    "properties",
    "runs",
    "webhook",
    "telegram",
    "settings",
    "http",
    "files",
    "pages",
    "schedules",
)
MAX_JSON_NODES: Final = 10_000
MAX_JSON_DEPTH: Final = 64
BOT_ID: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
ENV_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
USERNAME: Final = re.compile(r"[A-Za-z0-9_]{1,32}")
TOKEN_LIKE: Final = re.compile(r"(?<![\w-])\d+:[A-Za-z0-9_-]{30,}")
"""What a Telegram bot token looks like; one in bot.yaml is refused (tokens live in the env)."""


@dataclass(frozen=True, slots=True)
class _LimitKey:
    """How one ``limits`` key of bot.yaml maps to a :class:`sandbox.Limits` field."""

    field: str
    scale: int
    integer: bool


LIMIT_KEYS: Final[Mapping[str, _LimitKey]] = {
    "cpu_seconds": _LimitKey("cpu_seconds", 1, integer=False),
    "wall_seconds": _LimitKey("wall_seconds", 1, integer=False),
    "memory_mb": _LimitKey("memory_bytes", MIB, integer=True),
    "output_kb": _LimitKey("output_bytes", KIB, integer=True),
    "capability_calls": _LimitKey("capability_calls", 1, integer=True),
    "recursion_depth": _LimitKey("recursion_depth", 1, integer=True),
    "wait_seconds": _LimitKey("wait_seconds", 1, integer=False),
}
PROPERTY_KEYS: Final = ("max_value_bytes", "max_bot_bytes")
RUN_KEYS: Final = ("max_pending", "max_generations")
RATE_KEYS: Final = ("per_link", "per_user", "per_bot")
WEBHOOK_KEYS: Final = (*RATE_KEYS, "allow_http_redirects")
HTTP_NUMBERS: Final[Mapping[str, tuple[str, float, float, bool]]] = {
    # bot.yaml key: (HttpPolicy field, lowest, highest, whole number)
    "timeout_seconds": ("timeout", 0.1, 120, False),
    "max_kb": ("max_bytes", 1, 16384, True),
    "per_run": ("per_run", 1, 1000, True),
    "per_minute": ("per_minute", 1, 100_000, True),
    "max_redirects": ("max_redirects", 0, 20, True),
}
HTTP_KEYS: Final = ("allow", "deny", "ports", *HTTP_NUMBERS)


@dataclass(frozen=True, slots=True)
class PropertyLimits:
    """How much a bot may keep in properties: per value, and in all."""

    max_value_bytes: int = 64 * KIB
    max_bot_bytes: int = 10 * MIB


@dataclass(frozen=True, slots=True)
class RunLimits:
    """How far ``Bot.run`` may go: runs queued at once, and generations of one chain."""

    max_pending: int = 1000
    max_generations: int = 10


FILE_KEYS: Final = {"max_upload_mb": 50, "max_download_mb": 20}
"""``files`` settings and their highest values (Telegram's: 50 MB uploads, 20 MB ``getFile``)."""


@dataclass(frozen=True, slots=True)
class FileLimits:
    """How large a file a bot's scripts may upload (``Api.sendDocument(document=File(...))``)
    or download (``Api.downloadFile``), in bytes. ``max_upload_bytes`` is also the most file
    content one run may send to the host (``WorkerPool.run(file_bytes=...)``)."""

    max_upload_bytes: int = 50 * MIB
    max_download_bytes: int = 20 * MIB


PAGE_KEYS: Final = {"title": 80, "text": 400, "link": 2048}
"""``pages`` settings and their longest values (characters)."""
PAGE_LINK: Final = re.compile(
    r"https?://[^\s\x00-\x1f\x7f\\\"'<>]+|tg://[^\s\x00-\x1f\x7f\\\"'<>]+"
)


@dataclass(frozen=True, slots=True)
class PageBranding:
    """How the platform's pages for this bot's links look to end users (``pages:`` in
    bot.yaml): a title, a short text, and a link back to the bot. Plain text, escaped when
    shown; ``link`` defaults to ``https://t.me/<username>`` when the bot has a username."""

    title: str = ""
    text: str = ""
    link: str | None = None


@dataclass(frozen=True, slots=True)
class BotConfig:
    """A bot's ``bot.yaml``: identity, where its token is, limits and free-form settings."""

    id: str
    token_env: str
    name: str = ""
    username: str | None = None
    limits: Limits = field(default_factory=Limits)
    properties: PropertyLimits = field(default_factory=PropertyLimits)
    runs: RunLimits = field(default_factory=RunLimits)
    webhook: WebhookSettings = field(default_factory=WebhookSettings)
    telegram: dict[str, JSON] = field(default_factory=dict)
    settings: dict[str, JSON] = field(default_factory=dict)
    http: HttpPolicy = field(default_factory=HttpPolicy)
    files: FileLimits = field(default_factory=FileLimits)
    pages: PageBranding = field(default_factory=PageBranding)
    schedules: tuple[Schedule, ...] = ()


def parse_config(text: str, folder_name: str) -> tuple[BotConfig | None, list[Problem]]:
    """Parse the text of ``bot.yaml``; return the config, or ``None`` and every problem."""
    problems = [
        Problem(
            "this looks like a Telegram bot token; keep the token in an environment variable "
            "and name that variable with token_env",
            CONFIG_FILE,
            text.count("\n", 0, found.start()) + 1,
        )
        for found in TOKEN_LIKE.finditer(text)
    ]
    doc, yaml_problems = load_yaml(text, file=CONFIG_FILE)
    problems.extend(yaml_problems)
    if doc is None:
        return None, problems
    raw = {} if doc.value is None else doc.value
    if not isinstance(raw, dict):
        problems.append(Problem("bot.yaml must be a mapping of settings", CONFIG_FILE, 1))
        return None, problems
    check = _Checker(doc, problems)
    for key in raw:
        if key not in CONFIG_KEYS:
            hint = suggest(str(key), CONFIG_KEYS)
            check.problem(f'unknown setting "{key}"{hint}', str(key))
    bot_id = _bot_id(raw, folder_name, check)
    token_env = _token_env(raw, check)
    username = check.text(raw, "username")
    if username is not None:
        username = username.removeprefix("@")
        if not USERNAME.fullmatch(username):
            check.problem(f"username {username!r} is not a Telegram username", "username")
    limits = _limits(raw.get("limits"), check)
    properties = _whole_numbers(raw.get("properties"), "properties", PROPERTY_KEYS, check)
    runs = _whole_numbers(raw.get("runs"), "runs", RUN_KEYS, check)
    webhook = _webhook(raw, check)
    http = _http(raw, check)
    telegram = check.json_mapping(raw, "telegram")
    if set(telegram) - {"flood_limits"} or not isinstance(telegram.get("flood_limits", True), bool):
        check.problem("telegram takes only flood_limits: true or false", "telegram")
    settings = check.json_mapping(raw, "settings")
    files = _files(raw.get("files"), check)
    pages = _pages(raw.get("pages"), check)
    schedules = _schedules(raw.get("schedules"), check)
    name = check.text(raw, "name")
    if (
        problems
        or token_env is None
        or limits is None
        or properties is None
        or runs is None
        or webhook is None
        or http is None
    ):
        return None, problems
    config = BotConfig(
        id=bot_id,
        token_env=token_env,
        name=name or bot_id,
        username=username,
        limits=limits,
        properties=PropertyLimits(**properties),
        runs=RunLimits(**runs),
        webhook=webhook,
        telegram=telegram,
        settings=settings,
        http=http,
        files=files,
        pages=PageBranding(
            title=pages.get("title") or name or bot_id,
            text=pages.get("text", ""),
            link=pages.get("link") or (f"https://t.me/{username}" if username else None),
        ),
        schedules=schedules,
    )
    return config, []


def _bot_id(raw: Mapping[object, object], folder_name: str, check: _Checker) -> str:
    """The bot's id: ``id`` from bot.yaml, else the folder's name; either must be valid."""
    bot_id = check.text(raw, "id")
    if bot_id is None:
        if not BOT_ID.fullmatch(folder_name):
            check.problem(
                f"the folder name {folder_name!r} is not a valid bot id "
                "(a-z, 0-9, _ and -, at most 64); set id in bot.yaml"
            )
        return folder_name
    if not BOT_ID.fullmatch(bot_id):
        check.problem(f"id {bot_id!r} must be a-z, 0-9, _ and -, at most 64 characters", "id")
    return bot_id


AUTHOR_TOKEN_PREFIX: Final = "TELEGRAM_TOKEN_"  # noqa: S105 - a variable name, not a secret


def assigned_token_env(bot_id: str) -> str:
    """The environment variable an author's bot reads its token from: ``TELEGRAM_TOKEN_`` and
    the id in capitals, ``-`` as ``_`` (``shop-2`` reads ``TELEGRAM_TOKEN_SHOP_2``).

    Authors (not admins) may name only this one, or the one an admin's version of the bot
    named: a bot.yaml is written by its author, and ``token_env`` free for all would let one
    author's bot read another bot's token, or any secret in the server's environment.
    """
    return AUTHOR_TOKEN_PREFIX + bot_id.upper().replace("-", "_")


def _token_env(raw: Mapping[object, object], check: _Checker) -> str | None:
    """The name of the environment variable holding the token (required)."""
    token_env = check.text(raw, "token_env")
    if raw.get("token_env") is None:
        check.problem(
            "token_env is required: the name of the environment variable holding the token",
            "token_env",
        )
    elif (
        token_env is not None
        and not TOKEN_LIKE.search(token_env)
        and not ENV_NAME.fullmatch(token_env)
    ):
        check.problem(f"token_env {token_env!r} is not an environment variable name", "token_env")
    return token_env


class _Checker:
    """Type checks of bot.yaml values that record problems at their keys' lines."""

    def __init__(self, doc: YamlDocument, problems: list[Problem]) -> None:
        self.doc = doc
        self.problems = problems

    def problem(self, message: str, *path: str) -> None:
        line = self.doc.line_of(*path) if path else None
        self.problems.append(Problem(message, CONFIG_FILE, line))

    def text(self, raw: Mapping[object, object], key: str) -> str | None:
        value = raw.get(key)
        if value is None or isinstance(value, str):
            return value
        self.problem(f'"{key}" must be text (quote it), not {type(value).__name__}', key)
        return None

    def mapping(self, raw: Mapping[object, object], key: str) -> dict[object, object]:
        value = raw.get(key)
        if value is None:
            return {}
        if isinstance(value, dict):
            return value
        self.problem(f'"{key}" must be a mapping, not {type(value).__name__}', key)
        return {}

    def json_mapping(self, raw: Mapping[object, object], key: str) -> dict[str, JSON]:
        value = self.mapping(raw, key)
        budget = [MAX_JSON_NODES]
        for name, item in value.items():
            reason = _json_problem(item, f"{key}.{name}", budget)
            if not isinstance(name, str):
                reason = f'"{key}" has the key {name!r}, which is not text (quote it)'
            if reason is not None:
                self.problem(reason, key, str(name))
                return {}
        return value  # type: ignore[return-value]  # checked item by item just above


def _limits(value: object, check: _Checker) -> Limits | None:
    """Convert the ``limits`` mapping (memory in MB, output in KB) to :class:`Limits`."""
    raw = check.mapping({"limits": value}, "limits")
    given: dict[str, float | int] = {}
    ok = True
    for key, number in raw.items():
        spec = LIMIT_KEYS.get(str(key))
        if spec is None:
            hint = suggest(str(key), list(LIMIT_KEYS))
            check.problem(f'unknown limit "{key}"{hint}', "limits", str(key))
            ok = False
            continue
        whole = spec.integer and spec.scale == 1
        if not _is_number(number, whole=whole):
            want = "a whole number" if whole else "a number"
            check.problem(f'limit "{key}" must be {want}, not {number!r}', "limits", str(key))
            ok = False
            continue
        scaled = number * spec.scale
        given[spec.field] = int(scaled) if spec.integer else float(scaled)
    if not ok:
        return None
    try:
        return Limits(**given)  # type: ignore[arg-type]  # keys come from LIMIT_KEYS
    except ValueError as exc:
        check.problem(str(exc).replace("limit ", "limits: ", 1), "limits")
        return None


def _webhook(raw: Mapping[object, object], check: _Checker) -> WebhookSettings | None:
    """``webhook``: click rates (``30/60``, clicks per seconds) and plain-http redirects."""
    before = len(check.problems)
    values: dict[str, ClickRate | bool] = {}
    for key, value in check.mapping(raw, "webhook").items():
        name = str(key)
        if name in RATE_KEYS:
            try:
                values[name] = ClickRate.parse(value, f"webhook.{name}")
            except LinkError as exc:
                check.problem(exc.message, "webhook", name)
        elif name == "allow_http_redirects":
            if type(value) is bool:
                values[name] = value
            else:
                check.problem(
                    f"webhook.allow_http_redirects must be true or false, not {value!r}",
                    "webhook",
                    name,
                )
        else:
            hint = suggest(name, WEBHOOK_KEYS)
            check.problem(f'unknown webhook setting "{name}"{hint}', "webhook", name)
    if len(check.problems) > before:
        return None
    return WebhookSettings(**values)  # type: ignore[arg-type]  # keys and types checked above


def _http(raw: Mapping[object, object], check: _Checker) -> HttpPolicy | None:
    """``http``: allow and deny lists of host patterns, extra ports, and request limits."""
    before = len(check.problems)
    values: dict[str, object] = {}
    for key, value in check.mapping(raw, "http").items():
        name = str(key)
        if name in ("allow", "deny"):
            items = value if isinstance(value, list) else None
            if items is None:
                check.problem(f"http.{name} must be a list of host patterns", "http", name)
                continue
            try:
                values[name] = parse_patterns(items)
            except ValueError as exc:
                check.problem(f"http.{name}: {exc}", "http", name)
        elif name == "ports":
            if not isinstance(value, list) or not all(
                is_int(port) and 1 <= port <= 65535 for port in value
            ):
                check.problem(
                    "http.ports must be a list of port numbers (1 to 65535)", "http", name
                )
                continue
            values["ports"] = frozenset({80, 443, *value})
        elif name in HTTP_NUMBERS:
            target, low, high, whole = HTTP_NUMBERS[name]
            if not _is_number(value, whole=whole) or not low <= value <= high:
                want = "a whole number" if whole else "a number"
                check.problem(
                    f"http.{name} must be {want} from {low:g} to {high:g}, not {value!r}",
                    "http",
                    name,
                )
                continue
            values[target] = value * 1024 if name == "max_kb" else value
        else:
            hint = suggest(name, HTTP_KEYS)
            check.problem(f'unknown http setting "{name}"{hint}', "http", name)
    if len(check.problems) > before:
        return None
    return HttpPolicy(**values)  # type: ignore[arg-type]  # keys and types checked above


def _files(value: object, check: _Checker) -> FileLimits:
    """``files``: ``max_upload_mb`` (at most 50) and ``max_download_mb`` (at most 20)."""
    given: dict[str, int] = {}
    for key, number in check.mapping({"files": value}, "files").items():
        name = str(key)
        highest = FILE_KEYS.get(name)
        if highest is None:
            hint = suggest(name, list(FILE_KEYS))
            check.problem(f'unknown files setting "{name}"{hint}', "files", name)
        elif not _is_number(number, whole=False) or not 0 < number <= highest:
            check.problem(
                f'"files.{name}" must be a number above 0 and at most {highest}, not {number!r}',
                "files",
                name,
            )
        else:
            given[name.replace("_mb", "_bytes")] = int(number * MIB)
    return FileLimits(**given)


def _pages(value: object, check: _Checker) -> dict[str, str]:
    """``pages``: ``title``, ``text`` (plain text) and ``link`` (an http(s) or tg:// URL)."""
    given: dict[str, str] = {}
    for key, text in check.mapping({"pages": value}, "pages").items():
        name = str(key)
        longest = PAGE_KEYS.get(name)
        if longest is None:
            hint = suggest(name, list(PAGE_KEYS))
            check.problem(f'unknown pages setting "{name}"{hint}', "pages", name)
        elif not isinstance(text, str) or len(text) > longest:
            check.problem(
                f'"pages.{name}" must be text of at most {longest} characters', "pages", name
            )
        elif name == "link" and not PAGE_LINK.fullmatch(text):
            check.problem(
                '"pages.link" must be an http(s):// or tg:// URL without spaces or quotes',
                "pages",
                name,
            )
        else:
            given[name] = text
    return given


def _is_number(value: object, *, whole: bool) -> TypeGuard[int | float]:
    """True for a finite int (or float unless ``whole``), never a bool."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return not whole and isinstance(value, float) and math.isfinite(value)


def _whole_numbers(
    value: object, section: str, keys: tuple[str, ...], check: _Checker
) -> dict[str, int] | None:
    """The positive whole numbers of a section (``properties``, ``runs``), by known key."""
    raw = check.mapping({section: value}, section)
    given: dict[str, int] = {}
    ok = True
    for key, number in raw.items():
        if key not in keys:
            hint = suggest(str(key), keys)
            check.problem(f'unknown {section} setting "{key}"{hint}', section, str(key))
            ok = False
        elif not is_int(number) or number <= 0:
            check.problem(
                f'"{section}.{key}" must be a positive whole number, not {number!r}',
                section,
                str(key),
            )
            ok = False
        else:
            given[str(key)] = number
    return given if ok else None


def _json_problem(value: object, where: str, budget: list[int], depth: int = 0) -> str | None:
    """Say why ``value`` is not plain JSON (dates, NaN, huge or self-referencing alias trees),
    or ``None``."""
    budget[0] -= 1
    if depth > MAX_JSON_DEPTH:
        return f'"{where}" is nested more than {MAX_JSON_DEPTH} deep'
    if budget[0] < 0:
        return f'"{where}" is too large (more than {MAX_JSON_NODES} values)'
    if value is None or isinstance(value, bool | int | str):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f'"{where}" holds {value}, which JSON cannot'
    if isinstance(value, list):
        for index, item in enumerate(value):
            reason = _json_problem(item, f"{where}[{index}]", budget, depth + 1)
            if reason is not None:
                return reason
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f'"{where}" has the key {key!r}, which is not text (quote it)'
            reason = _json_problem(item, f"{where}.{key}", budget, depth + 1)
            if reason is not None:
                return reason
        return None
    return f'"{where}" holds a {type(value).__name__}, which is not a JSON value (quote it)'


# -- schedules (issue 11) --
SCHEDULE_KEYS: Final = ("cron", "command", "timezone", "name", "params", "options", "catch_up")
MAX_SCHEDULES: Final = 50
SCHEDULE_NAME: Final = re.compile(r"[A-Za-z0-9_./-]{1,64}")


@dataclass(frozen=True, slots=True)
class Schedule:
    """One ``schedules:`` entry: run ``command`` at every occurrence of ``cron``.

    ``name`` (default: the command) keys the schedule in the store and in the run log's
    trigger ``schedule:<name>``; ``catch_up`` is how old (seconds) the latest missed occurrence
    may be and still run after downtime (see :func:`runtime.bots.cron.plan`).
    """

    name: str
    cron: Cron
    command: str
    params: str = ""
    options: JSON = None
    catch_up: float = DEFAULT_CATCH_UP
    line: int | None = None

    def spec(self) -> str:
        """What decides the occurrences: a change of it restarts the schedule from now."""
        return f"{self.cron.expression}|{self.cron.timezone}"


def _schedules(value: object, check: _Checker) -> tuple[Schedule, ...]:
    """``schedules:``, a list of entries; each problem names the entry (by index) and key."""
    if value is None:
        return ()
    if not isinstance(value, list):
        check.problem(
            f'"schedules" must be a list of entries, not {type(value).__name__}', "schedules"
        )
        return ()
    if len(value) > MAX_SCHEDULES:
        check.problem(f"at most {MAX_SCHEDULES} schedules per bot", "schedules")
        return ()
    found: list[Schedule] = []
    names: dict[str, int] = {}
    for index, entry in enumerate(value):
        where = ("schedules", str(index))
        schedule = _schedule(entry, index, where, check)
        if schedule is None:
            continue
        if schedule.name in names:
            check.problem(
                f"schedules[{index}]: the name {schedule.name!r} is already used by "
                f"schedules[{names[schedule.name]}]; give each entry its own name:",
                *where,
            )
            continue
        names[schedule.name] = index
        found.append(schedule)
    return tuple(found)


def _schedule(
    entry: object, index: int, where: tuple[str, str], check: _Checker
) -> Schedule | None:
    """One entry, or None (with its problems recorded)."""
    label = f"schedules[{index}]"
    if not isinstance(entry, dict):
        check.problem(f"{label} must be a mapping with cron: and command:", *where)
        return None
    before = len(check.problems)
    for key in entry:
        if key not in SCHEDULE_KEYS:
            hint = suggest(str(key), SCHEDULE_KEYS)
            check.problem(f'{label}: unknown key "{key}"{hint}', *where, str(key))
    texts = _schedule_texts(entry, label, where, check)
    cron: Cron | None = None
    expression, timezone = texts.get("cron"), texts.get("timezone") or "UTC"
    if expression is not None:
        try:
            cron = parse_cron(expression, timezone)
        except CronError as exc:
            key = "timezone" if str(exc).startswith("timezone") else "cron"
            check.problem(f"{label}: {exc}", *where, key)
    command = texts.get("command")
    name = texts.get("name") or command or ""
    if texts.get("name") is not None and not SCHEDULE_NAME.fullmatch(name):
        check.problem(
            f"{label}.name {name!r} must be 1 to 64 letters, digits, _ . / -", *where, "name"
        )
    catch_up = entry.get("catch_up", DEFAULT_CATCH_UP)
    if not _is_number(catch_up, whole=False) or not 0 <= catch_up <= MAX_CATCH_UP:
        check.problem(
            f"{label}.catch_up must be seconds from 0 to {MAX_CATCH_UP:.0f}, not {catch_up!r}",
            *where,
            "catch_up",
        )
    options = entry.get("options")
    reason = _json_problem(options, f"{label}.options", [MAX_JSON_NODES])
    if reason is not None:
        check.problem(reason, *where, "options")
    if len(check.problems) > before or cron is None or command is None:
        return None
    return Schedule(
        name=name,
        cron=cron,
        command=command,
        params=texts.get("params") or "",
        options=options,
        catch_up=float(catch_up),
        line=check.doc.line_of(*where),
    )


def _schedule_texts(
    entry: Mapping[object, object], label: str, where: tuple[str, str], check: _Checker
) -> dict[str, str | None]:
    """The text keys of one entry (cron and command required)."""
    texts: dict[str, str | None] = {}
    for key in ("cron", "command", "timezone", "name", "params"):
        item = entry.get(key)
        if item is None or isinstance(item, str):
            texts[key] = item
        else:
            check.problem(f"{label}.{key} must be text (quote it), not {item!r}", *where, key)
    for key in ("cron", "command"):
        if entry.get(key) is None:
            check.problem(f"{label}: {key} is required", *where)
    return texts
