"""Benchmark of signed user links: ``GET /webhook/<bot>`` on a real server, beside bare Sanic.

Run it from the project root: ``.venv/bin/python bench/webhook.py`` (``--quick`` for a smoke run
of about 15 s with 3 s measurements; its figures are noisy).

Two servers are measured one after the other, on 127.0.0.1, with the same load tool, the same
number of connections and the same request paths:

- ``bare``: a minimal Sanic app in a subprocess (single process, access log off) whose route
  ``GET /webhook/<bot_id>`` answers the text ``pong`` and does nothing else;
- ``botbox``: a real server, ``python run.py serve`` (via ``tests.support.server.BotboxServer``:
  one server process, 2 sandbox workers, ``BOTBOX_LOG_LEVEL=WARNING``, a temporary data dir,
  ``BOTBOX_DEMO=false``, a dummy Telegram URL that is never called) with a temporary bot
  ``bench`` whose command ``ping`` runs the script ``res.text("pong")``. Every request is a full
  click: strict parsing and HMAC check of the link, the three rate-limit counters in SQLite, a
  sandbox run with one capability call (``res.text``), and a row in the run log.

The links are minted with ``runtime.signing.links`` against the server's ``keys.json``, one per
simulated user (200 users), so the per-link and per-user counters differ from request to
request as in real traffic. The bot's ``webhook:`` rates are set to 1000000/60 each, so the
rate limits are counted but never refuse a click: this measures capacity, not the limits.

The load tool is ``wrk`` when it is installed (1 thread, 32 connections, a Lua script that
cycles through the links and counts non-200 answers); otherwise a minimal HTTP/1.1 keep-alive
client on asyncio streams in this process, with 32 connections, which on a small machine may
itself be the bottleneck (the tool used is printed; ``--python-client`` forces it). Each target
gets a warm-up (2 s; 1 s with ``--quick``), then a measurement of fixed duration (10 s; 3 s with
``--quick``).

How to read it: ``req/s`` is the throughput, ``p50``/``p99`` the latency seen by the load tool
with 32 requests in flight (so they include queueing). The ratio botbox / bare is the share of a
bare Sanic handler's throughput that a signed, sandboxed round trip keeps; the goals table marks
it PASS or MISS. For information the benchmark also prints the run log's growth (rows and bytes
of the SQLite file and its WAL), the statuses of the runs recorded, the growth of the server's
own log, and the CPU time spent per request by the server process, the sandbox workers and the
load tool. On a machine with few cores all of them compete for CPU; the machine facts come first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

# Run as ``python bench/webhook.py``, this file's folder comes first on sys.path and
# ``bench/sandbox.py`` would shadow the ``sandbox`` package: put the project root there instead.
ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from runtime.signing.links import make_link, signature, url_of  # noqa: E402
from tests.support.links import ring_of  # noqa: E402
from tests.support.server import BotboxServer, free_port  # noqa: E402

BOT_ID: Final = "bench"
COMMAND: Final = "ping"
USERS: Final = 200
FIRST_USER: Final = 1_000_001
CONNECTIONS: Final = 32
WRK_THREADS: Final = 1
RATE: Final = "1000000/60"
GOAL_RATIO: Final = 0.5
DUMMY_TELEGRAM: Final = "http://127.0.0.1:9"  # the discard port: nothing calls it
START_TIMEOUT: Final = 30.0
MAX_SHOWN: Final = 3  # lines of the server's log and failed runs' errors shown

BOT_YAML: Final = f"""\
id: {BOT_ID}
token_env: BENCH_BOT_TOKEN
webhook:
  per_link: {RATE}
  per_user: {RATE}
  per_bot: {RATE}
"""
PING_PY: Final = f'"""\ncommand: {COMMAND}\n"""\nres.text("pong")\n'

BARE_APP: Final = """\
import sys

from sanic import Sanic
from sanic.response import text

app = Sanic("bare")


@app.get("/webhook/<bot_id>")
async def click(request, bot_id):
    return text("pong")


if __name__ == "__main__":
    app.run(
        host="127.0.0.1",
        port=int(sys.argv[1]),
        single_process=True,
        access_log=False,
        motd=False,
    )
"""

WRK_LUA: Final = """\
local paths = {%s}
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("offset", counter * 7)
  table.insert(threads, thread)
end

function init(args)
  index = offset
  good = 0
  bad = 0
