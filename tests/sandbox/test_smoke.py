"""The shortest path through the sandbox: a script runs and prints."""

from __future__ import annotations

from sandbox import Status


async def test_a_trivial_script_runs_and_its_output_is_captured(run):
    """print() output comes back in the result, and the status is ok."""
    result = await run("print('hello', 1 + 1)")
    assert result.status is Status.OK
    assert result.output == "hello 2\n"
