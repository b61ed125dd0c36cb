"""Blob bucket operations for granted functions: put, get (whole or a byte range), head,
delete and paged listing by prefix (host layer).

Served through the `capabilities` interface (capabilities.py); bytes travel base64 in
its JSON. The guest library is `firebox.blobs` (compiler/guest/firebox_guest_blobs.py).
Storage: runtime/storage/buckets.py.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from firebox.runtime.errors import BadRequest, ItemNotFound
from firebox.runtime.host import services
from firebox.runtime.host.api import HostState
from firebox.runtime.host.capabilities import Operation, grants_of


def _bucket(state: HostState, request: dict[str, Any], write: bool) -> str:
    name = request.get("bucket")
    if not isinstance(name, str):
        raise BadRequest("`bucket` must be a string")
    grants_of(state).bucket(name, write)
    return name


def _offset(request: dict[str, Any], name: str) -> int | None:
    value = request.get(name)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise BadRequest(f"`{name}` must be a non-negative integer")
    return value


def _put(state: HostState, request: dict[str, Any]) -> dict[str, Any]:
    bucket = _bucket(state, request, True)
    try:
        data = base64.b64decode(request.get("data") or "", validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise BadRequest("`data` must be base64") from None
    content_type = request.get("content_type")
    if content_type is not None and not isinstance(content_type, str):
        raise BadRequest("`content_type` must be a string")
    info = services.data().buckets.put(bucket, request.get("key"), data, content_type)  # type: ignore[arg-type]
    return {"object": info.to_dict()}


def _get(state: HostState, request: dict[str, Any]) -> dict[str, Any]:
    bucket = _bucket(state, request, False)
    try:
        info, data = services.data().buckets.get(
            bucket,
            request.get("key"),  # type: ignore[arg-type]
            _offset(request, "start"),
            _offset(request, "end"),
        )
    except ItemNotFound:
        return {"object": None}
    return {"object": info.to_dict(), "data": base64.b64encode(data).decode()}


def _head(state: HostState, request: dict[str, Any]) -> dict[str, Any]:
    info = services.data().buckets.head(_bucket(state, request, False), request.get("key"))  # type: ignore[arg-type]
    return {"object": info.to_dict() if info is not None else None}


def _delete(state: HostState, request: dict[str, Any]) -> dict[str, Any]:
    deleted = services.data().buckets.delete(_bucket(state, request, True), request.get("key"))  # type: ignore[arg-type]
    return {"deleted": deleted}


def _list(state: HostState, request: dict[str, Any]) -> dict[str, Any]:
    found, cursor = services.data().buckets.list_objects(
        _bucket(state, request, False),
        request.get("prefix") or "",
        limit=request.get("limit"),
        cursor=request.get("cursor"),
    )
    return {"objects": [info.to_dict() for info in found], "cursor": cursor}


OPERATIONS: dict[str, Operation] = {
    "blob.put": _put,
    "blob.get": _get,
    "blob.head": _head,
    "blob.delete": _delete,
    "blob.list": _list,
}