end

function request()
  index = index %% #paths + 1
  return wrk.format("GET", paths[index])
end

function response(status, headers, body)
  if status == 200 then good = good + 1 else bad = bad + 1 end
end

function done(summary, latency, requests)
  local good_total, bad_total = 0, 0
  for _, thread in ipairs(threads) do
    good_total = good_total + thread:get("good")
    bad_total = bad_total + thread:get("bad")
  end
  local errors = summary.errors
  io.write(string.format(
    "BENCH requests=%%d duration_us=%%d p50_us=%%d p99_us=%%d good=%%d bad=%%d "
    .. "socket_errors=%%d\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    good_total, bad_total,
    errors.connect + errors.read + errors.write + errors.timeout))
end
"""


@dataclass(frozen=True, slots=True)
class Config:
    """Durations in whole seconds; ``--quick`` shortens them."""

    warmup: int
    duration: int


FULL = Config(warmup=2, duration=10)
QUICK = Config(warmup=1, duration=3)


@dataclass(frozen=True, slots=True)
class Load:
    """What one measurement saw."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    non_200: int
    socket_errors: int

    @property
    def rps(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        """Return the figures as one line of text."""
        return (
            f"{self.rps:8.0f} req/s   p50 {self.p50_ms:7.2f} ms   p99 {self.p99_ms:7.2f} ms   "
            f"({self.requests} requests in {self.seconds:.1f} s)"
        )


@dataclass(frozen=True, slots=True)
class CpuTimes:
    """CPU seconds (user + system) of a server process and its descendants (the fork server and
    the workers it forks), live and reaped."""

    server: float
    children: float

    @classmethod
    def of(cls, pid: int) -> CpuTimes:
        """Read /proc for ``pid`` and its descendants (zeros where /proc is unavailable)."""
        tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        own = _proc_times(pid)
        below = sum(sum(_proc_times(child)) for child in _descendants(pid))
        return cls(server=(own[0] + own[1]) / tick, children=(below + own[2] + own[3]) / tick)


def _proc_times(pid: int) -> tuple[int, int, int, int]:
    """utime, stime, cutime, cstime of a process in clock ticks (zeros if it is gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return (0, 0, 0, 0)
    fields = text.rpartition(")")[2].split()  # fields from the 3rd on; the name may hold spaces
    return (int(fields[11]), int(fields[12]), int(fields[13]), int(fields[14]))


def _descendants(pid: int) -> list[int]:
    """Children, grandchildren and so on (workers are children of the fork server)."""
    found: list[int] = []
    for child in _children(pid):
        found.append(child)
        found.extend(_descendants(child))
    return found


def _children(pid: int) -> list[int]:
    """The pids of a process's children (empty when the kernel does not list them)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(part) for part in text.split()]


def heading(title: str) -> None:
    """Print a section heading."""
    print(f"\n== {title}")


def row(label: str, value: str) -> None:
    """Print one labelled figure."""
    print(f"  {label:<40} {value}")


# --- the load tools ----------------------------------------------------------------------------


class Wrk:
    """``wrk`` with a Lua script cycling through the request paths."""

    name = "wrk"

    def __init__(self, executable: str, paths: Sequence[str], folder: Path) -> None:
        self.executable = executable
        self.script = folder / "links.lua"
        quoted = ",\n  ".join(f'"{path}"' for path in paths)
        self.script.write_text(WRK_LUA % f"\n  {quoted}\n")

    def describe(self) -> str:
        """The tool and its settings, for the report."""
        version = subprocess.run(
            [self.executable, "--version"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        words = (version.stdout or version.stderr).split()[:2]
        return f"{' '.join(words) or 'wrk'}; {WRK_THREADS} thread, {CONNECTIONS} connections"

    def run(self, base_url: str, seconds: int) -> tuple[Load, int]:
        """Load ``base_url`` for ``seconds``; return the figures and the child's CPU ticks."""
        command = [
            self.executable,
            f"-t{WRK_THREADS}",
            f"-c{CONNECTIONS}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(self.script),
            base_url,
        ]
        before = os.times()
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=seconds + 60, check=False
        )
        after = os.times()
        cpu = (after.children_user + after.children_system) - (
            before.children_user + before.children_system
        )
        if done.returncode != 0:
            raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
        line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH ")), None)
        if line is None:
            raise RuntimeError(f"wrk printed no summary:\n{done.stdout}\n{done.stderr}")
        values = {k: int(v) for k, _, v in (p.partition("=") for p in line.split()[1:])}
        load = Load(
            requests=values["requests"],
            seconds=values["duration_us"] / 1e6,
            p50_ms=values["p50_us"] / 1000,
            p99_ms=values["p99_us"] / 1000,
            non_200=values["bad"],
            socket_errors=values["socket_errors"],
        )
        return load, round(cpu * 1000)


class PythonClient:
    """HTTP/1.1 keep-alive over asyncio streams in this process, ``CONNECTIONS`` at once.

    Deliberately minimal (GET, ``Content-Length`` bodies only): an ``httpx.AsyncClient`` with 32
    connections managed under 300 requests/s on a 2-core machine, far below either server.
    """

    name = "python"

    def __init__(self, paths: Sequence[str]) -> None:
        self.paths = list(paths)

    def describe(self) -> str:
        """The tool and its settings, for the report."""
        return f"asyncio streams HTTP/1.1 client in-process; {CONNECTIONS} connections"

    def run(self, base_url: str, seconds: int) -> tuple[Load, int]:
        """Load ``base_url`` for ``seconds``; return the figures and this process's CPU ms."""
        before = time.process_time()
        load = asyncio.run(self._run(base_url, seconds))
        return load, round((time.process_time() - before) * 1000)

    async def _run(self, base_url: str, seconds: int) -> Load:
        parts = urlsplit(base_url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        latencies: list[int] = []
        counts = {"non_200": 0, "errors": 0}
        clock = time.perf_counter_ns
        started = clock()
        deadline = started + seconds * 1_000_000_000

        async def connection(index: int) -> None:
            writer: asyncio.StreamWriter | None = None
            try:
                while clock() < deadline:
                    if writer is None:
                        reader, writer = await asyncio.open_connection(host, port)
                    path = self.paths[index % len(self.paths)]
                    index += CONNECTIONS
                    sent = clock()
                    try:
                        status, keep = await exchange(reader, writer, host, path)
                    except (OSError, asyncio.IncompleteReadError, ValueError):
                        counts["errors"] += 1
                        writer.close()
                        writer = None
                        continue
                    latencies.append(clock() - sent)
                    counts["non_200"] += status != 200
                    if not keep:
                        writer.close()
                        writer = None
            finally:
                if writer is not None:
                    writer.close()

        await asyncio.gather(*(connection(i * 7) for i in range(CONNECTIONS)))
        elapsed = (clock() - started) / 1e9
        latencies.sort()
        count = len(latencies)

        def percentile(share: float) -> float:
            return latencies[min(count - 1, int(share * count))] / 1e6 if count else 0.0

        return Load(
            requests=count,
            seconds=elapsed,
            p50_ms=percentile(0.50),
            p99_ms=percentile(0.99),
            non_200=counts["non_200"],
            socket_errors=counts["errors"],
        )


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, path: str
) -> tuple[int, bool]:
    """Send one GET and read its answer; return the status and whether the connection stays."""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode("ascii"))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in lines[1:] if line)
    }
    await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers.get("connection", "keep-alive").lower() != "close"


