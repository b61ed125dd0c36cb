"""The scheduler: fires `rate(...)` and `cron(...)` schedules by invoking their functions
(events layer).

A loop sleeps until the next due tick of any enabled schedule (waking at least every
second to see other nodes' changes, and at once on `notify()`), claims the tick in the
registry and hands the event to the async invocation path (`node.enqueue`: durable,
retried), or invokes directly when the node has no such path. Claiming is a
compare-and-set on `last_fired`, so each tick fires once however many nodes run a
scheduler on the same registry. A slow function never holds up the loop: each firing is
a task of its own.

Missed ticks. A tick is *due* when it falls while a scheduler is running and the
schedule is enabled: due ticks fire. A tick is *missed* when it fell while no scheduler
was running (every node was down) or while the schedule was disabled, that is after the
schedule's last fired tick (or its creation) and before a scheduler started (or the
schedule was enabled again). Each schedule's `catch_up` decides what missed ticks do:

- `skip` (the default): missed ticks never fire; the schedule's next tick after the
  start fires as usual.
- `once`: if at least one tick was missed, the most recent missed tick fires once, right
  away, when the scheduler starts (or the schedule is enabled again); older missed ticks
  never fire. Then the schedule continues with its next tick.

Changing a schedule's expression does not count as a start. A running scheduler that
falls behind (a blocked event loop, a slow database) fires only the most recent due tick
and moves on, whatever `catch_up` says.

The outbox. Claiming a tick writes its event to the registry's `schedule_outbox` in the
claim's own transaction; the row is deleted once the async queue took the event. A node
that dies (or cannot reach the queue) in between leaves the row: every scheduler looks
for rows older than FIREBOX_SCHEDULE_OUTBOX_S, takes one over by compare-and-set and
enqueues it again under the same idempotency key (`schedule:NAME:TIME`), which the
queue's dedup window (5 minutes) drops if the first enqueue did land. So a claimed
tick is never lost, and never fired twice unless its row waited longer than the dedup
window (every node down for 5 minutes between claim and delete).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from firebox.runtime import config
from firebox.runtime.config import account_id, arn, region
from firebox.runtime.errors import FireboxError
from firebox.runtime.events.schedule import Schedule, parse
from firebox.runtime.storage.schedules import OutboxEntry, ScheduleRecord, ScheduleStore

log = logging.getLogger("firebox.scheduler")

# The loop wakes at least this often, so changes made on other nodes are seen within it.
MAX_SLEEP_S = 1.0
# How long stop() waits for firings in progress (a direct invoke may be slow) before
# cancelling them.
STOP_GRACE_S = 10.0
# An outbox row older than this is retried by any scheduler (the normal path deletes it
# within milliseconds of the claim).
OUTBOX_S = config.FIREBOX_SCHEDULE_OUTBOX_S.get()
# For tests: the process kills itself (SIGKILL) at this point of a firing.
KILL_AT = config.FIREBOX_FAULT_KILL_AT.get()


def fault_point(point: str) -> None:
    """Kill this process with SIGKILL if FIREBOX_FAULT_KILL_AT names `point` (tests only)."""
    if point == KILL_AT:
        log.warning("FIREBOX_FAULT_KILL_AT=%s: killing this process", point)
        os.kill(os.getpid(), signal.SIGKILL)


class Invoking(Protocol):
    """What the scheduler needs of a node: direct invoke (and `enqueue` when it has one)."""

    async def invoke(self, name: str, payload: bytes, *, qualifier: str | None = None) -> Any: ...


def schedule_of(record: ScheduleRecord) -> Schedule:
    """Parse a stored schedule; rate ticks count from its creation, to the whole second.

    Raises BadRequest for a bad expression.
    """
    anchor = datetime.fromtimestamp(int(record.created_at), UTC)
    return parse(record.expression, anchor=anchor)


def iso(tick: datetime) -> str:
    """Return a tick as EventBridge writes times: `2024-05-01T12:00:00Z`."""
    return tick.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def scheduled_event(record: ScheduleRecord, tick: datetime) -> dict[str, Any]:
    """Return EventBridge's "Scheduled Event" for a tick of a schedule."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account_id(),
        "time": iso(tick),
        "region": region(),
        "resources": [arn("events", f"rule/{record.name}")],
        "detail": {},
    }


