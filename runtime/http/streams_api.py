"""The native API for streams and their records under /v1/streams (front-end layer).

Create, describe and delete streams; put and read records.

Record data is bytes (see `event_bodies`). Streams named `firebox-...` are the node's own
(a table's change stream, `firebox-table-NAME`): they can be read, not created, written
or deleted here.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from firebox.runtime.errors import BadRequest
from firebox.runtime.events.queue import check_public
from firebox.runtime.http.event_bodies import (
    MAX_MESSAGE_BYTES,
    body_bytes,
    body_wire,
    call_backend,
    number_field,
)
from firebox.runtime.http.native import node_of, read_object, reply
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def create_stream(request: Request) -> Response:
    """POST /v1/streams: {name, shards?, retention_s?}."""
    data = await read_object(request)
    name = data.get("name")
    shards = data.get("shards", 1)
    if not isinstance(name, str) or not isinstance(shards, int):
        raise BadRequest("`name` (text) is required and `shards` must be an integer")
    check_public(name, "stream")
    kwargs: dict[str, Any] = {"shard_count": shards}
    if "retention_s" in data:
        kwargs["retention_s"] = number_field(data, "retention_s")
    info = await call_backend(node_of(request).streams.create_stream, name, **kwargs)
    return reply(request, asdict(info), status=201)


async def list_streams(request: Request) -> Response:
    """GET /v1/streams."""
    return reply(request, {"streams": await call_backend(node_of(request).streams.list_streams)})


async def get_stream(request: Request) -> Response:
    """GET /v1/streams/{stream}: shards and retention."""
    info = await call_backend(
        node_of(request).streams.describe_stream, request.path_params["stream"]
    )
    return reply(request, asdict(info))


async def delete_stream(request: Request) -> Response:
    """DELETE /v1/streams/{stream}."""
    check_public(request.path_params["stream"], "stream")
    await call_backend(node_of(request).streams.delete_stream, request.path_params["stream"])
    return Response(status_code=204)


async def put_records(request: Request) -> Response:
    """POST /v1/streams/{stream}/records: {partition_key, data} or {records: [{partition_key, data}]}."""
    data = await read_object(request, 16 * MAX_MESSAGE_BYTES)
    streams = node_of(request).streams
    name = request.path_params["stream"]
    check_public(name, "stream")  # a table's change stream is written by its table only
    items = data.get("records", [data])
    if not isinstance(items, list) or not items or len(items) > 500:
        raise BadRequest("`records` must be a list of 1 to 500 records")
    pairs = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("partition_key"), str):
            raise BadRequest("each record needs a `partition_key` (text) and `data`")
        pairs.append((item["partition_key"], body_bytes(item, "data")))
    results = await call_backend(streams.put_batch, name, pairs)
    out = [{"shard_id": r.shard_id, "sequence_number": r.sequence_number} for r in results]
    return reply(request, out[0] if "records" not in data else {"records": out}, status=201)


async def read_records(request: Request) -> Response:
    """GET /v1/streams/{stream}/shards/{shard}/records?after=SEQ&limit=N."""
    limit = request.query_params.get("limit", "100")
    if not (limit.isascii() and limit.isdigit()) or len(limit) > 9:
        raise BadRequest("`limit` must be an integer")
    records = await call_backend(
        node_of(request).streams.read, request.path_params["stream"], request.path_params["shard"],
        request.query_params.get("after"), int(limit),
    )  # fmt: skip
    out = [
        {"sequence_number": r.sequence_number, "partition_key": r.partition_key, "arrival_ts": r.arrival_ts,
         **body_wire(r.data, request, "data")}
        for r in records
    ]  # fmt: skip
    return reply(request, {"records": out})


def routes() -> list[Route]:
    """Return the routes of streams and their records."""
    s = "/v1/streams/{stream}"
    return [
        Route("/v1/streams", create_stream, methods=["POST"]),
        Route("/v1/streams", list_streams, methods=["GET"]),
        Route(s, get_stream, methods=["GET"]),
        Route(s, delete_stream, methods=["DELETE"]),
        Route(s + "/records", put_records, methods=["POST"]),
        Route(s + "/shards/{shard}/records", read_records, methods=["GET"]),
    ]
