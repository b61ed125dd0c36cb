"""Every store a node keeps its state in, opened once from the node's URLs (storage layer).

The node's wiring takes each store from here; nothing else builds a store from the
registry's engine. The backends come from `backends.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

from firebox.runtime.config import NodeConfig
from firebox.runtime.events.queue import QueueBackend
from firebox.runtime.events.stream import StreamBackend
from firebox.runtime.storage.backends import (
    open_blob_store,
    open_queue_backend,
    open_registry,
    open_stream_backend,
)
from firebox.runtime.storage.blobs import BlobStore
from firebox.runtime.storage.event_configs import EventConfigStore
from firebox.runtime.storage.keys import KeyStore
from firebox.runtime.storage.lambda_meta import LambdaMetaStore
from firebox.runtime.storage.mappings import MappingStore
from firebox.runtime.storage.registry import Registry
from firebox.runtime.storage.schedules import ScheduleStore
from firebox.runtime.storage.sealed import Sealer
from firebox.runtime.storage.telemetry import TelemetryStore


@dataclass(frozen=True)
class Stores:
    """A node's stores: the registry database's tables, shared artifacts, queues, streams.

    `blobs` is None when the registry is one node's (SQLite): artifacts then live only
    in the data dir.
    """

    registry: Registry
    blobs: BlobStore | None
    keys: KeyStore
    telemetry: TelemetryStore
    schedules: ScheduleStore
    mappings: MappingStore
    event_configs: EventConfigStore
    lambda_meta: LambdaMetaStore
    queues: QueueBackend
    streams: StreamBackend

    def close(self) -> None:
        """Close the queue and stream backends and release the database connections."""
        self.queues.close()
        self.streams.close()
        self.registry.close()


def open_stores(
    config: NodeConfig, database_url: str | None = None, *, sealing_secret: str
) -> Stores:
    """Open every store of a node from its configuration: the registry (and the tables
    beside it) at `database_url` (default `config.database_url`), queues and streams at
    `config.queue_url`; None means SQLite in the data dir for either. Issued keys'
    secrets are sealed with `sealing_secret` (see `sealed.py`).

    Raises ValueError for a queue URL of an unknown scheme.
    """
    data_dir, queue_url = config.data_dir, config.queue_url
    registry = open_registry(database_url or config.database_url, data_dir)
    try:
        queues = open_queue_backend(queue_url, data_dir)
        streams = open_stream_backend(queue_url, data_dir)
    except BaseException:
        registry.close()
        raise
    engine = registry.engine
    return Stores(
        registry=registry,
        blobs=open_blob_store(registry),
        keys=KeyStore(engine, Sealer(sealing_secret)),
        telemetry=TelemetryStore(engine),
        schedules=ScheduleStore(engine),
        mappings=MappingStore(engine),
        event_configs=EventConfigStore(engine),
        lambda_meta=LambdaMetaStore(engine),
        queues=queues,
        streams=streams,
    )
