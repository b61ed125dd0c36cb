"""The stream poller of event source mappings: one consumer per shard, in order (events layer).

With many nodes, each shard is consumed by the node holding its lease (`shard_leases`):
a coordinator loop renews this node's leases, takes free or expired ones and asks busy
nodes for one when the cluster is unbalanced; a shard's consumer runs only while its
lease is held, checkpoints through the lease (a node that lost it cannot move the
checkpoint), and hands the lease over between batches when another node asks for it.

A shard's checkpoint (consumer = the mapping id) advances only past records the
function processed or that were given up on, so a stopped or killed node resumes where
it was and per-partition order holds across retries. A failed batch is retried whole,
from its first failed record with ReportBatchItemFailures, or split in two with
`bisect_batch_on_function_error`; records past their retries or their maximum age go
to `destination_on_failure` (or are dropped).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from firebox.runtime.errors import FireboxError
from firebox.runtime.events.batch_shapes import (
    dynamodb_event,
    failed_items,
    kinesis_event,
    kinesis_failure_record,
)
from firebox.runtime.events.mapping_config import LATEST, stream_of
from firebox.runtime.events.poller import Poller
from firebox.runtime.events.retry import retries_exhausted, too_old
from firebox.runtime.events.shard_leases import plan
from firebox.runtime.events.stream import MAX_READ_LIMIT, Record

log = logging.getLogger("firebox.mappings")


def expired_count(records: Sequence[Record], max_age_s: float, now: float) -> int:
    """Return how many leading records of a batch are older than `max_age_s` at `now`
    (-1: no limit); they are given up on before the rest is delivered."""
    count = 0
    while count < len(records) and too_old(records[count].arrival_ts, max_age_s, now):
        count += 1
    return count


def processed_count(records: Sequence[Record], output: bytes, report_failures: bool) -> int:
    """Return how many leading records an invocation that returned without error processed,
    so the checkpoint may pass them.

    Without ReportBatchItemFailures, all of them. With it, as Lambda: the records before
    the first one reported failed (the lowest sequence number), all of them when none
    is reported, and none when the answer is not valid (the whole batch failed).
    """
    if not report_failures:
        return len(records)
    sequence_numbers = [r.sequence_number for r in records]
    failed = failed_items(output, sequence_numbers)
    if failed is None:
        return 0
    if failed:
        return min(sequence_numbers.index(s) for s in failed)
    return len(records)


class _Stopped(Exception):
    """The poller is stopping in the middle of a batch; nothing more is committed."""


class _Lost(Exception):
    """The shard's lease went to another node; this consumer stops at once."""


@dataclass
class _Held:
    """A lease this node holds: its counter (the fencing token) and who asks for it."""

    counter: int
    wanted_by: str = ""
    task: asyncio.Task[None] | None = None
    renewed_at: float = field(default_factory=time.monotonic)