Tool = Wrk | PythonClient


def pick_tool(paths: Sequence[str], folder: Path, *, force_python: bool) -> Tool:
    """``wrk`` if installed (and not refused), else the Python client."""
    executable = None if force_python else shutil.which("wrk")
    if executable is None:
        return PythonClient(paths)
    return Wrk(executable, paths, folder)


# --- the servers -------------------------------------------------------------------------------


def wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until ``url`` answers at all (any status), or fail with the log's tail."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the bare server exited:\n{log.read_text()[-3000:]}")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"the bare server did not start:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def bare_server(folder: Path) -> Iterator[tuple[str, int]]:
    """Run the bare Sanic app; yield its base URL and pid."""
    app = folder / "bare_app.py"
    app.write_text(BARE_APP)
    log = folder / "bare.log"
    port = free_port()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, str(app), str(port)],
            cwd=folder,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(f"{url}/webhook/{BOT_ID}", process, log)
        yield url, process.pid
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def make_bot(folder: Path) -> Path:
    """Write the bench bot's folder; return the bots directory that holds it."""
    bots = folder / "bots"
    bot = bots / BOT_ID
    bot.mkdir(parents=True)
    (bot / "bot.yaml").write_text(BOT_YAML)
    (bot / f"{COMMAND}.py").write_text(PING_PY)
    return bots


