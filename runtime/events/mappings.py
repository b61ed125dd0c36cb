"""The event source mapping manager: mappings' lifecycle and their pollers (events layer).

It creates, changes and deletes mappings (Lambda's CreateEventSourceMapping model) and
runs a poller for each enabled one.

The settings are parsed in `mapping_config`, the pollers run in `queue_poller` (up to
`maximum_concurrency` batches in flight) and `stream_poller` (one consumer per shard,
in order), the Lambda events they build are in `batch_shapes`, and their backoff and
retry counting in `retry`. The store (`storage.mappings`) is re-read every `reload_s`,
so mappings changed on another node take effect here too. Stream shards are shared
between nodes by leases (`shard_leases`), named by this node's `node_id`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, TypeVar

from firebox.runtime import config
from firebox.runtime.errors import BadRequest, MappingNotFound
from firebox.runtime.events.mapping_config import MappingConfig, describe, parse_source
from firebox.runtime.events.poller import MappingStats, Poller
from firebox.runtime.events.queue import QueueBackend
from firebox.runtime.events.queue_poller import QueuePoller
from firebox.runtime.events.shard_leases import ShardLeases
from firebox.runtime.events.stream import StreamBackend
from firebox.runtime.events.stream_poller import StreamPoller
from firebox.runtime.storage.backends import open_shard_leases
from firebox.runtime.storage.changes import DEFAULT_VIEW_TYPE, table_stream
from firebox.runtime.storage.mappings import DISABLED, ENABLED, MappingRecord, MappingStore

if TYPE_CHECKING:
    from firebox.runtime.node import Node

log = logging.getLogger("firebox.mappings")
T = TypeVar("T")


# How long a queue receive waits for a first message, and how often an idle shard is read
# (Lambda reads each shard once a second; half that keeps latency low at SQLite's cost).
POLL_S = config.FIREBOX_MAPPING_POLL_S.get()
# Retry backoff after a function error or throttle: doubles from the base up to the cap.
RETRY_BASE_S = config.FIREBOX_MAPPING_RETRY_BASE_S.get()
RETRY_MAX_S = config.FIREBOX_MAPPING_RETRY_MAX_S.get()
# How often the store is re-read, so mappings changed on another node take effect here.
RELOAD_S = config.FIREBOX_MAPPING_RELOAD_S.get()
# How long stopping a poller lets in-flight batches finish before cancelling them.
DRAIN_S = config.FIREBOX_MAPPING_DRAIN_S.get()
# Queue and stream calls block (SQLite locks, Redis round trips, long polls).
THREADS = config.FIREBOX_MAPPING_THREADS.get()
# A shard lease not renewed for this long is taken over by another node (KCL's default
# failover time); it is renewed every third of it.
LEASE_S = config.FIREBOX_SHARD_LEASE_S.get()


class MappingManager:
    """Creates, changes and deletes event source mappings and runs a poller for each enabled one."""

    def __init__(
        self,
        node: Node,
        queues: QueueBackend,
        streams: StreamBackend,
        store: MappingStore,
        *,
        poll_s: float = POLL_S,
        retry_base_s: float = RETRY_BASE_S,
        retry_max_s: float = RETRY_MAX_S,
        reload_s: float = RELOAD_S,
        drain_s: float = DRAIN_S,
        lease_s: float = LEASE_S,
        leases: ShardLeases | None = None,
    ) -> None:
        self.node = node
        self.queues = queues
        self.streams = streams
        self.store = store
        self.poll_s = poll_s
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.reload_s = reload_s
        self.drain_s = drain_s
        self.lease_s = lease_s
        self.leases = leases if leases is not None else open_shard_leases(streams)
        # Names this node in shard leases: unique per process start, readable in logs.
        self.node_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._executor = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="mappings")
        self._pollers: dict[str, Poller] = {}
        self._stats: dict[str, MappingStats] = {}
        self._lock = asyncio.Lock()
        self._watcher: asyncio.Task[None] | None = None

    async def q(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking backend or store call on the manager's threads."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    def stats_of(self, mapping_id: str) -> MappingStats:
        """Return (creating if needed) the counters of a mapping on this node."""
        return self._stats.setdefault(mapping_id, MappingStats())

    async def start(self) -> None:
        """Start a poller for every enabled mapping, and re-read the store every `reload_s`."""
        await self.reload()
        self._watcher = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        """Stop every poller: in-flight batches get `drain_s` to finish; what is cut short is
        not lost (queue messages return after their visibility timeout, stream checkpoints
        only ever cover processed records). The backends stay open (the node owns them)."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        async with self._lock:
            pollers, self._pollers = list(self._pollers.values()), {}
            await asyncio.gather(*(p.stop(self.drain_s) for p in pollers))
        # Wait for the calls still running on the threads (a receive waits at most
        # `poll_s`): the node closes the backends next, and a SQLite connection closed
        # under a thread still inside it crashes the process.
        await asyncio.to_thread(self._executor.shutdown, True, cancel_futures=True)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.reload_s)
            try:
                await self.reload()
            except Exception as exc:  # the registry is briefly unreachable: keep polling
                log.warning("mapping reload failed: %s", exc)

    async def reload(self) -> None:
        """Start and stop pollers to match the store: one per enabled mapping, restarted
        when its function, qualifier or configuration changed."""
        async with self._lock:
            wanted = {r.id: r for r in await self.q(self.store.list) if r.enabled}
            stale = [
                p for i, p in self._pollers.items()
                if i not in wanted or _shape(wanted[i]) != _shape(p.record)
            ]  # fmt: skip
            for poller in stale:
                del self._pollers[poller.record.id]
            await asyncio.gather(*(p.stop(self.drain_s) for p in stale))
            for mapping_id, record in wanted.items():
                if mapping_id in self._pollers:
                    continue
                try:
                    poller = (QueuePoller if record.source_kind == "queue" else StreamPoller)(
                        self, record
                    )
                except BadRequest as exc:  # stored by an older version with other rules
                    self.stats_of(mapping_id).problem = f"invalid configuration: {exc.message}"
                    continue
                poller.start()
                self._pollers[mapping_id] = poller

    async def _check(
        self, function: str | None, qualifier: str | None, sources: Sequence[tuple[str, str]]
    ) -> None:
        if function is not None:
            self.node.resolve(function, qualifier)  # FunctionNotFound
        for kind, name in sources:
            if kind == "queue":
                await self.q(self.queues.get_attributes, name)  # QueueNotFound
            elif kind == "table":
                await self.q(self._table_stream, name)
            else:
                await self.q(self.streams.describe_stream, name)  # StreamNotFound

    def _table_stream(self, table: str) -> None:
        """Turn on a table's change stream (DynamoDB's NEW_AND_OLD_IMAGES unless it has
        one), as a DynamoDB mapping needs the table's stream enabled first."""
        outbox = self.node.data().changes
        if outbox.table_stream(table) is None:
            outbox.put_table_stream(table, DEFAULT_VIEW_TYPE)
        self.streams.create_stream(table_stream(table), 1)

    async def create(
        self,
        function: str,
        source: str,
        config: dict[str, Any] | None = None,
        *,
        qualifier: str | None = None,
        enabled: bool = True,
    ) -> MappingRecord:
        """Create a mapping from `queue:NAME`, `stream:NAME` or `table:NAME` to `function[:qualifier]` and
        start delivering if enabled; returns it.

        Raises BadRequest (a bad setting), FunctionNotFound, QueueNotFound, StreamNotFound.
        """
        kind, name = parse_source(source)
        parsed = MappingConfig.parse(kind, config or {})
        qualifier = qualifier or "$LATEST"
        destination = parsed.destination_on_failure
        await self._check(
            function, qualifier, [(kind, name)] + ([("queue", destination)] if destination else [])
        )
        record = await self.q(
            self.store.create, function, qualifier, kind, name, parsed.to_dict(), enabled=enabled
        )
        await self.reload()
        return record

    async def update(self, mapping_id: str, changes: dict[str, Any]) -> MappingRecord:
        """Change a mapping's function, qualifier, `enabled` or settings (the source cannot
        change); returns it. Raises MappingNotFound, BadRequest, FunctionNotFound, QueueNotFound."""
        current = await self.q(self.store.get, mapping_id)
        settings = dict(changes)
        function, qualifier = settings.pop("function", None), settings.pop("qualifier", None)
        enabled = settings.pop("enabled", None)
        if settings.pop("source", None) not in (None, f"{current.source_kind}:{current.source}"):
            raise BadRequest("the source of a mapping cannot change; create another mapping")
        if not all(v is None or (isinstance(v, str) and v) for v in (function, qualifier)):
            raise BadRequest("function and qualifier must be non-empty strings")
        if enabled is not None and not isinstance(enabled, bool):
            raise BadRequest("enabled must be true or false")
        parsed = MappingConfig.parse(current.source_kind, {**current.config, **settings})
        destination = parsed.destination_on_failure
        if function or qualifier:  # an unchanged target may be gone: disabling must still work
            self.node.resolve(function or current.function, qualifier or current.qualifier)
        if destination and destination != current.config.get("destination_on_failure", {}).get(
            "name"
        ):
            await self._check(None, None, [("queue", destination)])
        record = await self.q(
            self.store.update, mapping_id, function=function, qualifier=qualifier,
            config=parsed.to_dict(), enabled=enabled,
            state=None if enabled is None else (ENABLED if enabled else DISABLED),
            state_reason=None if enabled is None else "USER_INITIATED",
        )  # fmt: skip
        await self.reload()
        return record

    async def delete(self, mapping_id: str) -> MappingRecord:
        """Stop and delete a mapping; returns what it was. Raises MappingNotFound.

        A stream mapping's checkpoints stay in the stream backend (keyed by the mapping id).
        """
        record = await self.q(self.store.get, mapping_id)
        await self.q(self.store.delete, mapping_id)
        await self.reload()
        self._stats.pop(mapping_id, None)
        return record

    async def get(self, mapping_id: str) -> MappingRecord:
        """Return a mapping; raises MappingNotFound."""
        return await self.q(self.store.get, mapping_id)

    async def list(self, function: str | None = None) -> list[MappingRecord]:
        """Return every mapping, or a function's, oldest first."""
        return await self.q(self.store.list, function)

    async def status(self, mapping_id: str) -> dict[str, Any]:
        """Return a mapping's description with this node's view: whether it is polling here,
        the last processing result, the current problem and the counters.

        Raises MappingNotFound.
        """
        record = await self.get(mapping_id)
        poller = self._pollers.get(mapping_id)
        held = sorted(poller.held) if isinstance(poller, StreamPoller) else []
        return {**describe(record), "polling": poller is not None, "shards_held": held,
                **asdict(self.stats_of(mapping_id))}  # fmt: skip


def _shape(record: MappingRecord) -> tuple[str, str, str]:
    return record.function, record.qualifier, json.dumps(record.config, sort_keys=True)


__all__ = ["MappingManager", "MappingNotFound", "MappingStats"]
