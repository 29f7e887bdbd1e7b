"""``python run.py ...``: serve, check a bot folder, read run logs, register webhooks."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import socket
import sys
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any, cast

from runtime import serverlog
from runtime.api import admin
from runtime.bots import dispatch
from runtime.bots.folder import (
    bot_folders,
    check_folders,
    is_bot_folder,
    load_bot,
    read_config,
    read_files,
)
from runtime.bots.versions import check_version
from runtime.errors import BotboxError, ConfigError, LinkError, Problem
from runtime.runs.deployments import BotStatus, Deployed, Deployments, Refused
from runtime.runs.polling import allowed_updates, set_commands
from runtime.runs.registry import LiveBot, compile_bot, derive_secret, live_bot
from runtime.settings import Settings
from runtime.signing.keys import KeyFile, load_master_key
from runtime.signing.links import (
    MAX_OPTIONS_DEPTH,
    make_link,
    nesting_depth,
    signature,
    url_of,
)
from runtime.signing.sealing import MIN_MASKED_CHARS, masked
from runtime.store import BotVersion, RunRecord, SqliteStore
from runtime.store.broadcasts import Progress
from runtime.telegram.client import TelegramClient
from sandbox import JSON, WorkerPool

DEMO_USER = 1
MAX_OUTPUT_LINES = 20
"""How many lines of a run's output ``logs`` shows (``--json`` shows all of it)."""


def positive_int(text: str) -> int:
    """Parse a whole number of 1 or more (for ``--limit``)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of 1 or more, not {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    parser = argparse.ArgumentParser(
        prog="python run.py", description="botbox: Telegram bots in a Python sandbox"
    )
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="start the server (the default)")
    serve.add_argument(
        "--poll",
        action="store_true",
        help="long-poll Telegram (getUpdates) instead of waiting for webhooks",
    )
    check = commands.add_parser(
        "check", help="validate a bot folder, or a folder of bot folders (ids must differ)"
    )
    check.add_argument("folder", type=Path)
    logs = commands.add_parser("logs", help="show a bot's run log, newest first")
    logs.add_argument("bot")
    logs.add_argument("--failed", action="store_true", help="only failed runs")
    logs.add_argument("--json", action="store_true", help="one JSON document per line")
    logs.add_argument(
        "--limit", type=positive_int, default=20, help="how many runs to show (default 20)"
    )
    hook = commands.add_parser("set-webhook", help="register the bot's webhook with Telegram")
    hook.add_argument("bot")
    url = commands.add_parser("url", help="print a signed link that runs a command")
    url.add_argument("bot")
    url.add_argument("command_name", metavar="COMMAND")
    who = url.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", type=int, help="the user the link runs for")
    who.add_argument(
        "--global",
        dest="global_link",
        action="store_true",
        help="a link with no user (for services and cron)",
    )
    url.add_argument("--options", help="JSON options the command sees as `options`")
    url.add_argument(
        "--params",
        nargs="*",
        default=[],
        metavar="K=V",
        help="signed query parameters the command sees as `params`",
    )
    url.add_argument("--redirect", help="where to send the browser after the command ran")
    url.add_argument("--expires-in", type=float, help="seconds until the link expires")
    url.add_argument("--once", action="store_true", help="the link works only once")
    keys = commands.add_parser("keys", help="list, rotate and retire link-signing keys")
    key_commands = keys.add_subparsers(dest="action", required=True)
    key_commands.add_parser("list", help="show the keys and their states")
    key_commands.add_parser("rotate", help="make a new signing key; the old one verifies on")
    retire = key_commands.add_parser("retire", help="stop accepting links signed by a key")
    retire.add_argument("key_id")
    revoke = key_commands.add_parser("revoke", help="invalidate every link of one bot")
    revoke.add_argument("bot")
    add_version_commands(commands)
    add_account_commands(commands)
    add_try_command(commands)
    add_secret_commands(commands)
    add_schedule_commands(commands)
    return parser


def add_secret_commands(commands: Any) -> None:
    """``secrets set|list|delete``: a bot's secrets (values read from stdin, never printed)."""
    secrets = commands.add_parser("secrets", help="set, list and delete a bot's secrets")
    secret_commands = secrets.add_subparsers(dest="action", required=True)
    put = secret_commands.add_parser(
        "set", help="store a secret; its value is read from stdin (one trailing newline dropped)"
    )
    put.add_argument("bot")
    put.add_argument("name")
    listing = secret_commands.add_parser("list", help="show a bot's secrets (names, never values)")
    listing.add_argument("bot")
    gone = secret_commands.add_parser("delete", help="delete one of a bot's secrets")
    gone.add_argument("bot")
    gone.add_argument("name")
    rekey = secret_commands.add_parser(
        "rekey", help="after replacing master.key: seal every secret again with the new key"
    )
    rekey.add_argument("old_key_file", type=Path, metavar="OLD_KEY_FILE")


