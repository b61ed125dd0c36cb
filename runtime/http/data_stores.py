"""The node's data stores (tables, buckets) for the native API, opened on first use from
the node's registry URL and data dir (front-end layer)."""

from __future__ import annotations

import asyncio
import threading
import weakref
from typing import Any

from firebox.runtime.errors import BadRequest
from firebox.runtime.http.native import node_of
from firebox.runtime.storage.data import DataStores, open_data_stores
from starlette.requests import Request

_lock = threading.Lock()
_stores: weakref.WeakKeyDictionary[Any, DataStores] = weakref.WeakKeyDictionary()


def data_of(request: Request) -> DataStores:
    """Return the data stores of the node serving `request` (the same database its
    workers use: SQLite in its data dir, or its PostgreSQL registry database)."""
    node = node_of(request)
    with _lock:
        stores = _stores.get(node)
        if stores is None:
            stores = open_data_stores(node.registry.url, node.config.data_dir)
            _stores[node] = stores
        return stores


async def run(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a blocking store call on a thread and return its result."""
    return await asyncio.to_thread(fn, *args, **kwargs)


def query_int(request: Request, name: str) -> int | None:
    """Return query parameter `name` as an integer (None when absent); raises BadRequest."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.lstrip("-").isdigit()) or len(raw) > 18:
        raise BadRequest(f"`{name}` must be an integer, got {raw[:40]!r}")
    return int(raw)
