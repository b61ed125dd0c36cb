"""Asynchronous (Event) invocations: accepted into a durable queue before the 202, delivered at
least once, retried with backoff, expired by age, routed to destinations and a DLQ (events layer).

Each accepted event is one message on the internal queue `firebox-async-invocations`
holding {request_id, function, qualifier, version, payload, accepted_at, attempts, depth}: `version`
is the one picked when the event was accepted (a weighted alias picks once), so the
dispatcher extends visibility over *that* version's timeout and invokes that version.
A retry is a *new* message (attempts + 1, delayed by the backoff) sent before the old
one is deleted, so attempts are counted exactly even when a node dies mid-delivery (the
old message then simply comes back after its visibility timeout: at least once).
`depth` counts the function destinations an event came through: a chain of them (a
function whose destination is itself, A -> B -> A) stops at MAX_CHAIN_DEPTH invocations,
as Lambda's recursive loop detection does, and the stopped event goes to the failure
destination if that is a queue, and to the DLQ.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import msgpack
from firebox.runtime.config import FIREBOX_ASYNC_VISIBILITY_S, arn
from firebox.runtime.errors import BadRequest, FireboxError, FunctionNotFound, Throttled
from firebox.runtime.events.queue import Message, QueueAttributes, QueueBackend, check_public
from firebox.runtime.events.retry import (
    BACKOFF_BASE_S,
    DEFAULT_MAX_EVENT_AGE_S,
    DEFAULT_MAX_RETRIES,
    MAX_RETRIES,
    backoff_s,
    retries_exhausted,
    too_old,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from firebox.runtime.node import Node
    from firebox.runtime.specs import InvocationResult

log = logging.getLogger("firebox.async")
T = TypeVar("T")

ASYNC_QUEUE = "firebox-async-invocations"
# Extra visibility beyond the function's timeout, so a slow invocation is not redelivered;
# a received event is hidden twice that long until its function's timeout is known. This
# is how long an event held by a node that died waits before another node delivers it.
VISIBILITY_MARGIN_S = FIREBOX_ASYNC_VISIBILITY_S.get()
# Lambda's recursive loop detection: a chain of function destinations (A -> B -> A ...)
# is stopped when an event would be the 17th invocation of one chain.
MAX_CHAIN_DEPTH = 16
# The failure condition of an event stopped that way (Lambda's own name).
RECURSION_CONDITION = "RecursiveInvocationDetected"


@dataclass(frozen=True)
class Destination:
    """Where a result record goes: another function (invoked async) or a firebox queue."""

    type: str
    name: str

    @classmethod
    def parse(cls, data: Any, what: str) -> Destination | None:
        """Validate a destination from a request body; raises BadRequest."""
        if data is None:
            return None
        if (
            not isinstance(data, dict)
            or data.get("type") not in ("function", "queue")
            or not isinstance(data.get("name"), str)
        ):
            raise BadRequest(f'`{what}` must be {{"type": "function" | "queue", "name": ...}}')
        return cls(data["type"], data["name"])


@dataclass(frozen=True)
class EventInvokeConfig:
    """Retries, maximum event age and destinations of a function's async invocations."""

    maximum_retry_attempts: int = DEFAULT_MAX_RETRIES
    maximum_event_age_s: float = DEFAULT_MAX_EVENT_AGE_S
    on_success: Destination | None = None
    on_failure: Destination | None = None
    dead_letter_queue: str | None = None
    backoff_base_s: float = BACKOFF_BASE_S

    @classmethod
    def parse(cls, data: dict[str, Any]) -> EventInvokeConfig:
        """Validate a config from a request body; raises BadRequest naming the bad field."""
        known = {"maximum_retry_attempts", "maximum_event_age_s", "on_success", "on_failure",
                 "dead_letter_queue", "backoff_base_s"}  # fmt: skip
        unknown = sorted(set(data) - known)
        if unknown:
            raise BadRequest(f"unknown event-invoke setting(s): {', '.join(unknown)}")
        retries = data.get("maximum_retry_attempts", DEFAULT_MAX_RETRIES)
        if (
            not isinstance(retries, int)
            or isinstance(retries, bool)
            or not 0 <= retries <= MAX_RETRIES
        ):
            raise BadRequest(f"maximum_retry_attempts must be an integer 0..{MAX_RETRIES}")
        age = data.get("maximum_event_age_s", DEFAULT_MAX_EVENT_AGE_S)
        if (
            not isinstance(age, int | float)
            or isinstance(age, bool)
            or not 1 <= age <= DEFAULT_MAX_EVENT_AGE_S
        ):
            raise BadRequest(f"maximum_event_age_s must be between 1 and {DEFAULT_MAX_EVENT_AGE_S}")
        base = data.get("backoff_base_s", BACKOFF_BASE_S)
        if not isinstance(base, int | float) or not 0 <= base <= 60:
            raise BadRequest("backoff_base_s must be between 0 and 60")
        dlq = data.get("dead_letter_queue")
        if dlq is not None and not isinstance(dlq, str):
            raise BadRequest("dead_letter_queue must be a queue name")
        return cls(
            maximum_retry_attempts=retries,
            maximum_event_age_s=float(age),
            on_success=Destination.parse(data.get("on_success"), "on_success"),
            on_failure=Destination.parse(data.get("on_failure"), "on_failure"),
            dead_letter_queue=dlq,
            backoff_base_s=float(base),
        )

    def queues(self) -> list[tuple[str, str]]:
        """Return (what, queue name) of every queue this config delivers to."""
        out = [("dead-letter queue", self.dead_letter_queue)] if self.dead_letter_queue else []
        for what, dest in (("on_success", self.on_success), ("on_failure", self.on_failure)):
            if dest is not None and dest.type == "queue":
                out.append((f"{what} destination", dest.name))
        return out

    def to_dict(self) -> dict[str, Any]:
        """Return the stored/wire form."""
        return asdict(self)


