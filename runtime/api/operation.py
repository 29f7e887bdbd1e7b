"""One API operation: its declaration (method, path, what it needs, its models) and its handler.

Every route of ``/api/v1`` is an :class:`Operation` in a :class:`Routes` (one per family of
endpoints, one module each under :mod:`runtime.api.routes`). The same declaration gives the
Sanic route (:func:`serve`) and the OpenAPI operation (:mod:`runtime.api.openapi`), so the
document cannot drift from what the server checks.

The order of a request, the same for every operation (:func:`serve`):

1. the token (401 with ``WWW-Authenticate: Bearer`` if missing, unknown, expired or revoked);
2. the bot in the path: 404 if it does not exist *or* the caller may not see it (one answer,
   so a token learns nothing about bots it cannot see); 403 if it may see but not change it;
3. only then the query and the body (400 for a body that is not JSON, 422 for one that does not
   fit the model, with every problem and where it is);
4. the handler, whose result is a model, rendered as JSON.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, cast

from pydantic import BaseModel, ValidationError
from sanic import HTTPResponse
from sanic.response import json as json_response

from runtime.api import auth
from runtime.api.auth import Need
from runtime.api.models import CheckProblem, ErrorBody, ProblemOut
from runtime.errors import NotFound, UploadRefused
from runtime.runs.registry import LiveBot
from runtime.store import AuditEntry, Principal
from runtime.web.responses import HttpError, to_http
from runtime.web.state import AppRequest, AppState
from sandbox import JSON

API_PREFIX: Final = "/api/v1"
MAX_ID: Final = 2**63 - 1
ID_SCHEMA: Final[dict[str, Any]] = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
"""A row id in a path (a run, a token)."""
BEARER_CHALLENGE: Final = 'Bearer realm="botbox"'
MAX_RAW_BYTES: Final = 1024 * 1024
"""The largest raw body (an uploaded archive): the server's request size limit too."""


@dataclass(slots=True)
class Call:
    """What a handler gets: the request, the server's state, who calls, the path's values."""

    request: AppRequest
    state: AppState
    principal: Principal
    path: Mapping[str, str]

    @property
    def bot_id(self) -> str:
        """The bot in the path (only for operations on a bot)."""
        return self.path["bot_id"]

    def served(self) -> LiveBot:
        """The path's bot as this process serves it; HttpError 409 if it serves no version
        (created with nothing deployed, failed, or disabled): it exists, so never 404."""
        bot = self.state.registry.find(self.bot_id)
        if bot is None:
            raise HttpError(
                409,
                "the bot serves no version now (new, failed or disabled): see GET /bots/{id}",
                code="not_serving",
            )
        return bot

    async def audit(
        self,
        action: str,
        target: str,
        *,
        before: object = None,
        after: object = None,
        bot_id: str | None = None,
    ) -> None:
        """Record a change this call made in the audit log (``before``/``after``: plain JSON)."""
        await self.state.store.record_audit(
            AuditEntry(
                actor=self.principal.name,
                via=f"api token {self.principal.token_id}",
                action=action,
                at=time.time(),
                bot_id=bot_id if bot_id is not None else self.path.get("bot_id"),
                target=target,
                before=cast(JSON, before),
                after=cast(JSON, after),
            )
        )


class Refusal(Exception):
    """A deploy the check refused: 422 with every problem (file and line)."""

    def __init__(self, message: str, problems: list[CheckProblem]) -> None:
        super().__init__(message)
        self.problems = problems


def whole_number(call: Call, name: str) -> int:
    """A path parameter that is a row id (1 to 2**63 - 1); HttpError 422 otherwise."""
    text = call.path[name]
    if text.isascii() and text.isdigit() and len(text) <= 19 and 1 <= int(text) <= MAX_ID:
        return int(text)
    raise HttpError(422, f"{name} must be a whole number from 1 to {MAX_ID}", code="invalid")


Handler = Callable[[Call, Any, Any], Awaitable[BaseModel]]


@dataclass(frozen=True, slots=True)
class Operation:
    """One method on one path of the API, and everything the document says about it."""

    method: str
    path: str  # OpenAPI style, under API_PREFIX: /bots/{bot_id}
    handler: Handler
    summary: str
    need: Need
    response: type[BaseModel]
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    status: int = 200
    tag: str = ""
    path_schemas: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    errors: tuple[int, ...] = ()
    raw: tuple[str, ...] = ()
    """For a body that is not JSON (an archive, a file): the content types it is documented
    with. Its route streams, and the body is read (up to :data:`MAX_RAW_BYTES`) only after
    the caller is authorised; the handler gets the bytes."""

    @property
    def operation_id(self) -> str:
        """The handler's name: unique across the API."""
        return self.handler.__name__

    @property
    def sanic_path(self) -> str:
        """The path as Sanic routes it (every parameter a string without ``/``)."""
        path = API_PREFIX + self.path
        for name in self.path_names:
            path = path.replace("{" + name + "}", f"<{name}:str>")
        return path

    @property
    def path_names(self) -> list[str]:
        """The names of the path's parameters, in order."""
        return [part[1:-1] for part in self.path.split("/") if part.startswith("{")]


