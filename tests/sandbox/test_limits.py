"""The Limits value: defaults, validation, and a custom limit reaching the worker."""

from __future__ import annotations

import pytest

from sandbox import Limits, Status


def test_defaults_match_the_documented_budget():
    """The defaults are 1 s CPU, 10 s wall, 128 MiB, 64 KiB output, 100 calls."""
    limits = Limits()
    assert (limits.cpu_seconds, limits.wall_seconds) == (1.0, 10.0)
    assert limits.memory_bytes == 128 * 1024 * 1024
    assert limits.output_bytes == 64 * 1024
    assert limits.capability_calls == 100


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cpu_seconds": 0}, "cpu_seconds must be a positive number"),
        ({"memory_bytes": -1}, "memory_bytes must be a positive number"),
        ({"output_bytes": True}, "output_bytes must be a positive number"),
        ({"cpu_seconds": 5, "wall_seconds": 1}, "cannot be larger than wall_seconds"),
        ({"recursion_depth": 100000}, "recursion_depth cannot be above"),
    ],
    ids=["zero-cpu", "negative-memory", "bool", "cpu-over-wall", "deep-recursion"],
)
def test_bad_limits_are_refused_with_a_message_naming_the_limit(kwargs, message):
    """Each invalid limit raises ValueError naming what is wrong."""
    with pytest.raises(ValueError, match=message):
        Limits(**kwargs)


async def test_a_smaller_output_limit_applies_to_that_run_only(run):
    """A per-run output limit cuts that run's output; the next run uses the pool default."""
    small = await run("for i in range(100):\n    print('x' * 10)", limits=Limits(output_bytes=50))
    assert small.status is Status.LIMIT_EXCEEDED
    assert small.breach.limit == "output_bytes"
    assert small.breach.value == 50
    assert len(small.output.encode()) <= 50
    normal = await run("for i in range(100):\n    print('x' * 10)")
    assert normal.ok
    assert len(normal.output) == 1100


async def test_a_caught_limit_still_counts_as_exceeded(run):
    """Swallowing the limit exception with a bare except does not turn the run into a success."""
    result = await run(
        """
        for i in range(3):
            try:
                while True:
                    pass
            except:
                pass
        print('survived')
        """,
        limits=Limits(cpu_seconds=0.3, wall_seconds=3),
    )
    assert result.status is Status.LIMIT_EXCEEDED
    assert result.breach.limit == "cpu_seconds"
