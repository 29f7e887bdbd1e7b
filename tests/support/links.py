"""Helpers for signed-link tests: mint with a server's real key ring, edit queries, count runs.

Links are minted with the pure functions of :mod:`runtime.signing.links` and the key ring the server
itself reads (``<data dir>/keys.json``, with the bots' generations from the store file), so
they are exactly what a script or the CLI would make. Queries are edited as lists of decoded
``(name, value)`` pairs and encoded again. Runs are counted in the store file directly (far
quicker than ``python run.py logs``), after a probe click has flushed the write-behind run
log (:func:`settle`).
"""

from __future__ import annotations

import itertools
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote_plus, urlsplit

from runtime.signing.keys import KeyFile, KeyRing
from runtime.signing.links import Link, make_link, signature, url_of
from tests.support.server import ROOT, BotboxServer

Pairs = list[tuple[str, str]]


def ring_of(data_dir: Path) -> KeyRing:
    """The key ring in a server's data directory, with its live bots' generations, read now."""
    return KeyFile(data_dir / "keys.json", generations=generations_of(data_dir)).load()


def generations_of(data_dir: Path) -> dict[str, str]:
    """The link generation of every live bot in a server's store file (none before it exists)."""
    path = data_dir / "botbox.sqlite3"
    if not path.exists():
        return {}
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        rows = conn.execute("SELECT bot_id, generation FROM bot WHERE retired_at IS NULL")
        return {str(bot_id): str(generation) for bot_id, generation in rows}
    finally:
        conn.close()


def sign(data_dir: Path, bot_id: str, link: Link) -> str:
    """The relative URL (``/webhook/...?...``) of ``link`` signed with the server's ring."""
    return url_of("", bot_id, link, signature(ring_of(data_dir), bot_id, link))


def mint(
    data_dir: Path,
    command: str,
    *,
    bot_id: str = "demo",
    user_id: int | None,
    now: float | None = None,
    **options: Any,
) -> str:
    """A valid relative link, checked by ``make_link`` exactly as a script's would be."""
    link = make_link(
        command,
        user_id=user_id,
        now=time.time() if now is None else now,
        allow_http_redirects=False,
        **options,
    )
    return sign(data_dir, bot_id, link)


def split(url: str) -> tuple[str, Pairs]:
    """A link's path and its decoded query pairs, in order."""
    parts = urlsplit(url)
    pairs = [
        (unquote_plus(name), unquote_plus(value))
        for name, _, value in (p.partition("=") for p in parts.query.split("&"))
    ]
    return parts.path, pairs


def join(path: str, pairs: Sequence[tuple[str, str]]) -> str:
    """A relative URL from a path and query pairs (everything percent-encoded)."""
    query = "&".join(f"{quote(n, safe='')}={quote(v, safe='')}" for n, v in pairs)
    return f"{path}?{query}"


def value_of(url: str, name: str) -> str:
    """The decoded value of one query parameter of a link."""
    return dict(split(url)[1])[name]


def replace_value(url: str, name: str, value: str) -> str:
    """The link with one parameter's value replaced (its position kept)."""
    path, pairs = split(url)
    return join(path, [(n, value if n == name else v) for n, v in pairs])


def drop(url: str, name: str) -> str:
    """The link without one parameter."""
    path, pairs = split(url)
    return join(path, [(n, v) for n, v in pairs if n != name])


def duplicate(url: str, name: str) -> str:
    """The link with one parameter repeated, same value, at the end."""
    path, pairs = split(url)
    return join(path, [*pairs, *[(n, v) for n, v in pairs if n == name]])


def add(url: str, name: str, value: str) -> str:
    """The link with one more parameter."""
    path, pairs = split(url)
    return join(path, [*pairs, (name, value)])


def runs(
    data_dir: Path,
    bot_id: str = "demo",
    *,
    users: Iterable[int] | None = None,
    command: str | None = None,
) -> int:
    """How many webhook runs of a bot the store file holds (of these users / this command).

    ``users`` also counts runs with no user (a tampered link turned global). The run log is
    written behind, so call :func:`settle` first when the answer must include recent clicks.
    """
    sql = "SELECT count(*) FROM run WHERE bot_id = ? AND trigger = 'webhook'"
    args: list[object] = [bot_id]
    if users is not None:
        ids = list(users)
        sql += f" AND (user_id IS NULL OR user_id IN ({', '.join('?' * len(ids))}))"
        args.extend(ids)
    if command is not None:
        sql += " AND command = ?"
        args.append(command)
    uri = f"file:{data_dir / 'botbox.sqlite3'}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=5)
    try:
        (count,) = conn.execute(sql, args).fetchone()
    finally:
        conn.close()
    return int(count)


_probe_users = itertools.count(900_000_000)


def settle(
    server: BotboxServer,
    bot_id: str = "demo",
    *,
    probe: str = "stats",
    records: int = 3,
    timeout: float = 5.0,
) -> None:
    """Wait until every run the server has logged so far is in the store file.

    The run log queues records in order and writes them behind, in batches. So a probe click
    is made (``probe``, for a user of its own) and once its ``records`` records (3 for the demo
    bot: ``@``, the command, ``@@``) are visible, every record queued before them is too.
    """
    user = next(_probe_users)
    response = server.client.get(mint(server.data_dir, probe, bot_id=bot_id, user_id=user))
    assert response.status_code == 200, response.text
    deadline = time.monotonic() + timeout
    while runs(server.data_dir, bot_id, users=[user]) < records:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the probe's {records} run records did not reach the store")
        time.sleep(0.005)


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python run.py ARGS`` with a server's environment; never raises on failure."""
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