def read_secret_value() -> str:
    """A secret's value from stdin: typed without echo on a terminal, else read to the end with
    one trailing newline dropped (``printf %s "$KEY" | run.py secrets set ...``)."""
    if sys.stdin.isatty():
        return getpass.getpass("value (not shown): ")
    value = sys.stdin.read()
    if value.endswith("\r\n"):
        return value[:-2]
    return value[:-1] if value.endswith("\n") else value


def run_secrets(settings: Settings, args: argparse.Namespace) -> int:
    """``secrets set``, ``list`` and ``delete``."""
    if args.action == "set":
        value = read_secret_value()
        created, known = asyncio.run(admin.set_secret(settings, args.bot, args.name, value))
        print(f"secret {args.name} of bot {args.bot} {'stored' if created else 'replaced'}")
        if not known:
            sys.stderr.write(
                f"warning: bot {args.bot} is not in the store yet (a typo?); its secret is kept "
                "for when it is deployed\n"
            )
        if not masked(value):
            sys.stderr.write(
                f"warning: the value is shorter than {MIN_MASKED_CHARS} characters, so it is "
                "not masked in the run log\n"
            )
    elif args.action == "rekey":
        done = asyncio.run(admin.rekey_secrets(settings, args.old_key_file))
        print(
            f"{len(done.resealed)} secret(s) sealed again with the current master key; "
            f"{done.current} already were"
        )
        for where in done.unreadable:
            sys.stderr.write(f"warning: {where} opens with neither key; set it again\n")
        return 1 if done.unreadable else 0
    elif args.action == "delete":
        if not asyncio.run(admin.delete_secret(settings, args.bot, args.name)):
            sys.stderr.write(f"error: bot {args.bot} has no secret {args.name}\n")
            return 1
        print(f"secret {args.name} of bot {args.bot} deleted")
    else:
        found = asyncio.run(admin.list_secrets(settings, args.bot))
        for info in found:
            print(f"{info.name}\tset {when(info.updated_at)}")
        if not found:
            print(f"bot {args.bot} has no secrets")
    return 0


def add_version_commands(commands: Any) -> None:
    """``bots``, ``versions``, ``diff``, ``rollback``, ``deploy``: bots as versioned deployments."""
    bots = commands.add_parser(
        "bots", help="list the bots (live version, failed ones); create, enable, disable, delete"
    )
    bot_commands = bots.add_subparsers(dest="action")
    bot_commands.add_parser("list", help="every bot: live version, state, problems (the default)")
    for action, text in (
        ("create", "create a bot with no version (an admin's: any id, even a used one)"),
        ("enable", "serve a disabled bot again"),
        ("disable", "stop serving a bot everywhere; its versions and data stay"),
        ("delete", "stop a bot, retire its links, drop it from the list; its data stays"),
    ):
        bot_commands.add_parser(action, help=text).add_argument("bot")
    versions = commands.add_parser("versions", help="list a bot's versions, newest first")
    versions.add_argument("bot")
    diff = commands.add_parser("diff", help="show what changed between two versions of a bot")
    diff.add_argument("bot")
    diff.add_argument("old", type=positive_int, metavar="A")
    diff.add_argument("new", type=positive_int, metavar="B")
    rollback = commands.add_parser(
        "rollback", help="make a new version with an old version's files, live at once"
    )
    rollback.add_argument("bot")
    rollback.add_argument("version", type=positive_int)
    deploy = commands.add_parser(
        "deploy", help="check a bot folder and make it the bot's live version (all or nothing)"
    )
    deploy.add_argument("bot")
    deploy.add_argument("folder", type=Path)


def positive_float(text: str) -> float:
    """Parse a number above 0 (for ``--expires``)."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= 3650:
        raise argparse.ArgumentTypeError(
            f"expected a number of days above 0 (at most 3650), not {text!r}"
        )
    return value


def add_account_commands(commands: Any) -> None:
    """``tokens``, ``users`` and ``audit``: the admin API's accounts, from the shell."""
    tokens = commands.add_parser("tokens", help="create, list and revoke admin API tokens")
    token_commands = tokens.add_subparsers(dest="action", required=True)
    create = token_commands.add_parser(
        "create", help="make a token (printed once) for a user, created with --role if new"
    )
    create.add_argument("--name", required=True, help="the user the token speaks for")
    create.add_argument("--role", choices=admin.ROLES, help="the role of a new user")
    create.add_argument("--expires", type=positive_float, metavar="DAYS", help="expire after DAYS")
    listing = token_commands.add_parser("list", help="show tokens (prefixes, never tokens)")
    listing.add_argument("--name", help="only this user's tokens")
    revoke = token_commands.add_parser("revoke", help="refuse a token from now on")
    revoke.add_argument("token_id", type=positive_int, metavar="ID")
    users = commands.add_parser("users", help="list, create, delete users; grant them bots")
    user_commands = users.add_subparsers(dest="action", required=True)
    user_commands.add_parser("list", help="show users, roles and grants")
    new = user_commands.add_parser("create", help="add a user")
    new.add_argument("name")
    new.add_argument("--role", choices=admin.ROLES, required=True)
    gone = user_commands.add_parser("delete", help="delete a user, its grants and tokens")
    gone.add_argument("name")
    role = user_commands.add_parser("set-role", help="change a user's role")
    role.add_argument("name")
    role.add_argument("role", choices=admin.ROLES)
    grant = user_commands.add_parser("grant", help="let a user see (viewer) or change a bot")
    grant.add_argument("name")
    grant.add_argument("bot")
    grant.add_argument("--role", choices=admin.BOT_ROLES, default="author")
    ungrant = user_commands.add_parser("ungrant", help="take a bot away from a user")
    ungrant.add_argument("name")
    ungrant.add_argument("bot")
    audit = commands.add_parser("audit", help="show changes made through the API or the CLI")
    audit.add_argument("--bot", help="only changes to this bot")
    audit.add_argument("--limit", type=positive_int, default=20)


