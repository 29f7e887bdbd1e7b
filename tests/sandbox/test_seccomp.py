"""The workers' seccomp filter: refused system calls fail with EPERM, the rest still work."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sandbox import seccomp
from sandbox.forkserver import ForkServer

ROOT = Path(__file__).resolve().parents[2]
X86_64 = platform.machine() == "x86_64"


def test_the_program_has_one_check_per_refused_call():
    """Arch check, x32 check, one comparison per call, then allow and refuse: 8 bytes each."""
    calls = [41, 59, 101]
    assert len(seccomp.program(calls)) == (4 + len(calls) + 2) * 8


@pytest.mark.skipif(not X86_64, reason="the filter is written for x86_64 system call numbers")
def test_a_filtered_process_cannot_open_sockets_fork_or_exec_but_still_reads_files():
    """After install(), socket/fork/exec fail with PermissionError and file reads still work."""
    probe = textwrap.dedent(f"""
        import ctypes, os, socket, sys
        sys.path.insert(0, {str(ROOT)!r})
        from sandbox import seccomp
        libc = ctypes.CDLL(None)
        assert libc.prctl(38, 1, 0, 0, 0) == 0  # no_new_privs, as the worker sets it
        print(seccomp.install())
        for name, attempt in [("socket", lambda: socket.socket()), ("fork", os.fork),
                              ("exec", lambda: os.execv("/bin/true", ["true"]))]:
            try:
                attempt()
                print(name, "ALLOWED")
            except PermissionError:
                print(name, "refused")
        print("read", len(open("/proc/self/status").read()) > 0)
    """)
    done = subprocess.run(
        [sys.executable, "-I", "-c", probe], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"seccomp filter ({len(seccomp.DENIED_X86_64)} system calls refused)",
        "socket refused",
        "fork refused",
        "exec refused",
        "read True",
    ]


@pytest.mark.skipif(not X86_64, reason="the filter is written for x86_64 system call numbers")
async def test_real_workers_run_under_the_filter():
    """The kernel reports a seccomp filter on a started worker, and the pool reports it."""
    server = await ForkServer.start(max_memory=256 * 1024 * 1024)
    try:
        worker = await server.fork()
        status = Path(f"/proc/{worker.pid}/status").read_text()
        assert "Seccomp:\t2" in status
        assert worker.isolation["syscalls"].startswith("seccomp filter")
    finally:
        await server.close()
