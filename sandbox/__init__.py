"""botbox's restricted interpreter: author scripts in isolated worker processes.

It knows nothing of bots. A host compiles a script (:func:`compile_script`), then runs it in a
:class:`WorkerPool` with JSON globals, named capabilities and :class:`Limits`, and gets a
:class:`RunResult` back. See ``README.md`` (the sandbox section) for what scripts can do.
"""

from sandbox.capability import (
    CallRequest,
    Capabilities,
    Handler,
    Response,
    RunInPlace,
    WaitBudget,
    wait_budget,
)
from sandbox.compiler import Script, ScriptCache, compile_script
from sandbox.errors import (
    CapabilityError,
    Overloaded,
    PoolClosed,
    SandboxError,
    StopScript,
    WaitExhausted,
    WorkerStartError,
)
from sandbox.jsontypes import JSON
from sandbox.limits import Limits
from sandbox.modules import ALLOWED_MODULES
from sandbox.policy import CompileIssue
from sandbox.pool import WorkerPool
from sandbox.result import CapabilityCall, Frame, LimitBreach, RunResult, ScriptFailure, Status

__all__ = [
    "ALLOWED_MODULES",
    "JSON",
    "CallRequest",
    "Capabilities",
    "CapabilityCall",
    "CapabilityError",
    "CompileIssue",
    "Frame",
    "Handler",
    "LimitBreach",
    "Limits",
    "Overloaded",
    "PoolClosed",
    "Response",
    "RunInPlace",
    "RunResult",
    "SandboxError",
    "Script",
    "ScriptCache",
    "ScriptFailure",
    "Status",
    "StopScript",
    "WaitBudget",
    "WaitExhausted",
    "WorkerPool",
    "WorkerStartError",
    "compile_script",
    "wait_budget",
]
