"""The stores behind the data capabilities (tables, buckets), opened from the node's
database URL: SQLite and files in the data dir for one node, PostgreSQL for many
(storage layer).

The node opens them for the native API and each worker opens its own for the host
APIs (workers are separate processes; SQLite in WAL mode and PostgreSQL both take
several writers). With PostgreSQL the tables sit in the registry's database and object
bytes in its `fb_bucket_contents` table, so every node sees the same data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from firebox.runtime.storage.backends import registry_url
from firebox.runtime.storage.blobs import BlobStore
from firebox.runtime.storage.buckets import BucketStore, FileContents, SqlContents
from firebox.runtime.storage.changes import ChangeOutbox
from firebox.runtime.storage.kv import KvStore
from firebox.runtime.storage.secrets import SecretStore, load_key

DATA_DB = "data.db"
BUCKETS_DIR = "buckets"
#: Longest one PostgreSQL statement of a host call or API request may run.
STATEMENT_TIMEOUT_MS = 10_000


@dataclass(frozen=True)
class DataStores:
    """The tables, buckets and secrets functions are granted, the change capture of
    buckets and tables, and the engine they share."""

    engine: sa.Engine
    kv: KvStore
    buckets: BucketStore
    secrets: SecretStore
    changes: ChangeOutbox

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Bounded: a host call waits at most this long for another writer.
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _statement_timeout(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
    cursor.close()
    dbapi_conn.commit()


def open_data_stores(database_url: str | None, data_dir: Path) -> DataStores:
    """Open the data stores: PostgreSQL when `database_url` names it, else SQLite
    (`data.db`) and object files (`buckets/`) in `data_dir`. Secrets use the node's key
    (`runtime/storage/secrets.py`)."""
    url = registry_url(data_dir, database_url)
    contents: BlobStore
    if url.startswith("sqlite"):
        data_dir.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            f"sqlite:///{data_dir / DATA_DB}",
            connect_args={"timeout": 5, "check_same_thread": False},
        )
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        contents = FileContents(data_dir / BUCKETS_DIR)
    else:
        # A bounded wait for a connection and for each statement: a host call never hangs.
        engine = sa.create_engine(
            url,
            pool_size=8,
            max_overflow=8,
            pool_timeout=5,
            pool_pre_ping=True,
            connect_args={"connect_timeout": 5},
        )
        # Set per connection, not in connect_args: `options` there would replace the
        # URL's own (a search_path, say).
        sa.event.listen(engine, "connect", _statement_timeout)
        contents = SqlContents(engine)
    return DataStores(
        engine,
        KvStore(engine),
        BucketStore(engine, contents),
        SecretStore(engine, load_key(data_dir)),
        ChangeOutbox(engine),
    )