def when(stamp: float | None) -> str:
    """A time for a listing ("never" for None)."""
    return "never" if stamp is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp))


def run_accounts(settings: Settings, args: argparse.Namespace) -> int:
    """``tokens``, ``users`` and ``audit``."""
    if args.command == "tokens" and args.action == "create":
        secret, token, created = asyncio.run(
            admin.create_token(settings, args.name, role=args.role, expires_days=args.expires)
        )
        sys.stderr.write(
            (f"user {args.name} created ({args.role})\n" if created else "")
            + f"token {token.id} for {args.name}, expires {when(token.expires_at)}; "
            "it is shown once, keep it now:\n"
        )
        print(secret)
    elif args.command == "tokens" and args.action == "revoke":
        token = asyncio.run(admin.revoke_token(settings, args.token_id))
        print(f"token {token.id} ({token.prefix}...) of {token.user} is revoked")
    elif args.command == "tokens":
        for token in asyncio.run(admin.list_tokens(settings, args.name)):
            state = "revoked" if token.revoked_at is not None else "live"
            print(
                f"{token.id}\t{token.prefix}...\t{token.user}\t{state}\t"
                f"created {when(token.created_at)}\texpires {when(token.expires_at)}\t"
                f"last used {when(token.last_used_at)}"
            )
    elif args.command == "users" and args.action == "list":
        for user in asyncio.run(admin.list_users(settings)):
            grants = ", ".join(f"{bot} ({role})" for bot, role in user.grants.items())
            print(f"{user.name}\t{user.role}\t{grants or 'no grants'}")
    elif args.command == "users":
        after = asyncio.run(
            admin.change_user(
                settings,
                args.action,
                args.name,
                role=getattr(args, "role", None),
                bot=getattr(args, "bot", None),
            )
        )
        print(
            f"user {args.name}: "
            + (
                "deleted"
                if after is None
                else f"{after.role}, grants {dict(after.grants) or 'none'}"
            )
        )
    else:
        for entry in asyncio.run(admin.list_audit(settings, bot=args.bot, limit=args.limit)):
            print(
                f"#{entry.id} {when(entry.at)} {entry.actor} ({entry.via}) {entry.action} "
                f"{entry.target}"
                + (f" bot={entry.bot_id}" if entry.bot_id else "")
                + f" before={json.dumps(entry.before)} after={json.dumps(entry.after)}"
            )
    return 0


def run_check(path: Path) -> int:
    """Print every problem of a bot folder or a folder of bots; exit status 1 if there is any."""
    folders = [path]
    if path.is_dir() and not is_bot_folder(path):
        folders = sorted(sub for sub in path.iterdir() if is_bot_folder(sub))
    if folders:
        problems = check_folders(folders)
    else:
        problems = [Problem("no bot.yaml here, and no sub-folder with one", str(path))]
    for problem in problems:
        print(problem.describe())
    errors = [problem for problem in problems if not problem.warning]
    if errors:
        print(f"{len(errors)} problem(s) in {path}")
        return 1
    warned = f" ({len(problems)} warning(s))" if problems else ""
    print(
        f"{path}: ok{warned}" if folders == [path] else f"{path}: ok, {len(folders)} bots{warned}"
    )
    return 0


def mint_url(
    settings: Settings,
    bot_id: str,
    command: str,
    *,
    user_id: int | None,
    options: object = None,
    params: object = None,
    redirect: str | None = None,
    expires_in: float | None = None,
    once: bool = False,
) -> str:
    """Sign a link for a command of a bot on this server."""
    definition = load_bot(find_folder(settings, bot_id))
    if dispatch.find(definition.commands, command) is None:
        raise ConfigError(f"bot {bot_id!r} has no command {command!r}")
    try:
        link = make_link(
            command,
            user_id=user_id,
            options=options,
            params=params,
            redirect=redirect,
            expires_in=expires_in,
            once=once,
            now=time.time(),
            allow_http_redirects=definition.config.webhook.allow_http_redirects,
        )
    except LinkError as exc:
        raise ConfigError(exc.message) from None
    generations = {bot_id: asyncio.run(generation_of(settings, bot_id))}
    ring = KeyFile(settings.keys_file, generations=generations).current()
    return url_of(settings.base_url, bot_id, link, signature(ring, bot_id, link))


