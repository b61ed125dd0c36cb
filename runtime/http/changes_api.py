"""The native API of change events: a bucket's notifications and a table's stream
(front-end layer).

- `GET|PUT /v1/buckets/{bucket}/notifications`: `{"functions": [{"id", "function",
  "events", "prefix", "suffix"}], "queues": [{"id", "queue", ...}]}`, S3's event
  notifications with Lambda and SQS targets (PUT replaces them; an empty body removes
  them). Every function and queue named must exist.
- `GET|PUT|DELETE /v1/tables/{table}/stream`: `{"view_type": "NEW_AND_OLD_IMAGES"}`,
  DynamoDB Streams' setting; a mapping from `table:NAME` reads it.

See docs/change-events.md; the S3 API serves the same notifications
(Put/GetBucketNotificationConfiguration, runtime/http/s3_notifications.py).
"""

from __future__ import annotations

from typing import Any

from firebox.runtime.errors import BadRequest
from firebox.runtime.http.buckets_api import bucket_name
from firebox.runtime.http.data_stores import data_of, run
from firebox.runtime.http.native import node_of, read_object, reply
from firebox.runtime.http.tables_api import table_name
from firebox.runtime.node import Node
from firebox.runtime.storage.changes import (
    DEFAULT_VIEW_TYPE,
    BucketTarget,
    bucket_config,
    parse_bucket_targets,
    table_stream_arn,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def check_targets(node: Node, targets: list[BucketTarget]) -> None:
    """Raise FunctionNotFound or QueueNotFound for a target that does not exist."""
    for target in targets:
        if target.type == "function":
            name, _, qualifier = target.target.partition(":")
            node.resolve(name, qualifier or None)
        else:
            node.queues.get_attributes(target.target)


async def get_notifications(request: Request) -> Response:
    """GET /v1/buckets/{bucket}/notifications."""
    targets = await run(data_of(request).changes.bucket, bucket_name(request))
    return reply(request, bucket_config(targets))


async def put_notifications(request: Request) -> Response:
    """PUT /v1/buckets/{bucket}/notifications: replace them; answers what was stored."""
    bucket = bucket_name(request)
    targets = parse_bucket_targets(await read_object(request))
    await run(check_targets, node_of(request), targets)
    await run(data_of(request).changes.put_bucket, bucket, targets)
    return reply(request, bucket_config(targets))


def _stream(table: str, view_type: str | None) -> dict[str, Any]:
    if view_type is None:
        return {"table": table, "enabled": False}
    return {"table": table, "enabled": True, "view_type": view_type,
            "stream_arn": table_stream_arn(table), "source": f"table:{table}"}  # fmt: skip


async def get_stream(request: Request) -> Response:
    """GET /v1/tables/{table}/stream: whether it is on, its view type and ARN."""
    table = table_name(request)
    return reply(request, _stream(table, await run(data_of(request).changes.table_stream, table)))


async def put_stream(request: Request) -> Response:
    """PUT /v1/tables/{table}/stream: {"view_type"?}: turn it on (or change the view)."""
    table = table_name(request)
    data = await read_object(request)
    view_type = data.get("view_type", DEFAULT_VIEW_TYPE)
    if not isinstance(view_type, str) or set(data) - {"view_type"}:
        raise BadRequest('the body is {"view_type": "NEW_AND_OLD_IMAGES"} (or another view)')
    await run(data_of(request).changes.put_table_stream, table, view_type)
    return reply(request, _stream(table, view_type))


async def delete_stream(request: Request) -> Response:
    """DELETE /v1/tables/{table}/stream: turn it off (records already in it stay readable)."""
    await run(data_of(request).changes.put_table_stream, table_name(request), None)
    return Response(status_code=204)


def routes() -> list[Route]:
    """Return the routes of bucket notifications and table streams."""
    notifications, stream = "/v1/buckets/{bucket}/notifications", "/v1/tables/{table}/stream"
    return [
        Route(notifications, get_notifications, methods=["GET"]),
        Route(notifications, put_notifications, methods=["PUT"]),
        Route(stream, get_stream, methods=["GET"]),
        Route(stream, put_stream, methods=["PUT"]),
        Route(stream, delete_stream, methods=["DELETE"]),
    ]
