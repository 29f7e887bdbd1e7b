"""The API's endpoint families, one module each; ``FAMILIES`` is what the server serves.

A new family (deploy and versions, schedules, Telegram...) is a module with a ``ROUTES`` of its
own, added to ``FAMILIES``: the routes and the OpenAPI document follow.
"""

from __future__ import annotations

from typing import Final

from runtime.api.operation import Routes
from runtime.api.routes import (
    accounts,
    audit,
    bots,
    keys,
    links,
    properties,
    runs,
    schedules,
    secrets,
    telegram,
    try_,
    versions,
)

FAMILIES: Final[tuple[Routes, ...]] = (
    bots.ROUTES,
    runs.ROUTES,
    properties.ROUTES,
    links.ROUTES,
    keys.ROUTES,
    accounts.ROUTES,
    audit.ROUTES,
    try_.ROUTES,
    secrets.ROUTES,
    schedules.ROUTES,
    versions.ROUTES,
    telegram.ROUTES,
)
