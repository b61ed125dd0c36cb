"""Event source mappings: pollers that feed queue messages and stream records to a function
in batches, Lambda's CreateEventSourceMapping model (events layer).

A queue mapping keeps up to `maximum_concurrency` batches in flight; a batch is deleted
only after the function succeeds (with ReportBatchItemFailures, only its successful
messages), so failed messages come back after the queue's visibility timeout and the
queue's own redrive policy applies. A stream mapping runs one consumer per shard, in
order: its checkpoint (consumer = the mapping id) advances only past records the
function processed or that were given up on, so a stopped or killed node resumes where
it was and per-partition order holds across retries.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from firebox.runtime import config
from firebox.runtime.config import account_id, arn, region
from firebox.runtime.errors import BadRequest, FireboxError, MappingNotFound, Throttled
from firebox.runtime.events.queue import MAX_WAIT_S, Message, QueueBackend
from firebox.runtime.events.stream import MAX_READ_LIMIT, Record, StreamBackend
from firebox.runtime.storage.mappings import DISABLED, ENABLED, MappingRecord, MappingStore

if TYPE_CHECKING:
    from firebox.runtime.invoke import InvocationResult
    from firebox.runtime.node import Node

log = logging.getLogger("firebox.mappings")
T = TypeVar("T")

# Lambda's ARNs need a region and an account; a firebox node has neither.
REPORT_FAILURES = "ReportBatchItemFailures"
TRIM_HORIZON, LATEST = "TRIM_HORIZON", "LATEST"
# Lambda's limits and defaults for SQS and Kinesis mappings.
DEFAULT_QUEUE_BATCH = 10
DEFAULT_STREAM_BATCH = 100
MAX_BATCH = MAX_READ_LIMIT
MAX_WINDOW_S = 300.0
DEFAULT_CONCURRENCY = 2
MAX_CONCURRENCY = 1000
MAX_RETRY_ATTEMPTS = 10_000
MAX_RECORD_AGE_S = 7 * 86400.0


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


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# --- configuration --------------------------------------------------------------------

_QUEUE_KEYS = {"batch_size", "maximum_batching_window_s", "maximum_concurrency",
               "function_response_types", "maximum_retry_attempts", "destination_on_failure"}  # fmt: skip
_STREAM_KEYS = {"batch_size", "maximum_batching_window_s", "starting_position",
                "function_response_types", "bisect_batch_on_function_error",
                "maximum_retry_attempts", "maximum_record_age_s", "destination_on_failure"}  # fmt: skip


def _number(data: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = data.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise BadRequest(f"{key} must be a number {low:g}..{high:g}, got {value!r}")
    return float(value)


def _integer(data: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = _number(data, key, default, low, high)
    if value != int(value) or isinstance(data.get(key), float):
        raise BadRequest(f"{key} must be an integer {low}..{high}, got {data.get(key)!r}")
    return int(value)


@dataclass(frozen=True)
class MappingConfig:
    """The validated batching, retry and failure settings of one mapping.

    Queue mappings: `maximum_retry_attempts` -1 leaves failed messages to the queue's
    redrive policy; n >= 0 sends a message that failed n + 1 deliveries to
    `destination_on_failure` and deletes it. Stream mappings: -1 retries forever.
    """

    batch_size: int
    maximum_batching_window_s: float = 0.0
    maximum_concurrency: int | None = None
    starting_position: str | None = None
    function_response_types: tuple[str, ...] = ()
    bisect_batch_on_function_error: bool | None = None
    maximum_retry_attempts: int = -1
    maximum_record_age_s: float | None = None
    destination_on_failure: str | None = None

    @property
    def report_failures(self) -> bool:
        """Whether the function reports partial batch failures."""
        return REPORT_FAILURES in self.function_response_types

    @classmethod
    def parse(cls, kind: str, data: dict[str, Any]) -> MappingConfig:
        """Validate settings for a `queue` or `stream` mapping; raises BadRequest naming the field."""
        allowed = _QUEUE_KEYS if kind == "queue" else _STREAM_KEYS
        unknown = sorted(k for k in set(data) - allowed if data[k] is not None)
        if unknown:
            raise BadRequest(
                f"unknown setting(s) for a {kind} mapping: {', '.join(unknown)};"
                f" allowed: {', '.join(sorted(allowed))}"
            )
        default_batch = DEFAULT_QUEUE_BATCH if kind == "queue" else DEFAULT_STREAM_BATCH
        types = data.get("function_response_types") or []
        if not isinstance(types, list | tuple) or any(t != REPORT_FAILURES for t in types):
            raise BadRequest(f'function_response_types must be ["{REPORT_FAILURES}"] or []')
        destination = data.get("destination_on_failure")
        if destination is not None and (
            not isinstance(destination, dict)
            or destination.get("type") != "queue"
            or not isinstance(destination.get("name"), str)
        ):
            raise BadRequest('destination_on_failure must be {"type": "queue", "name": "..."}')
        config = cls(
            batch_size=_integer(data, "batch_size", default_batch, 1, MAX_BATCH),
            maximum_batching_window_s=_number(data, "maximum_batching_window_s", 0, 0, MAX_WINDOW_S),
            function_response_types=tuple(dict.fromkeys(types)),
            maximum_retry_attempts=_integer(data, "maximum_retry_attempts", -1, -1, MAX_RETRY_ATTEMPTS),
            destination_on_failure=destination["name"] if destination else None,
        )  # fmt: skip
        if kind == "queue":
            concurrency = _integer(
                data, "maximum_concurrency", DEFAULT_CONCURRENCY, 2, MAX_CONCURRENCY
            )
            if config.destination_on_failure and config.maximum_retry_attempts < 0:
                raise BadRequest(
                    "destination_on_failure on a queue mapping needs maximum_retry_attempts >= 0"
                    " (or use the queue's own dead-letter queue)"
                )
            return cls(**{**asdict(config), "maximum_concurrency": concurrency})
        position = data.get("starting_position")
        if position not in (TRIM_HORIZON, LATEST):
            raise BadRequest(f"a stream mapping needs starting_position {TRIM_HORIZON} or {LATEST}")
        bisect = data.get("bisect_batch_on_function_error", False)
        if not isinstance(bisect, bool):
            raise BadRequest("bisect_batch_on_function_error must be true or false")
        age = _number(data, "maximum_record_age_s", -1, -1, MAX_RECORD_AGE_S)
        if -1 < age <= 0:
            raise BadRequest("maximum_record_age_s must be -1 (no limit) or positive")
        return cls(**{**asdict(config), "starting_position": position,
                      "bisect_batch_on_function_error": bisect, "maximum_record_age_s": age})  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """Return the stored/wire form (settings of the other source kind left out)."""
        out = {k: v for k, v in asdict(self).items() if v is not None}
        out["function_response_types"] = list(self.function_response_types)
        if self.destination_on_failure is not None:
            out["destination_on_failure"] = {"type": "queue", "name": self.destination_on_failure}
        return out


def parse_source(source: Any) -> tuple[str, str]:
    """Split `queue:NAME` or `stream:NAME` into (kind, name); raises BadRequest."""
    kind, _, name = str(source).partition(":")
    if kind not in ("queue", "stream") or not name or not isinstance(source, str):
        raise BadRequest(f'source must be "queue:NAME" or "stream:NAME", got {source!r}')
    return kind, name


def source_arn(kind: str, name: str) -> str:
    """Return the Lambda-style ARN of a queue (SQS) or stream (Kinesis)."""
    if kind == "queue":
        return arn("sqs", name)
    return arn("kinesis", f"stream/{name}")


def describe(record: MappingRecord) -> dict[str, Any]:
    """Return the public description of a mapping."""
    return {
        "id": record.id,
        "function": record.function,
        "qualifier": record.qualifier,
        "source": f"{record.source_kind}:{record.source}",
        "source_arn": source_arn(record.source_kind, record.source),
        **record.config,
        "enabled": record.enabled,
        "state": record.state,
        "state_reason": record.state_reason,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }


# --- event shapes -----------------------------------------------------------------------


def sqs_event(queue: str, messages: Sequence[Message]) -> dict[str, Any]:
    """Return Lambda's SQS event for a batch of messages."""
    now_ms = str(int(time.time() * 1000))
    return {"Records": [{
        "messageId": m.id,
        "receiptHandle": m.receipt_handle,
        "body": m.body.decode("utf-8", "replace"),
        "attributes": {"ApproximateReceiveCount": str(m.receive_count),
                       "SentTimestamp": str(int(m.sent_at * 1000)),
                       "SenderId": account_id(), "ApproximateFirstReceiveTimestamp": now_ms},
        "messageAttributes": {k: {"stringValue": v, "stringListValues": [], "binaryListValues": [],
                                  "dataType": "String"} for k, v in m.attributes.items()},
        "md5OfBody": hashlib.md5(m.body).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": source_arn("queue", queue),
        "awsRegion": region(),
    } for m in messages]}  # fmt: skip


