"""The native API for blob buckets under /v1/buckets: list buckets and objects, put, get
(with a `Range`), head and delete objects, to seed and inspect what functions store
(front-end layer).

Object bodies are the raw request and response bodies (not JSON), with their
`Content-Type`; see docs/capabilities.md. The same store serves the functions'
`firebox.blobs` (runtime/host/blobs.py).
"""

from __future__ import annotations

import re

from firebox.runtime import config
from firebox.runtime.errors import BadRequest, ItemNotFound
from firebox.runtime.grants import NAME_RE
from firebox.runtime.http.data_stores import data_of, query_int, run
from firebox.runtime.http.native import read_body, reply
from firebox.runtime.storage.buckets import ObjectInfo
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

RANGE_RE = re.compile(r"^bytes=(\d{0,18})-(\d{0,18})$")


def bucket_name(request: Request) -> str:
    name: str = request.path_params["bucket"]
    if not NAME_RE.match(name):
        raise BadRequest(f"bad bucket name {name[:80]!r}: 1-63 letters, digits, '_', '.', '-'")
    return name


def _headers(info: ObjectInfo) -> dict[str, str]:
    # The stored type exactly (Starlette's media_type would append a charset to text/*).
    return {
        "Content-Type": info.content_type,
        "ETag": f'"{info.etag}"',
        "X-Firebox-Size": str(info.size),
        "Accept-Ranges": "bytes",
    }


async def list_buckets(request: Request) -> Response:
    """GET /v1/buckets: every bucket holding objects, with object count and bytes."""
    return reply(request, {"buckets": await run(data_of(request).buckets.buckets)})


async def list_objects(request: Request) -> Response:
    """GET /v1/buckets/{bucket}/objects?prefix=&limit=&cursor=: a page in key order."""
    params = request.query_params
    found, cursor = await run(
        data_of(request).buckets.list_objects,
        bucket_name(request),
        params.get("prefix", ""),
        limit=query_int(request, "limit"),
        cursor=params.get("cursor") or None,
    )
    return reply(request, {"objects": [info.to_dict() for info in found], "cursor": cursor})


async def put_object(request: Request) -> Response:
    """PUT /v1/buckets/{bucket}/objects/{key}: the body is the object; 201 with its metadata."""
    data = await read_body(request, config.FIREBOX_BLOB_MAX_OBJECT_BYTES.get())
    info = await run(
        data_of(request).buckets.put,
        bucket_name(request),
        request.path_params["key"],
        data,
        request.headers.get("content-type"),
    )
    return reply(request, info.to_dict(), status=201)


async def get_object(request: Request) -> Response:
    """GET /v1/buckets/{bucket}/objects/{key}: the bytes (206 for a `Range: bytes=a-b`)."""
    bucket, key = bucket_name(request), request.path_params["key"]
    start = end = None
    wanted = request.headers.get("range")
    if wanted:
        match = RANGE_RE.match(wanted.strip())
        if match is None or not (match.group(1) or match.group(2)):
            raise BadRequest("only one `Range: bytes=start-end` is supported")
        if match.group(1):
            start = int(match.group(1))
            end = int(match.group(2)) + 1 if match.group(2) else None
        else:  # the last N bytes
            head = await run(data_of(request).buckets.head, bucket, key)
            if head is None:
                raise ItemNotFound(f"no object {key!r} in bucket {bucket!r}")
            start = max(0, head.size - int(match.group(2)))
    info, data = await run(data_of(request).buckets.get, bucket, key, start, end)
    headers = _headers(info)
    status = 200
    if wanted:
        status = 206
        first = start or 0
        headers["Content-Range"] = f"bytes {first}-{first + len(data) - 1}/{info.size}"
    return Response(data, status_code=status, headers=headers)


async def head_object(request: Request) -> Response:
    """HEAD /v1/buckets/{bucket}/objects/{key}: the object's headers, or 404."""
    bucket, key = bucket_name(request), request.path_params["key"]
    info = await run(data_of(request).buckets.head, bucket, key)
    if info is None:
        return Response(status_code=404)
    headers = {**_headers(info), "Content-Length": str(info.size)}
    return Response(status_code=200, headers=headers)


async def delete_object(request: Request) -> Response:
    """DELETE /v1/buckets/{bucket}/objects/{key}: 204, or 404 if absent."""
    bucket, key = bucket_name(request), request.path_params["key"]
    if not await run(data_of(request).buckets.delete, bucket, key):
        raise ItemNotFound(f"no object {key!r} in bucket {bucket!r}")
    return Response(status_code=204)


def routes() -> list[Route]:
    """Return the routes of buckets and their objects."""
    obj = "/v1/buckets/{bucket}/objects/{key:path}"
    return [
        Route("/v1/buckets", list_buckets, methods=["GET"]),
        Route("/v1/buckets/{bucket}/objects", list_objects, methods=["GET"]),
        Route(obj, get_object, methods=["GET"]),
        Route(obj, head_object, methods=["HEAD"]),
        Route(obj, put_object, methods=["PUT"]),
        Route(obj, delete_object, methods=["DELETE"]),
    ]
