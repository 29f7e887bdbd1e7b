"""The host's handle on one worker process: talk to it, kill it, read how it ended.

Workers are forked by the fork server (:mod:`sandbox.forkserver`), not by the host, so the host
learns of a worker's end from the fork server's report (with its exit status) or from its
socket closing. Everything read from a worker is hostile: frames are size-capped and must be
JSON objects; anything else is a :class:`ProtocolViolation` and the worker is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import marshal
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from sandbox import protocol
from sandbox.protocol import HEADER, MAX_WORKER_FRAME, ProtocolViolation, frame

logger = logging.getLogger(__name__)

OFF_LOOP_FRAME: Final = 256 * 1024
"""Frames larger than this are decoded in a thread, off the event loop."""


class WorkerProcess:
    """One running worker, as seen from the host."""

    def __init__(
        self,
        pid: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        root: str,
        uid: int | None,
        kill: Callable[[int], None],
    ) -> None:
        self.pid = pid
        self.reader = reader
        self.writer = writer
        self.root = root
        self.uid = uid
        self._kill = kill
        self.returncode: int | None = None
        self._exited = asyncio.Event()
        self.tenant: str | None = None
        """The one tenant (bot) this worker serves, set by its first run; never changed."""
        self.runs = 0
        self.known: set[str] = set()
        self.maxrss_kib = 0
        self.isolation: dict[str, str] = {}
        self.killed_by_host = False
        self.idle_since = 0.0
        self.background = False
        self.may_renice = os.geteuid() == 0
        """Only root can move a worker back from the background, so only root moves it."""
        self.run_started = 0.0
        self.last_frame_size = 0
        self.memory_cap: int | None = None
        """The memory budget of its first run, fixed as its hard cap when it has a tenant."""
        self.retiring_after_run = False
        self.idle_cpu: float | None = None
        """CPU seconds read at the first idle check since its last run (None: not read yet)."""

    @property
    def alive(self) -> bool:
        """True until the process has exited."""
        return self.returncode is None

    def exited(self, code: int) -> None:
        """Record the exit status the fork server reported (called once)."""
        if self.returncode is None:
            self.returncode = code
            self._exited.set()
            self.writer.close()

    def send(self, message: tuple[Any, ...]) -> None:
        """Queue one message for the worker (marshal; the worker trusts the host)."""
        self.writer.write(frame(marshal.dumps(message)))

    async def receive(self) -> protocol.WorkerMessage:
        """Read one message from the worker; raise on EOF or a malformed frame."""
        header = await self.reader.readexactly(HEADER.size)
        (size,) = HEADER.unpack(header)
        if size > MAX_WORKER_FRAME:
            raise ProtocolViolation(f"frame of {size} bytes is over the limit")
        body = await self.reader.readexactly(size)
        self.last_frame_size = size
        if (
            size > OFF_LOOP_FRAME and body[:1] != protocol.CHUNK_PREFIX
        ):  # a file chunk is only sliced
            # parsing a large frame must not stall every other run
            return await asyncio.to_thread(protocol.decode, body)
        return protocol.decode(body)

    def cpu_seconds(self) -> float:
        """Return the CPU time the worker used so far (0.0 where ``/proc`` cannot tell)."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            return 0.0
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def set_background(self, background: bool) -> None:
        """Move the worker to ``SCHED_IDLE`` (background) or back to the normal policy.

        Only a root host can move a worker back, so elsewhere this does nothing at all: a worker
        stuck in the background would slow every later run of its bot.
        """
        if background == self.background or not self.may_renice or not self.alive:
            return
        policy = os.SCHED_IDLE if background else os.SCHED_OTHER
        try:
            os.sched_setscheduler(self.pid, policy, os.sched_param(0))
        except OSError:  # the process is gone (its exit is reported separately)
            return
        # With autogroups (the kernel default) each worker's session is a scheduling group
        # of its own: the policy above only ranks it inside that group, the group's nice
        # value ranks it against the others.
        with contextlib.suppress(OSError):
            Path(f"/proc/{self.pid}/autogroup").write_text("19" if background else "0")
        self.background = background

    def kill(self) -> None:
        """Kill the worker at once (it may be stuck inside C code)."""
        if self.alive:
            self.killed_by_host = True
            self._kill(self.pid)

    async def wait(self) -> int:
        """Wait for the process to exit and return its status (negative: a signal)."""
        await self._exited.wait()
        assert self.returncode is not None
        return self.returncode

    async def stop(self, timeout: float) -> None:
        """Ask the worker to exit, killing it if it does not within ``timeout``."""
        if self.alive:
            try:
                self.send(protocol.exit_worker())
                self.writer.write_eof()
            except (OSError, RuntimeError):
                pass
            try:
                async with asyncio.timeout(timeout):
                    await self.wait()
            except TimeoutError:
                self.kill()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self.wait()

    def death_cause(self) -> str | None:
        """Name the limit a dead worker broke (by its exit signal), or ``None``."""
        if self.returncode == -signal.SIGXCPU:
            return "cpu_seconds"
        return None

    def describe_exit(self) -> str:
        """Return a phrase for how the process ended, for the run log."""
        code = self.returncode
        if code is None:
            return "worker process stopped answering"
        if code < 0:
            return f"worker process was killed by {signal.Signals(-code).name}"
        return f"worker process exited with status {code}"


def log_isolation(isolation: dict[str, str]) -> None:
    """Warn once about any isolation step the kernel refused."""
    for step, how in isolation.items():
        if "not " in how or " only" in how:
            logger.warning(
                "sandbox worker isolation is weaker than it should be: %s: %s", step, how
            )
