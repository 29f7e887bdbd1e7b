"""Several processes on one store at once, for the contract suites' concurrency cases."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from tests.runtime.store.test_contract import CHILD_STORES, REPO_ROOT


async def at_once(
    backend: str, tmp_path: Path, code: str, argv: Sequence[Sequence[str]]
) -> list[object]:
    """Start one process per ``argv`` running ``code`` (``{opener}`` is replaced by how the
    backend opens the test's store, bound to ``store``; the store's argument is ``sys.argv[1]``,
    then the child's own). Each child prints ``ready``, waits for ``go`` (sent to all at once),
    does its work and prints one JSON document: return them, in ``argv``'s order."""
    opener, arg = CHILD_STORES[backend]
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            code.format(opener=opener),
            arg(tmp_path),
            *args,
            cwd=REPO_ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for args in argv
    ]
    for child in children:
        assert child.stdout is not None
        assert await asyncio.wait_for(child.stdout.readline(), timeout=30) == b"ready\n"
    for child in children:
        assert child.stdin is not None
        child.stdin.write(b"go\n")
        await child.stdin.drain()
    results = []
    for child in children:
        out, err = await asyncio.wait_for(child.communicate(), timeout=120)
        assert child.returncode == 0, err.decode()
        results.append(json.loads(out))
    return results
