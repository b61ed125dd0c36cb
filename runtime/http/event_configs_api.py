"""The native API for event-invoke configs and the event metrics (front-end layer).

A function's event-invoke config holds its async retries, maximum event age,
destinations and DLQ; the metrics are the async counters and every queue's depth.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict

from firebox.runtime.http.event_bodies import call_backend
from firebox.runtime.http.native import node_of, read_object, reply
from firebox.runtime.storage.registry import LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def put_event_config(request: Request) -> Response:
    """PUT /v1/functions/{name}/event-invoke-config?qualifier=: retries, event age, destinations, DLQ."""
    node = node_of(request)
    name = request.path_params["name"]
    node.get(name)
    qualifier = request.query_params.get("qualifier") or LATEST
    config = await asyncio.to_thread(
        node.async_invoker.put_config, name, qualifier, await read_object(request)
    )
    return reply(request, config.to_dict())


async def get_event_config(request: Request) -> Response:
    """GET /v1/functions/{name}/event-invoke-config?qualifier= (the defaults if none is set)."""
    node = node_of(request)
    name = request.path_params["name"]
    node.get(name)
    qualifier = request.query_params.get("qualifier") or LATEST
    return reply(
        request, (await asyncio.to_thread(node.async_invoker.config, name, qualifier)).to_dict()
    )


async def event_metrics(request: Request) -> Response:
    """GET /v1/events/metrics: async-invocation counters and every queue's depth and age."""
    node = node_of(request)
    queues = {}
    for name in await call_backend(node.queues.list_queues):
        queues[name] = asdict(await call_backend(node.queues.stats, name))
    return reply(request, {"async": asdict(node.async_invoker.stats), "queues": queues})


def routes() -> list[Route]:
    """Return the routes of event-invoke configs and event metrics."""
    return [
        Route("/v1/functions/{name}/event-invoke-config", put_event_config, methods=["PUT"]),
        Route("/v1/functions/{name}/event-invoke-config", get_event_config, methods=["GET"]),
        Route("/v1/events/metrics", event_metrics, methods=["GET"]),
    ]
