"""Benchmark of the webhook path: Telegram updates in, the bot's Bot API call out, end to end.

Run it from the project root: ``.venv/bin/python bench/updates.py`` (``--quick`` for a smoke run
of under 30 s with far fewer updates; its figures are noisy).

Four kinds of process take part, each in its own interpreter, all on 127.0.0.1:

- this client: asyncio ``httpx.AsyncClient`` s (one in sequential phases, one per chat in
  concurrent ones, connected before the clock starts) that POST updates the way Telegram does
  (``POST /telegram/bench`` with the webhook secret header; bodies are built before timing);
- a real botbox server, ``python run.py serve`` (via ``tests.support.server.BotboxServer``),
  with a temporary bot folder (``bot.yaml`` + command files), a temporary data dir on the
  machine's disk, ``BOTBOX_DEMO=false`` and ``BOTBOX_LOG_LEVEL=WARNING``;
- the Telegram Bot API stand-in (``tests.support.telegram_standin``), in a child process so its
  request threads do not share this client's GIL; it writes the arrival time
  (``time.monotonic_ns``, one clock for every process on Linux) of every ``sendMessage`` /
  ``editMessageText`` it accepts back to this process;
- for the baseline, a bare Sanic app (single process) whose POST route parses the JSON body
  and answers ``{"ok": true}``, driven by the same client code.

What is measured:

- ``e2e``: from the start of the POST until the bot's Bot API call reaches the stand-in;
- ``ack``: from the start of the POST until its 200 answer (the update is stored by then);
- ``upd/s``: updates / (last arrival - first POST). Sequential phases (``1 client``) wait for
  each update's echo before sending the next; concurrent phases (``N chats``) run one task per
  chat that sends its updates in order, each after the previous one's 200 (as Telegram does),
  without waiting for the echo. There the 200s come faster than the bot's calls, the server's
  queue grows, and e2e latency is mostly time in that queue: read throughput there;
- CPU per update of each process group (``/proc/<pid>/stat``): the server's main process, its
  sandbox workers, the stand-in, this client; and the share of one core each used. The client
  is a single asyncio thread: when it is near 100% (the bare app with 50 chats), the bare
  figure is the client's limit, and the botbox/bare ratio an upper bound.

The bot has two commands. ``echo.py`` (``command: "*"``) runs ``Bot.sendMessage(message)``. That
call is paced to Telegram's flood limits (``runtime/telegram/flood.py``, slots reserved in the
store, shared by every process): one message a second per chat and 30 a second per bot, as exact
sliding windows (a bot can turn it off with ``telegram: flood_limits: false`` in bot.yaml, meant
for local Bot API servers; the benchmark keeps it on, as a real bot would). So the pipeline
itself is measured with ``edit.py`` (``command: /edit``), whose script
``Api.editMessageText(message_id=1, text=message)`` does the same work (one sandbox run, one
capability call, one Bot API call carrying the chat id and the text) with a method that is not
paced (only ``send*``, ``forward*`` and ``copy*`` are). The ``sendMessage`` rows show what a bot
gets with Telegram's flood limits; their sequential phase uses a new chat for every update, so
only the per-bot 30/s applies there.

The ungated phases run on a fresh server (and data dir) with the default
``BOTBOX_SQLITE_SYNCHRONOUS=FULL`` and on another with ``NORMAL``; in full mode twice, in the
order FULL, NORMAL, FULL, NORMAL, so that other work on the machine spreads over both (rows
``#1``, ``#2``; the ratios use each mode's fastest round). The data dir's filesystem is printed:
on tmpfs the two modes are the same.

Last, on a fresh server, 100 concurrent increments of one property from 100 chats at once
(``--increments`` runs only this): ``/count`` reads, adds one and writes back (runs whose read
went stale are re-run; the run log's ``retries`` are summed), ``/inc`` uses ``incProperty``
(never a conflict). Each must end at exactly 100; the time is from the first POST until it does.

How to read it: the ratios compare botbox's figures to the bare handler's. On a machine with
few cores the client, the stand-in, the server and its sandbox workers compete for CPU; the
machine facts are printed first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

# Run as ``python bench/updates.py``, this file's folder comes first on sys.path and
# ``bench/sandbox.py`` would shadow the ``sandbox`` package: put the project root there instead.
ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from runtime.telegram.flood import GLOBAL_RATE  # noqa: E402
from tests.support.server import BotboxServer, free_port  # noqa: E402
from tests.support.updates import make_update  # noqa: E402

BOT_ID: Final = "bench"
TOKEN: Final = "424242:BENCH-token"
SECRET_HEADER: Final = "X-Telegram-Bot-Api-Secret-Token"
BOT_YAML: Final = f"name: botbox benchmark\nid: {BOT_ID}\ntoken_env: BENCH_BOT_TOKEN\n"
ECHO_PY: Final = (
    '"""\ncommand: "*"\ndescription: Echoes the message\n"""\nBot.sendMessage(message)\n'
)
EDIT_PY: Final = (
    '"""\ncommand: /edit\ndescription: Same work as echo, by a method flood pacing does not hold'
    '\n"""\nApi.editMessageText(message_id=1, text=message)\n'
)
COUNT_PY: Final = (
    '"""\ncommand: /count\ndescription: Read, add one, write back\n"""\n'
    'Bot.setProperty("count", Bot.getProperty("count", 0) + 1)\n'
)
INC_PY: Final = '"""\ncommand: /inc\ndescription: Add one atomically\n"""\nBot.incProperty("inc")\n'
INCREMENTS: Final = 100
ECHO_METHODS: Final = ("sendMessage", "editMessageText")
FIRST_CHAT: Final = 100_000
START_TIMEOUT: Final = 30.0
ECHO_TIMEOUT: Final = 30.0
POST_TIMEOUT: Final = 30.0