class Routes:
    """One family of operations (bots, runs, properties...), declared with decorators."""

    def __init__(self, tag: str, description: str) -> None:
        self.tag = tag
        self.description = description
        self.operations: list[Operation] = []

    def add(
        self,
        method: str,
        path: str,
        *,
        need: Need,
        response: type[BaseModel],
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        status: int = 200,
        path_schemas: Mapping[str, dict[str, Any]] | None = None,
        errors: tuple[int, ...] = (),
        raw: tuple[str, ...] = (),
    ) -> Callable[[Handler], Handler]:
        """Declare an operation; the handler's docstring's first line is its summary."""

        def register(handler: Handler) -> Handler:
            summary = (handler.__doc__ or handler.__name__).strip().splitlines()[0]
            self.operations.append(
                Operation(
                    method,
                    path,
                    handler,
                    summary,
                    need,
                    response,
                    body,
                    query,
                    status,
                    self.tag,
                    dict(path_schemas or {}),
                    errors,
                    raw,
                )
            )
            return handler

        return register


def api_error(error: HttpError, problems: list[ProblemOut] | None = None) -> HTTPResponse:
    """An error as the API answers it: always JSON (:class:`ErrorBody`), never a traceback."""
    body = ErrorBody(error=error.code, message=error.message, problems=problems or [])
    return json_response(body.model_dump(mode="json"), status=error.status, headers=error.headers)


def problems_of(exc: ValidationError, where: str) -> list[ProblemOut]:
    """Every problem pydantic found, with where it is (``body.user_id``, ``query.limit``)."""
    return [
        ProblemOut(
            where=".".join([where, *(str(part) for part in error["loc"])]),
            message=error["msg"],
        )
        for error in exc.errors(include_url=False, include_input=False)
    ]


def _query_values(request: AppRequest, model: type[BaseModel]) -> dict[str, str]:
    """The query's values for the model's fields (the first of each; other names ignored)."""
    args = request.get_args(keep_blank_values=True)
    return {name: args[name][0] for name in model.model_fields if args.get(name)}


async def read_raw(request: AppRequest, limit: int = MAX_RAW_BYTES) -> bytes:
    """A streamed body, read only now (after authorisation), at most ``limit`` bytes."""
    if request.stream is None:  # not a streaming route: already read
        return request.body or b""
    chunks: list[bytes] = []
    size = 0
    stream = cast(Any, request.stream)  # Http (or the ASGI transport): ``read()`` until None
    while (chunk := await stream.read()) is not None:
        size += len(chunk)
        if size > limit:
            raise HttpError(413, f"the body is larger than {limit} bytes", code="too_large")
        chunks.append(chunk)
    return b"".join(chunks)


async def principal_of(request: AppRequest, state: AppState) -> Principal:
    """The caller behind the request's bearer token; HttpError 401 if there is none."""
    token = auth.bearer(request.headers.get("authorization"))
    principal = None
    if token is not None:
        principal = await state.store.authenticate(auth.digest(token), now=time.time())
    if principal is None:
        raise HttpError(
            401,
            "a valid API token is needed: Authorization: Bearer <token>",
            headers={"WWW-Authenticate": BEARER_CHALLENGE},
            code="unauthorized",
        )
    return principal


async def is_admin(request: AppRequest) -> bool:
    """True if the request carries a valid admin token (never raises)."""
    try:
        principal = await principal_of(request, request.app.ctx.running)
    except HttpError:
        return False
    return principal.role == "admin"


async def known(state: AppState, bot_id: str) -> bool:
    """True if the bot exists: served here, failed, disabled, or created with no version."""
    registry = state.registry
    if registry.find(bot_id) is not None or bot_id in registry.refused:
        return True
    return await state.deployments.find(bot_id) is not None


async def serve(operation: Operation, request: AppRequest, path: dict[str, str]) -> HTTPResponse:
    """Answer one request to ``operation``: authorise, then validate, then handle."""
    state = request.app.ctx.running
    try:
        principal = await principal_of(request, state)
        bot_id = path.get("bot_id")
        exists = (
            bot_id is not None
            and auth.bot_access(principal, bot_id) is not None
            and await known(state, bot_id)
        )
        verdict = auth.decide(principal, operation.need, bot_id, exists=exists)
        if verdict == "hidden":
            raise HttpError(404, "no such bot", code="not_found")
        if verdict == "forbidden":
            raise HttpError(403, f"your role ({principal.role}) may not do this", code="forbidden")
        query = None
        body: Any = None
        if operation.query is not None:
            try:
                query = operation.query.model_validate(_query_values(request, operation.query))
            except ValidationError as exc:
                error = HttpError(422, "the query does not fit", code="invalid")
                return api_error(error, problems_of(exc, "query"))
        if operation.raw:
            body = await read_raw(request)
        elif operation.body is not None:
            try:
                body = operation.body.model_validate_json(request.body or b"")
            except ValidationError as exc:
                if any(e["type"] == "json_invalid" for e in exc.errors()):
                    return api_error(HttpError(400, "the body must be JSON", code="bad_request"))
                error = HttpError(422, "the body does not fit", code="invalid")
                return api_error(error, problems_of(exc, "body"))
        result = await operation.handler(Call(request, state, principal, path), body, query)
    except (HttpError, NotFound) as exc:  # anything else is a bug: app.on_error logs it
        return api_error(to_http(exc))
    except UploadRefused as exc:
        return api_error(HttpError(400, str(exc), code="upload_refused"))
    except Refusal as exc:
        problems = [
            ProblemOut(
                where=":".join(str(part) for part in (p.file, p.line) if part is not None) or "bot",
                message=p.message,
                file=p.file,
                line=p.line,
            )
            for p in exc.problems
        ]
        return api_error(HttpError(422, str(exc), code="check_failed"), problems)
    return json_response(result.model_dump(mode="json"), status=operation.status)


__all__ = ["API_PREFIX", "Call", "Operation", "Routes", "api_error", "serve"]
