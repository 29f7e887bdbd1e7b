"""A seccomp filter for worker processes: the kernel refuses the system calls a script never
needs (new sockets, new processes, exec, ptrace, mounts and namespaces, BPF, io_uring, key
rings, module loading, changing identity...).

Guarantees: once installed (after ``no_new_privs``), it holds for the rest of the worker's life
and cannot be removed; refused calls fail with ``EPERM`` (the worker is not killed, so a refused
call in a script is an ordinary error). 32-bit (x32) system call numbers are refused outright.

Argument rules (:func:`worker_rules`): a worker may signal only itself, change only its own
resource limits, and never undo its death signal or non-dumpable flag.

Not guaranteed: it is a deny list, for x86_64 only (elsewhere :func:`install` reports that it
did nothing); everything not listed stays allowed, because the interpreter needs it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
import struct
from dataclasses import dataclass
from typing import Final

PR_SET_SECCOMP: Final = 22
SECCOMP_MODE_FILTER: Final = 2
AUDIT_ARCH_X86_64: Final = 0xC000003E
X32_SYSCALL_BIT: Final = 0x40000000
EPERM: Final = 1
RET_ALLOW: Final = 0x7FFF0000
RET_ERRNO: Final = 0x00050000
LD_ABS_W: Final = 0x20  # BPF_LD | BPF_W | BPF_ABS
JEQ_K: Final = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
JGE_K: Final = 0x35  # BPF_JMP | BPF_JGE | BPF_K
RET_K: Final = 0x06  # BPF_RET | BPF_K
ARG0_LOW: Final = 16  # offsetof(struct seccomp_data, args[0]), its low 32 bits (little endian)

DENIED_X86_64: Final = {
    "socket": 41,
    "connect": 42,
    "accept": 43,
    "bind": 49,
    "listen": 50,
    "socketpair": 53,
    "accept4": 288,
    "clone": 56,
    "fork": 57,
    "vfork": 58,
    "execve": 59,
    "clone3": 435,
    "execveat": 322,
    "ptrace": 101,
    "process_vm_readv": 310,
    "process_vm_writev": 311,
    "kcmp": 312,
    "mount": 165,
    "umount2": 166,
    "pivot_root": 155,
    "chroot": 161,
    "unshare": 272,
    "setns": 308,
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "bpf": 321,
    "perf_event_open": 298,
    "userfaultfd": 323,
    "keyctl": 250,
    "add_key": 248,
    "request_key": 249,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "init_module": 175,
    "finit_module": 313,
    "delete_module": 176,
    "kexec_load": 246,
    "kexec_file_load": 320,
    "reboot": 169,
    "swapon": 167,
    "swapoff": 168,
    "acct": 163,
    "settimeofday": 164,
    "clock_settime": 227,
    "adjtimex": 159,
    "clock_adjtime": 305,
    "quotactl": 179,
    "name_to_handle_at": 303,
    "open_by_handle_at": 304,
    "setuid": 105,
    "setgid": 106,
    "setreuid": 113,
    "setregid": 114,
    "setresuid": 117,
    "setresgid": 119,
    "setgroups": 116,
    "personality": 135,
    "uselib": 134,
    "modify_ldt": 154,
    "iopl": 172,
    "ioperm": 173,
    "vhangup": 153,
    "sysfs": 139,
    # scheduling, priority and memory placement of other processes (and of itself)
    "setpriority": 141,
    "sched_setparam": 142,
    "sched_setscheduler": 144,
    "sched_setaffinity": 203,
    "sched_setattr": 314,
    "ioprio_set": 251,
    "migrate_pages": 256,
    "move_pages": 279,
    "process_madvise": 440,
    "process_mrelease": 448,
    # signals to other processes (a worker may only signal itself, through tgkill: RULES)
    "kill": 62,
    "tkill": 200,
    "rt_sigqueueinfo": 129,
    "rt_tgsigqueueinfo": 297,
    "pidfd_open": 434,
    "pidfd_send_signal": 424,
    "pidfd_getfd": 438,
    # System V and POSIX IPC: channels between processes that the namespace would share
    "shmget": 29,
    "shmat": 30,
    "shmctl": 31,
    "shmdt": 67,
    "semget": 64,
    "semop": 65,
    "semctl": 66,
    "semtimedop": 220,
    "msgget": 68,
    "msgsnd": 69,
    "msgrcv": 70,
    "msgctl": 71,
    "mq_open": 240,
    "mq_unlink": 241,
    "mq_timedsend": 242,
    "mq_timedreceive": 243,
    "mq_notify": 244,
    "mq_getsetattr": 245,
}
"""System calls refused in workers, by their x86_64 numbers."""


def _instruction(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


@dataclass(frozen=True, slots=True)
class ArgRule:
    """A call allowed or refused by the value of its first argument.

    With ``allow=True`` the call is allowed only when the argument is one of ``values``; with
    ``allow=False`` it is refused when it is one of them and allowed otherwise.
    """

    number: int
    values: tuple[int, ...]
    allow: bool


TGKILL: Final = 234
PRLIMIT64: Final = 302
PRCTL: Final = 157
PR_SET_PDEATHSIG: Final = 1
PR_SET_DUMPABLE: Final = 4


def worker_rules(pid: int) -> tuple[ArgRule, ...]:
    """The argument rules of the worker whose process id is ``pid``: it may signal only itself
    (``tgkill``), change only its own limits (``prlimit64`` on pid 0 or itself), and never
    undo the death signal or the non-dumpable flag its isolation set (``prctl``)."""
    return (
        ArgRule(TGKILL, (pid,), allow=True),
        ArgRule(PRLIMIT64, (0, pid), allow=True),
        ArgRule(PRCTL, (PR_SET_PDEATHSIG, PR_SET_DUMPABLE), allow=False),
    )


def program(denied: list[int], rules: tuple[ArgRule, ...] = ()) -> bytes:
    """The BPF program: refuse other architectures, x32 numbers, every denied call, and the
    calls whose first argument a rule refuses."""
    blocks = [
        _rule_block(rule) for rule in rules
    ]  # each ends in its own return: the accumulator still holds the call number after a miss
    rule_length = sum(len(block) for block in blocks)
    deny = 4 + len(denied) + rule_length + 1  # index of the final "return EPERM"
    instructions = [
        _instruction(LD_ABS_W, 0, 0, 4),  # seccomp_data.arch
        _instruction(JEQ_K, 0, deny - 2, AUDIT_ARCH_X86_64),
        _instruction(LD_ABS_W, 0, 0, 0),  # seccomp_data.nr
        _instruction(JGE_K, deny - 4, 0, X32_SYSCALL_BIT),
    ]
    for index, number in enumerate(denied):
        position = 4 + index
        instructions.append(_instruction(JEQ_K, deny - position - 1, 0, number))
    for block in blocks:
        instructions.extend(block)
    instructions.append(_instruction(RET_K, 0, 0, RET_ALLOW))
    instructions.append(_instruction(RET_K, 0, 0, RET_ERRNO | EPERM))
    if deny - 2 > 255:
        raise ValueError("the filter is too long for BPF's 8-bit jumps")
    return b"".join(instructions)


def _rule_block(rule: ArgRule) -> list[bytes]:
    count = len(rule.values)
    length = 2 + count + 2
    on_match = RET_ALLOW if rule.allow else RET_ERRNO | EPERM
    on_miss = RET_ERRNO | EPERM if rule.allow else RET_ALLOW
    block = [
        _instruction(JEQ_K, 0, length - 1, rule.number),  # not this call: the next block
        _instruction(LD_ABS_W, 0, 0, ARG0_LOW),
    ]
    for index, value in enumerate(rule.values):
        block.append(_instruction(JEQ_K, count - index, 0, value & 0xFFFFFFFF))
    block.append(_instruction(RET_K, 0, 0, on_miss))
    block.append(_instruction(RET_K, 0, 0, on_match))
    return block


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


def install(pid: int | None = None) -> str:
    """Install the filter in this process (needs no_new_privs first); say what was done.

    With ``pid`` (this process's id), the argument rules of :func:`worker_rules` apply too.
    """
    if platform.machine() != "x86_64":
        return f"not applied (only x86_64, this is {platform.machine()})"
    denied = sorted(DENIED_X86_64.values())
    code = program(denied, worker_rules(pid) if pid is not None else ())
    buffer = ctypes.create_string_buffer(code, len(code))
    fprog = _SockFprog(len(code) // 8, ctypes.cast(buffer, ctypes.c_void_p).value)
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        return f"not applied (prctl failed: errno {ctypes.get_errno()})"
    return f"seccomp filter ({len(denied)} system calls refused)"