async def generation_of(settings: Settings, bot_id: str) -> str:
    """The bot's link generation, from the store (recorded now if the bot is new to it)."""
    store = SqliteStore(settings.database, synchronous=settings.sqlite_synchronous)
    await store.open()
    try:
        return (await store.bot_generations([bot_id], now=time.time()))[bot_id]
    finally:
        await store.close()


def read_options(text: str) -> object:
    """Parse ``--options`` JSON; raise ConfigError if it is not JSON or nests too deep."""
    # Measured first: json.loads would recurse once per level and die of RecursionError.
    if nesting_depth(text) > MAX_OPTIONS_DEPTH:
        raise ConfigError(f"--options nest deeper than {MAX_OPTIONS_DEPTH} levels")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"--options is not JSON: {exc}") from None


def run_url(settings: Settings, args: argparse.Namespace) -> int:
    """Print one signed link."""
    options = None if args.options is None else read_options(args.options)
    params: dict[str, str] = {}
    for pair in args.params:
        name, equals, value = pair.partition("=")
        if not equals:
            raise ConfigError(f"--params takes NAME=VALUE pairs, not {pair!r}")
        params[name] = value
    print(
        mint_url(
            settings,
            args.bot,
            args.command_name,
            user_id=None if args.global_link else args.user,
            options=options,
            params=params,
            redirect=args.redirect,
            expires_in=args.expires_in,
            once=args.once,
        )
    )
    return 0


def run_keys(settings: Settings, args: argparse.Namespace) -> int:
    """List, rotate, retire keys, or revoke a bot's links."""
    keyfile = KeyFile(settings.keys_file)
    ring = keyfile.current()
    if args.action == "rotate":
        ring = ring.rotated(time.time())
        print(f"new signing key {ring.active.id}; older keys keep verifying until retired")
    elif args.action == "retire":
        ring = ring.retired(args.key_id)
        print(f"key {args.key_id} retired: links it signed are refused from now on")
    elif args.action == "revoke":
        find_folder(settings, args.bot)  # an unknown bot is an error, not a silent success
        ring = ring.revoked(args.bot)
        print(f"every existing link of bot {args.bot} is revoked (epoch {ring.epoch(args.bot)})")
    if args.action != "list":
        keyfile.save(ring)
        bot = getattr(args, "bot", None)
        target = {"rotate": ring.active.id, "retire": getattr(args, "key_id", "")}.get(
            args.action, bot or ""
        )
        asyncio.run(
            admin.record(
                settings,
                f"keys.{args.action}",
                target,
                bot_id=bot,
                after={key.id: key.state for key in ring.keys} if bot is None else ring.epoch(bot),
            )
        )
    for key in ring.keys:
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(key.created))
        print(f"{key.id}\t{key.state}\tcreated {created}")
    for bot, epoch in sorted(ring.epochs.items()):
        print(f"bot {bot}: links revoked {epoch} time(s)")
    return 0


def format_record(record: RunRecord) -> str:
    """One run log entry as readable lines."""
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.started_at))
    lines = [
        f"#{record.id} {when} {record.command} [{record.status}] trigger={record.trigger} "
        f"user={record.user_id} chat={record.chat_id} "
        f"cpu={record.cpu_seconds * 1000:.1f}ms wall={record.wall_seconds * 1000:.1f}ms"
        + (f" worker={pid}" if type(pid := record.extra.get("worker_pid")) is int else "")
        + (f" retries={n}" if type(n := record.extra.get("retries")) is int and n else "")
        + (f" version={v}" if type(v := record.extra.get("version")) is int and v else "")
    ]
    if isinstance(record.error, dict):
        where = f"line {record.error.get('line')}: " if record.error.get("line") else ""
        if type(file := record.error.get("file")) is str:  # inside a lib module
            where = f"{file}:{record.error.get('line')}: "
        lines.append(f"  error: {where}{record.error.get('type')}: {record.error.get('message')}")
    notes = record.extra.get("notes")
    for note in notes if isinstance(notes, list) else ():
        lines.append(f"  note: {note}")
    for call in record.calls:
        if isinstance(call, dict):
            mark = "ok" if call.get("ok") else f"failed: {call.get('error')}"
            lines.append(f"  call {call.get('name')} {mark}")
    http = record.extra.get("http")
    for hop in http if isinstance(http, list) else ():
        if isinstance(hop, dict):
            end = f"failed: {hop.get('error')}" if hop.get("error") else f"{hop.get('bytes')} B"
            lines.append(
                f"  http {hop.get('method')} {hop.get('host')} {hop.get('status')} {end} "
                f"{hop.get('ms')} ms"
            )
    output = record.output.rstrip("\n").splitlines()
    lines.extend(f"  | {line}" for line in output[:MAX_OUTPUT_LINES])
    if len(output) > MAX_OUTPUT_LINES:
        lines.append(f"  | ... {len(output) - MAX_OUTPUT_LINES} more lines (--json shows them)")
    return "\n".join(lines)


