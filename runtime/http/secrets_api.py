"""The native API for secrets under /v1/secrets: set (or rotate), list, describe and
delete; a value goes in and never comes out (front-end layer).

Functions granted a secret read it with `firebox.secrets.get` (runtime/host/secrets.py).
"""

from __future__ import annotations

from firebox.runtime.errors import BadRequest, ItemNotFound
from firebox.runtime.http.data_stores import data_of, run
from firebox.runtime.http.native import read_object, reply
from firebox.runtime.storage.secrets import check_name
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def list_secrets(request: Request) -> Response:
    """GET /v1/secrets: every secret's name, version and last change (no values)."""
    found = await run(data_of(request).secrets.list_all)
    return reply(request, {"secrets": [info.to_dict() for info in found]})


async def put_secret(request: Request) -> Response:
    """PUT /v1/secrets/{name}: {value}; sets or rotates it, answers its metadata only."""
    name = check_name(request.path_params["name"])
    data = await read_object(request)
    if set(data) != {"value"} or not isinstance(data["value"], str):
        raise BadRequest('the body must be {"value": "..."} and nothing else')
    info = await run(data_of(request).secrets.put, name, data["value"])
    return reply(request, info.to_dict())


async def get_secret(request: Request) -> Response:
    """GET /v1/secrets/{name}: the secret's metadata (its value is never returned)."""
    name = check_name(request.path_params["name"])
    info = await run(data_of(request).secrets.info, name)
    if info is None:
        raise ItemNotFound(f"no secret {name!r}")
    return reply(request, info.to_dict())


async def delete_secret(request: Request) -> Response:
    """DELETE /v1/secrets/{name}: 204, or 404 if absent."""
    name = check_name(request.path_params["name"])
    if not await run(data_of(request).secrets.delete, name):
        raise ItemNotFound(f"no secret {name!r}")
    return Response(status_code=204)


def routes() -> list[Route]:
    """Return the routes of secrets."""
    one = "/v1/secrets/{name}"
    return [
        Route("/v1/secrets", list_secrets, methods=["GET"]),
        Route(one, put_secret, methods=["PUT"]),
        Route(one, get_secret, methods=["GET"]),
        Route(one, delete_secret, methods=["DELETE"]),
    ]
