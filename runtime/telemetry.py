"""Invocation logs (START/END/REPORT like Lambda's) and usage records, recorded off the
request path in batches (metering layer)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable

from firebox.runtime.errors import FireboxError
from firebox.runtime.specs import InvocationResult
from firebox.runtime.storage.telemetry import LogRecord, TelemetryStore, UsageRecord

log = logging.getLogger("firebox.telemetry")

FLUSH_PERIOD_S = 0.2
#: Retention and the stored-log caps apply at least this often (sooner after much output).
PRUNE_PERIOD_S = 60.0
MAX_BUFFERED = 50_000


def billed_ms(duration_ms: float) -> int:
    """Return the billed duration: rounded up to the next millisecond, as Lambda bills."""
    return max(1, math.ceil(duration_ms))


def error_lines(error: FireboxError) -> str:
    """Return an invocation's error as its log shows it: `[ERROR] Type: message`, then the
    handler's traceback when it raised (as Lambda's runtime logs it)."""
    payload = getattr(error, "payload", None)
    if not isinstance(payload, dict):
        return f"[ERROR] {error.code}: {error.message}\n"
    text = f"[ERROR] {payload.get('errorType', 'Error')}: {payload.get('errorMessage', '')}\n"
    stack = [str(frame) for frame in payload.get("stackTrace") or []]
    if stack:
        text += "Traceback (most recent call last):\n" + "".join(
            frame if frame.endswith("\n") else frame + "\n" for frame in stack
        )
    return text


def framed_log(result: InvocationResult, version: str, memory_mb: int, duration_ms: float) -> str:
    """Return the invocation's log framed by Lambda's START / END / REPORT lines."""
    rid = result.request_id
    body = result.log if not result.log or result.log.endswith("\n") else result.log + "\n"
    error = ""
    if result.error is not None:
        body += error_lines(result.error)
        error = f"\tError: {result.error.code}"
    # Only core modules report their linear memory (wasmtime-py cannot read a component's
    # memories): a measurement that was not made is left out rather than shown as 0 MB.
    used = (
        f"\tMax Memory Used: {math.ceil(result.memory_bytes / (1024 * 1024))} MB"
        if result.memory_bytes
        else ""
    )
    return (
        f"START RequestId: {rid} Version: {version}\n"
        f"{body}"
        f"END RequestId: {rid}\n"
        f"REPORT RequestId: {rid}\tDuration: {duration_ms:.2f} ms\t"
        f"Billed Duration: {billed_ms(duration_ms)} ms\tMemory Size: {memory_mb} MB"
        f"{used}\tFuel: {result.fuel}"
        f"{'' if result.warm else chr(9) + 'Cold Start: true'}{error}\n"
    )


class Recorder:
    """Buffers logs and usage records and writes them in batches from a background task.

    A record costs the request path one list append; a crash loses at most the last
    FLUSH_PERIOD_S of telemetry, never an invocation's result.
    """

    def __init__(
        self,
        store: TelemetryStore,
        retention_s: float,
        clock: Callable[[], float] = time.time,
        *,
        per_function_bytes: int | None = None,
        total_bytes: int | None = None,
    ) -> None:
        self.store = store
        self.retention_s = retention_s
        #: Caps on stored log text (None: none), enforced by the prune.
        self.per_function_bytes = per_function_bytes
        self.total_bytes = total_bytes
        #: Log text written since the last prune: past a quarter of a cap, prune at once.
        self._written_since_prune = 0
        self.clock = clock
        self._logs: list[LogRecord] = []
        self._usage: list[UsageRecord] = []
        # One flush at a time: a flush that finds the buffer empty must still wait for
        # the write already under way (whose records may be the caller's), or a queue
        # poller deletes messages whose log lines are not stored yet.
        self._flushing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._last_prune = 0.0
        self.dropped = 0
        #: Called with every usage record, buffered or dropped (the Prometheus counters).
        self.listeners: list[Callable[[UsageRecord], None]] = []

    def record(
        self,
        function: str,
        version: str,
        result: InvocationResult,
        *,
        memory_mb: int,
        request_bytes: int,
        response_bytes: int,
    ) -> None:
        """Record one invocation that ran (successfully or not)."""
        duration_ms = result.duration_s * 1000
        now = self.clock()
        record = UsageRecord(
            function=function,
            version=version,
            request_id=result.request_id,
            ts=now,
            outcome="ok" if result.error is None else "error",
            error_type=result.error.code if result.error is not None else None,
            duration_ms=duration_ms,
            billed_ms=billed_ms(duration_ms),
            memory_mb=memory_mb,
            peak_memory_bytes=result.memory_bytes,
            fuel=result.fuel,
            request_bytes=request_bytes,
            response_bytes=response_bytes,
            cold=not result.warm,
        )
        for listener in self.listeners:
            listener(record)
        if len(self._logs) >= MAX_BUFFERED:
            self.dropped += 1
            return
        text = framed_log(result, version, memory_mb, duration_ms)
        self._written_since_prune += len(text)
        self._logs.append(LogRecord(function, version, result.request_id, now, text))
        self._usage.append(record)

    def record_rejected(
        self,
        function: str,
        version: str,
        request_id: str,
        error_type: str,
        message: str,
        *,
        memory_mb: int,
        request_bytes: int,
    ) -> None:
        """Record an invocation refused before it ran (throttled, payload too large)."""
        now = self.clock()
        outcome = "throttled" if error_type == "Throttled" else "error"
        self._logs.append(
            LogRecord(
                function,
                version,
                request_id,
                now,
                f"REJECTED RequestId: {request_id}\t{error_type}: {message}\n",
            )
        )
        record = UsageRecord(
            function, version, request_id, now, outcome, error_type,
            0.0, 0, memory_mb, 0, 0, request_bytes, 0, False,
        )  # fmt: skip
        for listener in self.listeners:
            listener(record)
        self._usage.append(record)

    async def start(self) -> None:
        """Start the background flusher."""
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Flush what is buffered and stop."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    async def flush(self, *, strict: bool = False) -> None:
        """Write everything buffered now (and wait for a write already under way).

        When the store cannot take the records they are kept for the next try; with
        `strict` the error is raised too, so a caller that must not go on without its
        records stored (a queue poller about to delete messages) can stop.
        """
        async with self._flushing:
            logs, self._logs = self._logs, []
            usage, self._usage = self._usage, []
            if not (logs or usage):
                return
            try:
                await asyncio.to_thread(self.store.write, logs, usage)
            except Exception as exc:  # the database is down: keep the records for the next try
                log.warning("could not write telemetry (%s); will retry", exc)
                self._logs[:0] = logs
                self._usage[:0] = usage
                if strict:
                    raise

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_PERIOD_S)
            await self.flush()
            now = self.clock()
            caps = [c for c in (self.per_function_bytes, self.total_bytes) if c is not None]
            soon = bool(caps) and self._written_since_prune > min(caps) // 4
            if soon or now - self._last_prune > PRUNE_PERIOD_S:
                await self.prune(now)

    async def prune(self, now: float | None = None) -> None:
        """Apply retention and the stored-log caps now (logged, never raised)."""
        now = self.clock() if now is None else now
        self._last_prune = now
        self._written_since_prune = 0
        try:
            await asyncio.to_thread(
                self.store.prune,
                now - self.retention_s,
                self.per_function_bytes,
                self.total_bytes,
            )
        except Exception as exc:
            log.warning("could not prune stored logs (%s); will retry", exc)
