"""The admin API's typed bodies: pydantic v2 models that validate requests, shape responses and
give the OpenAPI document its JSON Schemas (one definition for all three).

Request models forbid unknown fields, so a typo is a 422 naming the field, not a silent no-op.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    RootModel,
    StrictBool,
)

from runtime.signing.links import MAX_PARAMS, MAX_VALUE, PARAM_NAME, RESERVED

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$", description="a user name")]
BotRole = Literal["author", "viewer"]
Role = Literal["admin", "author", "viewer"]
Scope = Annotated[
    str,
    Field(
        pattern=r"^(bot|user:-?[0-9]{1,19}|chat:-?[0-9]{1,19})$",
        description="whose property: `bot`, `user:<id>` or `chat:<id>`",
    ),
]
PropertyName = Annotated[str, Field(min_length=1, max_length=128)]
RunStatus = Literal["ok", "failed", "script_error", "compile_error", "limit_exceeded", "crashed"]
Timestamp = Annotated[float, Field(description="seconds since the Unix epoch")]


class Input(BaseModel):
    """A request query: unknown fields are refused (values come as text, and are converted)."""

    model_config = ConfigDict(extra="forbid")


class Body(BaseModel):
    """A request body: unknown fields are refused; numbers and booleans are taken only as JSON
    numbers and booleans (see :data:`Version`, :data:`Seconds`)."""

    model_config = ConfigDict(extra="forbid")


def _json_number(value: object) -> object:
    """Refuse what JSON Schema does not call a number: text, and booleans."""
    if type(value) is bool or type(value) is str:
        raise ValueError("expected a JSON number")
    return value


# Integers as JSON Schema says (``3`` or ``3.0``, never ``"3"`` or ``true``), numbers likewise.
TelegramId = Annotated[int, Field(ge=-(2**63), lt=2**63), BeforeValidator(_json_number)]
Version = Annotated[int, Field(ge=0, lt=2**63), BeforeValidator(_json_number)]
Seconds = Annotated[float, Field(gt=0, le=10 * 365 * 86400), BeforeValidator(_json_number)]
LinkSeconds = Annotated[
    float, Field(gt=0, le=366 * 24 * 3600), BeforeValidator(_json_number)
]  # a link lives at most 366 days (signing.links.MAX_EXPIRY)


def _link_params(value: dict[str, str]) -> dict[str, str]:
    """Refuse the param names a link cannot carry (the schema says the same)."""
    for name in value:
        if not PARAM_NAME.fullmatch(name) or name in RESERVED:
            raise ValueError(
                f"param name {name!r} must be 1-64 letters, digits or _.~- "
                f"and none of {', '.join(sorted(RESERVED))}"
            )
    return value


LinkParams = Annotated[
    dict[str, Annotated[str, Field(max_length=MAX_VALUE)]],
    Field(
        max_length=MAX_PARAMS,
        json_schema_extra={
            "propertyNames": {
                "pattern": f"^{PARAM_NAME.pattern}$",
                "not": {"enum": sorted(RESERVED)},
            }
        },
    ),
    AfterValidator(_link_params),
]
"""A link's params, as :func:`runtime.signing.links.check_params` takes them."""
Days = Annotated[float, Field(gt=0, le=3650), BeforeValidator(_json_number)]


class ProblemOut(BaseModel):
    """One problem with a request: where (``body.name``) and what."""

    where: str
    message: str
    file: str | None = Field(default=None, description="for a bot's check: the file")
    line: int | None = Field(default=None, description="for a bot's check: the line")


class ErrorBody(BaseModel):
    """Every error the API answers: a code, a message, and for invalid input every problem."""

    ok: Literal[False] = False
    error: str
    message: str
    problems: list[ProblemOut] = []


# -- bots --
BotState = Literal["serving", "failed", "stale", "disabled", "new"]


class CheckProblem(BaseModel):
    """One problem ``run.py check`` found in a bot's files: where (file, line) and what."""

    file: str | None
    line: int | None
    message: str
    warning: bool = Field(default=False, description="a warning never stops a bot")


class BotOut(BaseModel):
    """A bot as the server runs it now."""

    id: str
    status: BotState = Field(
        description="`serving`; `failed`: nothing serves (its deploys were refused); `stale`: "
        "an older version serves (the latest change was refused); `disabled`; `new`: created, "
        "nothing deployed yet"
    )
    errors: list[str] = Field(description="the refused change's problems, as text lines")
    problems: list[CheckProblem] = Field(
        default=[], description="the refused change's problems, by file and line"
    )
    version: int | None = Field(default=None, description="the version serving (or stored)")
    commands: list[str]
    has_token: bool = Field(description="whether the server has the bot's Telegram token")
    access: Literal["read", "write"] = Field(description="what your token may do with it")


