"""Change events: bucket notifications and table streams delivered from the outbox
(events layer).

Writers commit each change with its record in `fb_change_outbox`
(runtime/storage/changes.py). The node holding the dispatch lease reads the outbox in
commit order every FIREBOX_CHANGE_POLL_S and hands each row on:

- an object change goes to each matching notification: a function gets it as an Event
  invocation on the durable async path (`{"Records": [record]}`, retried, expired, sent to
  its destinations and DLQ like any async event), a queue gets the same JSON as a message;
- an item change is appended to its table's internal stream (`firebox-table-NAME`,
  partition key the item key), which event source mappings read in order with their
  batch, retry and bisect settings (runtime/events/stream_poller.py).

A row is deleted only after it was handed on, so a node killed in between hands it on
again (at least once); the async event's idempotency key is the row's id, so that second
enqueue is dropped by the queue's dedup window. A notification whose function or queue no
longer exists is dropped and counted (as S3 does), and the rest of the batch goes on; a
backend that cannot be reached stops the batch, which is retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from firebox.runtime import config
from firebox.runtime.errors import FunctionNotFound, QueueNotFound, StreamNotFound
from firebox.runtime.events.scheduler import fault_point
from firebox.runtime.storage.changes import Change, encode_record, table_stream

if TYPE_CHECKING:
    from firebox.runtime.node import Node

log = logging.getLogger("firebox.changes")

POLL_S = config.FIREBOX_CHANGE_POLL_S.get()
LEASE_S = config.FIREBOX_CHANGE_LEASE_S.get()
BATCH = 200
BACKOFF_MAX_S = 5.0


@dataclass
class ChangeStats:
    """Counters of this node's dispatcher (GET /v1/node shows them)."""

    delivered: int = 0  # records handed to a function, queue or stream
    dropped: int = 0  # notifications whose function or queue no longer exists
    failures: int = 0  # batches stopped by an unreachable backend


#: Consumer and shard name under which a table stream keeps the last change id appended.
APPEND_MARK = "firebox-change-appended"


class ChangeDispatcher:
    """Moves captured changes from the outbox to their functions, queues and streams."""

    def __init__(self, node: Node, *, poll_s: float = POLL_S, lease_s: float = LEASE_S) -> None:
        self.node = node
        self.poll_s = poll_s
        self.lease_s = lease_s
        self.node_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.stats = ChangeStats()
        self._streams: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._held = False

    async def start(self) -> None:
        """Start dispatching in the background."""
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop dispatching and give the lease up (rows not handed on stay in the outbox)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._held:
            with contextlib.suppress(Exception):
                await self.node.run_blocking(self.node.data().changes.release, self.node_id)

    async def _run(self) -> None:
        renew_at, backoff = 0.0, self.poll_s
        while True:
            try:
                outbox = (await self.node.run_blocking(self.node.data)).changes
                now = time.monotonic()
                if now >= renew_at:
                    self._held = await self.node.run_blocking(
                        outbox.hold, self.node_id, self.lease_s
                    )
                    renew_at = now + self.lease_s / 3
                more = self._held and await self.dispatch_once()
                backoff = self.poll_s
                if not more:
                    await asyncio.sleep(self.poll_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a database or queue briefly unreachable: retry
                self.stats.failures += 1
                log.warning("change dispatch failed (retrying in %.1f s): %s", backoff, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def dispatch_once(self) -> bool:
        """Hand on one batch of the outbox; return True when a full batch was read."""
        outbox = self.node.data().changes
        batch = await self.node.run_blocking(outbox.pending, BATCH)
        if not batch:
            return False
        # Renew the lease before handing anything on: a dispatcher that stalled past it
        # (a loaded machine) finds another node holding it and stops here.
        self._held = await self.node.run_blocking(outbox.hold, self.node_id, self.lease_s)
        if not self._held:
            return False
        fault_point("change-before-dispatch")
        handed: list[int] = []
        try:
            for change in batch:
                await self._hand_on(change)
                handed.append(change.id)
        finally:
            if handed:
                fault_point("change-before-delete")
                await self.node.run_blocking(outbox.done, handed)
        return len(batch) == BATCH

    async def _hand_on(self, change: Change) -> None:
        if change.kind == "table":
            await self._append(change)
            return
        record, targets = change.change["record"], change.change["targets"]
        for target in targets:
            one = {**record, "s3": {**record["s3"], "configurationId": target["id"]}}
            body = json.dumps({"Records": [one]}, separators=(",", ":")).encode()
            try:
                if target["type"] == "function":
                    name, _, qualifier = str(target["function"]).partition(":")
                    await self.node.enqueue(
                        name, qualifier or None, body, f"change:{change.id}:{target['id']}"
                    )
                else:
                    await self.node.run_blocking(self.node.queues.send, target["queue"], body)
            except (FunctionNotFound, QueueNotFound) as exc:
                self.stats.dropped += 1
                log.warning(
                    "bucket %s notification %s dropped: %s", change.name, target["id"], exc.message
                )
                continue
            self.stats.delivered += 1

    async def _append(self, change: Change) -> None:
        stream = table_stream(change.name)
        streams = self.node.streams
        if stream not in self._streams:
            await self.node.run_blocking(streams.create_stream, stream, 1)
            self._streams.add(stream)
        # The last change appended to this stream, kept in the stream store itself: a
        # dispatcher that took the lease over from one that stalled past it does not
        # append again what the other already did (rows are appended in id order).
        mark = await self.node.run_blocking(
            streams.get_checkpoint, APPEND_MARK, stream, APPEND_MARK
        )
        if mark is not None and mark.isdigit() and int(mark) >= change.id:
            return
        data = encode_record(change.change["record"])
        try:
            await self.node.run_blocking(streams.put, stream, change.change["key"], data)
        except StreamNotFound:  # deleted under us (a test's reset): make it again, once
            await self.node.run_blocking(streams.create_stream, stream, 1)
            await self.node.run_blocking(streams.put, stream, change.change["key"], data)
        await self.node.run_blocking(
            streams.set_checkpoint, APPEND_MARK, stream, APPEND_MARK, str(change.id)
        )
        self.stats.delivered += 1

    def describe(self) -> dict[str, Any]:
        """Return this dispatcher's counters and whether it holds the lease."""
        return {"dispatching": self._held, "delivered": self.stats.delivered,
                "dropped": self.stats.dropped, "failures": self.stats.failures}  # fmt: skip


__all__ = ["ChangeDispatcher", "ChangeStats"]
