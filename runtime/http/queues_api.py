"""The native API for queues, streams, event-invoke configs and event metrics (front-end layer).

Message and record bodies are bytes: msgpack carries them as bin; JSON carries them as
text in `body` / `data`, or base64 in `body_base64` / `data_base64`.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import asdict, fields
from typing import Any

from firebox.runtime.errors import BadRequest
from firebox.runtime.events.queue import QueueAttributes, SendEntry
from firebox.runtime.http.native import node_of, read_object, reply
from firebox.runtime.storage.registry import LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

MAX_MESSAGE_BYTES = 256 * 1024  # SQS's limit per message


def _bytes(data: dict[str, Any], key: str) -> bytes:
    """Return `key` (bytes or text) or `key_base64` of a body; raises BadRequest."""
    value = data.get(key)
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    encoded = data.get(f"{key}_base64")
    if isinstance(encoded, str):
        try:
            return base64.b64decode(encoded, validate=True)
        except ValueError:
            raise BadRequest(f"`{key}_base64` is not valid base64") from None
    raise BadRequest(f"`{key}` (text or bytes) or `{key}_base64` is required")


def _wire(data: bytes, request: Request, key: str) -> dict[str, Any]:
    """Return a body as the caller can read it: bytes for msgpack, text or base64 for JSON."""
    if "msgpack" in (request.headers.get("accept") or ""):
        return {key: data}
    try:
        return {key: data.decode()}
    except UnicodeDecodeError:
        return {f"{key}_base64": base64.b64encode(data).decode()}


def _number(data: dict[str, Any], key: str, default: float | None = None) -> float | None:
    value = data.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"`{key}` must be a number")
    return float(value)


async def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except ValueError as exc:  # the backends check SQS/Kinesis limits with ValueError
        raise BadRequest(str(exc)) from None


# --- queues -----------------------------------------------------------------------------


def _attributes(data: dict[str, Any]) -> QueueAttributes:
    known = {f.name for f in fields(QueueAttributes)}
    unknown = sorted(set(data) - known - {"name"})
    if unknown:
        raise BadRequest(
            f"unknown queue attribute(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})"
        )
    values = {k: data[k] for k in known if k in data}
    try:
        attributes = QueueAttributes(**values)
        attributes.validate()
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"invalid queue attributes: {exc}") from None
    return attributes


async def create_queue(request: Request) -> Response:
    """POST /v1/queues: {name, visibility_timeout_s?, max_receive_count?, dead_letter_queue?, ...}."""
    data = await read_object(request)
    name = data.get("name")
    if not isinstance(name, str):
        raise BadRequest("`name` is required")
    attributes = await _call(node_of(request).queues.create_queue, name, _attributes(data))
    return reply(request, {"name": name, "attributes": asdict(attributes)}, status=201)


async def list_queues(request: Request) -> Response:
    """GET /v1/queues?prefix= (internal queues included; they start with `firebox-`)."""
    names = await _call(node_of(request).queues.list_queues, request.query_params.get("prefix", ""))
    return reply(request, {"queues": names})


async def get_queue(request: Request) -> Response:
    """GET /v1/queues/{queue}: attributes and stats (depth, in flight, oldest age, ...)."""
    queues = node_of(request).queues
    name = request.path_params["queue"]
    attributes = await _call(queues.get_attributes, name)
    stats = await _call(queues.stats, name)
    return reply(request, {"name": name, "attributes": asdict(attributes), "stats": asdict(stats)})


async def delete_queue(request: Request) -> Response:
    """DELETE /v1/queues/{queue}."""
    await _call(node_of(request).queues.delete_queue, request.path_params["queue"])
    return Response(status_code=204)


async def purge_queue(request: Request) -> Response:
    """POST /v1/queues/{queue}/purge."""
    await _call(node_of(request).queues.purge, request.path_params["queue"])
    return Response(status_code=204)


def _entry(data: dict[str, Any]) -> SendEntry:
    body = _bytes(data, "body")
    if len(body) > MAX_MESSAGE_BYTES:
        raise BadRequest(f"a message body is limited to {MAX_MESSAGE_BYTES} bytes, got {len(body)}")
    attributes = data.get("attributes") or {}
    if not isinstance(attributes, dict) or not all(isinstance(v, str) for v in attributes.values()):
        raise BadRequest("`attributes` must map names to strings")
    dedup = data.get("dedup_id")
    return SendEntry(
        body=body, attributes=attributes, delay_s=_number(data, "delay_s"), dedup_id=dedup
    )


async def send(request: Request) -> Response:
    """POST /v1/queues/{queue}/messages: one {body, attributes?, delay_s?, dedup_id?} or {entries: [...]}."""
    data = await read_object(request, 16 * MAX_MESSAGE_BYTES)
    queues = node_of(request).queues
    name = request.path_params["queue"]
    if "entries" in data:
        if not isinstance(data["entries"], list) or not 1 <= len(data["entries"]) <= 10:
            raise BadRequest("`entries` must be a list of 1 to 10 messages")
        ids = await _call(queues.send_batch, name, [_entry(e) for e in data["entries"]])
        return reply(request, {"message_ids": ids}, status=201)
    entry = _entry(data)
    message_id = await _call(
        queues.send,
        name,
        entry.body,
        attributes=entry.attributes,
        delay_s=entry.delay_s,
        dedup_id=entry.dedup_id,
    )
    return reply(request, {"message_id": message_id}, status=201)


async def receive(request: Request) -> Response:
    """POST /v1/queues/{queue}/receive: {max_messages?, visibility_timeout_s?, wait_s?}."""
    data = await read_object(request)
    count = data.get("max_messages", 1)
    if not isinstance(count, int) or isinstance(count, bool):
        raise BadRequest("`max_messages` must be an integer")
    messages = await _call(
        node_of(request).queues.receive, request.path_params["queue"], count,
        _number(data, "visibility_timeout_s"), _number(data, "wait_s", 0.0),
    )  # fmt: skip
    out = [
        {"id": m.id, "receipt_handle": m.receipt_handle, "receive_count": m.receive_count,
         "sent_at": m.sent_at, "attributes": m.attributes, **_wire(m.body, request, "body")}
        for m in messages
    ]  # fmt: skip
    return reply(request, {"messages": out})


async def delete_messages(request: Request) -> Response:
    """POST /v1/queues/{queue}/delete: {receipt_handles: [...]} -> which were deleted (stale ones are not)."""
    data = await read_object(request)
    handles = data.get("receipt_handles")
    if not isinstance(handles, list) or not all(isinstance(h, str) for h in handles):
        raise BadRequest("`receipt_handles` must be a list of strings")
    queues = node_of(request).queues
    name = request.path_params["queue"]
    deleted = [await _call(queues.delete, name, h) for h in handles]
    return reply(request, {"deleted": deleted})


async def change_visibility(request: Request) -> Response:
    """POST /v1/queues/{queue}/visibility: {receipt_handle, timeout_s}."""
    data = await read_object(request)
    handle = data.get("receipt_handle")
    if not isinstance(handle, str):
        raise BadRequest("`receipt_handle` is required")
    changed = await _call(
        node_of(request).queues.change_visibility,
        request.path_params["queue"],
        handle,
        _number(data, "timeout_s", 0.0),
    )
    return reply(request, {"changed": changed})


# --- streams ----------------------------------------------------------------------------


async def create_stream(request: Request) -> Response:
    """POST /v1/streams: {name, shards?, retention_s?}."""
    data = await read_object(request)
    name = data.get("name")
    shards = data.get("shards", 1)
    if not isinstance(name, str) or not isinstance(shards, int):
        raise BadRequest("`name` (text) is required and `shards` must be an integer")
    kwargs: dict[str, Any] = {"shard_count": shards}
    if "retention_s" in data:
        kwargs["retention_s"] = _number(data, "retention_s")
    info = await _call(node_of(request).streams.create_stream, name, **kwargs)
    return reply(request, asdict(info), status=201)


async def list_streams(request: Request) -> Response:
    """GET /v1/streams."""
    return reply(request, {"streams": await _call(node_of(request).streams.list_streams)})


async def get_stream(request: Request) -> Response:
    """GET /v1/streams/{stream}: shards and retention."""
    info = await _call(node_of(request).streams.describe_stream, request.path_params["stream"])
    return reply(request, asdict(info))


async def delete_stream(request: Request) -> Response:
    """DELETE /v1/streams/{stream}."""
    await _call(node_of(request).streams.delete_stream, request.path_params["stream"])
    return Response(status_code=204)


async def put_records(request: Request) -> Response:
    """POST /v1/streams/{stream}/records: {partition_key, data} or {records: [{partition_key, data}]}."""
    data = await read_object(request, 16 * MAX_MESSAGE_BYTES)
    streams = node_of(request).streams
    name = request.path_params["stream"]
    items = data.get("records", [data])
    if not isinstance(items, list) or not items or len(items) > 500:
        raise BadRequest("`records` must be a list of 1 to 500 records")
    pairs = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("partition_key"), str):
            raise BadRequest("each record needs a `partition_key` (text) and `data`")
        pairs.append((item["partition_key"], _bytes(item, "data")))
    results = await _call(streams.put_batch, name, pairs)
    out = [{"shard_id": r.shard_id, "sequence_number": r.sequence_number} for r in results]
    return reply(request, out[0] if "records" not in data else {"records": out}, status=201)


async def read_records(request: Request) -> Response:
    """GET /v1/streams/{stream}/shards/{shard}/records?after=SEQ&limit=N."""
    limit = request.query_params.get("limit", "100")
    if not limit.isdigit():
        raise BadRequest("`limit` must be an integer")
    records = await _call(
        node_of(request).streams.read, request.path_params["stream"], request.path_params["shard"],
        request.query_params.get("after"), int(limit),
    )  # fmt: skip
    out = [
        {"sequence_number": r.sequence_number, "partition_key": r.partition_key, "arrival_ts": r.arrival_ts,
         **_wire(r.data, request, "data")}
        for r in records
    ]  # fmt: skip
    return reply(request, {"records": out})


# --- event-invoke config, metrics ------------------------------------------------------------


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
    for name in await _call(node.queues.list_queues):
        queues[name] = asdict(await _call(node.queues.stats, name))
    return reply(request, {"async": asdict(node.async_invoker.stats), "queues": queues})


def routes() -> list[Route]:
    """Return the routes of queues, streams, event-invoke configs and event metrics."""
    q = "/v1/queues/{queue}"
    s = "/v1/streams/{stream}"
    return [
        Route("/v1/queues", create_queue, methods=["POST"]),
        Route("/v1/queues", list_queues, methods=["GET"]),
        Route(q, get_queue, methods=["GET"]),
        Route(q, delete_queue, methods=["DELETE"]),
        Route(q + "/purge", purge_queue, methods=["POST"]),
        Route(q + "/messages", send, methods=["POST"]),
        Route(q + "/receive", receive, methods=["POST"]),
        Route(q + "/delete", delete_messages, methods=["POST"]),
        Route(q + "/visibility", change_visibility, methods=["POST"]),
        Route("/v1/streams", create_stream, methods=["POST"]),
        Route("/v1/streams", list_streams, methods=["GET"]),
        Route(s, get_stream, methods=["GET"]),
        Route(s, delete_stream, methods=["DELETE"]),
        Route(s + "/records", put_records, methods=["POST"]),
        Route(s + "/shards/{shard}/records", read_records, methods=["GET"]),
        Route("/v1/functions/{name}/event-invoke-config", put_event_config, methods=["PUT"]),
        Route("/v1/functions/{name}/event-invoke-config", get_event_config, methods=["GET"]),
        Route("/v1/events/metrics", event_metrics, methods=["GET"]),
    ]
