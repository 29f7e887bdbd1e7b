"""The OpenAPI 3.1 document of ``/api/v1``, built from the operations' declarations and their
pydantic models (JSON Schema 2020-12, which OpenAPI 3.1 uses as is).

Every protected operation declares ``security: [{bearer: []}]`` itself; the document has no
top-level ``security``, and ``/api/openapi.json`` is the one public operation (it declares
``security: []``), so tools can tell them apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from pydantic import BaseModel

from runtime.api.models import ErrorBody
from runtime.api.operation import API_PREFIX, Operation, Routes

REF: Final = "#/components/schemas/{model}"
ERROR_TEXT: Final = {
    400: "the body is not JSON, or an upload was refused (the reason in `message`)",
    401: "no valid token (missing, unknown, expired or revoked)",
    403: "your role may not do this",
    404: "not found (also: a bot your token may not see)",
    409: "a conflict with the current state",
    413: "too large",
    422: "the input does not fit (every problem listed)",
    502: "Telegram refused the call or could not be reached",
}


def _schema(model: type[BaseModel], schemas: dict[str, Any], mode: str) -> dict[str, str]:
    """Add a model's schema (and those it refers to) to ``schemas``; return its reference."""
    schema = model.model_json_schema(ref_template=REF, mode=mode)  # type: ignore[arg-type]
    for name, definition in schema.pop("$defs", {}).items():
        schemas.setdefault(name, definition)
    schemas.setdefault(model.__name__, schema)
    return {"$ref": REF.format(model=model.__name__)}


def _parameters(operation: Operation, schemas: dict[str, Any]) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": operation.path_schemas.get(name, {"type": "string", "minLength": 1}),
        }
        for name in operation.path_names
    ]
    if operation.query is not None:
        schema = operation.query.model_json_schema(ref_template=REF)
        required = set(schema.get("required", []))
        for name, field_schema in schema["properties"].items():
            parameters.append(
                {
                    "name": name,
                    "in": "query",
                    "required": name in required,
                    "schema": field_schema,
                }
            )
    return parameters


def _operation(operation: Operation, schemas: dict[str, Any]) -> dict[str, Any]:
    error = _schema(ErrorBody, schemas, "serialization")
    statuses = [401, 404] if "bot_id" in operation.path_names else [401]
    if operation.need != "any":
        statuses.append(403)
    if operation.body is not None:
        statuses += [400, 422]
    if operation.raw:
        statuses += [400, 413, 422]
    if operation.query is not None:
        statuses.append(422)
    statuses += list(operation.errors)
    if any(name != "bot_id" for name in operation.path_names):
        statuses.append(404)
    responses: dict[str, Any] = {
        str(operation.status): {
            "description": operation.response.__doc__ or "done",
            "content": {
                "application/json": {
                    "schema": _schema(operation.response, schemas, "serialization")
                }
            },
        }
    }
    for status in sorted(set(statuses)):
        responses[str(status)] = {
            "description": ERROR_TEXT[status],
            "content": {"application/json": {"schema": error}},
        }
    document: dict[str, Any] = {
        "operationId": operation.operation_id,
        "summary": operation.summary,
        "tags": [operation.tag],
        "security": [{"bearer": []}],
        "parameters": _parameters(operation, schemas),
        "responses": responses,
    }
    if operation.raw:
        document["requestBody"] = {
            "required": True,
            "content": {
                media: {"schema": {"type": "string", "format": "binary"}} for media in operation.raw
            },
        }
    elif operation.body is not None:
        document["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": _schema(operation.body, schemas, "validation")}
            },
        }
    return document


def build(families: Sequence[Routes], *, server_url: str = "/") -> dict[str, Any]:
    """The whole document."""
    schemas: dict[str, Any] = {}
    paths: dict[str, dict[str, Any]] = {
        "/api/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document.",
                "tags": ["meta"],
                "security": [],
                "responses": {"200": {"description": "the OpenAPI document"}},
            }
        }
    }
    for family in families:
        for operation in family.operations:
            paths.setdefault(API_PREFIX + operation.path, {})[operation.method.lower()] = (
                _operation(operation, schemas)
            )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "botbox admin API",
            "version": "1",
            "description": (
                "Manage the bots of a botbox server. Every operation but this document needs "
                "`Authorization: Bearer <token>` (`python run.py tokens create`). A bot your "
                "token may not see answers 404, like one that does not exist."
            ),
        },
        "servers": [{"url": server_url}],
        "tags": [{"name": f.tag, "description": f.description} for f in families]
        + [{"name": "meta", "description": "The API's own description."}],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "an API token made with `python run.py tokens create`",
                }
            },
        },
    }
