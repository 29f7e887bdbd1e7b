"""The sandbox package's public API is pinned."""

from __future__ import annotations

import sandbox


def test_the_public_api_is_exactly_what_init_names():
    """Every public name is exported on purpose; a change here is an API change."""
    assert sorted(sandbox.__all__) == sorted(
        [
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
    )
    for name in sandbox.__all__:
        assert getattr(sandbox, name) is not None