@dataclass
class AsyncStats:
    """Counters of this node's async invocations since it started."""

    accepted: int = 0
    delivered: int = 0
    succeeded: int = 0
    retries: int = 0
    failed: int = 0
    expired: int = 0
    dead_lettered: int = 0
    recursion_stopped: int = 0
    in_flight: int = field(default=0)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class AsyncInvoker:
    """Accepts Event invocations durably and delivers them from a background dispatcher."""

    def __init__(self, node: Node, queues: QueueBackend, concurrency: int = 8) -> None:
        self.node = node
        self.queues = queues
        self.configs = node.stores.event_configs
        self.concurrency = concurrency
        self.stats = AsyncStats()
        self.rng = random.Random()
        # Queue calls block (SQLite locks, Redis round trips): give them their own threads
        # so they never starve the default executor the registry uses.
        self._executor = ThreadPoolExecutor(
            max_workers=concurrency + 2, thread_name_prefix="async-q"
        )
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._receiver: asyncio.Task[None] | None = None

    async def _q(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    async def start(self) -> None:
        """Create the internal queue if needed and start delivering."""
        await self._q(
            self.queues.create_queue, ASYNC_QUEUE, QueueAttributes(visibility_timeout_s=60)
        )
        self._receiver = asyncio.create_task(self._receive_loop())

    async def stop(self) -> None:
        """Stop delivering; messages being processed come back after their visibility timeout."""
        if self._receiver is not None:
            self._receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._receiver
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        # Wait for the calls still running on the threads (a receive waits at most 1 s):
        # the node closes the queue next, and a SQLite connection closed under a thread
        # still inside it crashes the process (seen in the suite as a segfault).
        await asyncio.to_thread(self._executor.shutdown, True, cancel_futures=True)

    # --- configuration --------------------------------------------------------------

    def config(self, function: str, qualifier: str) -> EventInvokeConfig:
        """Return the config for a function and qualifier (the unqualified one as fallback)."""
        data = self.configs.get(function, qualifier)
        if data is None and qualifier != "$LATEST":
            data = self.configs.get(function, "$LATEST")
        if data is None:
            return EventInvokeConfig()
        return EventInvokeConfig.parse(
            {k: v for k, v in data.items() if v is not None or k in ("on_success", "on_failure")}
        )

    def put_config(self, function: str, qualifier: str, data: dict[str, Any]) -> EventInvokeConfig:
        """Validate and store a config; returns it. Raises BadRequest."""
        config = EventInvokeConfig.parse(data)
        for what, queue in config.queues():
            check_public(queue, what)
            self.queues.get_attributes(queue)  # QueueNotFound (404) when it does not exist
        self.configs.put(function, qualifier, config.to_dict())
        return config

    # --- accept ---------------------------------------------------------------------

    async def enqueue(
        self,
        function: str,
        qualifier: str,
        payload: bytes,
        idempotency_key: str | None = None,
        *,
        version: str | None = None,
        depth: int = 0,
    ) -> str:
        """Write the event to the durable queue and return its request id (before the 202).

        `version` is the version the qualifier resolved to for this event; without it
        (a destination's event) the qualifier is resolved once, at delivery.

        A repeated idempotency key within the dedup window (5 minutes) is accepted once:
        the duplicate returns the same request id and is not invoked again.
        """
        if idempotency_key:
            request_id = str(
                uuid.uuid5(uuid.NAMESPACE_URL, f"firebox:{function}:{idempotency_key}")
            )
        else:
            request_id = str(uuid.uuid4())
        await self._send(
            {"request_id": request_id, "function": function, "qualifier": qualifier,
             "version": version, "payload": payload, "accepted_at": time.time(), "attempts": 0,
             "depth": depth},
            dedup_id=f"{function}:{idempotency_key}" if idempotency_key else None,
        )  # fmt: skip
        return request_id

    async def _send(
        self, event: dict[str, Any], *, delay_s: float = 0.0, dedup_id: str | None = None
    ) -> None:
        body = msgpack.packb(event, use_bin_type=True)
        await self._q(self.queues.send, ASYNC_QUEUE, body, delay_s=delay_s, dedup_id=dedup_id)
        if event["attempts"] == 0:
            self.stats.accepted += 1

    # --- deliver --------------------------------------------------------------------

    async def _receive_loop(self) -> None:
        while True:
            await self._slots.acquire()
            try:
                messages = await self._q(
                    self.queues.receive, ASYNC_QUEUE, 1, 2 * VISIBILITY_MARGIN_S, 1.0
                )
            except Exception as exc:  # the backend is briefly unreachable: keep trying
                self._slots.release()
                log.warning("async queue receive failed: %s", exc)
                await asyncio.sleep(1.0)
                continue
            if not messages:
                self._slots.release()
                continue
            task = asyncio.create_task(self._deliver(messages[0]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, message: Message) -> None:
        self.stats.in_flight += 1
        try:
            await self._process(message)
        except Exception:
            log.exception("async delivery failed; the event returns after its visibility timeout")
        finally:
            self.stats.in_flight -= 1
            self._slots.release()

    async def _process(self, message: Message) -> None:
        event = msgpack.unpackb(message.body, raw=False)
        function, qualifier = event["function"], event["qualifier"]
        try:
            config = self.config(function, qualifier)
            resolved = self.node.resolve(function, qualifier, event.get("version"))
        except FunctionNotFound:
            # Deleted since it was accepted: nothing can ever run it.
            await self._finish(message, event, None, "FunctionNotFound", EventInvokeConfig())
            return
        if event.get("depth", 0) >= MAX_CHAIN_DEPTH:
            self.stats.recursion_stopped += 1
            log.warning(
                "stopped a loop of async destinations at %s (%d invocations in one chain)",
                function, MAX_CHAIN_DEPTH,
            )  # fmt: skip
            await self._finish(message, event, None, RECURSION_CONDITION, config)
            return
        if too_old(event["accepted_at"], config.maximum_event_age_s, time.time()):
            self.stats.expired += 1
            await self._finish(message, event, None, "EventAgeExceeded", config)
            return
        await self._q(
            self.queues.change_visibility,
            ASYNC_QUEUE,
            message.receipt_handle,
            resolved.deployed.timeout_s + VISIBILITY_MARGIN_S,
        )
        self.stats.delivered += 1
        try:
            result = await self.node.invoke(
                function, event["payload"], resolved=resolved, request_id=event["request_id"]
            )
        except Throttled:
            # Throttles are retried without using up attempts, as Lambda does.
            await self._retry(message, event, backoff_s(1, config.backoff_base_s, self.rng))
            return
        except FireboxError as exc:
            await self._finish(message, event, None, exc.code, config)
            return
        if result.error is None:
            self.stats.succeeded += 1
            await self._finish(message, event, result, "Success", config)
            return
        attempts = event["attempts"] + 1
        if not retries_exhausted(attempts, config.maximum_retry_attempts):
            self.stats.retries += 1
            await self._retry(
                message,
                {**event, "attempts": attempts},
                backoff_s(attempts, config.backoff_base_s, self.rng),
            )
            return
        await self._finish(
            message, {**event, "attempts": attempts}, result, "RetriesExhausted", config
        )

    async def _retry(self, message: Message, event: dict[str, Any], delay_s: float) -> None:
        await self._send(event, delay_s=delay_s)
        await self._q(self.queues.delete, ASYNC_QUEUE, message.receipt_handle)

    async def _finish(
        self,
        message: Message,
        event: dict[str, Any],
        result: InvocationResult | None,
        condition: str,
        config: EventInvokeConfig,
    ) -> None:
        """Send the destination record (and the DLQ message on failure), then delete the event."""
        if result is not None:
            # The invocation's log is stored before its event is deleted (as the queue
            # poller does): a node killed right after leaves no processed event without trace.
            await self.node.recorder.flush(strict=True)
        depth = event.get("depth", 0) + 1
        if condition == "Success":
            if config.on_success is not None:
                await self._route(config.on_success, self.record(event, result, condition), depth)
        else:
            self.stats.failed += 1
            # A stopped loop never feeds a function again (that would restart the loop).
            on_failure = config.on_failure
            if on_failure is not None and not (
                condition == RECURSION_CONDITION and on_failure.type == "function"
            ):
                await self._route(on_failure, self.record(event, result, condition), depth)
            if config.dead_letter_queue:
                error = (
                    result.error.code
                    if result is not None and result.error is not None
                    else condition
                )
                await self._q(
                    self.queues.send, config.dead_letter_queue, event["payload"],
                    attributes={"RequestID": event["request_id"], "ErrorCode": error, "Condition": condition},
                )  # fmt: skip
                self.stats.dead_lettered += 1
        await self._q(self.queues.delete, ASYNC_QUEUE, message.receipt_handle)

    def record(
        self, event: dict[str, Any], result: InvocationResult | None, condition: str
    ) -> dict[str, Any]:
        """Return Lambda's destination record for an event's outcome."""
        try:
            request_payload: Any = json.loads(event["payload"])
        except (ValueError, UnicodeDecodeError):
            request_payload = None
        response: dict[str, Any] = {
            "statusCode": 200,
            "executedVersion": result.version if result else None,
        }
        response_payload: Any = None
        if result is not None and result.error is None:
            try:
                response_payload = json.loads(result.output) if result.output else None
            except (ValueError, UnicodeDecodeError):
                response_payload = result.output.decode("utf-8", "replace")
        elif result is not None and result.error is not None:
            response["functionError"] = "Unhandled"
            err = result.error
            response_payload = getattr(err, "payload", None) or {
                "errorMessage": err.message,
                "errorType": err.code,
            }
        return {
            "version": "1.0",
            "timestamp": _iso(time.time()),
            "requestContext": {
                "requestId": event["request_id"],
                "functionArn": arn("lambda", f"function:{event['function']}:{event['qualifier']}"),
                "condition": condition,
                "approximateInvokeCount": max(
                    1, event["attempts"] + (1 if condition == "Success" else 0)
                ),
            },
            "requestPayload": request_payload,
            "responseContext": response,
            "responsePayload": response_payload,
        }

    async def _route(self, destination: Destination, record: dict[str, Any], depth: int) -> None:
        body = json.dumps(record).encode()
        try:
            if destination.type == "queue":
                await self._q(self.queues.send, destination.name, body)
            else:
                await self.enqueue(destination.name, "$LATEST", body, depth=depth)
        except FireboxError as exc:
            log.warning(
                "could not deliver to destination %s %s: %s",
                destination.type,
                destination.name,
                exc,
            )