@dataclass(frozen=True, slots=True)
class Config:
    """Update counts; ``--quick`` shrinks them for a smoke run."""

    warmup: int
    sequential: int
    chats: int
    per_chat: int
    gated_sequential: int
    gated_chats: int
    gated_per_chat: int
    bare_sequential: int
    bare_per_chat: int
    rounds: int


FULL = Config(
    warmup=100,
    sequential=500,
    chats=50,
    per_chat=50,
    gated_sequential=100,
    gated_chats=50,
    gated_per_chat=10,
    bare_sequential=2000,
    bare_per_chat=100,
    rounds=2,
)
QUICK = Config(
    warmup=20,
    sequential=100,
    chats=50,
    per_chat=8,
    gated_sequential=40,
    gated_chats=20,
    gated_per_chat=4,
    bare_sequential=300,
    bare_per_chat=10,
    rounds=1,
)


@dataclass(frozen=True, slots=True)
class Latency:
    """Summary of a sample of durations, in milliseconds."""

    p50: float
    p90: float
    p99: float

    @classmethod
    def of(cls, durations_ns: Sequence[int]) -> Latency:
        """Summarise durations given in nanoseconds."""
        if len(durations_ns) < 2:
            value = durations_ns[0] / 1e6 if durations_ns else float("nan")
            return cls(value, value, value)
        cuts = statistics.quantiles(durations_ns, n=100, method="inclusive")
        return cls(statistics.median(durations_ns) / 1e6, cuts[89] / 1e6, cuts[98] / 1e6)


@dataclass(slots=True)
class Phase:
    """One measured phase: its label, the update count and duration, and both latencies."""

    label: str
    count: int
    seconds: float
    ack_ns: list[int]
    e2e_ns: list[int]
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Updates (or requests) per second."""
        return self.count / self.seconds if self.seconds > 0 else float("nan")

    @property
    def e2e(self) -> Latency:
        """End-to-end latency."""
        return Latency.of(self.e2e_ns)

    @property
    def ack(self) -> Latency:
        """Acknowledgement latency."""
        return Latency.of(self.ack_ns)


@dataclass(frozen=True, slots=True)
class Item:
    """One update to send: its JSON body and the text its echo will carry (None: no echo)."""

    body: bytes
    key: str | None


@dataclass(slots=True)
class Target:
    """Where updates go: the URL, the headers, and the echo tracker (None for the bare app)."""

    url: str
    headers: dict[str, str]
    health: str
    echoes: Echoes | None = None


class CpuMeter:
    """CPU seconds (user + system, all threads) used by named groups of processes (Linux)."""

    def __init__(self, groups: dict[str, Callable[[], list[int]]]) -> None:
        self.groups = groups
        self.tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def _seconds(self, pid: int) -> float | None:
        try:
            fields_ = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            return None
        return (int(fields_[11]) + int(fields_[12])) / self.tick

    def sample(self) -> dict[str, dict[int, float]]:
        """Per group, each live process's CPU seconds so far."""
        result: dict[str, dict[int, float]] = {}
        for name, pids in self.groups.items():
            seconds = {pid: self._seconds(pid) for pid in pids()}
            result[name] = {pid: value for pid, value in seconds.items() if value is not None}
        return result

    def since(self, before: dict[str, dict[int, float]]) -> dict[str, float]:
        """CPU seconds each group used since ``before`` (processes started since count whole)."""
        after = self.sample()
        return {
            name: sum(value - before.get(name, {}).get(pid, 0.0) for pid, value in now.items())
            for name, now in after.items()
        }


