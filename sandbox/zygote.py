"""The fork server: a warm, isolated parent that forks a fresh worker process on request.

Started once per pool from a clean interpreter (``python -I``, empty environment), it imports
everything a worker needs, leaves the network and the file system (:func:`isolation.isolate_server`)
and then only forks: it never runs a script. Each child is a worker that has never run anyone's
code; it closes every descriptor but its own socket, takes its own user id and the rest of the
worker isolation (:func:`isolation.isolate_worker`), and serves runs (:class:`worker.Worker`).

The control channel to the host is a ``SOCK_SEQPACKET`` socket carrying one JSON message per
packet; a fork request carries the new worker's socket as ``SCM_RIGHTS``. The fork server reaps
its children (through pidfds) and reports each exit with its status, so the host learns *why* a
worker died (``SIGXCPU`` is a CPU limit) without being its parent. If the host goes away, the
fork server kills its children and exits; if the fork server dies, its children die with it
(``PR_SET_PDEATHSIG``).

Messages, host to fork server: ``{"t": "fork", "uid": int | None}`` (with one descriptor),
``{"t": "kill", "pid": int}``, ``{"t": "exit"}``. Fork server to host: ``{"t": "ready",
"isolation": {...}}``, ``{"t": "forked", "pid": int}`` (one per fork request, in order),
``{"t": "exited", "pid": int, "code": int}`` (a negative code is the killing signal).
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import selectors
import signal
import socket
import sys
import time
from typing import Any, Final

from sandbox import isolation
from sandbox.modules import ALLOWED_MODULES, load_facades
from sandbox.protocol import CONTROL_PACKET, Ready

PRELOAD: Final = (
    "_strptime",
    "encodings.idna",
    "encodings.punycode",
    "encodings.latin_1",
    "encodings.ascii",
    "encodings.utf_16",
    "encodings.utf_32",
    "encodings.cp1252",
    "unicodedata",
    "stringprep",
)
"""Modules the standard library imports lazily at call time: loaded before the chroot."""

BASELINE_SLACK: Final = 16 * 1024 * 1024
"""Room above the fork server's measured address space for a worker's own start-up."""


class Zygote:
    """The fork server's loop: fork on request, kill on request, report exits."""

    def __init__(
        self, control: socket.socket, *, baseline: int, max_memory: int, test_hooks: bool
    ) -> None:
        self.control = control
        self.baseline = baseline
        self.max_memory = max_memory
        self.test_hooks = test_hooks
        self.facades = load_facades()
        self.children: dict[int, int] = {}  # pid -> pidfd
        self.selector = selectors.DefaultSelector()
        self.selector.register(control, selectors.EVENT_READ, None)

    def send(self, message: dict[str, Any]) -> None:
        """Send one message to the host."""
        self.control.send(json.dumps(message, separators=(",", ":")).encode())

    def serve(self) -> None:
        """Serve the host until it says ``exit`` or goes away."""
        try:
            while True:
                for key, _ in self.selector.select():
                    if key.data is None:
                        if not self._on_control():
                            return
                    else:
                        self._reap(key.data)
        finally:
            for pid in list(self.children):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def _on_control(self) -> bool:
        data, fds, _, _ = socket.recv_fds(self.control, CONTROL_PACKET, 1)
        if not data:
            return False
        message = json.loads(data)
        kind = message.get("t")
        if kind == "fork" and len(fds) == 1:
            try:
                self.send({"t": "forked", "pid": self._fork(fds[0], message.get("uid"))})
            except OSError as exc:  # out of processes or memory: the host gets a clear error
                self.send({"t": "forked", "pid": None, "error": str(exc)})
        elif kind == "kill":
            pid = message.get("pid")
            if pid in self.children:  # never a pid we already reaped (it may be reused)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        elif kind == "exit":
            return False
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        return True

    def _fork(self, fd: int, uid: int | None) -> int:
        pid = os.fork()
        if pid == 0:  # the child: it never returns from here
            code = 1
            try:
                self._become_worker(fd, uid)
                code = 0
            finally:
                os._exit(code)
        pidfd = os.pidfd_open(pid)
        self.children[pid] = pidfd
        self.selector.register(pidfd, selectors.EVENT_READ, pid)
        return pid

    def _reap(self, pid: int) -> None:
        pidfd = self.children.pop(pid)
        self.selector.unregister(pidfd)
        os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        self.send({"t": "exited", "pid": pid, "code": os.waitstatus_to_exitcode(status)})

    def _become_worker(self, fd: int, uid: int | None) -> None:
        from sandbox.worker import Channel, Worker  # noqa: PLC0415 - imported, cheap, post-fork

        self.selector.close()
        keep = sorted({0, 1, 2, fd})
        for low, high in zip(keep, [*keep[1:], 1 << 20], strict=True):
            os.closerange(low + 1, high)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        # A session of its own: with the kernel's autogroups, a scheduling group of its own, so
        # workers are scheduled as peers of the server (the host moves a heavy run's group to
        # the background through /proc/PID/autogroup).
        os.setsid()
        report = isolation.isolate_worker(uid)
        if self.baseline:
            isolation.cap_address_space(self.baseline + self.max_memory)
        channel = Channel(socket.socket(fileno=fd))
        worker = Worker(
            channel, baseline=self.baseline, facades=self.facades, test_hooks=self.test_hooks
        )
        gc.collect()
        channel.send(Ready(report, self.baseline))
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            worker.serve()


def main() -> None:
    """Entry point: ``python -I -c <bootstrap> FD ROOT MAX_MEMORY HOST_PID [--test-hooks]``."""
    fd, root, max_memory, host = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    test_hooks = "--test-hooks" in sys.argv[5:]
    for name in PRELOAD:
        __import__(name)
    for name in ALLOWED_MODULES:
        importlib.import_module(name)
    importlib.import_module("sandbox.worker")
    time.localtime()  # read the time zone before the file system disappears
    control = socket.socket(fileno=fd)
    baseline = isolation.address_space()
    baseline = baseline + BASELINE_SLACK if baseline else 0
    report = isolation.isolate_server(root)
    if os.getppid() != host:  # the host died before PR_SET_PDEATHSIG was armed
        return
    server = Zygote(control, baseline=baseline, max_memory=max_memory, test_hooks=test_hooks)
    gc.collect()
    gc.freeze()  # shared with every child, copy-on-write; their collections skip it
    server.send({"t": "ready", "isolation": report})
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        server.serve()
