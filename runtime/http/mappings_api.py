"""The event source mappings API under /v1/event-source-mappings (front-end layer).

Bodies are JSON or msgpack objects: `{function, qualifier?, source: "queue:NAME" |
"stream:NAME", enabled?, ...settings}` to create, the keys to change to update. Every
answer describes the mapping (`MappingManager.status` for one, `describe` for a list).
"""

from __future__ import annotations

from typing import Any

from firebox.runtime.errors import BadRequest
from firebox.runtime.events.mapping_config import describe
from firebox.runtime.events.mappings import MappingManager
from firebox.runtime.http.native import read_object, reply
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def manager_of(request: Request) -> MappingManager:
    """Return the node's mapping manager."""
    manager: MappingManager = request.app.state.node.mappings
    return manager


def _pop_str(data: dict[str, Any], key: str) -> str:
    value = data.pop(key, None)
    if not isinstance(value, str) or not value:
        raise BadRequest(f"`{key}` must be a non-empty string")
    return value


async def create_mapping(request: Request) -> Response:
    """POST /v1/event-source-mappings: {function, qualifier?, source, enabled?, ...settings}."""
    data = await read_object(request)
    function, source = _pop_str(data, "function"), _pop_str(data, "source")
    qualifier = _pop_str(data, "qualifier") if data.get("qualifier") is not None else None
    enabled = data.pop("enabled", True)
    if not isinstance(enabled, bool):
        raise BadRequest("`enabled` must be true or false")
    manager = manager_of(request)
    record = await manager.create(function, source, data, qualifier=qualifier, enabled=enabled)
    return reply(request, await manager.status(record.id), status=201)


async def list_mappings(request: Request) -> Response:
    """GET /v1/event-source-mappings[?function=NAME]: the mappings, oldest first."""
    records = await manager_of(request).list(request.query_params.get("function") or None)
    return reply(request, {"mappings": [describe(r) for r in records]})


async def get_mapping(request: Request) -> Response:
    """GET /v1/event-source-mappings/{id}: the mapping, its state and this node's counters."""
    return reply(request, await manager_of(request).status(request.path_params["id"]))


async def update_mapping(request: Request) -> Response:
    """PATCH /v1/event-source-mappings/{id}: {function?, qualifier?, enabled?, ...settings}."""
    data = await read_object(request)
    manager = manager_of(request)
    record = await manager.update(request.path_params["id"], data)
    return reply(request, await manager.status(record.id))


async def delete_mapping(request: Request) -> Response:
    """DELETE /v1/event-source-mappings/{id}: stops and deletes the mapping (204)."""
    await manager_of(request).delete(request.path_params["id"])
    return Response(status_code=204)


def routes() -> list[Route]:
    """Return the routes of the event source mappings API."""
    base = "/v1/event-source-mappings"
    return [
        Route(base, create_mapping, methods=["POST"]),
        Route(base, list_mappings, methods=["GET"]),
        Route(base + "/{id}", get_mapping, methods=["GET"]),
        Route(base + "/{id}", update_mapping, methods=["PATCH"]),
        Route(base + "/{id}", delete_mapping, methods=["DELETE"]),
    ]
