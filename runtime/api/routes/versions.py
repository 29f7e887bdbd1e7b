"""``/bots/{bot_id}/versions``, ``/files``, ``/diff``, ``/rollback``: deploy and versions.

A deploy is an archive of the bot's folder (``POST /bots/{id}/versions``, a zip, tar or tar.gz
as the body) or one file (``PUT /bots/{id}/files/{name}``: a new version from the live one with
that file changed). The body is read only after the caller is authorised (these routes stream),
then unpacked as hostile input (:func:`runtime.bots.archive.unpack`: 400 with the reason), then
checked like ``run.py check`` through :class:`~runtime.runs.deployments.Deployments` (422 with
every problem, file and line; the refusal is recorded, and the running version keeps serving).
A deploy that passes is live on every process within about half a second (this one at once).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from runtime.api.models import (
    CheckProblem,
    Deployed,
    DiffOut,
    DiffQuery,
    FileQuery,
    RollbackIn,
    VersionFiles,
    VersionList,
    VersionOut,
)
from runtime.api.operation import Call, Refusal, Routes, whole_number
from runtime.api.routes.bots import check_problem
from runtime.bots.archive import check_name, decode, unpack
from runtime.bots.command import load_yaml
from runtime.bots.config import CONFIG_FILE, assigned_token_env, parse_config
from runtime.bots.versions import bot_id_of
from runtime.errors import NotFound, Problem, UploadRefused
from runtime.runs import deployments
from runtime.store import BotVersion
from runtime.web.responses import HttpError

ROUTES = Routes(
    "versions",
    "Deploy a bot (an archive of its folder, or one file), list its versions, diff, roll back.",
)

ARCHIVES: Final = ("application/octet-stream",)
"""What the document says an upload is sent as. The server tells a zip, a tar and a tar.gz
apart by their first bytes, so any ``Content-Type`` (``application/zip``, curl's default...) is
read the same way. (Declaring ``application/zip`` and friends too made schemathesis unable to
generate bodies for them.)"""
TEXTS: Final = ("text/plain",)
VERSION_SCHEMA: Final[dict[str, Any]] = {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}
FILE_SCHEMA: Final[dict[str, Any]] = {
    "type": "string",
    "pattern": r"^(bot\.yaml|[^_./\\][^/\\]{0,200}\.py)$",
    "description": "`bot.yaml` or a command file (`*.py`)",
}


def version_out(version: BotVersion, live: int | None) -> VersionOut:
    """A stored version as the API shows it."""
    return VersionOut(
        version=version.version,
        digest=version.digest,
        created_at=version.created_at,
        origin=version.origin,
        rollback_of=version.rollback_of,
        live=version.version == live,
    )


async def _live(call: Call) -> int | None:
    status = await call.state.deployments.find(call.bot_id)
    return None if status is None else status.version


def _token_env_of(files: Mapping[str, str], bot_id: str) -> tuple[str | None, int | None]:
    """The ``token_env`` a version's bot.yaml names, and its line (None when it names none)."""
    text = files.get(CONFIG_FILE, "")
    config, _ = parse_config(text, bot_id)
    if config is None:
        return None, None
    doc, _ = load_yaml(text, file=CONFIG_FILE)
    return config.token_env, None if doc is None else doc.line_of("token_env")


async def _check_token_env(call: Call, files: Mapping[str, str], before: int | None) -> None:
    """An author's version may name only its bot's assigned token variable, or the one the
    live version names (an admin's choice): never another bot's, never any server secret."""
    if call.principal.role == "admin":
        return
    named, line = _token_env_of(files, call.bot_id)
    if named is None:
        return  # the check itself reports a missing or bad token_env
    allowed = {assigned_token_env(call.bot_id)}
    if before is not None:
        live_env, _ = _token_env_of(
            await call.state.deployments.files(call.bot_id, before), call.bot_id
        )
        if live_env is not None:
            allowed.add(live_env)
    if named not in allowed:
        problem = Problem(
            f"token_env {named!r}: an author's bot reads its token from "
            f"{assigned_token_env(call.bot_id)} (or what an admin set); only an admin may name "
            "another environment variable",
            CONFIG_FILE,
            line,
        )
        await call.audit("version.token_env.refused", CONFIG_FILE, after={"token_env": named})
        raise Refusal(
            "the bot does not pass the check; nothing changed, the running version serves",
            [check_problem(problem)],
        )


async def _deploy(call: Call, files: dict[str, str], action: str, target: str) -> Deployed:
    """Deploy ``files``; 422 with every problem if the check refuses them."""
    before = await _live(call)
    await _check_token_env(call, files, before)
    outcome = await call.state.deployments.deploy(call.bot_id, files, origin="api")
    return await _outcome(call, outcome, before, action, target)


async def _outcome(
    call: Call,
    outcome: deployments.Deployed | deployments.Refused,
    before: int | None,
    action: str,
    target: str,
) -> Deployed:
    if isinstance(outcome, deployments.Refused):
        await call.audit(
            f"{action}.refused",
            target,
            before={"version": before},
            after={"problems": [p.describe() for p in outcome.problems]},
        )
        raise Refusal(
            "the bot does not pass the check; nothing changed, the running version serves",
            [check_problem(problem) for problem in outcome.problems if not problem.warning],
        )
    version = outcome.version
    if outcome.created:
        await call.audit(
            action, target, before={"version": before}, after={"version": version.version}
        )
    await call.state.live.refresh()
    return Deployed(
        bot_id=call.bot_id,
        version=version_out(version, version.version),
        created=outcome.created,
        warnings=[check_problem(p) for p in outcome.problems],
    )


@ROUTES.add(
    "POST",
    "/bots/{bot_id}/versions",
    need="write",
    response=Deployed,
    raw=ARCHIVES,
)
async def upload_version(call: Call, body: bytes, query: None) -> Deployed:
    """Deploy an archive of the bot's folder (zip, tar, tar.gz) as its new version."""
    files = unpack(body)
    named = bot_id_of(files, call.bot_id)
    if named != call.bot_id:
        raise UploadRefused(f"bot.yaml names id {named!r}, but this upload is for {call.bot_id!r}")
    return await _deploy(call, files, "version.deploy", "archive")


@ROUTES.add(
    "PUT",
    "/bots/{bot_id}/files/{name}",
    need="write",
    response=Deployed,
    query=FileQuery,
    path_schemas={"name": FILE_SCHEMA},
    raw=(*TEXTS, "application/octet-stream"),
    errors=(409,),
)
async def put_file(call: Call, body: bytes, query: FileQuery) -> Deployed:
    """Deploy a new version: the live one with this file added or replaced."""
    name = check_name(call.path["name"])
    text = decode(name, body)
    live = await _live(call)
    if query.base is not None and query.base != live:
        raise HttpError(
            409, f"the live version is {live}, not {query.base}: reload and retry", code="conflict"
        )
    files: dict[str, str] = {}
    if live is not None:
        files = dict(await call.state.deployments.files(call.bot_id, live))
    files[name] = text
    if name == "bot.yaml" and (named := bot_id_of(files, call.bot_id)) != call.bot_id:
        raise UploadRefused(f"bot.yaml names id {named!r}, but this is bot {call.bot_id!r}")
    return await _deploy(call, files, "version.put_file", name)


@ROUTES.add("GET", "/bots/{bot_id}/versions", need="read", response=VersionList)
async def list_versions(call: Call, body: None, query: None) -> VersionList:
    """List the bot's versions, newest first, and which one serves."""
    live = await _live(call)
    found = await call.state.store.bot_versions(call.bot_id)
    return VersionList(live=live, versions=[version_out(v, live) for v in found])


@ROUTES.add(
    "GET",
    "/bots/{bot_id}/versions/{version}",
    need="read",
    response=VersionFiles,
    path_schemas={"version": VERSION_SCHEMA},
    errors=(422,),
)
async def get_version(call: Call, body: None, query: None) -> VersionFiles:
    """Show one version's files."""
    number = whole_number(call, "version")
    files = await call.state.deployments.files(call.bot_id, number)
    return VersionFiles(version=number, files=files)


@ROUTES.add(
    "GET", "/bots/{bot_id}/diff", need="read", response=DiffOut, query=DiffQuery, errors=(409,)
)
async def diff_versions(call: Call, body: None, query: DiffQuery) -> DiffOut:
    """A unified diff between two versions (``?old=1&new=2``)."""
    try:
        text = await call.state.deployments.diff(call.bot_id, query.old, query.new)
    except NotFound as exc:  # the bot exists; the query names a version it lacks (not 404:
        raise HttpError(409, str(exc), code="conflict") from None  # that says "no such bot")
    return DiffOut(old=query.old, new=query.new, diff=text)


@ROUTES.add(
    "POST",
    "/bots/{bot_id}/rollback",
    need="write",
    response=Deployed,
    body=RollbackIn,
    errors=(409,),
)
async def rollback(call: Call, body: RollbackIn, query: None) -> Deployed:
    """Serve an older version's files again, as a new version."""
    before = await _live(call)
    try:
        outcome = await call.state.deployments.rollback(call.bot_id, body.version)
    except NotFound as exc:  # the bot exists; the body names a version it lacks
        raise HttpError(409, str(exc), code="conflict") from None
    return await _outcome(call, outcome, before, "version.rollback", f"v{body.version}")


__all__ = ["ROUTES", "CheckProblem"]