def children_of(parent: int) -> list[int]:
    """The pids whose parent is ``parent`` (the server's sandbox workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(stat[1]) == parent:
            found.append(int(entry.name))
    return found


# --- the stand-in, in a child process --------------------------------------------------------


def serve_standin() -> None:
    """Child mode: run a stand-in; print its URL, then one JSON line per echo-like call."""
    from tests.support.telegram_standin import TelegramStandIn  # noqa: PLC0415

    lock = threading.Lock()
    out = sys.stdout

    class TimedStandIn(TelegramStandIn):
        """The stand-in, reporting when each sendMessage / editMessageText arrived."""

        def handle(
            self, http_method: str, path: str, content_type: str, body: bytes
        ) -> tuple[int, bytes]:
            """Answer as usual, then report the arrival time and the call's text."""
            arrived = time.monotonic_ns()
            status, reply = super().handle(http_method, path, content_type, body)
            method = path.rsplit("/", 1)[-1].split("?", 1)[0]
            if method in ECHO_METHODS or status != 200:
                try:
                    text = json.loads(body).get("text")
                except (ValueError, AttributeError):
                    text = None
                line = json.dumps([arrived, status, method, text])
                with lock:
                    out.write(line + "\n")
                    out.flush()
            return status, reply

    with TimedStandIn(tokens={TOKEN}) as standin:
        out.write(f"READY {standin.base_url}\n")
        out.flush()
        sys.stdin.read()  # until the parent closes our stdin


class Echoes:
    """Reads the stand-in child's reports and resolves one future per expected echo text."""

    def __init__(self, process: asyncio.subprocess.Process, base_url: str) -> None:
        self.process = process
        self.base_url = base_url
        self.arrived: dict[str, int] = {}
        self.waiting: dict[str, asyncio.Future[int]] = {}
        self.refused: list[str] = []
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, log: IO[bytes]) -> Echoes:
        """Start the stand-in child and wait for its URL."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--child-standin",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            cwd=ROOT,
        )
        try:
            assert process.stdout is not None
            async with asyncio.timeout(START_TIMEOUT):
                first = (await process.stdout.readline()).decode().split()
            if len(first) != 2 or first[0] != "READY":
                raise RuntimeError(f"the stand-in did not start: {first}")
        except BaseException:
            process.kill()
            await process.wait()
            raise
        return cls(process, first[1])

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            arrived, status, method, text = json.loads(line)
            if status != 200:
                self.refused.append(f"{method}: HTTP {status}")
                continue
            key = str(text)
            if key in self.arrived:
                continue  # a redelivery: the first arrival counts
            self.arrived[key] = arrived
            future = self.waiting.pop(key, None)
            if future is not None and not future.done():
                future.set_result(arrived)

    def expect(self, key: str) -> asyncio.Future[int]:
        """A future for the arrival time (monotonic ns) of the call carrying ``key``."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        if key in self.arrived:
            future.set_result(self.arrived[key])
        else:
            self.waiting[key] = future
        return future

    async def close(self) -> None:
        """Stop the child (closing its stdin), killing it if it does not exit."""
        if self.process.returncode is None:
            if self.process.stdin is not None:
                self.process.stdin.close()
            try:
                async with asyncio.timeout(10):
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        self._reader.cancel()


# --- the bare Sanic app, in a child process --------------------------------------------------