class BotList(BaseModel):
    """The bots your token may see."""

    bots: list[BotOut]


# -- runs --
class RunsQuery(Input):
    """Filters for a bot's run log; pass ``next_cursor`` back as ``cursor`` for the next page."""

    command: Annotated[str, Field(max_length=256)] | None = None
    status: RunStatus | None = Field(
        default=None, description="how runs ended; `failed`: every way but `ok`"
    )
    user: Annotated[int, Field(ge=-(2**63), lt=2**63)] | None = None
    since: Timestamp | None = None
    until: Timestamp | None = None
    cursor: Annotated[int, Field(ge=1, lt=2**63)] | None = None
    limit: Annotated[int, Field(ge=1, le=500)] = 50


class RunSummary(BaseModel):
    """One run in a listing."""

    id: int
    command: str
    trigger: str
    status: str
    user_id: int | None
    chat_id: int | None
    started_at: Timestamp
    cpu_seconds: float
    wall_seconds: float
    error: JsonValue


class RunPage(BaseModel):
    """A page of runs, newest first."""

    runs: list[RunSummary]
    next_cursor: int | None = Field(description="pass as `cursor` for older runs; null at the end")


class RunFull(RunSummary):
    """One run in full: its output, its Telegram calls and the rest of what was recorded."""

    output: str
    calls: list[JsonValue]
    extra: dict[str, JsonValue]


# -- properties --
class PropertyNamesQuery(Input):
    """One page of property names: those starting with ``prefix``, sorted, after ``after``."""

    prefix: Annotated[str, Field(max_length=128)] = ""
    after: Annotated[str, Field(max_length=128)] = ""
    limit: Annotated[int, Field(ge=1, le=1000)] = 100


class PropertyNames(BaseModel):
    """Property names of one scope; ``next_after`` continues the listing."""

    scope: str
    names: list[str]
    next_after: str | None


class PropertyOut(BaseModel):
    """A property's value and version (the version grows with every write)."""

    scope: str
    name: str
    value: JsonValue
    version: int


class PropertyIn(Body):
    """A value to set; with ``if_version``, only if the property still has that version."""

    value: JsonValue
    if_version: Version | None = None


class PropertyDeleted(BaseModel):
    """What a delete did."""

    scope: str
    name: str
    deleted: bool


# -- keys --
class KeyOut(BaseModel):
    """A link-signing key (never its secret)."""

    id: str
    state: str
    created: Timestamp


class KeyRingOut(BaseModel):
    """The link-signing keys, and how often each bot's links were revoked."""

    keys: list[KeyOut]
    epochs: dict[str, int]


class Revoked(BaseModel):
    """Every link of the bot signed before now is refused."""

    bot_id: str
    epoch: int


# -- links --
class LinkIn(Body):
    """A signed link to mint (for testing a bot's webhooks)."""

    command: Annotated[str, Field(min_length=1, max_length=256)]
    user_id: TelegramId | None = Field(
        default=None, description="the user the link runs for; null for a global link"
    )
    options: JsonValue = None
    params: LinkParams = {}
    redirect: Annotated[
        str | None, Field(max_length=2048, pattern=r"^https?://[A-Za-z0-9.-]+(:[0-9]+)?(/\S*)?$")
    ] = None
    expires_in: LinkSeconds | None = None
    once: StrictBool = False


class LinkOut(BaseModel):
    """A signed link."""

    url: str


# -- users and tokens --
class UserIn(Body):
    """A user to create."""

    name: Name
    role: Role


class UserPatch(Body):
    """A user's new role."""

    role: Role


class GrantIn(Body):
    """A role on one bot."""

    role: BotRole


class UserOut(BaseModel):
    """A user, its role and its grants by bot."""

    name: str
    role: Role
    created_at: Timestamp
    grants: dict[str, BotRole]


class UserList(BaseModel):
    """Every user."""

    users: list[UserOut]


class Deleted(BaseModel):
    """A deletion that happened."""

    deleted: str


class TokenIn(Body):
    """A token to create for a user; it expires after ``expires_days`` if given."""

    user: Name
    expires_days: Days | None = None


class TokenOut(BaseModel):
    """A token as listed: its shown prefix, never the token."""

    id: int
    user: str
    prefix: str
    created_at: Timestamp
    expires_at: Timestamp | None
    revoked_at: Timestamp | None
    last_used_at: Timestamp | None


