"""Put the admin API on the server's Sanic app: every operation of ``routes.FAMILIES``, the
OpenAPI document at ``/api/openapi.json`` and the metrics at ``/metrics``."""

from __future__ import annotations

from functools import partial
from typing import Any

from sanic import HTTPResponse
from sanic.response import json as json_response

from runtime.api import metrics, openapi
from runtime.api.operation import Operation, serve
from runtime.api.routes import FAMILIES
from runtime.settings import Settings
from runtime.web.app import create_app
from runtime.web.state import App, AppRequest, Parts


async def _handle(operation: Operation, request: AppRequest, **path: str) -> HTTPResponse:
    return await serve(operation, request, path)


def install(app: App) -> None:
    """Add the API's routes to ``app``."""
    for family in FAMILIES:
        for operation in family.operations:
            handler: Any = partial(_handle, operation)
            handler.__name__ = operation.operation_id
            app.add_route(
                handler,
                operation.sanic_path,
                methods=[operation.method],
                name=f"api_{operation.operation_id}",
            )
    document = openapi.build(FAMILIES)

    async def openapi_json(request: AppRequest) -> HTTPResponse:
        """The OpenAPI 3.1 document (public: it describes, it grants nothing)."""
        return json_response(document)

    app.add_route(openapi_json, "/api/openapi.json", methods=["GET"], name="api_openapi")
    app.add_route(metrics.scrape, "/metrics", methods=["GET"], name="metrics")
    app.register_middleware(metrics.count_click, "response")


def create_app_with_api(settings: Settings, *, parts: Parts | None = None) -> App:
    """The server's app (:func:`runtime.web.app.create_app`) with the admin API on it."""
    app = create_app(settings, parts=parts)
    install(app)
    return app