def serve_bare(port: int) -> None:
    """Child mode: a minimal Sanic app answering ``{"ok": true}`` to JSON POSTs."""
    from sanic import HTTPResponse, Request, Sanic  # noqa: PLC0415
    from sanic.response import json as json_response  # noqa: PLC0415

    app: Sanic[Any, Any] = Sanic("bench_bare", configure_logging=False)

    async def update(request: Request, bot_id: str) -> HTTPResponse:
        json.loads(request.body)
        return json_response({"ok": True})

    async def health(request: Request) -> HTTPResponse:
        return json_response({"ok": True})

    app.add_route(update, "/telegram/<bot_id:str>", methods=["POST"])
    app.add_route(health, "/health", methods=["GET"])
    app.run(host="127.0.0.1", port=port, single_process=True, access_log=False, motd=False)


def start_bare(log: IO[bytes]) -> tuple[subprocess.Popen[bytes], str]:
    """Start the bare Sanic child; return it and its URL once /health answers."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, __file__, "--child-bare", str(port)],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the bare Sanic app exited")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    stop_process(process)
    raise RuntimeError("the bare Sanic app did not start")


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    """SIGINT, then SIGKILL after 10 s."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# --- the client ------------------------------------------------------------------------------


class Updates:
    """Builds update bodies with fresh update ids and unique echo texts."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._chats = itertools.count(FIRST_CHAT)

    def new_chat(self) -> int:
        """A chat id not used before."""
        return next(self._chats)

    def item(self, chat_id: int, *, gated: bool) -> Item:
        """One message update in ``chat_id``: ``u<id>`` for the echo, ``/edit u<id>`` else."""
        update_id = next(self._ids)
        text = f"u{update_id}" if gated else f"/edit u{update_id}"
        update = make_update(update_id=update_id, user_id=chat_id, chat_id=chat_id, text=text)
        return Item(json.dumps(update).encode(), text)

    def chats(self, chats: int, per_chat: int, *, gated: bool) -> list[list[Item]]:
        """``chats`` new chats with ``per_chat`` updates each."""
        result = []
        for _ in range(chats):
            chat_id = self.new_chat()
            result.append([self.item(chat_id, gated=gated) for _ in range(per_chat)])
        return result


async def post(client: httpx.AsyncClient, target: Target, item: Item) -> tuple[int, int]:
    """POST one update; return when it started and how long the 200 took (ns)."""
    started = time.monotonic_ns()
    response = await client.post(target.url, content=item.body, headers=target.headers)
    acked = time.monotonic_ns()
    if response.status_code != 200:
        raise RuntimeError(f"POST answered {response.status_code}: {response.text[:300]}")
    return started, acked - started


async def sequential(
    client: httpx.AsyncClient,
    target: Target,
    items: list[Item],
    label: str,
    *,
    meter: CpuMeter | None = None,
) -> Phase:
    """One client: send each update after the previous one's echo arrived."""
    acks: list[int] = []
    e2e: list[int] = []
    cpu = meter.sample() if meter is not None else {}
    first = time.monotonic_ns()
    last = first
    for item in items:
        future = target.echoes.expect(item.key) if target.echoes and item.key else None
        started, ack = await post(client, target, item)
        acks.append(ack)
        if future is not None:
            async with asyncio.timeout(ECHO_TIMEOUT):
                last = await future
            e2e.append(last - started)
        else:
            last = started + ack
            e2e.append(ack)
    used = meter.since(cpu) if meter is not None else {}
    return Phase(label, len(items), (last - first) / 1e9, acks, e2e, used)


async def concurrent(
    target: Target,
    chats: list[list[Item]],
    label: str,
    *,
    timeout: float,
    meter: CpuMeter | None = None,
) -> Phase:
    """One task per chat sending its updates in order; then wait for every echo.

    Each chat has its own client (one connection, as if each chat were its own sender): one
    shared ``httpx.AsyncClient`` serving 50 concurrent tasks spends most of its time in its
    connection pool (~500 requests/s against the bare app here, ~1400/s with a client per chat).
    The connections are opened before the clock starts: 50 connections opened at once cost
    some requests a ~1 s TCP retransmission here.
    """
    acks: list[int] = []
    sent: list[tuple[int, asyncio.Future[int] | None, int]] = []

    async def chat(client: httpx.AsyncClient, items: list[Item]) -> None:
        for item in items:
            future = target.echoes.expect(item.key) if target.echoes and item.key else None
            started, ack = await post(client, target, item)
            acks.append(ack)
            sent.append((started, future, ack))

    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(make_client(1)) for _ in chats]
        for client in clients:  # connect one at a time, before the clock starts
            (await client.get(target.health)).raise_for_status()
        cpu = meter.sample() if meter is not None else {}
        first = time.monotonic_ns()
        async with asyncio.timeout(timeout):
            await asyncio.gather(*(chat(c, items) for c, items in zip(clients, chats, strict=True)))
            futures = [future for _, future, _ in sent if future is not None]
            if futures:
                await asyncio.gather(*futures)
        used = meter.since(cpu) if meter is not None else {}
    e2e = [
        (future.result() if future is not None else started + ack) - started
        for started, future, ack in sent
    ]
    last = max(started + delay for (started, _, _), delay in zip(sent, e2e, strict=True))
    return Phase(label, len(sent), (last - first) / 1e9, acks, e2e, used)


