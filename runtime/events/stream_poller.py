"""The stream poller of event source mappings: one consumer per shard, in order (events layer).

A shard's checkpoint (consumer = the mapping id) advances only past records the
function processed or that were given up on, so a stopped or killed node resumes where
it was and per-partition order holds across retries. A failed batch is retried whole,
from its first failed record with ReportBatchItemFailures, or split in two with
`bisect_batch_on_function_error`; records past their retries or their maximum age go
to `destination_on_failure` (or are dropped).
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Sequence

from firebox.runtime.errors import FireboxError
from firebox.runtime.events.batch_shapes import failed_items, kinesis_event, kinesis_failure_record
from firebox.runtime.events.mapping_config import LATEST
from firebox.runtime.events.poller import Poller
from firebox.runtime.events.retry import retries_exhausted, too_old
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


class StreamPoller(Poller):
    """One consumer per shard, in order, checkpointing (consumer = mapping id) after success."""

    def start(self) -> None:
        self.spawn(self._start_shards())

    async def _start_shards(self) -> None:
        manager, name = self.manager, self.record.source
        while True:
            try:
                shards = await manager.q(manager.streams.shards, name)
                break
            except Exception as exc:
                self.stats.problem = f"cannot read stream {name}: {exc}"
                if await self.backoff():
                    return
        for shard in shards:
            self.spawn(self._shard(shard), work=True)

    async def _shard(self, shard: str) -> None:
        checkpoint: str | None = None
        positioned = False
        while not self.stopping.is_set():
            try:
                if not positioned:
                    checkpoint = await self._position(shard)
                    positioned = True
                batch = await self._fill(shard, checkpoint)
                if not batch:
                    if await self.sleep(self.manager.poll_s):
                        return
                    continue
                checkpoint = await self._deliver(shard, batch, checkpoint)
            except _Stopped:
                return
            except Exception as exc:  # re-read the checkpoint: some of the batch may be committed
                positioned = False
                self.stats.problem = f"shard {shard}: {exc}"
                log.warning("mapping %s shard %s: %s", self.record.id, shard, exc)
                if await self.backoff():
                    return

    async def _position(self, shard: str) -> str | None:
        """Return the shard's checkpoint; for LATEST without one, first skip (and checkpoint)
        the records that arrived before the mapping was created."""
        q, streams, name = self.manager.q, self.manager.streams, self.record.source
        checkpoint = await q(streams.get_checkpoint, self.record.id, name, shard)
        if checkpoint is not None or self.config.starting_position != LATEST:
            return checkpoint
        while True:
            page = await q(streams.read, name, shard, checkpoint, MAX_READ_LIMIT)
            old = [r for r in page if r.arrival_ts < self.record.created_at]
            if old:
                checkpoint = await self._commit(shard, old[-1])
            if len(old) < len(page) or len(page) < MAX_READ_LIMIT:
                return checkpoint

    async def _fill(self, shard: str, after: str | None) -> list[Record]:
        q, read, name = self.manager.q, self.manager.streams.read, self.record.source
        size = self.config.batch_size
        batch = await q(read, name, shard, after, size)
        deadline = time.monotonic() + self.config.maximum_batching_window_s
        while batch and len(batch) < size and time.monotonic() < deadline:
            if await self.sleep(min(self.manager.poll_s, deadline - time.monotonic())):
                break
            batch += await q(read, name, shard, batch[-1].sequence_number, size - len(batch))
        return batch

    async def _commit(self, shard: str, record: Record) -> str:
        q, streams = self.manager.q, self.manager.streams
        await q(
            streams.set_checkpoint,
            self.record.id,
            self.record.source,
            shard,
            record.sequence_number,
        )
        return record.sequence_number

    async def _deliver(self, shard: str, batch: list[Record], checkpoint: str | None) -> str | None:
        """Process a batch to its end (retrying, bisecting, giving up); return the checkpoint."""
        config = self.config
        segments: deque[tuple[list[Record], int]] = deque([(batch, 0)])
        while segments:
            records, attempts = segments.popleft()
            expired = expired_count(records, config.maximum_record_age_s or -1, time.time())
            if expired:
                await self._give_up(shard, records[:expired], attempts, "RecordAgeExceeded", None)
                checkpoint = await self._commit(shard, records[expired - 1])
                records = records[expired:]
                if not records:
                    continue
            if self.stopping.is_set():
                return checkpoint
            outcome = await self.invoke(kinesis_event(self.record.source, shard, records))
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
            if first_failed:
                self.succeeded(first_failed)
                checkpoint = await self._commit(shard, records[first_failed - 1])
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
                checkpoint = await self._commit(shard, rest[-1])
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