async def show_logs(
    settings: Settings, bot: str, *, failed: bool, as_json: bool, limit: int
) -> int:
    """Print a bot's newest runs; a bot with no folder here and no runs in the store is an error."""
    hosted = locate_bot(settings, bot) is not None
    if not settings.database.exists():
        if not hosted:
            raise ConfigError(f"no bot {bot!r} on this server")
        print(f"no store at {settings.database} yet: start the server first")
        return 1
    store = SqliteStore(settings.database)
    await store.open()
    try:
        records = await store.list_runs(bot, failed_only=failed, limit=limit)
        # A removed bot's runs stay readable; a name nobody ever ran is a typo.
        known = hosted or bool(records) or bool(await store.list_runs(bot, limit=1))
        broadcasts = [] if as_json else await store.broadcasts(bot, limit=5)
    finally:
        await store.close()
    if not known:
        raise ConfigError(f"no bot {bot!r} on this server, and no runs of it in the store")
    for progress in broadcasts:
        print(format_broadcast(progress))
    for record in records:
        if as_json:
            print(
                json.dumps(
                    {
                        "id": record.id,
                        "command": record.command,
                        "trigger": record.trigger,
                        "status": record.status,
                        "user_id": record.user_id,
                        "chat_id": record.chat_id,
                        "started_at": record.started_at,
                        "output": record.output,
                        "calls": record.calls,
                        "error": record.error,
                        "cpu_seconds": record.cpu_seconds,
                        "wall_seconds": record.wall_seconds,
                        "worker_pid": record.extra.get("worker_pid"),
                        "retries": record.extra.get("retries", 0),
                        "version": record.extra.get("version"),
                        "http": record.extra.get("http", []),
                        "notes": record.extra.get("notes", []),
                    },
                    ensure_ascii=False,
                )
            )
        else:
            print(format_record(record))
    if not records and not as_json:
        print(f"no {'failed ' if failed else ''}runs for bot {bot!r}")
    return 0


def format_broadcast(progress: Progress) -> str:
    """One line on a broadcast: users queued, runs ended by status, running or finished."""
    ended = sum(progress.runs.values())
    statuses = ", ".join(f"{n} {status}" for status, n in sorted(progress.runs.items()))
    state = (
        "running"
        if progress.finished_at is None
        else f"all queued {time.strftime('%H:%M:%S', time.localtime(progress.finished_at))}"
    )
    return (
        f"broadcast {progress.id} of {progress.command}: {progress.queued} of {progress.total} "
        f"users queued, {ended} ran ({statuses or 'none yet'}), {state}, started "
        f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(progress.created_at))}"
    )


async def set_webhook(settings: Settings, bot_id: str) -> int:
    """Call setWebhook (URL, derived secret, allowed_updates), then setMyCommands, for a bot."""
    folder = find_folder(settings, bot_id)
    definition = load_bot(folder)
    token = os.environ.get(definition.config.token_env)
    if not token:
        print(f"set {definition.config.token_env} to the bot's token first")
        return 1
    secret = derive_secret(load_master_key(settings.key_file), "telegram-webhook-secret", bot_id)
    client = TelegramClient(settings.telegram_api)
    try:
        kinds = allowed_updates(client, definition.commands)
        await client.call(
            token,
            "setWebhook",
            {
                "url": f"{settings.base_url}/telegram/{bot_id}",
                "secret_token": secret,
                "allowed_updates": kinds,
            },
        )
        menu = await set_commands(client, token, definition.commands)
    finally:
        await client.close()
    print(f"webhook set: {settings.base_url}/telegram/{bot_id}")
    print(f"update kinds: {', '.join(kinds) or 'none (Telegram sends its default kinds)'}")
    print(f"command menu: {menu} command(s) with a description")
    return 0


def find_folder(settings: Settings, bot_id: str) -> Path:
    """Return the folder of a bot by id (the demo or one under BOTBOX_BOTS_DIR)."""
    folder = locate_bot(settings, bot_id)
    if folder is None:
        raise ConfigError(f"no bot {bot_id!r} on this server")
    return folder


def locate_bot(settings: Settings, bot_id: str) -> Path | None:
    """The folder whose bot.yaml names ``bot_id``, or one of that name whose bot.yaml is broken."""
    for folder in bot_folders(settings.bots_dir, settings.demo_dir if settings.demo else None):
        config = read_config(folder)
        if (config.id if config is not None else folder.name) == bot_id:
            return folder
    return None