@contextlib.contextmanager
def botbox_server(folder: Path) -> Iterator[BotboxServer]:
    """Run a botbox server with the bench bot; yield it."""
    server = BotboxServer(
        folder / "data",
        telegram_api=DUMMY_TELEGRAM,
        env={"BENCH_BOT_TOKEN": "123456:bench-token-never-used"},
        bots_dir=make_bot(folder),
        demo=False,
    )
    try:
        server.start()
        yield server
    finally:
        server.close()


def mint_paths(data_dir: Path) -> list[str]:
    """One signed link path (``/webhook/...?...``) per simulated user, from the server's keys."""
    ring = ring_of(data_dir)
    now = time.time()
    paths: list[str] = []
    for user in range(FIRST_USER, FIRST_USER + USERS):
        link = make_link(COMMAND, user_id=user, now=now)
        paths.append(url_of("", BOT_ID, link, signature(ring, BOT_ID, link)))
    return paths


@dataclass(frozen=True, slots=True)
class RunLog:
    """The run log's size at one moment."""

    rows: int
    file_bytes: int
    statuses: dict[str, int]
    errors: list[str]

    @classmethod
    def of(cls, database: Path) -> RunLog:
        """Count the bench bot's runs (read-only) and the SQLite file's and WAL's size."""
        sizes = sum(
            p.stat().st_size
            for p in (database, database.with_name(database.name + "-wal"))
            if p.exists()
        )
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as conn:
            statuses = dict(
                conn.execute(
                    "SELECT status, count(*) FROM run WHERE bot_id = ? GROUP BY status", (BOT_ID,)
                ).fetchall()
            )
            errors = conn.execute(
                "SELECT error FROM run WHERE bot_id = ? AND status != 'ok' ORDER BY id LIMIT ?",
                (BOT_ID, MAX_SHOWN),
            ).fetchall()
        return cls(sum(statuses.values()), sizes, statuses, [str(e[0]) for e in errors])


# --- the benchmark -----------------------------------------------------------------------------


def machine_facts(mode: str) -> None:
    """Print what the figures were measured on."""
    heading("machine")
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    row("cpu count (os / usable)", f"{os.cpu_count()} / {affinity}")
    row("python", f"{platform.python_implementation()} {platform.python_version()}")
    row("platform", platform.platform())
    row("mode", mode)


def check_once(base_url: str, path: str) -> None:
    """Fail loudly unless one click answers 200 ``pong``."""
    answer = httpx.get(base_url + path, timeout=10)
    if answer.status_code != 200 or answer.text != "pong":
        raise RuntimeError(f"a click answered {answer.status_code}: {answer.text[:300]!r}")


def report(name: str, load: Load, cpu: dict[str, float]) -> None:
    """Print one target's figures and its CPU time per request."""
    row(name, load.line())
    row("    non-200 answers; socket errors", f"{load.non_200}; {load.socket_errors}")
    per = ", ".join(f"{k} {v * 1e6 / max(load.requests, 1):.0f}" for k, v in cpu.items())
    row("    CPU µs per request", per)


def section_setup(tool: Tool, paths: Sequence[str], config: Config) -> None:
    """Print how the benchmark is set up."""
    heading("setup")
    row("load tool", tool.describe())
    row("links", f"{len(paths)} (one per user, all distinct), command {COMMAND!r}")
    row("bot webhook rates", f"per_link/per_user/per_bot {RATE}: never limiting")
    row("botbox server", "1 server process, 2 sandbox workers, log level WARNING")
    row("durations", f"{config.warmup} s warm-up, then {config.duration} s measured")