def make_client(connections: int) -> httpx.AsyncClient:
    """The one client configuration every phase uses."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(timeout=POST_TIMEOUT, limits=limits)


# --- botbox servers ----------------------------------------------------------------------------


def write_bot(folder: Path) -> Path:
    """Write the benchmark bot's folder under ``folder``; return the bots dir."""
    bot = folder / "bots" / BOT_ID
    bot.mkdir(parents=True)
    (bot / "bot.yaml").write_text(BOT_YAML)
    (bot / "echo.py").write_text(ECHO_PY)
    (bot / "edit.py").write_text(EDIT_PY)
    (bot / "count.py").write_text(COUNT_PY)
    (bot / "inc.py").write_text(INC_PY)
    return folder / "bots"


def start_server(data_dir: Path, bots_dir: Path, api: str, synchronous: str) -> BotboxServer:
    """Start a botbox server with a fresh data dir and the given SQLite synchronous mode."""
    env = {
        "BENCH_BOT_TOKEN": TOKEN,
        "BOTBOX_SQLITE_SYNCHRONOUS": synchronous,
        "BOTBOX_SANDBOX_WORKERS": str(os.cpu_count() or 2),
    }
    server = BotboxServer(
        data_dir,
        telegram_api=api,
        env=env,
        bots_dir=bots_dir,
        demo=False,
    )
    try:
        server.start()
    except BaseException:
        server.close()
        raise
    return server


def server_target(server: BotboxServer, echoes: Echoes) -> Target:
    """Where a botbox server takes the bench bot's updates."""
    headers = {"Content-Type": "application/json", SECRET_HEADER: server.secret(BOT_ID)}
    return Target(f"{server.url}/telegram/{BOT_ID}", headers, f"{server.url}/health", echoes)


@dataclass(slots=True)
class Results:
    """Every phase, in order, and a few facts about the servers."""

    phases: list[Phase] = field(default_factory=list)
    facts: dict[str, str] = field(default_factory=dict)
    increments: list[Increments] = field(default_factory=list)

    def add(self, phase: Phase) -> Phase:
        """Keep a phase and print its line at once (progress for a long run)."""
        self.phases.append(phase)
        print(f"  .. {phase.label}: {phase.count} in {phase.seconds:.1f} s", flush=True)
        return phase

    def best(self, label: str) -> Phase:
        """Of the rounds of the phase ``label`` (``label #1``, ``#2``...), the fastest."""
        rounds = [p for p in self.phases if p.label == label or p.label.startswith(label + " #")]
        return max(rounds, key=lambda phase: phase.rate)


async def bench_bare(config: Config, results: Results, updates: Updates, log: IO[bytes]) -> None:
    """The baseline: the same client against a bare Sanic handler."""
    process, url = await asyncio.to_thread(start_bare, log)
    try:
        headers = {"Content-Type": "application/json"}
        target = Target(f"{url}/telegram/{BOT_ID}", headers, f"{url}/health")
        meter = CpuMeter({"server": lambda: [process.pid], "client": lambda: [os.getpid()]})
        async with make_client(1) as client:
            warm = [updates.item(updates.new_chat(), gated=False) for _ in range(config.warmup)]
            await sequential(client, target, warm, "warmup")
            items = [updates.item(1, gated=False) for _ in range(config.bare_sequential)]
            label = "bare Sanic, 1 client"
            results.add(await sequential(client, target, items, label, meter=meter))
            chats = updates.chats(config.chats, config.bare_per_chat, gated=False)
            label = f"bare Sanic, {config.chats} chats"
            results.add(await concurrent(target, chats, label, timeout=120, meter=meter))
    finally:
        await asyncio.to_thread(stop_process, process)


