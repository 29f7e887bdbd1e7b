"""FairShare: how the pool's workers are shared between tenants (pure bookkeeping)."""

from __future__ import annotations

import asyncio

from sandbox.fairness import HEAT_HALF_LIFE, FairShare


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def share(size: int = 4, max_workers: int = 8) -> tuple[FairShare[int], Clock]:
    clock = Clock()
    return FairShare(size=size, max_workers=max_workers, clock=clock), clock


def test_a_lone_tenant_may_use_size_workers_but_no_more():
    """Alone, a tenant's cap is the pool's size, not its burst ceiling."""
    fair, _ = share(size=4, max_workers=8)
    assert fair.cap("a") == 4


def test_the_cap_shrinks_to_a_fair_share_as_tenants_arrive():
    """With others running or waiting, each tenant's cap is max_workers over active tenants."""
    fair, _ = share(size=4, max_workers=8)
    for tenant in ("a", "b", "c"):
        fair.started(tenant)
    assert fair.cap("a") == 8 // 3
    for tenant in ("d", "e", "f", "g", "h", "i"):
        fair.started(tenant)
    assert fair.cap("a") == 1  # never below one


async def test_waiting_tenants_are_served_round_robin():
    """Lines are served one tenant at a time in turn, first come first served within one."""
    fair, _ = share()
    loop = asyncio.get_running_loop()
    futures = {name: loop.create_future() for name in ("a1", "a2", "a3", "b1", "c1")}
    for name in ("a1", "a2", "a3", "b1", "c1"):
        fair.wait(name[0], futures[name])
    order = []
    while (chosen := fair.next(lambda tenant: True)) is not None:
        order.append(next(k for k, v in futures.items() if v is chosen[1]))
    assert order == ["a1", "b1", "c1", "a2", "a3"]
    assert fair.waiting() == 0


async def test_a_tenant_at_its_cap_is_skipped_for_the_next_in_line():
    """A waiting tenant that already holds its share yields its turn to one that does not."""
    fair, _ = share(size=2, max_workers=2)
    loop = asyncio.get_running_loop()
    fair.started("a")
    fair.started("b")  # two tenants active: each may hold one worker
    first, second = loop.create_future(), loop.create_future()
    fair.wait("a", first)
    fair.wait("c", second)
    fair.finished("b")
    chosen = fair.next(lambda tenant: True)
    assert chosen is not None and chosen[0] == "c" and chosen[1] is second


async def test_cancelled_waiters_are_skipped():
    """A waiter that gave up is never chosen."""
    fair, _ = share()
    loop = asyncio.get_running_loop()
    gone, live = loop.create_future(), loop.create_future()
    fair.wait("a", gone)
    fair.wait("a", live)
    gone.cancel()
    assert fair.next(lambda tenant: True) == ("a", live)


def test_a_tenant_breaking_limits_is_throttled_until_its_heat_decays():
    """Two recent breaches halve a tenant's cap; it recovers as the heat decays."""
    fair, clock = share(size=4, max_workers=8)
    fair.record("spinner", breached=True)
    assert not fair.is_hot("spinner")
    fair.record("spinner", breached=True)
    assert fair.is_hot("spinner") and fair.cap("spinner") == 2
    fair.record("quiet", breached=False)
    assert fair.cap("quiet") == 4
    clock.now += HEAT_HALF_LIFE * 2
    assert not fair.is_hot("spinner") and fair.cap("spinner") == 4