def section_botbox(server: BotboxServer, tool: Tool, config: Config) -> Load:
    """Measure the botbox server; print its figures and its run log's growth."""
    heading("botbox: signed link -> rate limits -> sandbox -> res.text -> run log")
    assert server.process is not None
    pid = server.process.pid
    database = server.data_dir / "botbox.sqlite3"
    tool.run(server.url, config.warmup)
    log_before, runs_before = server.log.stat().st_size, RunLog.of(database)
    cpu_before = CpuTimes.of(pid)
    load, tool_ms = tool.run(server.url, config.duration)
    cpu_after = CpuTimes.of(pid)
    server.wait_idle(timeout=30)
    log_after, runs_after = server.log.stat().st_size, RunLog.of(database)
    cpu = {
        "server": cpu_after.server - cpu_before.server,
        "workers": cpu_after.children - cpu_before.children,
        tool.name: tool_ms / 1000,
    }
    report("signed, sandboxed round trip", load, cpu)
    added = runs_after.rows - runs_before.rows
    grown = runs_after.file_bytes - runs_before.file_bytes
    row(
        "    run log growth (info)",
        f"+{added} rows, +{grown / 1e6:.1f} MB SQLite+WAL ({grown / max(added, 1):.0f} B/run)",
    )
    statuses = ", ".join(f"{k} {v}" for k, v in sorted(runs_after.statuses.items()))
    row("    run statuses, whole run (info)", statuses)
    row("    server's own log growth (info)", f"+{log_after - log_before} bytes")
    if log_after > log_before:
        with server.log.open("rb") as handle:
            handle.seek(log_before)
            tail = handle.read(2000).decode("utf-8", "replace").strip().splitlines()
        for line in tail[:MAX_SHOWN]:
            print(f"      | {line[:200]}")
    for error in runs_after.errors[:MAX_SHOWN]:
        row("    a failed run's error (info)", error[:200])
    return load


def section_bare(folder: Path, tool: Tool, path: str, config: Config) -> Load:
    """Measure the bare Sanic handler; print its figures."""
    heading("bare Sanic handler: GET /webhook/<bot_id> -> text('pong')")
    with bare_server(folder) as (url, pid):
        check_once(url, path)
        tool.run(url, config.warmup)
        before = CpuTimes.of(pid)
        load, tool_ms = tool.run(url, config.duration)
        after = CpuTimes.of(pid)
    report(
        "bare handler", load, {"server": after.server - before.server, tool.name: tool_ms / 1000}
    )
    return load


def bench(config: Config, *, force_python: bool) -> dict[str, float]:
    """Measure both servers, one after the other; return the figures the goals need."""
    with tempfile.TemporaryDirectory(prefix="botbox-bench-webhook-") as temporary:
        folder = Path(temporary)
        with botbox_server(folder) as server:
            paths = mint_paths(server.data_dir)
            tool = pick_tool(paths, folder, force_python=force_python)
            section_setup(tool, paths, config)
            check_once(server.url, paths[0])
            botbox = section_botbox(server, tool, config)
        bare = section_bare(folder, tool, paths[0], config)
    return {
        "botbox_rps": botbox.rps,
        "bare_rps": bare.rps,
        "bad": botbox.non_200 + botbox.socket_errors + bare.non_200 + bare.socket_errors,
        "tool_is_wrk": float(tool.name == "wrk"),
    }


def goals(figures: dict[str, float]) -> None:
    """Print the ratio and the goals table with PASS/MISS verdicts."""
    ratio = figures["botbox_rps"] / figures["bare_rps"] if figures["bare_rps"] else 0.0
    heading("ratio")
    row("botbox req/s / bare req/s", f"{ratio:.2f}")
    heading("goals")
    checks = [
        (
            "signed, sandboxed round trip",
            f"{ratio:.2f} x bare",
            f"≥ {GOAL_RATIO} x bare handler throughput",
            ratio >= GOAL_RATIO,
        ),
        (
            "every answer was 200",
            f"{figures['bad']:.0f} bad",
            "0 non-200 / socket errors",
            figures["bad"] == 0,
        ),
    ]
    print(f"  {'metric':<30} {'measured':>14}  {'goal':<40} verdict")
    for name, value, goal, ok in checks:
        print(f"  {name:<30} {value:>14}  {goal:<40} {'PASS' if ok else 'MISS'}")
    if not figures["tool_is_wrk"]:
        print("  (load from the Python client, which may be the bottleneck: install wrk)")


def main() -> None:
    """Parse the command line and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="3 s measurements, a smoke run")
    parser.add_argument(
        "--python-client", action="store_true", help="use the Python client even if wrk exists"
    )
    args = parser.parse_args()
    config = QUICK if args.quick else FULL
    started = time.perf_counter()
    machine_facts("quick" if args.quick else "full")
    figures = bench(config, force_python=args.python_client)
    goals(figures)
    print(f"\n  (benchmark took {time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