async def bench_server(
    config: Config,
    results: Results,
    updates: Updates,
    echoes: Echoes,
    work: Path,
    synchronous: str,
    *,
    round_: int,
    gated: bool,
) -> None:
    """One botbox server: warm up, the ungated phases, and with ``gated`` the sendMessage ones."""
    bots_dir = work / "bots"
    data_dir = work / f"data-{synchronous.lower()}-{round_}"
    server = await asyncio.to_thread(start_server, data_dir, bots_dir, echoes.base_url, synchronous)
    try:
        health = server.client.get("/health").json()
        results.facts["sandbox workers"] = str(health["pool"].get("workers", "?"))
        results.facts["isolation"] = ", ".join(f"{k}={v}" for k, v in health["isolation"].items())
        target = server_target(server, echoes)
        sync = f"sync={synchronous}" + (f" #{round_}" if config.rounds > 1 else "")
        pid = server.process.pid if server.process is not None else -1
        meter = CpuMeter(
            {
                "server": lambda: [pid],
                "workers": lambda: children_of(pid),
                "stand-in": lambda: [echoes.process.pid],
                "client": lambda: [os.getpid()],
            }
        )
        async with make_client(1) as client:
            warm = [updates.item(updates.new_chat(), gated=False) for _ in range(config.warmup)]
            await sequential(client, target, warm, "warmup")
            chat = updates.new_chat()
            items = [updates.item(chat, gated=False) for _ in range(config.sequential)]
            label = f"botbox edit, 1 client, {sync}"
            results.add(await sequential(client, target, items, label, meter=meter))
            chats = updates.chats(config.chats, config.per_chat, gated=False)
            label = f"botbox edit, {config.chats} chats, {sync}"
            results.add(await concurrent(target, chats, label, timeout=300, meter=meter))
            await asyncio.to_thread(server.wait_idle, 30.0)
            if not gated:
                return
            items = [
                updates.item(updates.new_chat(), gated=True) for _ in range(config.gated_sequential)
            ]
            label = f"botbox sendMessage, 1 client, {sync}"
            results.add(await sequential(client, target, items, label, meter=meter))
            chats = updates.chats(config.gated_chats, config.gated_per_chat, gated=True)
            count = config.gated_chats * config.gated_per_chat
            label = f"botbox sendMessage, {config.gated_chats} chats, {sync}"
            timeout = 60 + 3 * (count * GLOBAL_RATE.interval + config.gated_per_chat)
            results.add(await concurrent(target, chats, label, timeout=timeout, meter=meter))
    except Exception:
        log = server.log.read_text(errors="replace")[-3000:]
        sys.stderr.write(f"server log ({server.log}):\n{log}\n")
        raise
    finally:
        await asyncio.to_thread(server.close)
    if echoes.refused:
        raise RuntimeError(f"the stand-in refused calls: {echoes.refused[:5]}")


@dataclass(frozen=True, slots=True)
class Increments:
    """One increments scenario: the property's final value, the retries, and the seconds from
    the first POST until the property reached 100 (or 60 s passed)."""

    command: str
    final: object
    retries: int
    failed: int
    seconds: float


