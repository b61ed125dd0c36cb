"""The queue poller of event source mappings: batches in flight, deletes, retries (events layer).

It keeps up to `maximum_concurrency` batches in flight. A batch is deleted only after
the function succeeds (with ReportBatchItemFailures, only its successful messages), so
failed messages come back after the queue's visibility timeout and the queue's own
redrive policy applies; with `maximum_retry_attempts` n, a message that failed n + 1
deliveries goes to `destination_on_failure` instead.
"""

from __future__ import annotations

import asyncio
import logging
import time

from firebox.runtime.errors import FireboxError, Throttled
from firebox.runtime.events.batch_shapes import failed_items, sqs_event, sqs_failure_attributes
from firebox.runtime.events.mapping_config import DEFAULT_CONCURRENCY
from firebox.runtime.events.poller import Poller
from firebox.runtime.events.queue import MAX_WAIT_S, Message
from firebox.runtime.events.retry import retries_exhausted

log = logging.getLogger("firebox.mappings")


class QueuePoller(Poller):
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
                time.monotonic() - started + self.retry.delay_s > self.visibility_s / 2
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
        await self.manager.node.recorder.flush(strict=True)
        for message in batch:
            if message.id in failed:
                exhausted = retries_exhausted(message.receive_count, retries)
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
        error_code = error.code if error is not None else None
        attributes = sqs_failure_attributes(self.record.id, name, message, error_code)
        try:
            await self.manager.q(
                self.manager.queues.send, destination, message.body, attributes=attributes
            )
        except Exception as exc:  # kept in the source queue: it comes back and is tried again
            self.stats.problem = f"cannot send to failure destination {destination}: {exc}"
            return False
        self.stats.sent_to_destination += 1
        return True