class StreamPoller(Poller):
    """One consumer per leased shard, in order, checkpointing (consumer = mapping id)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.held: dict[str, _Held] = {}
        #: The firebox stream read: the source's own, or a table's change stream.
        self.stream = stream_of(self.record.source_kind, self.record.source)

    def _event(self, shard: str, records: Sequence[Record]) -> dict[str, Any]:
        if self.record.source_kind == "table":
            return dynamodb_event(self.record.source, shard, records)
        return kinesis_event(self.record.source, shard, records)

    def start(self) -> None:
        self.spawn(self._coordinate())

    async def stop(self, grace_s: float) -> None:
        """Stop as every poller does, then free the leases still held so that other nodes
        take the shards at once instead of after the lease period."""
        await super().stop(grace_s)
        manager, name = self.manager, self.stream
        for shard, held in list(self.held.items()):
            try:
                await manager.q(manager.leases.release, self.record.id, name, shard,
                                manager.node_id, held.counter, "", manager.lease_s)  # fmt: skip
            except Exception as exc:  # it expires by itself
                log.warning("mapping %s: could not release %s: %s", self.record.id, shard, exc)
        self.held.clear()

    async def _coordinate(self) -> None:
        manager, name = self.manager, self.stream
        while True:
            try:
                shards = await manager.q(manager.streams.shards, name)
                break
            except Exception as exc:
                self.stats.problem = f"cannot read stream {name}: {exc}"
                if await self.backoff():
                    return
        while not self.stopping.is_set():
            try:
                await self._balance(shards)
            except Exception as exc:  # the lease table is briefly unreachable
                self.stats.problem = f"shard leases of {name}: {exc}"
                log.warning("mapping %s: shard leases: %s", self.record.id, exc)
                # Not renewed for a whole lease: another node may hold it by now.
                for shard, held in list(self.held.items()):
                    if time.monotonic() - held.renewed_at > manager.lease_s:
                        self._drop(shard, "gave up (not renewed)")
            if await self.sleep(manager.lease_s / 3):
                return

    async def _balance(self, shards: list[str]) -> None:
        """One round: renew what is held, adopt what was handed over, take or ask per `plan`."""
        manager, name, me = self.manager, self.stream, self.manager.node_id
        leases = manager.leases
        for shard, held in list(self.held.items()):
            kept, wanted = await manager.q(
                leases.renew, self.record.id, name, shard, me, held.counter, manager.lease_s
            )
            if not kept:
                self._drop(shard, "lost")
            else:
                held.wanted_by, held.renewed_at = wanted, time.monotonic()
        table = await manager.q(leases.leases, self.record.id, name, shards)
        for lease in table:
            if lease.live and lease.owner == me and lease.shard not in self.held:
                self._run(lease.shard, lease.counter)  # handed over by its previous owner
        decision = plan(table, me)
        for shard, counter in decision.take:
            got = await manager.q(
                leases.take, self.record.id, name, shard, me, counter, manager.lease_s
            )
            if got is not None:
                self._run(shard, got)
        if decision.ask is not None:
            shard, counter = decision.ask
            await manager.q(leases.ask, self.record.id, name, shard, me, counter)

    def _run(self, shard: str, counter: int) -> None:
        held = self.held[shard] = _Held(counter)
        log.info("mapping %s: node %s consumes %s", self.record.id, self.manager.node_id, shard)
        held.task = self.spawn(self._shard(shard, held), work=True)

    def _drop(self, shard: str, why: str) -> None:
        held = self.held.pop(shard, None)
        if held is not None and held.task is not None:
            held.task.cancel()
        log.info("mapping %s: node %s %s %s", self.record.id, self.manager.node_id, why, shard)

    async def _hand_over(self, shard: str, held: _Held) -> None:
        """Give the lease to the node that asked for it (between batches)."""
        manager = self.manager
        given = await manager.q(manager.leases.release, self.record.id, self.stream,
                                shard, manager.node_id, held.counter, held.wanted_by,
                                manager.lease_s)  # fmt: skip
        if self.held.get(shard) is held:
            del self.held[shard]
        log.info("mapping %s: node %s hands %s to %s", self.record.id, manager.node_id, shard,
                 held.wanted_by if given else "nobody (lost)")  # fmt: skip

    async def _shard(self, shard: str, held: _Held) -> None:
        checkpoint: str | None = None
        positioned = False
        while not self.stopping.is_set() and self.held.get(shard) is held:
            try:
                if held.wanted_by:
                    await self._hand_over(shard, held)
                    return
                if not positioned:
                    checkpoint = await self._position(shard, held)
                    positioned = True
                batch = await self._fill(shard, checkpoint)
                if not batch:
                    if await self.sleep(self.manager.poll_s):
                        return
                    continue
                checkpoint = await self._deliver(shard, batch, checkpoint, held)
            except (_Stopped, _Lost):
                return
            except Exception as exc:  # re-read the checkpoint: some of the batch may be committed
                positioned = False
                self.stats.problem = f"shard {shard}: {exc}"
                log.warning("mapping %s shard %s: %s", self.record.id, shard, exc)
                if await self.backoff():
                    return

    async def _position(self, shard: str, held: _Held) -> str | None:
        """Return the shard's checkpoint; for LATEST without one, first skip (and checkpoint)
        the records that arrived before the mapping was created."""
        q, streams, name = self.manager.q, self.manager.streams, self.stream
        checkpoint = await q(streams.get_checkpoint, self.record.id, name, shard)
        if checkpoint is not None or self.config.starting_position != LATEST:
            return checkpoint
        while True:
            page = await q(streams.read, name, shard, checkpoint, MAX_READ_LIMIT)
            old = [r for r in page if r.arrival_ts < self.record.created_at]
            if old:
                checkpoint = await self._commit(shard, old[-1], held)
            if len(old) < len(page) or len(page) < MAX_READ_LIMIT:
                return checkpoint

    async def _fill(self, shard: str, after: str | None) -> list[Record]:
        q, read, name = self.manager.q, self.manager.streams.read, self.stream
        size = self.config.batch_size
        batch = await q(read, name, shard, after, size)
        deadline = time.monotonic() + self.config.maximum_batching_window_s
        while batch and len(batch) < size and time.monotonic() < deadline:
            if await self.sleep(min(self.manager.poll_s, deadline - time.monotonic())):
                break
            batch += await q(read, name, shard, batch[-1].sequence_number, size - len(batch))
        return batch

    async def _commit(self, shard: str, record: Record, held: _Held) -> str:
        """Move the checkpoint past `record` through the lease; raises _Lost if it is gone."""
        manager = self.manager
        written = await manager.q(manager.leases.checkpoint, self.record.id, self.stream,
                                  shard, manager.node_id, held.counter,
                                  record.sequence_number)  # fmt: skip
        if not written:
            self._drop(shard, "lost (at a checkpoint)")
            raise _Lost(shard)
        return record.sequence_number

    async def _deliver(
        self, shard: str, batch: list[Record], checkpoint: str | None, held: _Held
    ) -> str | None:
        """Process a batch to its end (retrying, bisecting, giving up); return the checkpoint."""
        config = self.config
        segments: deque[tuple[list[Record], int]] = deque([(batch, 0)])
        while segments:
            records, attempts = segments.popleft()
            expired = expired_count(records, config.maximum_record_age_s or -1, time.time())
            if expired:
                await self._give_up(shard, records[:expired], attempts, "RecordAgeExceeded", None)
                checkpoint = await self._commit(shard, records[expired - 1], held)
                records = records[expired:]
                if not records:
                    continue
            if self.stopping.is_set():
                return checkpoint
            outcome = await self.invoke(self._event(shard, records))
            if isinstance(outcome, FireboxError) and outcome.code in (
                "Throttled",
                "FunctionNotFound",
            ):
                segments.appendleft((records, attempts))  # not the batch's fault: no attempt used
                if await self.backoff():
                    return checkpoint
                continue
            result = None if isinstance(outcome, FireboxError) else outcome
            first_failed = 0
            if result is not None and result.error is None:
                first_failed = processed_count(records, result.output, config.report_failures)
            # The batch's log is stored before the checkpoint passes it (as the queue poller
            # does before deleting): a node killed right after leaves no record without trace.
            await self.manager.node.recorder.flush(strict=True)
            if first_failed:
                self.succeeded(first_failed)
                checkpoint = await self._commit(shard, records[first_failed - 1], held)
            rest = records[first_failed:]
            if not rest:
                continue
            if result is not None:
                self.failed(result)
            if config.bisect_batch_on_function_error and len(rest) > 1 and first_failed == 0:
                # Splitting does not use up a retry attempt, as in Lambda.
                middle = len(rest) // 2
                segments.extendleft([(rest[middle:], attempts), (rest[:middle], attempts)])
                self.stats.retries += 1
                continue
            attempts += 1
            if retries_exhausted(attempts, config.maximum_retry_attempts):
                error = outcome if isinstance(outcome, FireboxError) else outcome.error
                version = result.version if result is not None else None
                await self._give_up(shard, rest, attempts, "RetryAttemptsExhausted", error, version)
                checkpoint = await self._commit(shard, rest[-1], held)
                continue
            self.stats.retries += 1
            segments.appendleft((rest, attempts))
            if await self.backoff():
                return checkpoint
        return checkpoint

    async def _give_up(
        self,
        shard: str,
        records: list[Record],
        attempts: int,
        condition: str,
        error: FireboxError | None,
        version: str | None = None,
    ) -> None:
        """Send Lambda's failure record for records given up on; raises _Stopped if stopping
        before the destination took it (so they are not checkpointed)."""
        destination = self.config.destination_on_failure
        if destination is None:
            log.warning(
                "mapping %s: dropping %d records of %s (%s)",
                self.record.id,
                len(records),
                shard,
                condition,
            )
            return
        error_code = error.code if error is not None else None
        failure = kinesis_failure_record(
            self.record, shard, records, attempts, condition, error_code, version, time.time()
        )
        body = json.dumps(failure).encode()
        while True:
            try:
                await self.manager.q(self.manager.queues.send, destination, body)
                break
            except Exception as exc:  # never skip records the destination did not take
                self.stats.problem = f"cannot send to failure destination {destination}: {exc}"
                if await self.backoff():
                    raise _Stopped from exc
        self.stats.sent_to_destination += len(records)