class TokenCreated(TokenOut):
    """A new token: ``token`` is shown this once and never again."""

    token: str


class TokenList(BaseModel):
    """Tokens, newest first."""

    tokens: list[TokenOut]


# -- audit --
class AuditQuery(Input):
    """Filters for the audit log; pass ``next_cursor`` back as ``cursor``."""

    bot: Annotated[str, Field(max_length=256)] | None = None
    cursor: Annotated[int, Field(ge=1, lt=2**63)] | None = None
    limit: Annotated[int, Field(ge=1, le=500)] = 50


class AuditOut(BaseModel):
    """One change: who, how, what, when, and the value before and after."""

    id: int
    at: Timestamp
    actor: str
    via: str
    action: str
    bot_id: str | None
    target: str
    before: JsonValue
    after: JsonValue


class AuditPage(BaseModel):
    """Audit entries, newest first."""

    entries: list[AuditOut]
    next_cursor: int | None


# -- bots lifecycle, deploy and versions --
BotId = Annotated[
    str,
    Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", description="a bot id (its URL segment)"),
]
VersionNumber = Annotated[int, Field(ge=1, lt=2**63), BeforeValidator(_json_number)]


class BotIn(Body):
    """A bot to create (its code comes with a deploy)."""

    id: BotId


class VersionOut(BaseModel):
    """One immutable version of a bot's files."""

    version: int
    digest: str = Field(description="SHA-256 of the version's files")
    created_at: Timestamp
    origin: str = Field(description="`api`, `cli`, `folder` or `rollback`")
    rollback_of: int | None
    live: bool = Field(description="whether this version is the one serving")


class VersionList(BaseModel):
    """A bot's versions, newest first."""

    live: int | None
    versions: list[VersionOut]


class VersionFiles(BaseModel):
    """The files of one version."""

    version: int
    files: dict[str, str]


class DiffQuery(Input):
    """The two versions to compare."""

    old: Annotated[int, Field(ge=1, lt=2**63)]
    new: Annotated[int, Field(ge=1, lt=2**63)]


class DiffOut(BaseModel):
    """A unified diff from one version to another (empty when their files match)."""

    old: int
    new: int
    diff: str


class RollbackIn(Body):
    """Which version's files to serve again (as a new version)."""

    version: VersionNumber


class Deployed(BaseModel):
    """A deploy that went live (or changed nothing: ``created`` false)."""

    bot_id: str
    version: VersionOut
    created: bool
    warnings: list[CheckProblem]


class FileQuery(Input):
    """``base``: the live version your change is against (409 if another serves by now)."""

    base: Annotated[int, Field(ge=1, lt=2**63)] | None = None


# -- telegram --
class WebhookSet(BaseModel):
    """The webhook as registered with Telegram."""

    url: str
    allowed_updates: list[str] = Field(description="the update kinds the bot's commands handle")
    menu_commands: int = Field(description="commands registered with setMyCommands")


class WebhookInfo(BaseModel):
    """Telegram's ``getWebhookInfo`` result, as Telegram sent it."""

    info: JsonValue


class WebhookSecretOut(BaseModel):
    """The bot's webhook secret: Telegram sends it in ``header`` with every update."""

    header: str
    secret: str
    url: str


# -- try (the emulator) --
TryUserId = Annotated[
    int,
    Field(ge=1, le=2**52 - 1, description="the user's id"),
    BeforeValidator(_json_number),
]
TryChatId = Annotated[
    int,
    Field(
        ge=-(2**52 - 1),
        le=-1,
        description="a group's id (negative); leave it out for the user's private chat",
    ),
    BeforeValidator(_json_number),
]


class TryBase(Body):
    """Who tries, and with which data."""

    user_id: TryUserId = 111
    real_data: StrictBool = Field(
        default=False,
        description="read and write the bot's real properties (default: the separate try store)",
    )


class TryMessage(TryBase):
    """The user sends a message (a command, or the reply a ``need_reply`` command waits for)."""

    kind: Literal["message"]
    text: Annotated[str, Field(min_length=1, max_length=4096)]
    chat_id: TryChatId | None = None


class TryCallback(TryBase):
    """The user presses an inline button with this callback data."""

    kind: Literal["callback"]
    data: Annotated[str, Field(min_length=1, max_length=64)]
    chat_id: TryChatId | None = None


class TryClick(TryBase):
    """The user opens a signed link to a command (minted with the server's real keys)."""

    kind: Literal["click"]
    command: Annotated[str, Field(min_length=1, max_length=256)]
    params: LinkParams = {}
    options: JsonValue = None


