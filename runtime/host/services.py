"""The stores host capabilities read and write, opened once per process from the node's
data dir and database URL (host layer).

A worker process calls `configure` at start (the node passes its data dir and database
URL); the stores open on first use, so a worker whose functions use no capability never
opens them. Host APIs reach the stores only through `data()`.
"""

from __future__ import annotations

import threading
from pathlib import Path

from firebox.runtime.errors import HostCallFailed
from firebox.runtime.events.queue import QueueBackend
from firebox.runtime.storage.data import DataStores, open_data_stores

_lock = threading.Lock()
_where: tuple[Path, str | None, str | None] | None = None
_stores: DataStores | None = None
_queues: QueueBackend | None = None


def configure(data_dir: Path, database_url: str | None, queue_url: str | None = None) -> None:
    """Name the data dir, database URL and queue URL this process's stores open from
    (idempotent)."""
    global _where
    where = (data_dir, database_url or None, queue_url or None)
    with _lock:
        if _where == where:
            return
        _close()
        _where = where


def data() -> DataStores:
    """Return this process's data stores, opening them on first use.

    Raises HostCallFailed when `configure` was never called (no node set this process up).
    """
    global _stores
    stores = _stores
    if stores is not None:
        return stores
    with _lock:
        if _stores is None:
            if _where is None:
                raise HostCallFailed("this process has no data stores configured")
            _stores = open_data_stores(_where[1], _where[0])
        return _stores


def queues() -> QueueBackend:
    """Return this process's queue backend (the node's queues), opening it on first use.

    Raises HostCallFailed when `configure` was never called.
    """
    global _queues
    backend = _queues
    if backend is not None:
        return backend
    with _lock:
        if _queues is None:
            if _where is None:
                raise HostCallFailed("this process has no queues configured")
            from firebox.runtime.storage.backends import open_queue_backend

            _queues = open_queue_backend(_where[2], _where[0])
        return _queues


def close() -> None:
    """Close the stores (the next `data()` or `queues()` opens them again)."""
    with _lock:
        _close()


def _close() -> None:
    global _stores, _queues
    if _stores is not None:
        _stores.close()
        _stores = None
    if _queues is not None:
        _queues.close()
        _queues = None
