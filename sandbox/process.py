"""The host's handle on one worker process: start it, talk to it, kill it, read its end.

Everything read from a worker is hostile: frames are size-capped and must be JSON objects;
anything else is a :class:`ProtocolViolation` and the worker is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import marshal
import os
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any, Final

from sandbox.errors import WorkerStartError
from sandbox.protocol import HEADER, MAX_WORKER_FRAME, frame

logger = logging.getLogger(__name__)

PACKAGE_PARENT: Final = str(Path(__file__).resolve().parent.parent)
BOOTSTRAP: Final = (
    f"import sys; sys.path.insert(0, {PACKAGE_PARENT!r}); from sandbox.worker import main; main()"
)


class ProtocolViolation(Exception):
    """The worker sent something that is not a well-formed message."""


class WorkerProcess:
    """One running worker, as seen from the host."""

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        root: str,
    ) -> None:
        self.process = process
        self.reader = reader
        self.writer = writer
        self.root = root
        self.runs = 0
        self.known: set[str] = set()
        self.maxrss_kib = 0
        self.isolation: dict[str, str] = {}
        self.killed_by_host = False
        self.retiring = False

    @property
    def pid(self) -> int:
        """The worker's process id."""
        return self.process.pid

    @property
    def alive(self) -> bool:
        """True until the process has exited."""
        return self.process.returncode is None

    @classmethod
    async def start(cls, *, max_memory: int, timeout: float, debug: bool = False) -> WorkerProcess:
        """Start a worker from a clean interpreter and wait for its ``ready`` message."""
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        root = tempfile.mkdtemp(prefix="botbox-worker-")
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-I",
                "-c",
                BOOTSTRAP,
                str(child.fileno()),
                root,
                str(max_memory),
                pass_fds=(child.fileno(),),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=None if debug else asyncio.subprocess.DEVNULL,
                env={},
                cwd=root,
                start_new_session=True,
            )
        except OSError as exc:
            parent.close()
            shutil.rmtree(root, ignore_errors=True)
            raise WorkerStartError(f"cannot start a worker process: {exc}") from exc
        finally:
            child.close()
        reader, writer = await asyncio.open_unix_connection(sock=parent)
        worker = cls(process, reader, writer, root)
        try:
            async with asyncio.timeout(timeout):
                ready = await worker.receive()
            if ready.get("t") != "ready" or not isinstance(ready.get("isolation"), dict):
                raise ProtocolViolation("worker process sent a bad ready message")
        except BaseException as exc:
            # Includes cancellation (a pool closing while a replacement starts): never leave
            # a half-started process or its socket behind.
            worker.kill()
            await asyncio.shield(worker.wait())
            if isinstance(
                exc, TimeoutError | ProtocolViolation | asyncio.IncompleteReadError | OSError
            ):
                raise WorkerStartError(f"worker process did not become ready: {exc!r}") from exc
            raise
        worker.isolation = {str(k): str(v) for k, v in ready["isolation"].items()}
        return worker

    def send(self, message: tuple[Any, ...]) -> None:
        """Queue one message for the worker (marshal; the worker trusts the host)."""
        self.writer.write(frame(marshal.dumps(message)))

    async def receive(self) -> dict[str, Any]:
        """Read one JSON object from the worker; raise on EOF or a malformed frame."""
        header = await self.reader.readexactly(HEADER.size)
        (size,) = HEADER.unpack(header)
        if size > MAX_WORKER_FRAME:
            raise ProtocolViolation(f"frame of {size} bytes is over the limit")
        body = await self.reader.readexactly(size)
        try:
            message = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise ProtocolViolation("frame is not JSON") from exc
        if not isinstance(message, dict):
            raise ProtocolViolation("frame is not a JSON object")
        return message

    def cpu_seconds(self) -> float:
        """Return the CPU time the worker used so far (0.0 where ``/proc`` cannot tell)."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            return 0.0
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def kill(self) -> None:
        """Kill the worker at once (it may be stuck inside C code)."""
        if self.alive and self.process.returncode is None:
            self.killed_by_host = True
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()

    async def wait(self) -> int:
        """Wait for the process to exit, close the socket and remove its empty root."""
        code = await self.process.wait()
        self.writer.close()
        shutil.rmtree(self.root, ignore_errors=True)
        return code

    async def stop(self, timeout: float) -> None:
        """Ask the worker to exit, killing it if it does not within ``timeout``."""
        if self.alive:
            try:
                self.send(("exit",))
                self.writer.write_eof()
            except (OSError, RuntimeError):
                pass
            try:
                async with asyncio.timeout(timeout):
                    await self.process.wait()
            except TimeoutError:
                self.kill()
        await self.wait()

    def death_cause(self) -> str | None:
        """Name the limit a dead worker broke (by its exit signal), or ``None``."""
        code = self.process.returncode
        if code == -signal.SIGXCPU:
            return "cpu_seconds"
        return None

    def describe_exit(self) -> str:
        """Return a phrase for how the process ended, for the run log."""
        code = self.process.returncode
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
