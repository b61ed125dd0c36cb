"""Key-value table operations for granted functions: get, put (conditional, TTL), delete,
query by prefix and paged scan (host layer).

Served through the `capabilities` interface (capabilities.py); the guest library is
`firebox.kv` (compiler/guest/firebox_guest_kv.py). Storage: runtime/storage/kv.py.
"""

from __future__ import annotations

from typing import Any

from firebox.runtime.errors import BadRequest
from firebox.runtime.host import services
from firebox.runtime.host.api import HostState
from firebox.runtime.host.capabilities import Operation, grants_of


def _table(state: HostState, request: dict[str, Any], write: bool) -> str:
    name = request.get("table")
    if not isinstance(name, str):
        raise BadRequest("`table` must be a string")
    grants_of(state).table(name, write)
    return name


def _get(state: HostState, request: dict[str, Any]) -> dict[str, Any]:
    item = services.data().kv.get(_table(state, request, False), request.get("key"))  # type: ignore[arg-type]
    return {"item": item.to_dict() if item is not None else None}


def _optional_int(request: dict[str, Any], name: str) -> int | None:
    value = request.get(name)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise BadRequest(f"`{name}` must be an integer")
    return value


def _put(state: HostState, request: dict[str, Any]) -> dict[str, Any]:
    item = services.data().kv.put(
        _table(state, request, True),
        request.get("key"),  # type: ignore[arg-type]
        request.get("value"),
        ttl_s=request.get("ttl"),
        if_absent=bool(request.get("if_absent")),
        if_version=_optional_int(request, "if_version"),
    )
    return {"item": item.to_dict()}


def _delete(state: HostState, request: dict[str, Any]) -> dict[str, Any]:
    deleted = services.data().kv.delete(
        _table(state, request, True),
        request.get("key"),  # type: ignore[arg-type]
        if_version=_optional_int(request, "if_version"),
    )
    return {"deleted": deleted}


def _query(state: HostState, request: dict[str, Any]) -> dict[str, Any]:
    page = services.data().kv.query(
        _table(state, request, False),
        request.get("prefix") or "",
        limit=request.get("limit"),
        cursor=request.get("cursor"),
    )
    return page.to_dict()


OPERATIONS: dict[str, Operation] = {
    "kv.get": _get,
    "kv.put": _put,
    "kv.delete": _delete,
    "kv.query": _query,
}