def kinesis_event(stream: str, shard: str, records: Sequence[Record]) -> dict[str, Any]:
    """Return Lambda's Kinesis event for a batch of one shard's records."""
    return {"Records": [{
        "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": r.partition_key,
                    "sequenceNumber": r.sequence_number,
                    "data": base64.b64encode(r.data).decode(),
                    "approximateArrivalTimestamp": r.arrival_ts},
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard}:{r.sequence_number}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": arn("iam", "role/firebox-event-source-mapping"),
        "awsRegion": region(),
        "eventSourceARN": source_arn("stream", stream),
    } for r in records]}  # fmt: skip


def failed_items(output: bytes, known: Sequence[str]) -> set[str] | None:
    """Return the item identifiers a ReportBatchItemFailures response names as failed.

    As Lambda: no response, a null or empty list mean all succeeded; a response that is
    not JSON, or names an empty or unknown identifier, fails the whole batch (None).
    """
    try:
        data = json.loads(output) if output.strip() else None
    except (ValueError, UnicodeDecodeError):
        return None
    items = data.get("batchItemFailures") if isinstance(data, dict) else None
    if not items:
        return set()
    if not isinstance(items, list):
        return None
    failed = set()
    for item in items:
        ident = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(ident, str) or ident not in known:
            return None
        failed.add(ident)
    return failed


