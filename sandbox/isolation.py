"""Process isolation for a worker, applied once at start-up, before any script runs.

What holds (Linux): the fork server (:mod:`sandbox.zygote`) is started from a clean interpreter
(``python -I``) with an empty environment; it moves into a new network namespace (no interfaces
but a down loopback: no network at all) and into an empty root directory (``chroot``, so no files
are visible) (:func:`isolate_server`). Every worker it forks then takes a user id of its own
when the host runs as root (no worker can signal, trace or share files with another), sets
``no_new_privs``, marks itself non-dumpable, and takes resource limits: file size 0, few open
files, no new processes, no core dumps, an address-space cap and a CPU-time cap
(:func:`isolate_worker`, :func:`limit_cpu`, :func:`limit_memory`).

What does not hold everywhere: network namespaces and ``chroot`` need either root or
unprivileged user namespaces. Where the kernel refuses both, the worker still runs with the
rlimits and the RestrictedPython policy, and :func:`isolate` reports what was not applied, so the
host can log it and the admin can read it (``WorkerPool.isolation``). Last, a seccomp filter
(:mod:`sandbox.seccomp`) refuses the system calls a script never needs (x86_64 only).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
import resource
import signal
from typing import Final

from sandbox import seccomp

CLONE_NEWUSER: Final = 0x10000000
CLONE_NEWNET: Final = 0x40000000
PR_SET_PDEATHSIG: Final = 1
PR_SET_DUMPABLE: Final = 4
PR_SET_NO_NEW_PRIVS: Final = 38
OPEN_FILES: Final = 16
CPU_HARD_SECONDS: Final = 24 * 3600


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _unshare(libc: ctypes.CDLL, flags: int) -> int:
    if libc.unshare(flags) != 0:
        return ctypes.get_errno()
    return 0


def isolate_server(root: str) -> dict[str, str]:
    """The fork server's share: leave the network and the file system (inherited by workers).

    The fork server keeps its user (it gives every worker its own) and may still fork.
    """
    report: dict[str, str] = {}
    libc = _libc()
    if os.geteuid() == 0:
        errno = _unshare(libc, CLONE_NEWNET)
        report["network"] = "namespace" if errno == 0 else f"not isolated ({os.strerror(errno)})"
    else:
        errno = _unshare(libc, CLONE_NEWUSER | CLONE_NEWNET)
        report["network"] = (
            "user+network namespace" if errno == 0 else f"not isolated ({os.strerror(errno)})"
        )
    try:
        os.chroot(root)
        os.chdir("/")
        report["filesystem"] = "empty chroot"
    except OSError as exc:
        os.chdir(root)
        report["filesystem"] = f"empty working directory only ({exc.strerror})"
    libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return report


def isolate_worker(uid: int | None) -> dict[str, str]:
    """A forked worker's share: its own user, no privileges, tight rlimits, the seccomp filter.

    ``uid`` is this worker's own user id (distinct from every other live worker's, so no worker
    can signal or trace another); ``None`` where the fork server cannot switch users.
    """
    report: dict[str, str] = {}
    libc = _libc()
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # the fork server gone: so are we
    if uid is not None and os.geteuid() == 0:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        report["user"] = "own uid per worker"
    else:
        report["user"] = f"uid {os.getuid()} (not root, cannot switch)"
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, OPEN_FILES))
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_HARD_SECONDS, CPU_HARD_SECONDS))
    report["rlimits"] = "fsize=0 core=0 nofile=16 nproc=0"
    report["syscalls"] = seccomp.install(os.getpid())
    return report


def address_space() -> int:
    """Return the worker's current virtual memory size in bytes (from ``/proc`` if visible)."""
    try:
        with open("/proc/self/statm", "rb") as handle:
            return int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def cap_address_space(limit_bytes: int) -> None:
    """Cap the worker's total address space (soft and hard) at ``limit_bytes``."""
    resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))


def limit_cpu(cpu_seconds: float, current_soft: int) -> int:
    """Keep a CPU-time kill just past this run's budget; return the soft limit now in force.

    ``RLIMIT_CPU`` counts the process's whole life, so its soft limit must sit between "CPU used
    so far + budget" and one second more: a script stuck inside C code (a huge power, a
    catastrophic regex) is then killed by ``SIGXCPU`` within a second of its budget. The limit is
    only moved when the one in force no longer fits (one ``getrusage`` per run, rarely a
    ``setrlimit``).
    """
    usage = resource.getrusage(resource.RUSAGE_SELF)
    floor = usage.ru_utime + usage.ru_stime + cpu_seconds
    if floor <= current_soft <= floor + 1:
        return current_soft
    soft = min(math.ceil(floor), CPU_HARD_SECONDS)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, CPU_HARD_SECONDS))
    return soft


def lock_memory(limit_bytes: int) -> None:
    """Lower the hard address-space cap to ``limit_bytes`` for good (it can never go back up),
    so code that took the worker over cannot raise its soft limit past its tenant's budget."""
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit_bytes = min(limit_bytes, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))


def limit_memory(soft_bytes: int) -> None:
    """Cap the address space for runs at ``soft_bytes`` (within the worker's hard cap)."""
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        soft_bytes = min(soft_bytes, hard)
    resource.setrlimit(resource.RLIMIT_AS, (soft_bytes, hard))