async def bench_increments(work: Path, echoes: Echoes) -> list[Increments]:
    """100 concurrent increments of one property, from 100 chats at once, by ``/count``
    (getProperty + 1, setProperty: conflicts re-run transparently) and by ``/inc``
    (``incProperty``: never a conflict). Each must end at exactly 100."""
    from runtime.store import SqliteStore  # noqa: PLC0415 - only this scenario reads the store

    data_dir = work / "data-increments"
    server = await asyncio.to_thread(start_server, data_dir, work / "bots", echoes.base_url, "FULL")
    found: list[Increments] = []
    try:
        target = server_target(server, echoes)
        store = SqliteStore(data_dir / "botbox.sqlite3")
        await store.open()
        try:
            for command, name in (("/count", "count"), ("/inc", "inc")):
                # A fresh client per scenario: connections idle since the last one may have
                # been closed by the server, and re-connecting would be timed as well.
                async with make_client(INCREMENTS) as client:
                    first = 900_000 + INCREMENTS * len(found)
                    items = [
                        Item(
                            json.dumps(
                                make_update(
                                    update_id=first + n, user_id=chat, chat_id=chat, text=command
                                )
                            ).encode(),
                            "",
                        )
                        for n, chat in enumerate(range(first, first + INCREMENTS))
                    ]
                    started = time.perf_counter()
                    await asyncio.gather(*(post(client, target, item) for item in items))
                    while await store.get_property(BOT_ID, "bot", name) != INCREMENTS:
                        if time.perf_counter() - started > 60:
                            break
                        await asyncio.sleep(0.005)
                    seconds = time.perf_counter() - started
                    runs = await _logged_runs(store, command, INCREMENTS)
                    final = await store.get_property(BOT_ID, "bot", name)
                    counts = [run.extra.get("retries") for run in runs]
                    retries = sum(count for count in counts if type(count) is int)
                    failed = sum(run.status != "ok" for run in runs)
                    found.append(Increments(command, final, retries, failed, seconds))
                    print(f"  .. {command}: {name} = {final}, {retries} retries", flush=True)
        finally:
            await store.close()
    finally:
        await asyncio.to_thread(server.close)
    return found


async def _logged_runs(store: Any, command: str, n: int) -> list[Any]:
    """Wait (60 s at most) until ``n`` runs of ``command`` are in the run log; return them."""
    deadline = time.monotonic() + 60
    while True:
        runs = [r for r in await store.list_runs(BOT_ID, limit=10_000) if r.command == command]
        if len(runs) >= n or time.monotonic() > deadline:
            return runs
        await asyncio.sleep(0.05)


async def bench(config: Config, work: Path, *, increments_only: bool = False) -> Results:
    """Run every phase; the stand-in lives for the whole run."""
    results = Results()
    updates = Updates()
    write_bot(work)
    with (work / "children.log").open("ab") as log:
        if not increments_only:
            await bench_bare(config, results, updates, log)
        echoes = await Echoes.start(log)
        try:
            for round_ in range(
                1, 0 if increments_only else config.rounds + 1
            ):  # alternate, to spread machine noise
                for mode in ("FULL", "NORMAL"):
                    gated = round_ == 1 and mode == "FULL"
                    await bench_server(
                        config, results, updates, echoes, work, mode, round_=round_, gated=gated
                    )
            results.increments = await bench_increments(work, echoes)
        finally:
            await echoes.close()
    return results


# --- the report --------------------------------------------------------------------------------


