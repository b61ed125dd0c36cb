"""Pick the queue and stream backends from a URL, the uvicorn `auto` idea (storage layer).

None or `sqlite:///path` -> SQLite (`events.db` in the data dir when no path is given);
`redis://`, `rediss://` or `unix://` -> Redis. The Redis modules are imported only when
named, so a one-node install does not need the `redis` package.
"""

from __future__ import annotations

from pathlib import Path

from firebox.runtime.events.queue import QueueBackend
from firebox.runtime.events.stream import StreamBackend

EVENTS_DB = "events.db"
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


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
