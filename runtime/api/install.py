"""Put the admin API on the server's Sanic app: every operation of ``routes.FAMILIES``, the
OpenAPI document at ``/api/openapi.json`` and the metrics at ``/metrics``."""

from __future__ import annotations

from functools import partial
from typing import Any

from sanic import HTTPResponse
from sanic.response import json as json_response

from runtime.api import metrics, openapi
from runtime.api.operation import Operation, is_admin, serve
from runtime.api.routes import FAMILIES
from runtime.settings import Settings
from runtime.web.app import create_app
from runtime.web.state import App, AppRequest, Parts


async def _dispatch(
    operations: dict[str, Operation], request: AppRequest, **path: str
) -> HTTPResponse:
    method = "GET" if request.method == "HEAD" else request.method
    return await serve(operations[method], request, path)


def install(app: App) -> None:
    """Add the API's routes to ``app`` (one route per path, so a 405 lists every method)."""
    by_path: dict[str, dict[str, Operation]] = {}
    for family in FAMILIES:
        for operation in family.operations:
            by_path.setdefault(operation.sanic_path, {})[operation.method] = operation
    for number, (path, operations) in enumerate(by_path.items()):
        handler: Any = partial(_dispatch, operations)
        handler.__name__ = f"api_{number}"
        stream = any(operation.raw for operation in operations.values())
        app.add_route(
            handler,
            path,
            methods=list(operations),
            name=f"api_{number}",
            unquote=True,
            stream=stream,
        )
    document = openapi.build(FAMILIES)

    async def openapi_json(request: AppRequest) -> HTTPResponse:
        """The OpenAPI 3.1 document (public: it describes, it grants nothing)."""
        return json_response(document)

    app.add_route(openapi_json, "/api/openapi.json", methods=["GET"], name="api_openapi")
    app.add_route(metrics.scrape, "/metrics", methods=["GET"], name="metrics")
    app.ctx.is_admin = is_admin
    app.register_middleware(metrics.count_click, "response")


def create_app_with_api(settings: Settings, *, parts: Parts | None = None) -> App:
    """The server's app (:func:`runtime.web.app.create_app`) with the admin API on it."""
    app = create_app(settings, parts=parts)
    install(app)
    return app
