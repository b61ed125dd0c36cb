"""GET /v1/openapi.json: the native API's OpenAPI 3.1 document, built from the app's own
routes and the per-operation table in `openapi_operations.py` (front-end layer).

Paths, methods, path parameters, summaries and descriptions come from the routes and
their endpoints' docstrings, so a route added or removed shows (or fails the unit test
that checks every route has a table entry) without anyone editing a document.
"""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Iterable
from typing import Any

from firebox.runtime.http.openapi_operations import OPERATIONS, Operation
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

OPENAPI_PATH = "/v1/openapi.json"
PATH_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::[a-z]+)?\}")
# What a path parameter looks like, for the document's readers (and the fuzzer's examples).
PATH_EXAMPLES = {
    "name": "hello",
    "alias": "live",
    "queue": "orders",
    "stream": "clicks",
    "shard": "shard-0000",
    "id": "0d6d3c3e-6a43-4a8e-9d4f-0c3a5cf8a0f1",
    "key_id": "FBK0000000000000000",
}
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {
                "type": {"type": "string", "description": "the error type (errors.md)"},
                "message": {"type": "string"},
            },
        }
    },
}
ERROR_RESPONSE = {
    "description": "an error: its type and a message a user can act on",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}


def is_native(path: str) -> bool:
    """Return True for a route of the native API (what the document describes)."""
    return path.startswith("/v1/") or path in ("/v1", "/healthz", "/metrics")


def native_operations(routes: Iterable[BaseRoute]) -> list[tuple[str, str, Route]]:
    """Return (method, template, route) of every native operation, in routing order."""
    out = []
    for route in routes:
        if isinstance(route, Route) and is_native(route.path):
            for method in sorted((route.methods or set()) - {"HEAD"}):
                out.append((method, route.path, route))
    return out


def _docs(route: Route) -> tuple[str, str]:
    lines = (route.endpoint.__doc__ or "").strip().splitlines()
    summary = lines[0].strip() if lines else route.path
    return summary, "\n".join(line.strip() for line in lines[1:]).strip()


def _operation(method: str, template: str, route: Route, op: Operation) -> dict[str, Any]:
    summary, description = _docs(route)
    parameters: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "minLength": 1},
            "example": PATH_EXAMPLES.get(name, name),
        }
        for name in PATH_PARAM.findall(template)
    ]
    for param in op.params:
        entry: dict[str, Any] = {"name": param.name, "in": param.where, "schema": param.schema}
        if param.description:
            entry["description"] = param.description
        if param.required:
            entry["required"] = True
        parameters.append(entry)
    slug = re.sub(r"[^A-Za-z0-9]+", "_", template.strip("/")).strip("_")
    out: dict[str, Any] = {
        "operationId": f"{method.lower()}_{slug}",
        "tags": [op.tag],
        "summary": summary,
        "parameters": parameters,
    }
    if description:
        out["description"] = description
    if op.public:
        out["security"] = []
    if op.raw_body:
        out["requestBody"] = {
            "description": "the event: any JSON value (or msgpack with its content type)",
            "content": {"application/json": {"schema": {}}},
        }
    elif op.body is not None:
        out["requestBody"] = {
            "required": op.body_required,
            "content": {"application/json": {"schema": op.body}},
        }
    ok: dict[str, Any] = {"description": "success"}
    if op.result is not None:
        ok["content"] = {op.media_type: {"schema": op.result}}
    out["responses"] = {
        str(op.ok): ok,
        "4XX": {"$ref": "#/components/responses/Error"},
        "5XX": {"$ref": "#/components/responses/Error"},
    }
    return out


def document(routes: Iterable[BaseRoute]) -> dict[str, Any]:
    """Return the OpenAPI 3.1 document of the native API served by these routes.

    Raises KeyError naming a native route that has no entry in OPERATIONS.
    """
    paths: dict[str, dict[str, Any]] = {}
    for method, template, route in native_operations(routes):
        op = OPERATIONS.get((method, template))
        if op is None:
            raise KeyError(f"{method} {template} has no entry in openapi_operations.OPERATIONS")
        openapi_path = PATH_PARAM.sub(lambda m: "{" + m.group(1) + "}", template)
        paths.setdefault(openapi_path, {})[method.lower()] = _operation(method, template, route, op)
    try:
        version = importlib.metadata.version("firebox")
    except importlib.metadata.PackageNotFoundError:
        version = "0"
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "firebox native API",
            "version": version,
            "description": "Functions, versions, aliases, invocations, logs, queues, streams,"
            " mappings, schedules and keys of a firebox node (docs/http-api.md).",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "`Authorization: Bearer KEY_ID:SECRET` (or a SigV4"
                    " signature for service `firebox`)",
                }
            },
            "schemas": {"Error": ERROR_SCHEMA},
            "responses": {"Error": ERROR_RESPONSE},
        },
    }


async def openapi(request: Request) -> Response:
    """GET /v1/openapi.json: the OpenAPI 3.1 document of the native API."""
    state = request.app.state
    if getattr(state, "openapi", None) is None:
        state.openapi = document(request.app.routes)
    return JSONResponse(state.openapi)


def routes() -> list[Route]:
    """Return the document's route."""
    return [Route(OPENAPI_PATH, openapi, methods=["GET"])]
