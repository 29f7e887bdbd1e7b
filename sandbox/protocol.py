"""Framing between the host and a worker: a 4-byte big-endian length, then the payload.

Host to worker payloads are ``marshal`` data (the worker trusts the host). Worker to host
payloads are JSON only, and the host treats them as hostile: size-capped, parsed with the
standard JSON decoder, and checked field by field. Never pickle or marshal from a worker.
"""

from __future__ import annotations

import struct
from typing import Final

HEADER: Final = struct.Struct(">I")
MAX_WORKER_FRAME: Final = 4 * 1024 * 1024
"""The largest frame the host accepts from a worker; a larger one kills the worker."""
CONTROL_PACKET: Final = 4096
"""The largest message on the fork server's control channel (one JSON object per packet)."""


def frame(payload: bytes) -> bytes:
    """Prefix ``payload`` with its length."""
    return HEADER.pack(len(payload)) + payload