def check_port(host: str, port: int) -> None:
    """Raise ConfigError if the server cannot listen on ``host:port`` (taken, or not ours)."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror}); set BOTBOX_HOST / BOTBOX_PORT"
        ) from None


def serve(settings: Settings, *, poll: bool) -> int:
    """Start the Sanic server (one process, or several with BOTBOX_SERVER_WORKERS)."""
    check_port(settings.host, settings.port)
    # A broken bot never stops the server: it is deployed as refused and listed as failed
    # (log, /health, `run.py bots`); only server-wide problems stop `serve` here.
    problems = check_folders(
        bot_folders(settings.bots_dir, settings.demo_dir if settings.demo else None)
    )
    sys.stderr.write("".join(f"{problem.describe()}\n" for problem in problems))
    if errors := [problem for problem in problems if not problem.warning]:
        sys.stderr.write(
            f"{len(errors)} problem(s) in the bot folders: those bots fail to load; "
            "every other bot serves\n"
        )
    load_master_key(settings.key_file)  # created on first start; a bad one stops us here
    KeyFile(settings.keys_file).load()
    # Imported here so that `check` and `logs` start fast and do not need the web stack.
    from sanic import Sanic  # noqa: PLC0415
    from sanic.worker.loader import AppLoader  # noqa: PLC0415

    from runtime.api.install import create_app_with_api  # noqa: PLC0415
    from runtime.web.app import Parts  # noqa: PLC0415

    if settings.demo:
        link = mint_url(
            settings, "demo", "dashboard", user_id=DEMO_USER, params={"from": "quick-start"}
        )
        print(
            f"\nbotbox is starting on {settings.base_url}\n"
            f"Open this signed link for demo user {DEMO_USER}:\n\n  {link}\n",
            flush=True,
        )
    factory = partial(create_app_with_api, settings, parts=Parts(env=dict(os.environ), poll=poll))
    loader = AppLoader(factory=factory)
    app: Sanic[Any, Any] = loader.load()
    single = settings.server_workers == 1
    app.prepare(
        host=settings.host,
        port=settings.port,
        workers=settings.server_workers,
        single_process=single,
        access_log=False,
        motd=False,
    )
    if single:
        Sanic.serve_single(primary=app)
    else:
        Sanic.serve(primary=app, app_loader=loader)
    return 0


async def run_versions(settings: Settings, args: argparse.Namespace) -> int:
    """``bots``, ``versions``, ``diff``, ``rollback`` and ``deploy``, on the store directly.

    Running servers follow the store's live versions within about a second.
    """
    if args.command == "deploy" and not args.folder.is_dir():
        raise ConfigError(f"{args.folder} is not a folder")
    store = SqliteStore(settings.database, synchronous=settings.sqlite_synchronous)
    await store.open()
    try:
        deployments = Deployments(store)
        if args.command == "bots" and getattr(args, "action", None) not in (None, "list"):
            return await run_bot_action(deployments, args.action, args.bot)
        if args.command == "bots":
            return print_statuses(await deployments.catalog())
        if args.command == "versions":
            return print_versions(args.bot, await deployments.versions(args.bot))
        if args.command == "diff":
            text = await deployments.diff(args.bot, args.old, args.new)
            sys.stdout.write(text or f"versions {args.old} and {args.new} have the same files\n")
            return 0
        before = await deployments.find(args.bot)
        if args.command == "rollback":
            outcome = await deployments.rollback(args.bot, args.version)
        else:
            outcome = await deployments.deploy(args.bot, read_files(args.folder), origin="cli")
        if isinstance(outcome, Deployed) and outcome.created:
            await admin.audit(
                store,
                f"version.{args.command}",
                str(args.folder) if args.command == "deploy" else f"v{args.version}",
                before={"version": before.version if before else None},
                after={"version": outcome.version.version},
                bot_id=args.bot,
            )
    finally:
        await store.close()
    return print_outcome(outcome, args.folder if args.command == "deploy" else None)


async def run_bot_action(deployments: Deployments, action: str, bot_id: str) -> int:
    """``bots create|enable|disable|delete BOT``: change the catalog (audited as the CLI)."""
    before = await deployments.find(bot_id)
    if action == "create":
        outcome = await deployments.create(bot_id, created_by=admin.cli_actor(), reuse=True)
        if outcome != "created":
            print(f"bot {bot_id} exists already", file=sys.stderr)
            return 1
        await admin.audit(
            deployments.store, "bot.create", bot_id, after={"by": admin.cli_actor()}, bot_id=bot_id
        )
        print(f"bot {bot_id} created: deploy its first version with run.py deploy {bot_id} FOLDER")
        return 0
    if before is None:
        raise ConfigError(f"no bot {bot_id!r} in the store")
    if action == "delete":
        await deployments.delete(bot_id)
        await admin.audit(
            deployments.store,
            "bot.delete",
            bot_id,
            before={"version": before.version},
            bot_id=bot_id,
        )
        print(f"bot {bot_id} deleted: stopped, links retired; its versions and data are kept")
        return 0
    disabled = action == "disable"
    if await deployments.set_disabled(bot_id, disabled):
        await admin.audit(
            deployments.store,
            f"bot.{action}",
            bot_id,
            before={"disabled": not disabled},
            after={"disabled": disabled},
            bot_id=bot_id,
        )
    print(f"bot {bot_id} {'disabled' if disabled else 'enabled'}")
    return 0


def print_outcome(outcome: Deployed | Refused, folder: Path | None) -> int:
    """A deploy's or rollback's result: the live version, or every problem (exit 1)."""
    if isinstance(outcome, Refused):
        for problem in outcome.problems:
            where = (
                problem.file if folder is None or problem.file is None else folder / problem.file
            )
            print(
                Problem(
                    problem.message,
                    None if where is None else str(where),
                    problem.line,
                    problem.warning,
                ).describe()
            )
        print(
            f"bot {outcome.bot_id}: refused, nothing changed ({len(outcome.problems)} problem(s))"
        )
        return 1
    version = outcome.version
    if not outcome.created:
        print(f"bot {version.bot_id}: unchanged, version {version.version} is live")
    elif version.rollback_of is not None:
        print(
            f"bot {version.bot_id}: version {version.version} "
            f"(the files of version {version.rollback_of}) is live"
        )
    else:
        print(f"bot {version.bot_id}: version {version.version} is live")
    return 0


def print_versions(bot_id: str, found: Sequence[BotVersion]) -> int:
    """One line per version, newest first."""
    for version in found:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(version.created_at))
        note = f" (rollback to v{version.rollback_of})" if version.rollback_of else ""
        print(f"v{version.version}\t{when}\t{version.origin}\t{version.digest[:12]}{note}")
    print(f"{len(found)} version(s) of bot {bot_id}")
    return 0


def print_statuses(statuses: Sequence[BotStatus]) -> int:
    """Every bot: its live version and state, and the problems of a refused deploy."""
    for status in statuses:
        live = "none" if status.version is None else f"v{status.version}"
        print(f"{status.bot_id}\t{status.state}\tlive {live}\t{status.origin}")
        for problem in status.problems:
            print(f"  {problem.describe()}")
    if not statuses:
        print("no bots in the store yet: start the server, or run.py deploy BOT FOLDER")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_os_env()
        serverlog.configure(settings.log_level)
        if args.command == "check":
            return run_check(args.folder)
        if args.command == "logs":
            return asyncio.run(
                show_logs(
                    settings, args.bot, failed=args.failed, as_json=args.json, limit=args.limit
                )
            )
        if args.command == "set-webhook":
            return asyncio.run(set_webhook(settings, args.bot))
        if args.command == "url":
            return run_url(settings, args)
        if args.command == "keys":
            return run_keys(settings, args)
        if args.command in {"bots", "versions", "diff", "rollback", "deploy"}:
            return asyncio.run(run_versions(settings, args))
        if args.command in ("tokens", "users", "audit"):
            return run_accounts(settings, args)
        if args.command == "try":
            return asyncio.run(run_try(settings, args))
        if args.command == "secrets":
            return run_secrets(settings, args)
        if args.command == "schedules":
            return asyncio.run(show_schedules(settings, args))
        return serve(settings, poll=getattr(args, "poll", False))
    except BotboxError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2


# -- run.py try: a command against an emulated Telegram (see runtime/web/trial.py) --


def add_try_command(commands: Any) -> None:
    """``try``: the parser of the local emulator."""
    trial = commands.add_parser(
        "try",
        help="run a message, button press or link click through a bot against an emulated "
        "Telegram (nothing reaches Telegram; a separate data scope unless --real-data)",
    )
    trial.add_argument("bot", help="a bot id, or the path of a bot folder (with a /: mybot/)")
    trial.add_argument("text", nargs="?", help='the message the user sends, e.g. "/start ref_1"')
    trial.add_argument("--user", type=int, default=111, help="the user's id (default 111)")
    trial.add_argument(
        "--chat", type=int, help="a group's id, negative (default: the user's private chat)"
    )
    trial.add_argument("--callback", metavar="DATA", help="press an inline button with this data")
    trial.add_argument("--click", metavar="COMMAND", help="open a signed link to this command")
    trial.add_argument("--params", nargs="*", default=[], metavar="K=V", help="the link's params")
    trial.add_argument("--options", help="JSON options the clicked command sees as `options`")
    trial.add_argument("--json", action="store_true", help="print one JSON document")
    trial.add_argument(
        "--real-data",
        action="store_true",
        help="read and write the bot's real properties (default: the try store, try.sqlite3)",
    )


async def run_try(settings: Settings, args: argparse.Namespace) -> int:
    """Try one trigger; exit 0 if every run ended well, 1 if one failed (2: cannot try)."""
    from runtime.web.trial import (  # noqa: PLC0415
        TrialRequest,
        open_try_store,
        print_trial,
        run_trial,
        try_database,
    )

    request = TrialRequest(
        text=args.text,
        callback=args.callback,
        click=args.click,
        user_id=args.user,
        chat_id=args.chat,
        params=pairs_of(args.params),
        options=None if args.options is None else cast(JSON, read_options(args.options)),
        real_data=args.real_data,
    )
    request.check()
    real = SqliteStore(settings.database, synchronous=settings.sqlite_synchronous)
    await real.open()
    pool = WorkerPool(1, max_workers=2)
    try:
        bot, source = await bot_for_try(settings, real, args.bot, pool)
        generations = await real.bot_generations([bot.id], now=time.time())
        keys = KeyFile(settings.keys_file, generations=generations)
        keys.load()
        store = real
        if not args.real_data:
            store = await open_try_store(
                try_database(settings.data_dir), synchronous=settings.sqlite_synchronous
            )
        try:
            await pool.start()
            trial = await run_trial(
                bot,
                request,
                pool=pool,
                store=store,
                keys=keys,
                base_url=settings.base_url,
                source=source,
            )
        finally:
            if store is not real:
                await store.close()
    finally:
        await pool.close()
        await real.close()
    if args.json:
        print(json.dumps(trial.as_json(), ensure_ascii=False, indent=2))
    else:
        print_trial(trial)
    return 0 if trial.ok else 1


def pairs_of(pairs: Sequence[str]) -> dict[str, str]:
    """``--params NAME=VALUE ...`` as a dict; ConfigError for a pair without ``=``."""
    params: dict[str, str] = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals:
            raise ConfigError(f"--params takes NAME=VALUE pairs, not {pair!r}")
        params[name] = value
    return params


async def bot_for_try(
    settings: Settings, store: SqliteStore, bot_id: str, pool: WorkerPool
) -> tuple[LiveBot, str]:
    """The bot to try: a folder path (``mybot/``), the folder of that id (the demo or under
    BOTBOX_BOTS_DIR) as it is on disk now, else the store's live version. ConfigError with
    every problem if it does not load."""
    # The token is never read (the emulator has its own) and the webhook secret is unused.
    unused_key = b"\0" * 16
    given = Path(bot_id)
    folder = given if "/" in bot_id and is_bot_folder(given) else locate_bot(settings, bot_id)
    if folder is not None:
        definition = load_bot(folder)
        scripts = compile_bot(definition, pool.cache)
        return live_bot(definition, scripts, env={}, master_key=unused_key), f"folder {folder}"
    state = next((s for s in await store.live_states() if s.bot_id == bot_id), None)
    if state is None or state.version is None:
        raise ConfigError(
            f"no bot {bot_id!r}: no folder of that id and no live version in the store"
        )
    files = await store.version_files(bot_id, state.version)
    stored, problems, _ = check_version(bot_id, files or {})
    if stored is None:
        raise ConfigError([problem for problem in problems if not problem.warning])
    scripts = compile_bot(stored, pool.cache)
    bot = live_bot(stored, scripts, env={}, master_key=unused_key, version=state.version)
    return bot, f"store version {state.version}"


# -- schedules (issue 11) --
def add_schedule_commands(commands: Any) -> None:
    """``schedules BOT``: recurring schedules and queued runs; ``--cancel LABEL``."""
    schedules = commands.add_parser(
        "schedules", help="list a bot's recurring schedules and queued runs (--cancel LABEL)"
    )
    schedules.add_argument("bot")
    schedules.add_argument("--label", help="only queued runs with this label")
    schedules.add_argument("--cancel", metavar="LABEL", help="cancel the queued runs with LABEL")
    schedules.add_argument("--limit", type=positive_int, default=100)


async def show_schedules(settings: Settings, args: argparse.Namespace) -> int:
    """Print a bot's recurring schedules (next occurrence) and its queued runs, or cancel."""
    store = SqliteStore(settings.database, synchronous=settings.sqlite_synchronous)
    await store.open()
    try:
        if args.cancel is not None:
            count = await store.cancel_runs(args.bot, label=args.cancel)
            print(f"bot {args.bot}: cancelled {count} queued run(s) labelled {args.cancel!r}")
            return 0
        recurring = await store.bot_schedules(args.bot)
        queued = await store.pending_runs(args.bot, label=args.label, limit=args.limit)
    finally:
        await store.close()
    for schedule in recurring:
        cron, _, zone = schedule.spec.partition("|")
        print(
            f"schedule {schedule.name}\t{cron} ({zone})\t{schedule.command}"
            f"\tnext {when(schedule.due_at)}\tlast {when(schedule.last_run_at)}"
        )
    for run in queued:
        status = "running" if run.status == "claimed" else "pending"
        label = f"\tlabel {run.label}" if run.label else ""
        print(f"run {run.seq}\t{run.command}\tat {when(run.run_after)}\t{status}{label}")
    print(f"bot {args.bot}: {len(recurring)} schedule(s), {len(queued)} queued run(s)")
    return 0
