"""The host's handle on the fork server: start it, ask it for fresh workers, hear of their end.

Guarantees: every worker comes from :mod:`sandbox.zygote`, a clean, isolated interpreter that
never runs scripts, so a new worker carries nothing of any earlier run; each worker gets a user
id no other live worker has (when the host runs as root), so workers cannot signal, trace or
share files with each other. A fork costs a few milliseconds (``bench/sandbox.py``), which is
what makes "one worker serves one bot" cheap.

If the fork server dies, every worker dies with it; the pool then starts a new one
(:meth:`ForkServer.alive` turns false and every worker is reported as exited).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
from collections import deque
from pathlib import Path
from typing import Any, Final

from sandbox.errors import WorkerStartError
from sandbox.process import WorkerProcess
from sandbox.protocol import CONTROL_PACKET, ProtocolViolation, Ready

logger = logging.getLogger(__name__)

PACKAGE_PARENT: Final = str(Path(__file__).resolve().parent.parent)
BOOTSTRAP: Final = (
    f"import sys; sys.path.insert(0, {PACKAGE_PARENT!r}); from sandbox.zygote import main; main()"
)
WORKER_UID_BASE: Final = 0x70000000
"""Workers run as ``WORKER_UID_BASE + n``: ids no account on a normal system uses."""
WORKER_UIDS: Final = 65536
GONE: Final = -9
"""The status reported for workers whose fork server died (they die with it)."""


class ForkServer:
    """One running fork server, as seen from the host."""

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        control: socket.socket,
        root: str,
        uids: set[int] | None = None,
    ):
        self.process = process
        self.control = control
        self.root = root
        self.isolation: dict[str, str] = {}
        self.workers: dict[int, WorkerProcess] = {}
        self._pending: deque[asyncio.Future[int]] = deque()
        self._uids: set[int] = set() if uids is None else uids
        self._early_exits: dict[int, int] = {}
        self._lock = asyncio.Lock()
        self._ready: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._reader: asyncio.Task[None] | None = None
        self.forks = 0

    @property
    def alive(self) -> bool:
        """True while the fork server runs and its channel is open."""
        return (
            self.process.returncode is None
            and self._reader is not None
            and not (self._reader.done())
        )

    @classmethod
    async def start(
        cls,
        *,
        max_memory: int,
        timeout: float = 30.0,
        debug: bool = False,
        test_hooks: bool = False,
        uids: set[int] | None = None,
    ) -> ForkServer:
        """Start a fork server from a clean interpreter and wait until it is ready.

        ``uids`` is the set of worker user ids in use, shared by every fork server of a pool, so
        a new server never hands out the id of a worker an earlier one may have left behind.
        """
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        root = tempfile.mkdtemp(prefix="botbox-worker-")
        argv = [str(child.fileno()), root, str(max_memory), str(os.getpid())]
        if test_hooks:
            argv.append("--test-hooks")
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-I",
                "-c",
                BOOTSTRAP,
                *argv,
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
            raise WorkerStartError(f"cannot start the fork server: {exc}") from exc
        finally:
            child.close()
        parent.setblocking(False)
        server = cls(process, parent, root, uids)
        server._reader = asyncio.ensure_future(server._read())
        try:
            async with asyncio.timeout(timeout):
                ready = await server._ready
            server.isolation = {str(k): str(v) for k, v in ready["isolation"].items()}
        except BaseException as exc:
            await server.close(1.0)
            if isinstance(exc, TimeoutError | ProtocolViolation | OSError | KeyError):
                raise WorkerStartError(f"the fork server did not become ready: {exc!r}") from exc
            raise
        return server

    async def fork(self, *, timeout: float = 10.0) -> WorkerProcess:
        """Fork a fresh worker and wait for its ``ready`` message."""
        if not self.alive:
            raise WorkerStartError("the fork server is not running")
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        uid = self._take_uid()
        try:
            async with self._lock:
                forked: asyncio.Future[int] = asyncio.get_running_loop().create_future()
                self._pending.append(forked)
                message = json.dumps({"t": "fork", "uid": uid}).encode()
                socket.send_fds(self.control, [message], [theirs.fileno()])
                theirs.close()
                async with asyncio.timeout(timeout):
                    pid = await forked
        except BaseException as exc:
            theirs.close()
            mine.close()
            self._release_uid(uid)
            if isinstance(exc, TimeoutError | OSError | ProtocolViolation):
                raise WorkerStartError(f"the fork server did not fork: {exc!r}") from exc
            if isinstance(exc, WorkerStartError):
                raise
            raise
        self.forks += 1
        reader, writer = await asyncio.open_unix_connection(sock=mine)
        worker = WorkerProcess(pid, reader, writer, root=self.root, uid=uid, kill=self.kill)
        self.workers[pid] = worker
        if pid in self._early_exits:  # it died before we got here
            self._release_uid(uid)
            worker.exited(self._early_exits.pop(pid))
        try:
            async with asyncio.timeout(timeout):
                ready = await worker.receive()
            if not isinstance(ready, Ready):
                raise ProtocolViolation("worker process sent a bad ready message")
        except BaseException as exc:
            worker.kill()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await asyncio.shield(worker.wait())
            if isinstance(
                exc, TimeoutError | ProtocolViolation | asyncio.IncompleteReadError | OSError
            ):
                raise WorkerStartError(f"worker process did not become ready: {exc!r}") from exc
            raise
        worker.isolation = {**self.isolation, **ready.isolation}
        return worker

    def kill(self, pid: int) -> None:
        """Ask the fork server to kill one of its workers (it refuses pids it reaped)."""
        with contextlib.suppress(OSError):
            self.control.send(json.dumps({"t": "kill", "pid": pid}).encode())

    async def close(self, timeout: float = 5.0) -> None:
        """Stop the fork server; every worker it forked dies with it."""
        with contextlib.suppress(OSError):
            self.control.send(b'{"t":"exit"}')
        try:
            async with asyncio.timeout(timeout):
                await self.process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        self.control.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def _take_uid(self) -> int | None:
        if os.geteuid() != 0:
            return None
        for offset in range(WORKER_UIDS):
            uid = WORKER_UID_BASE + offset
            if uid not in self._uids:
                self._uids.add(uid)
                return uid
        raise WorkerStartError("no free worker user id")

    def _release_uid(self, uid: int | None) -> None:
        if uid is not None:
            self._uids.discard(uid)

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                data = await loop.sock_recv(self.control, CONTROL_PACKET)
                if not data:
                    return
                self._dispatch(json.loads(data))
        except (OSError, ValueError) as exc:
            logger.warning("the fork server's channel failed: %s", exc)
        finally:
            self._gone()

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("t")
        if kind == "ready" and not self._ready.done():
            self._ready.set_result(message)
        elif kind == "forked" and self._pending:
            future = self._pending.popleft()
            if future.done():
                return
            if message.get("pid") is None:
                future.set_exception(WorkerStartError(f"fork failed: {message.get('error')}"))
            else:
                future.set_result(int(message["pid"]))
        elif kind == "exited":
            pid, code = int(message["pid"]), int(message["code"])
            worker = self.workers.pop(pid, None)
            if worker is None:
                self._early_exits[pid] = code
                return
            self._release_uid(worker.uid)
            worker.exited(code)

    def _gone(self) -> None:
        """The fork server is gone: so are its workers (PR_SET_PDEATHSIG)."""
        error = ProtocolViolation("the fork server went away")
        if not self._ready.done():
            self._ready.set_exception(error)
        while self._pending:
            future = self._pending.popleft()
            if not future.done():
                future.set_exception(error)
        for worker in list(self.workers.values()):
            worker.exited(GONE)  # its user id stays taken: it should be dead, it may not be
        self.workers.clear()
