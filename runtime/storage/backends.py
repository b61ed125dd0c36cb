"""Pick each stateful part's backend from a URL, the uvicorn `auto` idea (storage layer).

One function per part, and nothing else imports a backend module directly:

- the registry (`open_registry`): SQLAlchemy over the URL's database; None is SQLite
  in the data dir, `postgresql://` is PostgreSQL through psycopg 3.
- shared artifacts (`open_blob_store`): the registry's `blobs` table when the registry
  is shared (not SQLite), else none; an `s3://` store would be one branch here.
- queues and streams (`open_queue_backend`, `open_stream_backend`): None or
  `sqlite:///path` is SQLite (`events.db` in the data dir when no path is given);
  `redis://`, `rediss://` or `unix://` is Redis. The Redis modules are imported only
  when named, so a one-node install does not need the `redis` package.
- shard leases (`open_shard_leases`): beside the stream backend they fence checkpoints
  of, in the same Redis or the same SQLite file.
- the key-value store, when it comes, gets its `open_kv_backend` here.
"""

from __future__ import annotations

from pathlib import Path

from firebox.runtime.events.queue import QueueBackend
from firebox.runtime.events.shard_leases import ShardLeases
from firebox.runtime.events.stream import StreamBackend
from firebox.runtime.storage.blobs import BlobStore, SqlBlobStore
from firebox.runtime.storage.registry import Registry

REGISTRY_DB = "registry.db"
EVENTS_DB = "events.db"
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


# --- the registry and shared artifacts ---------------------------------------------------


def registry_url(data_dir: Path, url: str | None = None) -> str:
    """Return the registry URL: the given one (postgresql:// means psycopg 3), or SQLite in the data dir."""
    if url and url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return url or f"sqlite:///{data_dir / REGISTRY_DB}"


def open_registry(url: str | None, data_dir: Path) -> Registry:
    """Return the registry a URL names (SQLite in the data dir for None)."""
    return Registry(registry_url(data_dir, url))


def open_blob_store(registry: Registry) -> BlobStore | None:
    """Return where this node shares artifacts with the others, or None for a one-node registry.

    A SQLite registry is one node's, so its local artifact folder is the only copy; any
    other database is shared, and so are artifacts, in its `blobs` table.
    """
    if registry.url.startswith("sqlite"):
        return None
    return SqlBlobStore(registry.engine)


# --- queues and streams ------------------------------------------------------------------


def sqlite_path(url: str | None, data_dir: Path) -> Path | None:
    """Return the SQLite file a URL names (the data dir's `events.db` for None or
    `sqlite://`), or None when the URL is not SQLite."""
    if url is None or url in ("sqlite://", "sqlite:///"):
        return data_dir / EVENTS_DB
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///"))
    return None


def _unsupported(url: str) -> ValueError:
    scheme = url.split("://", 1)[0]
    return ValueError(
        f"unsupported events backend URL scheme {scheme!r}: use sqlite:///path or redis://host"
    )


def open_queue_backend(
    url: str | None,
    data_dir: Path,
    *,
    consumer: str | None = None,
    redis_prefix: str | None = None,
) -> QueueBackend:
    """Return the queue backend a URL names; raises ValueError for an unknown scheme.

    `consumer` names this process in Redis consumer groups (default `hostname-pid`).
    """
    path = sqlite_path(url, data_dir)
    if path is not None:
        from firebox.runtime.storage.queue_sqlite import SqliteQueueBackend

        return SqliteQueueBackend(path)
    assert url is not None
    if url.startswith(_REDIS_SCHEMES):
        from firebox.runtime.storage.queue_redis import DEFAULT_PREFIX, RedisQueueBackend

        return RedisQueueBackend(url, consumer=consumer, prefix=redis_prefix or DEFAULT_PREFIX)
    raise _unsupported(url)


def open_stream_backend(
    url: str | None, data_dir: Path, *, redis_prefix: str | None = None
) -> StreamBackend:
    """Return the stream backend a URL names; raises ValueError for an unknown scheme."""
    path = sqlite_path(url, data_dir)
    if path is not None:
        from firebox.runtime.storage.stream_sqlite import SqliteStreamBackend

        return SqliteStreamBackend(path)
    assert url is not None
    if url.startswith(_REDIS_SCHEMES):
        from firebox.runtime.storage.queue_redis import DEFAULT_PREFIX
        from firebox.runtime.storage.stream_redis import RedisStreamBackend

        return RedisStreamBackend(url, prefix=redis_prefix or DEFAULT_PREFIX)
    raise _unsupported(url)


def open_shard_leases(streams: StreamBackend) -> ShardLeases:
    """Return the lease table of stream mappings for a stream backend: in the same Redis
    (and key prefix) or the same SQLite file, so a checkpoint and its lease check are one
    atomic write. Raises ValueError for a backend of another kind."""
    from firebox.runtime.storage.stream_sqlite import SqliteStreamBackend

    if isinstance(streams, SqliteStreamBackend):
        from firebox.runtime.storage.lease_sqlite import SqliteShardLeases

        return SqliteShardLeases(streams.db)
    from firebox.runtime.storage.stream_redis import RedisStreamBackend

    if isinstance(streams, RedisStreamBackend):
        from firebox.runtime.storage.lease_redis import RedisShardLeases

        return RedisShardLeases(streams.redis, streams.prefix)
    raise ValueError(f"no shard leases for a stream backend of type {type(streams).__name__}")
