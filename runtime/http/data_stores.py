"""The node's data stores (tables, buckets) for the native API, opened on first use from
the node's registry URL and data dir (front-end layer)."""

from __future__ import annotations

import asyncio
from typing import Any

from firebox.runtime.errors import BadRequest
from firebox.runtime.http.native import node_of
from firebox.runtime.storage.data import DataStores
from starlette.requests import Request


def data_of(request: Request) -> DataStores:
    """Return the data stores of the node serving `request` (the same database its
    workers use: SQLite in its data dir, or its PostgreSQL registry database)."""
    return node_of(request).data()


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
