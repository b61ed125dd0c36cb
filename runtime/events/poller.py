"""What every event source mapping poller shares (events layer).

Its tasks and how they stop, its backoff, one invocation, and the counters it keeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from firebox.runtime.errors import FireboxError, Throttled
from firebox.runtime.events.mapping_config import MappingConfig
from firebox.runtime.events.retry import DoublingBackoff
from firebox.runtime.storage.mappings import MappingRecord

if TYPE_CHECKING:
    from firebox.runtime.events.mappings import MappingManager
    from firebox.runtime.specs import InvocationResult

log = logging.getLogger("firebox.mappings")


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


class Poller:
    """The running side of one enabled mapping: its tasks and how they stop."""

    def __init__(self, manager: MappingManager, record: MappingRecord) -> None:
        self.manager = manager
        self.record = record
        self.config = MappingConfig.parse(record.source_kind, record.config)
        self.stats = manager.stats_of(record.id)
        self.stopping = asyncio.Event()
        self.loops: set[asyncio.Task[None]] = set()  # cancelled at once on stop
        self.work: set[asyncio.Task[None]] = set()  # given DRAIN_S to finish on stop
        self.retry = DoublingBackoff(manager.retry_base_s, manager.retry_max_s)

    def spawn(self, coro: Any, *, work: bool = False) -> asyncio.Task[None]:
        """Run `coro` as one of the poller's tasks (a `work` one is drained on stop); returns it."""
        tasks = self.work if work else self.loops
        task: asyncio.Task[None] = asyncio.create_task(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        task.add_done_callback(self._log_crash)
        return task

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
        return await self.sleep(self.retry.take())

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
        self.retry.reset()

    def failed(self, result: InvocationResult) -> None:
        self.stats.failures += 1
        error = result.error
        self.stats.last_processing_result = "PROBLEM: Function call failed"
        self.stats.problem = error.message if error is not None else "batch item failures"