def filesystem_of(path: Path) -> str:
    """The filesystem type ``path`` lives on (from /proc/mounts; '?' elsewhere)."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return "?"
    best, kind = "", "?"
    resolved = str(path.resolve())
    for line in mounts:
        parts = line.split()
        if len(parts) >= 3 and resolved.startswith(parts[1]) and len(parts[1]) > len(best):
            best, kind = parts[1], parts[2]
    return f"{kind} ({best})"


def flood_switch() -> str:
    """How a bot turns flood pacing off (kept on in this benchmark)."""
    return "bot.yaml telegram.flood_limits: false (kept on here)"


def load_average() -> str:
    """The 1/5/15-minute load averages: other work on the machine skews every figure."""
    if not hasattr(os, "getloadavg"):
        return "?"
    return " / ".join(f"{value:.2f}" for value in os.getloadavg())


def machine_facts(mode: str, work: Path) -> None:
    """Print what the figures were measured on."""
    print("\n== machine")
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    for label, value in (
        ("mode", mode),
        ("cpu count (os / usable)", f"{os.cpu_count()} / {affinity}"),
        ("python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("platform", platform.platform()),
        ("data dir filesystem", filesystem_of(work)),
        ("flood pacing off switch", flood_switch()),
        ("load average at start", load_average()),
    ):
        print(f"  {label:<30} {value}")


def report_increments(results: Results) -> None:
    """Print the increments scenario: each must end at exactly 100."""
    print(f"\n== {INCREMENTS} concurrent increments of one property (100 chats at once)")
    for row in results.increments:
        verdict = "ok" if row.final == INCREMENTS and not row.failed else "LOST UPDATES"
        print(
            f"  {row.command:<8} final {row.final!s:>5}  retries {row.retries:>5}  "
            f"failed runs {row.failed:>3}  {row.seconds:>6.2f} s  {verdict}"
        )


def report(results: Results, config: Config) -> None:
    """Print the table and the ratios."""
    for label, value in results.facts.items():
        print(f"  {label:<30} {value}")
    print("\n== updates (latencies in ms; e2e = POST start -> Bot API call at the stand-in)")
    head = f"  {'phase':<44} {'n':>5} {'upd/s':>7}  {'e2e p50':>7} {'p90':>7} {'p99':>7}"
    print(f"{head}  {'ack p50':>7} {'p99':>7}")
    for phase in results.phases:
        e2e, ack = phase.e2e, phase.ack
        print(
            f"  {phase.label:<44} {phase.count:>5} {phase.rate:>7.0f}  "
            f"{e2e.p50:>7.2f} {e2e.p90:>7.2f} {e2e.p99:>7.2f}  {ack.p50:>7.2f} {ack.p99:>7.2f}"
        )
    groups = ("server", "workers", "stand-in", "client")
    print("\n== CPU per update, ms (user + system, from /proc; busy = CPU / (wall x cpus))")
    print(f"  {'phase':<44} " + " ".join(f"{g:>8}" for g in groups) + f" {'total':>8} {'busy':>6}")
    cpus = os.cpu_count() or 1
    for phase in results.phases:
        total = sum(phase.cpu.values())
        cells = " ".join(
            f"{phase.cpu[g] / phase.count * 1e3:>8.3f}" if g in phase.cpu else f"{'-':>8}"
            for g in groups
        )
        busy = total / (phase.seconds * cpus) * 100
        print(f"  {phase.label:<44} {cells} {total / phase.count * 1e3:>8.3f} {busy:>5.0f}%")
    best = " (botbox: the fastest of its rounds)" if config.rounds > 1 else ""
    print(f"\n== botbox / bare Sanic (same client; bare e2e = its ack){best}")
    chats = f"{config.chats} chats"
    for name in ("1 client", chats):
        bare = results.best(f"bare Sanic, {name}")
        box = results.best(f"botbox edit, {name}, sync=FULL")
        latency = f"   e2e p50 {box.e2e.p50 / bare.e2e.p50:6.1f} x" if name == "1 client" else ""
        print(
            f"  {name:<10} throughput {box.rate / bare.rate:6.3f} x   "
            f"ack p50 {box.ack.p50 / bare.ack.p50:6.1f} x{latency}"
        )
    for name in ("1 client", chats):
        full = results.best(f"botbox edit, {name}, sync=FULL")
        normal = results.best(f"botbox edit, {name}, sync=NORMAL")
        print(
            f"  sync NORMAL / FULL, {name:<10} throughput {normal.rate / full.rate:6.2f} x   "
            f"ack p50 {normal.ack.p50 / full.ack.p50:6.2f} x   "
            f"e2e p50 {normal.e2e.p50 / full.e2e.p50:6.2f} x"
        )
    print("\n== who is busy (share of one core during the phase)")
    for label in (f"bare Sanic, {chats}", f"botbox edit, {chats}, sync=FULL"):
        phase = results.best(label)
        shares = ", ".join(
            f"{name} {seconds / phase.seconds:.0%}" for name, seconds in phase.cpu.items()
        )
        print(f"  {label:<44} {shares}")
    print(
        "  (a group near 100% is the limit: the client is one asyncio thread, the server one\n"
        "   process whose event loop and SQLite thread share a GIL)"
    )


def main() -> None:
    """Parse the command line and run the benchmark (or a child process)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="few updates, a smoke run")
    parser.add_argument(
        "--increments", action="store_true", help="only the concurrent increments scenario"
    )
    parser.add_argument("--child-standin", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_standin:
        serve_standin()
        return
    if args.child_bare is not None:
        serve_bare(args.child_bare)
        return
    config = QUICK if args.quick else FULL
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="botbox-bench-updates-") as tmp:
        work = Path(tmp)
        machine_facts("quick" if args.quick else "full", work)
        results = asyncio.run(bench(config, work, increments_only=args.increments))
    if not args.increments:
        report(results, config)
    report_increments(results)
    print(f"\n  load average at end: {load_average()}")
    print(f"\n  (benchmark took {time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
