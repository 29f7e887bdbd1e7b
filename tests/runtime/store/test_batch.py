"""Group commit: calls share a batch, and one call that cannot be written fails alone."""

from __future__ import annotations

import asyncio

import pytest

from runtime.store.batch import Batcher

POISON = -1


class Writer:
    """A ``write_many`` that refuses any batch holding POISON, as one transaction would."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.written: list[int] = []

    async def write_many(self, items: list[int]) -> list[int]:
        """Write every item, or none of them if one is POISON."""
        self.batches.append(list(items))
        await asyncio.sleep(0)
        if POISON in items:
            raise ValueError("poisoned batch")
        self.written.extend(items)
        return [item * 10 for item in items]


async def test_concurrent_calls_share_one_batch() -> None:
    """Calls made while a batch is being written go together in the next one."""
    writer = Writer()
    batcher: Batcher[int, int] = Batcher(writer.write_many)
    results = await asyncio.gather(*(batcher.submit(n) for n in range(1, 21)))
    assert results == [n * 10 for n in range(1, 21)]
    assert len(writer.batches) < 20


async def test_a_poisoned_call_fails_alone_in_the_middle_of_a_burst() -> None:
    """One item that breaks its batch gets the error; every other call is written and answered."""
    writer = Writer()
    batcher: Batcher[int, int] = Batcher(writer.write_many)
    items = [*range(1, 21), POISON, *range(21, 41)]
    results = await asyncio.gather(*(batcher.submit(n) for n in items), return_exceptions=True)
    failed = [
        item for item, result in zip(items, results, strict=True) if isinstance(result, Exception)
    ]
    assert failed == [POISON]
    assert isinstance(results[20], ValueError)
    assert [r for r in results if not isinstance(r, Exception)] == [n * 10 for n in items if n > 0]
    assert sorted(writer.written) == list(range(1, 41))
    assert any(len(batch) > 1 and POISON in batch for batch in writer.batches)


async def test_a_lone_failing_call_is_not_retried() -> None:
    """A batch of one that fails is not written again: the caller gets its error once."""
    writer = Writer()
    batcher: Batcher[int, int] = Batcher(writer.write_many)
    with pytest.raises(ValueError, match="poisoned"):
        await batcher.submit(POISON)
    assert writer.batches == [[POISON]]
