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
from firebox.runtime.storage.data import DataStores, open_data_stores

_lock = threading.Lock()
_where: tuple[Path, str | None] | None = None
_stores: DataStores | None = None


def configure(data_dir: Path, database_url: str | None) -> None:
    """Name the data dir and database URL this process's stores open from (idempotent)."""
    global _where, _stores
    with _lock:
        if _where == (data_dir, database_url or None):
            return
        if _stores is not None:
            _stores.close()
            _stores = None
        _where = (data_dir, database_url or None)


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


def close() -> None:
    """Close the stores (the next `data()` opens them again)."""
    global _stores
    with _lock:
        if _stores is not None:
            _stores.close()
            _stores = None
