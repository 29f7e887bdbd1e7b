"""The server's Prometheus metrics (``prometheus-client``, the official library), counted where
things happen and scraped at ``/metrics`` (:mod:`runtime.api.metrics`, admins only).

Counters and the histogram live in the process that counts them. With several server processes
(``BOTBOX_SERVER_WORKERS`` > 1) each process keeps its own, and a scrape is answered by
whichever process takes the connection: set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory
before the start to have every scrape sum all processes (prometheus-client's multiprocess
mode). Queue depth and age are read from the store at each scrape, so they are server-wide
either way.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Histogram

RUNS: Final = Counter(
    "botbox_runs", "Runs of commands, by bot, command and status.", ["bot", "command", "status"]
)
RUN_SECONDS: Final = Histogram(
    "botbox_run_duration_seconds",
    "Wall time of runs, by bot.",
    ["bot"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
TELEGRAM_CALLS: Final = Counter(
    "botbox_telegram_calls",
    "Bot API calls, by method and outcome (ok, error, flood for 429, transport).",
    ["method", "outcome"],
)
LINK_CLICKS: Final = Counter(
    "botbox_link_clicks", "Requests to signed links, by HTTP status.", ["status"]
)


def run_ended(bot: str, command: str, status: str, wall_seconds: float) -> None:
    """Count one run."""
    RUNS.labels(bot, command, status).inc()
    RUN_SECONDS.labels(bot).observe(wall_seconds)


def telegram_call(method: str, outcome: str) -> None:
    """Count one Bot API call."""
    TELEGRAM_CALLS.labels(method, outcome).inc()