# --- pollers ----------------------------------------------------------------------------


@dataclass
class MappingStats:
    """Counters of one mapping on this node since it started (not shared between nodes)."""

    batches: int = 0  # invocations made
    records: int = 0  # records (messages) the function processed successfully
    failures: int = 0  # invocations that failed or reported failed items
    retries: int = 0  # stream batches retried (queue messages retry by visibility timeout)
    throttles: int = 0
    sent_to_destination: int = 0  # records given up on (sent to destination_on_failure)
    in_flight: int = 0
    last_processing_result: str = "No records processed"
    last_processed_at: float | None = None
    problem: str = ""


class _Poller:
    """The running side of one enabled mapping: its tasks and how they stop."""

    def __init__(self, manager: MappingManager, record: MappingRecord) -> None:
        self.manager = manager
        self.record = record
        self.config = MappingConfig.parse(record.source_kind, record.config)
        self.stats = manager.stats_of(record.id)
        self.stopping = asyncio.Event()
        self.loops: set[asyncio.Task[None]] = set()  # cancelled at once on stop
        self.work: set[asyncio.Task[None]] = set()  # given DRAIN_S to finish on stop
        self.delay = manager.retry_base_s

    def spawn(self, coro: Any, *, work: bool = False) -> None:
        tasks = self.work if work else self.loops
        task: asyncio.Task[None] = asyncio.create_task(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        task.add_done_callback(self._log_crash)

    def _log_crash(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("mapping %s poller crashed", self.record.id, exc_info=task.exception())

    async def stop(self, grace_s: float) -> None:
        """Stop taking new batches, let in-flight ones finish for `grace_s`, cancel the rest."""
        self.stopping.set()
        for task in list(self.loops):
            task.cancel()
        if self.work:
            await asyncio.wait(list(self.work), timeout=grace_s)
        for task in list(self.work):
            task.cancel()
        await asyncio.gather(*self.loops, *self.work, return_exceptions=True)

    async def sleep(self, seconds: float) -> bool:
        """Wait `seconds` or until stopping; return True when stopping."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), timeout=max(0.0, seconds))
        return self.stopping.is_set()

    async def backoff(self) -> bool:
        """Sleep the current retry delay, doubling it for next time; True when stopping."""
        delay, self.delay = self.delay, min(self.delay * 2, self.manager.retry_max_s)
        return await self.sleep(delay)

    async def invoke(self, event: dict[str, Any]) -> InvocationResult | FireboxError:
        """Invoke the function once; a rejection before it ran comes back as the error."""
        record, stats = self.record, self.stats
        stats.batches += 1
        stats.in_flight += 1
        try:
            payload = json.dumps(event).encode()
            return await self.manager.node.invoke(
                record.function, payload, qualifier=record.qualifier
            )
        except FireboxError as exc:
            if isinstance(exc, Throttled):
                stats.throttles += 1
                stats.last_processing_result = "PROBLEM: Function call throttled"
            else:
                stats.failures += 1
                stats.last_processing_result = f"PROBLEM: {exc.code}"
            stats.problem = exc.message
            return exc
        finally:
            stats.in_flight -= 1
            stats.last_processed_at = time.time()

    def succeeded(self, count: int) -> None:
        self.stats.records += count
        self.stats.last_processing_result = "OK"
        self.stats.problem = ""
        self.delay = self.manager.retry_base_s

    def failed(self, result: InvocationResult) -> None:
        self.stats.failures += 1
        error = result.error
        self.stats.last_processing_result = "PROBLEM: Function call failed"
        self.stats.problem = error.message if error is not None else "batch item failures"


class _Stopped(Exception):
    """The poller is stopping in the middle of a batch; nothing more is committed."""


class _QueuePoller(_Poller):
    """Receives batches from a queue and keeps up to `maximum_concurrency` of them in flight."""

    def start(self) -> None:
        self.slots = asyncio.Semaphore(self.config.maximum_concurrency or DEFAULT_CONCURRENCY)
        self.visibility_s = 30.0
        self.checked_at = float("-inf")  # when the queue's visibility timeout was last read
        self.spawn(self._receive_loop())

    async def _receive_loop(self) -> None:
        manager, name = self.manager, self.record.source
        while not self.stopping.is_set():
            await self.slots.acquire()
            try:
                if time.monotonic() - self.checked_at >= self.manager.reload_s:
                    attributes = await manager.q(manager.queues.get_attributes, name)
                    self.visibility_s = attributes.visibility_timeout_s
                    self.checked_at = time.monotonic()
                batch = await self._fill(name)
            except Exception as exc:  # the queue was deleted, the backend is unreachable
                self.slots.release()
                self.stats.problem = f"cannot receive from queue {name}: {exc}"
                if await self.backoff():
                    return
                continue
            if not batch:
                self.slots.release()
                continue
            self.spawn(self._process(name, batch), work=True)

    async def _fill(self, name: str) -> list[Message]:
        """Receive up to batch_size messages, waiting up to the batching window to fill."""
        q, receive, size = self.manager.q, self.manager.queues.receive, self.config.batch_size
        batch = await q(receive, name, min(10, size), None, self.manager.poll_s)
        deadline = time.monotonic() + self.config.maximum_batching_window_s
        while batch and len(batch) < size:
            remaining = deadline - time.monotonic()
            more = await q(
                receive,
                name,
                min(10, size - len(batch)),
                None,
                min(max(remaining, 0.0), MAX_WAIT_S),
            )
            batch += more
            if not more and remaining <= 0:
                break
        return batch

    async def _process(self, name: str, batch: list[Message]) -> None:
        try:
            await self._deliver(name, batch)
        except Exception:
            log.exception(
                "mapping %s: batch failed; its messages return after their visibility timeout",
                self.record.id,
            )
        finally:
            self.slots.release()

    async def _deliver(self, name: str, batch: list[Message]) -> None:
        started, event = time.monotonic(), sqs_event(name, batch)
        while True:
            outcome = await self.invoke(event)
            if not isinstance(outcome, Throttled):
                break
            # Hold the batch while half its visibility timeout is left; past that it would
            # come back to another poller anyway.
            if (
                time.monotonic() - started + self.delay > self.visibility_s / 2
                or await self.backoff()
            ):
                return
        ids = [m.id for m in batch]
        if isinstance(outcome, FireboxError):  # FunctionNotFound, PayloadTooLarge
            failed = set(ids)
            await self.backoff()  # holding the slot slows receiving down meanwhile
        elif outcome.error is not None:
            failed = set(ids)
        elif self.config.report_failures:
            reported = failed_items(outcome.output, ids)
            failed = set(ids) if reported is None else reported
        else:
            failed = set()
        done = [m for m in batch if m.id not in failed]
        if done:
            self.succeeded(len(done))
        if failed and not isinstance(outcome, FireboxError):
            self.failed(outcome)
        retries = self.config.maximum_retry_attempts
        error = outcome if isinstance(outcome, FireboxError) else outcome.error
        # The batch's log and usage record are stored before its messages are deleted: a
        # node killed right after a delete never leaves a processed message without trace.
        await self.manager.node.recorder.flush()
        for message in batch:
            if message.id in failed:
                exhausted = 0 <= retries < message.receive_count
                if not exhausted or not await self._give_up(name, message, error):
                    continue  # it comes back after its visibility timeout
            if not await self.manager.q(self.manager.queues.delete, name, message.receipt_handle):
                log.info(
                    "mapping %s: message %s was redelivered before it was deleted",
                    self.record.id,
                    message.id,
                )

    async def _give_up(self, name: str, message: Message, error: FireboxError | None) -> bool:
        """Send a message that used up its retries to the failure destination; False if that failed."""
        destination = self.config.destination_on_failure
        if destination is None:
            return False
        attributes = {**message.attributes, "FireboxSourceQueue": name, "FireboxMessageId": message.id,
                      "FireboxMappingId": self.record.id, "FireboxCondition": "RetryAttemptsExhausted",
                      "FireboxErrorCode": error.code if error is not None else "BatchItemFailure",
                      "ApproximateReceiveCount": str(message.receive_count)}  # fmt: skip
        try:
            await self.manager.q(
                self.manager.queues.send, destination, message.body, attributes=attributes
            )
        except Exception as exc:  # kept in the source queue: it comes back and is tried again
            self.stats.problem = f"cannot send to failure destination {destination}: {exc}"
            return False
        self.stats.sent_to_destination += 1
        return True


class _StreamPoller(_Poller):
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
            max_age = config.maximum_record_age_s or -1
            if max_age >= 0:
                now = time.time()
                expired = 0
                while expired < len(records) and now - records[expired].arrival_ts > max_age:
                    expired += 1
                if expired:
                    await self._give_up(
                        shard, records[:expired], attempts, "RecordAgeExceeded", None
                    )
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
                first_failed = len(records)
                if config.report_failures:
                    seqs = [r.sequence_number for r in records]
                    failed = failed_items(result.output, seqs)
                    if failed is None:
                        first_failed = 0
                    elif failed:
                        first_failed = min(seqs.index(s) for s in failed)
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
            if 0 <= config.maximum_retry_attempts < attempts:
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
        fn = self.record
        body = json.dumps({
            "requestContext": {"requestId": str(uuid.uuid4()),
                               "functionArn": arn("lambda", f"function:{fn.function}:{fn.qualifier}"),
                               "condition": condition, "approximateInvokeCount": attempts},
            "responseContext": {"statusCode": 200, "executedVersion": version or fn.qualifier,
                                "functionError": error.code if error is not None else "Unhandled"},
            "version": "1.0",
            "timestamp": _iso(time.time()),
            "KinesisBatchInfo": {"shardId": shard, "startSequenceNumber": records[0].sequence_number,
                                 "endSequenceNumber": records[-1].sequence_number,
                                 "approximateArrivalOfFirstRecord": _iso(records[0].arrival_ts),
                                 "approximateArrivalOfLastRecord": _iso(records[-1].arrival_ts),
                                 "batchSize": len(records), "streamArn": source_arn("stream", fn.source)},
        }).encode()  # fmt: skip
        while True:
            try:
                await self.manager.q(self.manager.queues.send, destination, body)
                break
            except Exception as exc:  # never skip records the destination did not take
                self.stats.problem = f"cannot send to failure destination {destination}: {exc}"
                if await self.backoff():
                    raise _Stopped from exc
        self.stats.sent_to_destination += len(records)


# --- the manager ------------------------------------------------------------------------


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
        self._executor = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="mappings")
        self._pollers: dict[str, _Poller] = {}
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
        self._executor.shutdown(wait=False, cancel_futures=True)

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
                    poller = (_QueuePoller if record.source_kind == "queue" else _StreamPoller)(
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
            else:
                await self.q(self.streams.describe_stream, name)  # StreamNotFound

    async def create(
        self,
        function: str,
        source: str,
        config: dict[str, Any] | None = None,
        *,
        qualifier: str | None = None,
        enabled: bool = True,
    ) -> MappingRecord:
        """Create a mapping from `queue:NAME` or `stream:NAME` to `function[:qualifier]` and
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
        return {**describe(record), "polling": mapping_id in self._pollers,
                **asdict(self.stats_of(mapping_id))}  # fmt: skip


def _shape(record: MappingRecord) -> tuple[str, str, str]:
    return record.function, record.qualifier, json.dumps(record.config, sort_keys=True)


__all__ = [
    "MappingConfig",
    "MappingManager",
    "MappingNotFound",
    "MappingStats",
    "describe",
    "failed_items",
    "kinesis_event",
    "parse_source",
    "sqs_event",
]