class TryIn(RootModel[Annotated[TryMessage | TryCallback | TryClick, Field(discriminator="kind")]]):
    """What to try: a message, a button press or a link click."""


class TryCall(BaseModel):
    """One Bot API call the bot made, and what the emulated Telegram answered."""

    method: str
    params: dict[str, JsonValue]
    ok: bool
    result: JsonValue
    error: str | None = Field(description="why the call was refused (the spec or Telegram)")


class TryRun(BaseModel):
    """One run, as the run log would record it; ``error`` has ``file`` and ``line``."""

    command: str
    status: str
    output: str
    error: JsonValue
    calls: list[JsonValue]
    cpu_seconds: float
    wall_seconds: float
    retries: JsonValue
    trigger: str


class TryChange(BaseModel):
    """A property the try changed (``null``: not set)."""

    scope: str
    name: str
    before: JsonValue
    after: JsonValue


class TryResponse(BaseModel):
    """What the browser got from a click."""

    status: int
    content_type: str | None
    headers: dict[str, str]
    body: str | None
    location: str | None


class TryOut(BaseModel):
    """What a try did."""

    ok: bool = Field(description="false when a run failed (or a click got a 5xx)")
    bot: str
    version: int = Field(description="the version tried (the live one)")
    source: str
    data: Literal["try", "real"]
    trigger: dict[str, JsonValue] = Field(description="the update sent, or the link clicked")
    matched: bool = Field(description="whether a command (or a waiting reply) took the update")
    calls: list[TryCall]
    runs: list[TryRun]
    properties: list[TryChange]
    scheduled: list[dict[str, JsonValue]] = Field(
        description="runs Bot.run asked for: reported, never queued by a try"
    )
    waiting: str | None = Field(description="the need_reply command the next message answers")
    replied: str | None = Field(description="the need_reply command this message answered")
    response: TryResponse | None


# -- secrets --
SecretName = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$",
        description="a secret's name: letters, digits and _, not starting with a digit",
    ),
]


class SecretIn(Body):
    """A secret's value (stored sealed; never answered back by any endpoint)."""

    value: Annotated[str, Field(min_length=1, max_length=16_384)]


class SecretOut(BaseModel):
    """A secret as listings show it: its name and when it was set, never its value."""

    name: str
    updated_at: Timestamp


class SecretSet(BaseModel):
    """What storing a secret did."""

    name: str
    created: bool
    masked: bool = Field(
        description="false when the value is too short to be masked in the run log"
    )


class SecretList(BaseModel):
    """A bot's secrets, by name."""

    secrets: list[SecretOut]


class SecretDeleted(BaseModel):
    """What a delete did."""

    name: str
    deleted: bool


# -- scheduled runs and recurring schedules (issue 11) --
RunLabel = Annotated[
    str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$", description="a label given to Bot.run")
]


class ScheduledQuery(Input):
    """Filters for a bot's scheduled runs; pass ``next_cursor`` back as ``cursor``."""

    label: (
        Annotated[
            str,
            Field(pattern=r"^[A-Za-z0-9_.:-]{0,64}$", description="only runs with this label"),
        ]
        | None
    ) = None
    command: Annotated[str, Field(max_length=256)] | None = None
    cursor: Annotated[int, Field(ge=0, lt=2**63)] | None = None
    limit: Annotated[int, Field(ge=1, le=500)] = 100


class CancelQuery(Input):
    """Which queued runs to cancel: every one with this label."""

    label: RunLabel


class ScheduledRunOut(BaseModel):
    """A queued run not finished yet (``Bot.run``, or an occurrence of a schedule)."""

    id: int
    command: str
    run_at: Timestamp
    label: str | None
    status: Literal["pending", "running"]
    attempts: int


class RecurringOut(BaseModel):
    """A recurring schedule of the bot's live version (bot.yaml ``schedules:``)."""

    name: str
    cron: str
    timezone: str
    command: str
    catch_up: float
    next_at: Timestamp = Field(description="the next occurrence not yet handled")
    last_run_at: Timestamp | None = Field(description="the last occurrence queued")


class ScheduledPage(BaseModel):
    """A bot's queued runs (oldest first, paged) and its recurring schedules."""

    runs: list[ScheduledRunOut]
    next_cursor: int | None
    schedules: list[RecurringOut]


class Cancelled(BaseModel):
    """How many queued runs were cancelled (runs already started are not)."""

    cancelled: int
