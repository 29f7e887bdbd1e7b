"""``python -m sandbox run FILE [--json]``: run a standalone script the way botbox would."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from sandbox.compiler import compile_script
from sandbox.limits import Limits
from sandbox.pool import WorkerPool
from sandbox.result import RunResult, Status


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a script with the default limits")
    run.add_argument("file", type=Path, help="the script to run")
    run.add_argument("--json", action="store_true", help="print the result as one JSON document")
    return parser


async def run_file(path: Path) -> RunResult:
    """Compile and run one file in a one-worker pool."""
    source = path.read_text(encoding="utf-8")
    script = compile_script(source, filename=path.name)
    if not script.ok:
        return RunResult(Status.COMPILE_ERROR, error=script.failure())
    async with WorkerPool(1, limits=Limits()) as pool:
        return await pool.run(script)


def render(result: RunResult, path: Path) -> str:
    """Return the human report: the script's output, then how it ended."""
    lines = [result.output.rstrip("\n")] if result.output else []
    if result.error is not None and result.status is Status.SCRIPT_ERROR:
        lines.append("Traceback (script frames only):")
        lines.extend(
            f'  File "{path.name}", line {f.line}, in {f.function}\n    {f.text}'
            for f in result.error.traceback
        )
    lines.append(
        f"-- {result.describe()} (cpu {result.cpu_seconds * 1000:.1f} ms, "
        f"wall {result.wall_seconds * 1000:.1f} ms, "
        f"{len(result.calls)} capability calls)"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 only when the script succeeded)."""
    args = build_parser().parse_args(argv)
    try:
        result = asyncio.run(run_file(args.file))
    except (OSError, UnicodeDecodeError) as exc:
        sys.stderr.write(f"cannot read {args.file}: {exc}\n")
        return 2
    if args.json:
        sys.stdout.write(json.dumps(result.as_dict(), indent=2) + "\n")
    else:
        sys.stdout.write(render(result, args.file) + "\n")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
