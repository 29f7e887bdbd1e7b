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


@pytest.mark.skipif(not X86_64, reason="the filter is written for x86_64 system call numbers")
def test_a_filtered_worker_can_signal_and_limit_only_itself():
    """With the worker rules, tgkill and prlimit reach only the process itself; the death
    signal and the dumpable flag cannot be undone; priorities cannot be changed at all.

    The probe's parent is this test process, with the same user: only the filter can refuse.
    """
    probe = textwrap.dedent(f"""
        import ctypes, os, resource, sys
        sys.path.insert(0, {str(ROOT)!r})
        from sandbox import seccomp
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.prctl(38, 1, 0, 0, 0) == 0
        me, parent = os.getpid(), os.getppid()
        seccomp.install(me)
        def outcome(result):
            return "ok" if result == 0 else os.strerror(ctypes.get_errno())
        print("tgkill self", outcome(libc.syscall(234, me, me, 0)))
        print("tgkill parent", outcome(libc.syscall(234, parent, parent, 0)))
        print("getrlimit", resource.getrlimit(resource.RLIMIT_NOFILE) is not None)
        try:
            resource.prlimit(parent, resource.RLIMIT_NOFILE)
            print("prlimit parent ok")
        except PermissionError:
            print("prlimit parent refused")
        print("clear pdeathsig", outcome(libc.prctl(1, 0, 0, 0, 0)))
        print("set dumpable", outcome(libc.prctl(4, 1, 0, 0, 0)))
        print("get dumpable", libc.prctl(3, 0, 0, 0, 0) >= 0)
        print("setpriority", outcome(libc.setpriority(0, 0, 5)))
    """)
    done = subprocess.run(
        [sys.executable, "-I", "-c", probe], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "tgkill self ok",
        "tgkill parent Operation not permitted",
        "getrlimit True",
        "prlimit parent refused",
        "clear pdeathsig Operation not permitted",
        "set dumpable Operation not permitted",
        "get dumpable True",
        "setpriority Operation not permitted",
    ]


def test_an_argument_rule_jumps_land_inside_the_program():
    """Each rule block ends in its own returns; the program still ends allow, refuse."""
    rules = seccomp.worker_rules(1234)
    code = seccomp.program([41], rules)
    per_rule = sum(2 + len(rule.values) + 2 for rule in rules)
    assert len(code) == (4 + 1 + per_rule + 2) * 8