@dataclass
class _Entry:
    """A schedule this scheduler follows, and the next tick it will fire."""

    record: ScheduleRecord
    schedule: Schedule
    due: datetime | None


class Scheduler:
    """Fires every enabled schedule of a registry, each tick once across nodes."""

    def __init__(self, node: Invoking, store: ScheduleStore) -> None:
        self.node = node
        self.store = store
        self.fired = 0  # ticks this scheduler claimed and handed on
        self._entries: dict[str, _Entry] = {}
        self._disabled: set[str] = set()
        self._broken: set[tuple[str, str]] = set()  # (name, expression) logged once
        self._synced_at: float | None = None  # None until the first sync after start()
        self._wake = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None
        self._firing: set[asyncio.Task[None]] = set()
        self._recovering: asyncio.Task[None] | None = None
        self._recovered_at = 0.0
        self.recovered = 0  # outbox rows this scheduler retried

    async def start(self) -> None:
        """Start the loop; schedules with `catch_up="once"` catch up on their first sync."""
        self._entries.clear()
        self._disabled.clear()
        self._synced_at = None
        self._loop = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop the loop; wait up to STOP_GRACE_S for firings in progress, then cancel them."""
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
            self._loop = None
        if self._firing:
            _, pending = await asyncio.wait(self._firing, timeout=STOP_GRACE_S)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def notify(self) -> None:
        """Wake the loop now (a schedule was created, changed or deleted on this node)."""
        self._wake.set()

    def next_fire(self, record: ScheduleRecord, now: datetime | None = None) -> datetime | None:
        """Return when an enabled schedule fires next (None if disabled or never again)."""
        if not record.enabled:
            return None
        try:
            return schedule_of(record).next_after(now or datetime.now(UTC))
        except Exception:  # stored under other rules, or a tick out of range: never
            return None

    # --- the loop ---------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                records = await asyncio.to_thread(self.store.list)
            except Exception as exc:  # the database is briefly unreachable: keep the plan
                log.warning("could not read schedules: %s", exc)
            else:
                self._sync(records, datetime.now(UTC))
            now = datetime.now(UTC)
            for entry in list(self._entries.values()):
                if entry.due is not None and entry.due <= now:
                    try:
                        # The most recent due tick: one firing even if the loop fell behind.
                        tick = entry.schedule.latest_at_or_before(now) or entry.due
                        self._fire(entry.record, tick)
                        entry.due = entry.schedule.next_after(now)
                    except Exception as exc:  # one schedule's error never stops the others
                        self._skip(entry.record, exc)
                        entry.due = None
            self._recover_soon()
            upcoming = [e.due for e in self._entries.values() if e.due is not None]
            delay = MAX_SLEEP_S
            if upcoming:
                delay = min(delay, max(0.0, (min(upcoming) - now).total_seconds()) + 0.001)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)

    def _sync(self, records: list[ScheduleRecord], now: datetime) -> None:
        """Follow the stored schedules: new, changed, enabled, disabled, deleted."""
        starting = self._synced_at is None
        seen_before = self._synced_at or now.timestamp()
        entries: dict[str, _Entry] = {}
        disabled: set[str] = set()
        for record in records:
            if not record.enabled:
                disabled.add(record.name)
                continue
            old = self._entries.get(record.name)
            if old is not None and (old.record.expression, old.record.created_at) == (
                record.expression,
                record.created_at,
            ):
                entries[record.name] = _Entry(record, old.schedule, old.due)
                continue
            try:
                schedule = schedule_of(record)
                # Created since the last look: its first ticks are due, not missed.
                since = now
                if old is None and not starting and record.created_at > seen_before:
                    since = datetime.fromtimestamp(record.created_at, UTC)
                entry = _Entry(record, schedule, schedule.next_after(since))
                activated = starting or record.name in self._disabled
                if old is None and activated and record.catch_up == "once":
                    self._catch_up(record, schedule, now)
            except Exception as exc:  # stored under other rules, or a tick out of range
                self._skip(record, exc)
                continue
            entries[record.name] = entry
        self._entries, self._disabled = entries, disabled
        self._synced_at = now.timestamp()

    def _skip(self, record: ScheduleRecord, exc: Exception) -> None:
        """Log (once per expression) a schedule that cannot run; the others go on."""
        if (record.name, record.expression) not in self._broken:
            self._broken.add((record.name, record.expression))
            why = exc.message if isinstance(exc, FireboxError) else f"{type(exc).__name__}: {exc}"
            log.warning("schedule %s (%s) cannot run, skipped: %s", record.name,
                        record.expression, why)  # fmt: skip

    def _catch_up(self, record: ScheduleRecord, schedule: Schedule, now: datetime) -> None:
        """Fire the most recent missed tick, if any tick was missed."""
        missed = schedule.latest_at_or_before(now)
        reference = record.last_fired if record.last_fired is not None else record.created_at
        if missed is not None and missed.timestamp() > reference:
            log.info("schedule %s catches up once, for %s", record.name, iso(missed))
            self._fire(record, missed)

    def _fire(self, record: ScheduleRecord, tick: datetime) -> None:
        task = asyncio.create_task(self._claim_and_invoke(record, tick))
        self._firing.add(task)
        task.add_done_callback(self._firing.discard)

    async def _claim_and_invoke(self, record: ScheduleRecord, tick: datetime) -> None:
        """Claim the tick (with its outbox row); if this scheduler won it, send the event
        to the function and delete the row."""
        event = record.payload if record.payload is not None else scheduled_event(record, tick)
        payload = json.dumps(event).encode()
        entry = OutboxEntry(record.name, tick.timestamp(), record.function, record.qualifier,
                            payload, time.time())  # fmt: skip
        outbox = entry if getattr(self.node, "enqueue", None) is not None else None
        try:
            won = await asyncio.to_thread(self.store.claim, record.name, entry.tick, outbox)
        except Exception as exc:
            log.warning("could not claim %s of schedule %s: %s", iso(tick), record.name, exc)
            return
        if not won:
            return  # another scheduler fired this tick, or a later one
        self.fired += 1
        enqueue = getattr(self.node, "enqueue", None)
        try:
            if enqueue is not None:
                fault_point("schedule-claimed")
                await self._hand_on(entry)
                fault_point("schedule-enqueued")
                await asyncio.to_thread(self.store.done, entry.name, entry.tick)
            else:
                result = await self.node.invoke(record.function, payload,
                                                qualifier=record.qualifier)  # fmt: skip
                if getattr(result, "error", None) is not None:
                    log.warning("schedule %s: %s failed: %s", record.name, record.function,
                                result.error)  # fmt: skip
        except FireboxError as exc:
            log.warning("schedule %s could not invoke %s: %s", record.name, record.function, exc)
        except Exception:
            log.exception("schedule %s failed to invoke %s", record.name, record.function)

    # --- the outbox -------------------------------------------------------------------

    async def _hand_on(self, entry: OutboxEntry) -> None:
        """Put a claimed tick's event on the async queue (idempotent per tick)."""
        tick = datetime.fromtimestamp(entry.tick, UTC)
        key = f"schedule:{entry.name}:{iso(tick)}"
        await self.node.enqueue(  # type: ignore[attr-defined]
            entry.function, entry.qualifier, entry.payload, idempotency_key=key
        )

    def _recover_soon(self) -> None:
        """Start a look for stale outbox rows, at most every OUTBOX_S / 2 and one at a time."""
        if getattr(self.node, "enqueue", None) is None:
            return
        now = time.monotonic()
        if (self._recovering is not None and not self._recovering.done()) or (
            now - self._recovered_at < OUTBOX_S / 2
        ):
            return
        self._recovered_at = now
        self._recovering = asyncio.create_task(self._recover())

    async def _recover(self) -> None:
        """Retry the outbox rows a node left behind: take each over, enqueue, delete."""
        try:
            stale = await asyncio.to_thread(self.store.stale, time.time() - OUTBOX_S)
            for entry in stale:
                if not await asyncio.to_thread(self.store.retake, entry, time.time()):
                    continue  # another scheduler is on it
                log.warning("schedule %s: retrying the tick %s a node left in the outbox",
                            entry.name, iso(datetime.fromtimestamp(entry.tick, UTC)))  # fmt: skip
                await self._hand_on(entry)
                await asyncio.to_thread(self.store.done, entry.name, entry.tick)
                self.recovered += 1
        except Exception as exc:  # the registry or the queue is unreachable: next time
            log.warning("schedule outbox: %s", exc)
