"""The native API for queues and their messages under /v1/queues (front-end layer).

Create, inspect, purge and delete queues; send, receive, delete messages and change
their visibility.

Message bodies are bytes (see `event_bodies`).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import asdict, fields
from typing import Any

from firebox.runtime.errors import BadRequest
from firebox.runtime.events.queue import QueueAttributes, SendEntry, check_public, is_internal
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

Endpoint = Callable[[Request], Awaitable[Response]]


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
    check_public(name)
    attrs = _attributes(data)
    if attrs.dead_letter_queue is not None:
        check_public(attrs.dead_letter_queue, "dead-letter queue")
    attributes = await call_backend(node_of(request).queues.create_queue, name, attrs)
    return reply(request, {"name": name, "attributes": asdict(attributes)}, status=201)


async def list_queues(request: Request) -> Response:
    """GET /v1/queues?prefix= (the node's internal `firebox-` queues left out)."""
    names = await call_backend(
        node_of(request).queues.list_queues, request.query_params.get("prefix", "")
    )
    return reply(request, {"queues": [n for n in names if not is_internal(n)]})


async def get_queue(request: Request) -> Response:
    """GET /v1/queues/{queue}: attributes and stats (depth, in flight, oldest age, ...)."""
    queues = node_of(request).queues
    name = request.path_params["queue"]
    attributes = await call_backend(queues.get_attributes, name)
    stats = await call_backend(queues.stats, name)
    return reply(request, {"name": name, "attributes": asdict(attributes), "stats": asdict(stats)})


async def delete_queue(request: Request) -> Response:
    """DELETE /v1/queues/{queue}."""
    await call_backend(node_of(request).queues.delete_queue, request.path_params["queue"])
    return Response(status_code=204)


async def purge_queue(request: Request) -> Response:
    """POST /v1/queues/{queue}/purge."""
    await call_backend(node_of(request).queues.purge, request.path_params["queue"])
    return Response(status_code=204)


def _entry(data: Any) -> SendEntry:
    if not isinstance(data, dict):
        raise BadRequest("each entry must be an object {body, attributes?, delay_s?, dedup_id?}")
    body = body_bytes(data, "body")
    if len(body) > MAX_MESSAGE_BYTES:
        raise BadRequest(f"a message body is limited to {MAX_MESSAGE_BYTES} bytes, got {len(body)}")
    attributes = data.get("attributes") or {}
    if not isinstance(attributes, dict) or not all(isinstance(v, str) for v in attributes.values()):
        raise BadRequest("`attributes` must map names to strings")
    dedup = data.get("dedup_id")
    if dedup is not None and (not isinstance(dedup, str) or not 1 <= len(dedup) <= 128):
        raise BadRequest("`dedup_id` must be a string of 1 to 128 characters")
    return SendEntry(
        body=body, attributes=attributes, delay_s=number_field(data, "delay_s"), dedup_id=dedup
    )


async def send(request: Request) -> Response:
    """POST /v1/queues/{queue}/messages: one {body, attributes?, delay_s?, dedup_id?} or {entries: [...]}."""
    data = await read_object(request, 16 * MAX_MESSAGE_BYTES)
    queues = node_of(request).queues
    name = request.path_params["queue"]
    if "entries" in data:
        if not isinstance(data["entries"], list) or not 1 <= len(data["entries"]) <= 10:
            raise BadRequest("`entries` must be a list of 1 to 10 messages")
        ids = await call_backend(queues.send_batch, name, [_entry(e) for e in data["entries"]])
        return reply(request, {"message_ids": ids}, status=201)
    entry = _entry(data)
    message_id = await call_backend(
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
    wait_s = number_field(data, "wait_s")  # null, like absent, is no wait (was a 500)
    messages = await call_backend(
        node_of(request).queues.receive, request.path_params["queue"], count,
        number_field(data, "visibility_timeout_s"), 0.0 if wait_s is None else wait_s,
    )  # fmt: skip
    out = [
        {"id": m.id, "receipt_handle": m.receipt_handle, "receive_count": m.receive_count,
         "sent_at": m.sent_at, "attributes": m.attributes, **body_wire(m.body, request, "body")}
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
    deleted = [await call_backend(queues.delete, name, h) for h in handles]
    return reply(request, {"deleted": deleted})


async def change_visibility(request: Request) -> Response:
    """POST /v1/queues/{queue}/visibility: {receipt_handle, timeout_s}."""
    data = await read_object(request)
    handle = data.get("receipt_handle")
    if not isinstance(handle, str):
        raise BadRequest("`receipt_handle` is required")
    changed = await call_backend(
        node_of(request).queues.change_visibility,
        request.path_params["queue"],
        handle,
        number_field(data, "timeout_s", 0.0),
    )
    return reply(request, {"changed": changed})


def _public(endpoint: Endpoint) -> Endpoint:
    """Wrap a `{queue}` endpoint: an internal queue is 403 before anything reads it."""

    @functools.wraps(endpoint)
    async def guarded(request: Request) -> Response:
        check_public(request.path_params["queue"])
        return await endpoint(request)

    return guarded


def routes() -> list[Route]:
    """Return the routes of queues and their messages (never the node's internal queues)."""
    q = "/v1/queues/{queue}"
    table: list[tuple[str, Endpoint, str]] = [
        (q, get_queue, "GET"),
        (q, delete_queue, "DELETE"),
        (q + "/purge", purge_queue, "POST"),
        (q + "/messages", send, "POST"),
        (q + "/receive", receive, "POST"),
        (q + "/delete", delete_messages, "POST"),
        (q + "/visibility", change_visibility, "POST"),
    ]
    return [
        Route("/v1/queues", create_queue, methods=["POST"]),
        Route("/v1/queues", list_queues, methods=["GET"]),
        *(Route(path, _public(endpoint), methods=[method]) for path, endpoint, method in table),
    ]
