"""Schedules in the registry: what fires which function, and the tick each last fired
(storage layer).

One SQLAlchemy Core code path for SQLite and PostgreSQL. `claim()` is the compare-and-set
that makes a tick fire once however many schedulers share the registry; with an event it
also writes the tick's outbox row in the same transaction (`schedule_outbox`), which
`done()` deletes once the event is on the async queue. Rows left behind by a node that
died in between are found by `stale()` and retried by whoever wins `retake()`.
"""

from __future__ import annotations

import builtins
import json
import time
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa
from firebox.runtime.errors import Conflict, ScheduleNotFound
from firebox.runtime.storage.registry import LATEST
from firebox.runtime.storage.schema import schedule_outbox, schedules

CATCH_UP_RULES = ("skip", "once")
UPDATABLE = ("function", "qualifier", "expression", "payload", "catch_up", "enabled")


@dataclass(frozen=True)
class ScheduleRecord:
    """One schedule as stored; `payload` None means the EventBridge scheduled-event payload."""

    name: str
    function: str
    expression: str
    qualifier: str = LATEST
    payload: Any = None
    catch_up: str = "skip"
    enabled: bool = True
    last_fired: float | None = None  # the tick (epoch seconds) last claimed
    created_at: float = 0.0


@dataclass(frozen=True)
class OutboxEntry:
    """A claimed tick's event, waiting to be handed to the async queue."""

    name: str
    tick: float
    function: str
    qualifier: str
    payload: bytes
    claimed_at: float


def _record(row: sa.Row[Any]) -> ScheduleRecord:
    return ScheduleRecord(
        name=row.name,
        function=row.function,
        expression=row.expression,
        qualifier=row.qualifier,
        payload=json.loads(row.payload) if row.payload is not None else None,
        catch_up=row.catch_up,
        enabled=bool(row.enabled),
        last_fired=row.last_fired,
        created_at=row.created_at,
    )


def _payload(value: Any) -> str | None:
    return json.dumps(value, sort_keys=True) if value is not None else None


class ScheduleStore:
    """Create, read, change, delete and claim schedules on the registry's database."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def create(self, record: ScheduleRecord) -> ScheduleRecord:
        """Store a new schedule (created now, never fired); returns it. Raises Conflict."""
        stored = replace(record, last_fired=None, created_at=time.time())
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    schedules.insert().values(
                        name=stored.name,
                        function=stored.function,
                        qualifier=stored.qualifier,
                        expression=stored.expression,
                        payload=_payload(stored.payload),
                        catch_up=stored.catch_up,
                        enabled=stored.enabled,
                        last_fired=None,
                        created_at=stored.created_at,
                    )
                )
        except sa.exc.IntegrityError:
            raise Conflict(f"schedule {record.name} already exists") from None
        return stored

    def get(self, name: str) -> ScheduleRecord:
        """Return a schedule; raises ScheduleNotFound."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(schedules).where(schedules.c.name == name)).first()
        if row is None:
            raise ScheduleNotFound(name)
        return _record(row)

    def list(self) -> list[ScheduleRecord]:
        """Return every schedule, by name."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(schedules).order_by(schedules.c.name)).all()
        return [_record(row) for row in rows]

    def update(self, name: str, changes: dict[str, Any]) -> ScheduleRecord:
        """Change some of UPDATABLE (`payload` None restores the default); returns the schedule.

        Raises ScheduleNotFound; a key outside UPDATABLE is a programming error (ValueError).
        """
        unknown = set(changes) - set(UPDATABLE)
        if unknown:
            raise ValueError(f"not updatable: {', '.join(sorted(unknown))}")
        values = dict(changes)
        if "payload" in values:
            values["payload"] = _payload(values["payload"])
        with self.engine.begin() as conn:
            if values:
                result = conn.execute(
                    schedules.update().where(schedules.c.name == name).values(**values)
                )
                if result.rowcount == 0:
                    raise ScheduleNotFound(name)
            row = conn.execute(sa.select(schedules).where(schedules.c.name == name)).first()
        if row is None:
            raise ScheduleNotFound(name)
        return _record(row)

    def delete(self, name: str) -> None:
        """Delete a schedule; raises ScheduleNotFound."""
        with self.engine.begin() as conn:
            result = conn.execute(schedules.delete().where(schedules.c.name == name))
        if result.rowcount == 0:
            raise ScheduleNotFound(name)

    def claim(self, name: str, tick: float, event: OutboxEntry | None = None) -> bool:
        """Claim the tick at `tick` (epoch seconds) for this caller; True means: fire it.

        A compare-and-set: only one of any number of concurrent callers sees True, and a
        tick at or before the last claimed one is never claimed again. On PostgreSQL the
        second UPDATE waits for the first to commit, then re-reads the row (READ COMMITTED)
        and matches nothing; SQLite serializes writers. With `event`, the tick's outbox
        row is written in the same transaction: claimed means recorded.
        """
        query = (
            schedules.update()
            .where(
                schedules.c.name == name,
                schedules.c.enabled == sa.true(),
                sa.or_(schedules.c.last_fired.is_(None), schedules.c.last_fired < tick),
            )
            .values(last_fired=tick)
        )
        with self.engine.begin() as conn:
            won = conn.execute(query).rowcount == 1
            if won and event is not None:
                conn.execute(
                    schedule_outbox.insert().values(
                        name=name, tick=tick, function=event.function,
                        qualifier=event.qualifier, payload=event.payload.decode(),
                        claimed_at=event.claimed_at,
                    )
                )  # fmt: skip
            return won

    def done(self, name: str, tick: float) -> None:
        """Delete a tick's outbox row: its event is on the async queue."""
        with self.engine.begin() as conn:
            conn.execute(
                schedule_outbox.delete().where(
                    schedule_outbox.c.name == name, schedule_outbox.c.tick == tick
                )
            )

    def stale(self, claimed_before: float, limit: int = 100) -> builtins.list[OutboxEntry]:
        """Return outbox rows last claimed before `claimed_before` (their node died or
        failed between the claim and the queue), oldest first."""
        query = (
            sa.select(schedule_outbox)
            .where(schedule_outbox.c.claimed_at < claimed_before)
            .order_by(schedule_outbox.c.claimed_at)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            OutboxEntry(r.name, r.tick, r.function, r.qualifier, r.payload.encode(), r.claimed_at)
            for r in rows
        ]

    def retake(self, entry: OutboxEntry, now: float) -> bool:
        """Take over a stale outbox row (compare-and-set on `claimed_at`); True: retry it."""
        query = (
            schedule_outbox.update()
            .where(
                schedule_outbox.c.name == entry.name,
                schedule_outbox.c.tick == entry.tick,
                schedule_outbox.c.claimed_at == entry.claimed_at,
            )
            .values(claimed_at=now)
        )
        with self.engine.begin() as conn:
            return conn.execute(query).rowcount == 1
