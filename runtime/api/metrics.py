"""``GET /metrics``: the Prometheus text format, for an admin token only.

What the process counted (:mod:`runtime.metrics`: runs, run durations, Bot API calls, link
clicks) plus what is read at the scrape: queue depth and age (the oldest due item) by bot and
properties bytes by bot (from the store: server-wide), and this process's sandbox pool
(workers, running, waiting runs, worker restarts). See :mod:`runtime.metrics` for
several server processes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sanic import HTTPResponse
from sanic.response import BaseHTTPResponse

from runtime import metrics
from runtime.api.operation import api_error, principal_of
from runtime.web.responses import HttpError
from runtime.web.state import AppRequest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Snapshot(Collector):
    """Gauges read at the scrape: queue depth per bot, and this process's pool."""

    def __init__(
        self,
        depth: dict[str, int],
        pool: dict[str, int],
        age: dict[str, float] | None = None,
        data: dict[str, int] | None = None,
    ) -> None:
        self.depth = depth
        self.pool = pool
        self.age = age or {}
        self.data = data or {}

    def collect(self) -> Iterator[Metric]:
        queue = GaugeMetricFamily(
            "botbox_queue_depth",
            "Unfinished queue items (updates and runs), by bot.",
            labels=["bot"],
        )
        for bot, count in sorted(self.depth.items()):
            queue.add_metric([bot], count)
        yield queue
        pool = GaugeMetricFamily(
            "botbox_pool",
            "This process's sandbox pool: workers, idle, running, waiting...",
            labels=["what"],
        )
        for what, count in sorted(self.pool.items()):
            pool.add_metric([what], count)
        yield pool
        age = GaugeMetricFamily(
            "botbox_queue_age_seconds",
            "Age of the oldest unfinished queue item that is due, by bot (server-wide).",
            labels=["bot"],
        )
        for bot, seconds in sorted(self.age.items()):
            age.add_metric([bot], seconds)
        yield age
        restarts = CounterMetricFamily(
            "botbox_pool_worker_restarts",
            "Sandbox workers lost in a run (killed by the host or crashed) and replaced, "
            "in this process.",
        )
        restarts.add_metric([], self.pool.get("restarts", 0))
        yield restarts
        waiting = GaugeMetricFamily(
            "botbox_pool_waiting_runs", "Runs waiting for a sandbox worker in this process."
        )
        waiting.add_metric([], self.pool.get("waiting", 0))
        yield waiting
        data = GaugeMetricFamily(
            "botbox_properties_bytes",
            "Bytes of stored properties (names and values), by bot.",
            labels=["bot"],
        )
        for bot, size in sorted(self.data.items()):
            data.add_metric([bot], size)
        yield data


def counted() -> bytes:
    """What the processes counted: this one's, or every one's in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


async def scrape(request: AppRequest) -> HTTPResponse:
    """The metrics, for an admin token."""
    state = request.app.ctx.running
    try:
        principal = await principal_of(request, state)
        if principal.role != "admin":
            raise HttpError(403, "metrics are for admins", code="forbidden")
    except HttpError as exc:
        return api_error(exc)
    depth = {bot: await state.store.pending_count(bot) for bot in state.registry.ids}
    now = time.time()
    age = {
        bot: max(0.0, now - at) for bot, at in (await state.store.oldest_pending(now=now)).items()
    }
    data = {bot: await state.store.bot_data_bytes(bot) for bot in state.registry.ids}
    snapshot = CollectorRegistry()
    snapshot.register(_Snapshot(depth, state.pool.stats, age, data))
    body = counted() + generate_latest(snapshot)
    return HTTPResponse(body, content_type=CONTENT_TYPE)


def count_click(request: AppRequest, response: BaseHTTPResponse) -> None:
    """Count a response to a signed link (a response middleware)."""
    route = request.route
    if route is not None and route.name.endswith(".handle_click"):
        metrics.LINK_CLICKS.labels(str(response.status)).inc()
