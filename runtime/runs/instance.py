"""This server process as a store *instance*: its unique id, its heartbeat, and finding the
processes of this host that died without saying so.

Each server process (each of ``BOTBOX_SERVER_WORKERS``, on any machine sharing the store)
registers an instance and renews it every :data:`BEAT_EVERY` seconds; its leases are live only
while ``alive_until`` (now + :data:`ALIVE_FOR` at each beat) has not passed. A process that stops
cleanly marks its instance stopped, so its leases are free at once. A process killed with
``kill -9`` cannot; on the same host its successor (or a sibling) notices at once that its pid
is gone, or belongs to another process now, and marks it stopped; on another machine its leases
are free :data:`ALIVE_FOR` seconds after its last beat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Callable
from typing import Final

from runtime.errors import StoreError
from runtime.store import Instance, Store

logger = logging.getLogger(__name__)

BEAT_EVERY: Final = 1.0
"""Seconds between heartbeats (one small UPDATE each)."""
ALIVE_FOR: Final = 15.0
"""How long one beat keeps an instance alive: 15 missed beats, so a process whose event loop or
store thread is slow (a busy disk, a long write lock) keeps its leases."""
REAP_EVERY: Final = 5
"""Check this host's other instances for dead processes every this many beats."""


def host_key() -> str:
    """Where a pid means one process: host name, boot, pid namespace."""
    parts = [socket.gethostname()]
    with (
        contextlib.suppress(OSError),
        open("/proc/sys/kernel/random/boot_id", encoding="ascii") as file,
    ):
        parts.append(file.read().strip())
    with contextlib.suppress(OSError):
        parts.append(os.readlink("/proc/self/ns/pid"))
    return "/".join(parts)


def process_started(pid: int) -> str:
    """The start time of process ``pid`` (clock ticks since boot), "" when it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as file:
            stat = file.read()
    except OSError:
        return ""
    fields = stat[stat.rfind(")") + 2 :].split()  # the name may hold spaces and parentheses
    return fields[19] if len(fields) > 19 else ""


def this_instance(instance_id: str | None = None) -> Instance:
    """This process as an instance; its id is unique across hosts and restarts."""
    pid = os.getpid()
    name = instance_id or f"{socket.gethostname()}:{pid}:{secrets.token_hex(4)}"
    return Instance(name, host_key(), pid, process_started(pid))


def is_gone(instance: Instance) -> bool:
    """True when ``instance`` (of this host) is surely dead: its pid is free or another's."""
    if not instance.started:
        return False  # nothing to compare a reused pid with: leave it to its heartbeat
    try:
        os.kill(instance.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, another user's
    started = process_started(instance.pid)
    return bool(started) and started != instance.started


class Heartbeat:
    """Registers this process, renews it, reaps dead siblings, and marks it stopped at the end."""

    def __init__(
        self,
        store: Store,
        instance: Instance,
        clock: Callable[[], float],
        *,
        on_reaped: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.instance = instance
        self.clock = clock
        self.on_reaped = on_reaped
        self.problem: str | None = None
        """Why the last beat failed, while it does (the leases may be lost past ALIVE_FOR)."""
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start beating (the first beat registers the instance)."""
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop beating and mark the instance stopped, freeing its leases."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await self.store.stop_instance(self.instance.instance_id, now=self.clock())
        except StoreError as exc:
            logger.warning("could not mark instance %s stopped: %s", self.instance.instance_id, exc)

    @property
    def running(self) -> bool:
        """True while the beat task runs (it only ends when stopped)."""
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        registered = False
        beats = 0
        while True:
            try:
                now = self.clock()
                if not registered:
                    await self.store.register_instance(
                        self.instance, now=now, alive_until=now + ALIVE_FOR
                    )
                    registered = True
                    await self.reap()
                elif not await self.store.heartbeat(
                    self.instance.instance_id, alive_until=now + ALIVE_FOR
                ):
                    logger.warning(
                        "instance %s was taken for dead; registering again",
                        self.instance.instance_id,
                    )
                    registered = False
                    continue
                elif beats % REAP_EVERY == 0:
                    await self.reap()
                self.problem = None
            except StoreError as exc:
                if self.problem is None:
                    logger.warning("heartbeat failed: %s", exc)
                self.problem = f"heartbeat failing: {exc}"
            except Exception as exc:
                logger.exception("heartbeat failed")
                self.problem = f"heartbeat failing: {type(exc).__name__}: {exc}"
            beats += 1
            await asyncio.sleep(BEAT_EVERY)

    async def reap(self) -> list[str]:
        """Mark stopped the instances of this host whose process is gone; return their ids."""
        now = self.clock()
        reaped: list[str] = []
        for other in await self.store.live_instances(self.instance.host, now=now):
            if other.instance_id != self.instance.instance_id and is_gone(other):
                await self.store.stop_instance(other.instance_id, now=now)
                logger.warning(
                    "server instance %s (pid %d) is gone: its leases are free",
                    other.instance_id,
                    other.pid,
                )
                reaped.append(other.instance_id)
        if reaped:
            self.on_reaped()
        return reaped
