"""The native API for key-value tables under /v1/tables: list tables, read, write, delete
and page through items, to seed and inspect what functions store (front-end layer).

Items are JSON values by string key; see docs/capabilities.md. The same store serves
the functions' `firebox.kv` (runtime/host/kv.py).
"""

from __future__ import annotations

from firebox.runtime.errors import BadRequest, ItemNotFound
from firebox.runtime.grants import NAME_RE
from firebox.runtime.http.data_stores import data_of, query_int, run
from firebox.runtime.http.native import read_object, reply
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def table_name(request: Request) -> str:
    name: str = request.path_params["table"]
    if not NAME_RE.match(name):
        raise BadRequest(f"bad table name {name[:80]!r}: 1-63 letters, digits, '_', '.', '-'")
    return name


async def list_tables(request: Request) -> Response:
    """GET /v1/tables: every table holding items, with its item count."""
    return reply(request, {"tables": await run(data_of(request).kv.tables)})


async def list_items(request: Request) -> Response:
    """GET /v1/tables/{table}/items?prefix=&limit=&cursor=: a page of items in key order."""
    params = request.query_params
    page = await run(
        data_of(request).kv.query,
        table_name(request),
        params.get("prefix", ""),
        limit=query_int(request, "limit"),
        cursor=params.get("cursor") or None,
    )
    return reply(request, page.to_dict())


async def get_item(request: Request) -> Response:
    """GET /v1/tables/{table}/items/{key}: the item, or 404."""
    table, key = table_name(request), request.path_params["key"]
    item = await run(data_of(request).kv.get, table, key)
    if item is None:
        raise ItemNotFound(f"no item {key!r} in table {table!r}")
    return reply(request, item.to_dict())


async def put_item(request: Request) -> Response:
    """PUT /v1/tables/{table}/items/{key}: {value, ttl?, if_absent?, if_version?}."""
    data = await read_object(request)
    if "value" not in data:
        raise BadRequest("`value` is required")
    unknown = sorted(set(data) - {"value", "ttl", "if_absent", "if_version"})
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(unknown)}")
    version = data.get("if_version")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
        raise BadRequest("`if_version` must be an integer")
    item = await run(
        data_of(request).kv.put,
        table_name(request),
        request.path_params["key"],
        data["value"],
        ttl_s=data.get("ttl"),
        if_absent=bool(data.get("if_absent")),
        if_version=version,
    )
    return reply(request, item.to_dict())


async def delete_item(request: Request) -> Response:
    """DELETE /v1/tables/{table}/items/{key}?if_version=: 204, or 404 if absent."""
    table, key = table_name(request), request.path_params["key"]
    found = await run(
        data_of(request).kv.delete, table, key, if_version=query_int(request, "if_version")
    )
    if not found:
        raise ItemNotFound(f"no item {key!r} in table {table!r}")
    return Response(status_code=204)


def routes() -> list[Route]:
    """Return the routes of tables and their items."""
    item = "/v1/tables/{table}/items/{key:path}"
    return [
        Route("/v1/tables", list_tables, methods=["GET"]),
        Route("/v1/tables/{table}/items", list_items, methods=["GET"]),
        Route(item, get_item, methods=["GET"]),
        Route(item, put_item, methods=["PUT"]),
        Route(item, delete_item, methods=["DELETE"]),
    ]
