"""Per-invocation logs and usage records, written in batches and queried by window (storage layer)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from firebox.runtime.storage.schema import logs, usage


@dataclass(frozen=True)
class LogRecord:
    """One invocation's log: what the guest wrote, framed by START/END/REPORT lines."""

    function: str
    version: str
    request_id: str
    ts: float
    text: str
    id: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return the wire form (its fields are plain values: a shallow copy, not the
        recursive `asdict`, which cost ~0.1 ms per invocation)."""
        return dict(vars(self))


@dataclass(frozen=True)
class UsageRecord:
    """What one invocation used and how it ended (ok, error or throttled)."""

    function: str
    version: str
    request_id: str
    ts: float
    outcome: str
    error_type: str | None
    duration_ms: float
    billed_ms: int
    memory_mb: int
    peak_memory_bytes: int
    fuel: int
    request_bytes: int
    response_bytes: int
    cold: bool

    @property
    def gb_seconds(self) -> float:
        """Billed GB-seconds: billed duration times configured memory, as Lambda bills."""
        return self.billed_ms / 1000 * self.memory_mb / 1024

    def to_dict(self) -> dict[str, Any]:
        """Return the wire form (its fields are plain values: a shallow copy, not the
        recursive `asdict`, which cost ~0.1 ms per invocation)."""
        return dict(vars(self))


def percentile(sorted_values: list[float], q: float) -> float:
    """Return the q-quantile (0..1) of sorted values by the nearest-rank method (0 if empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


class TelemetryStore:
    """Logs and usage in the registry's database (one code path for SQLite and PostgreSQL)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def write(self, log_rows: list[LogRecord], usage_rows: list[UsageRecord]) -> None:
        """Insert a batch of logs and usage records in one transaction."""
        if not log_rows and not usage_rows:
            return
        with self.engine.begin() as conn:
            if log_rows:
                conn.execute(
                    logs.insert(),
                    [{k: v for k, v in r.to_dict().items() if k != "id"} for r in log_rows],
                )
            if usage_rows:
                conn.execute(usage.insert(), [r.to_dict() for r in usage_rows])

    def logs(
        self,
        function: str | None,
        *,
        since: float | None = None,
        until: float | None = None,
        request_id: str | None = None,
        version: str | None = None,
        after_id: int | None = None,
        limit: int = 100,
    ) -> list[LogRecord]:
        """Return a function's logs (every function's when None), oldest first, filtered by
        window, request id, version."""
        query = sa.select(logs)
        if function is not None:
            query = query.where(logs.c.function == function)
        if since is not None:
            query = query.where(logs.c.ts >= since)
        if until is not None:
            query = query.where(logs.c.ts < until)
        if request_id:
            query = query.where(logs.c.request_id == request_id)
        if version:
            query = query.where(logs.c.version == version)
        if after_id is not None:
            query = query.where(logs.c.id > after_id)
        # The newest `limit` rows, returned oldest first.
        query = query.order_by(logs.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            LogRecord(r.function, r.version, r.request_id, r.ts, r.text, r.id)
            for r in reversed(rows)
        ]

    def usage(
        self,
        function: str | None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
    ) -> list[UsageRecord]:
        """Return usage records in a window (all functions when `function` is None), oldest first."""
        query = sa.select(usage)
        if function:
            query = query.where(usage.c.function == function)
        if since is not None:
            query = query.where(usage.c.ts >= since)
        if until is not None:
            query = query.where(usage.c.ts < until)
        query = query.order_by(usage.c.id)
        if limit:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            UsageRecord(**{c: getattr(r, c) for c in UsageRecord.__dataclass_fields__})
            for r in rows
        ]

    def summary(
        self, function: str | None, since: float | None = None, until: float | None = None
    ) -> dict[str, Any]:
        """Return aggregates per function over a window: invocations, errors, throttles,
        GB-seconds, cold starts and p50/p99 duration (throttled calls have no duration)."""
        per: dict[str, list[UsageRecord]] = {}
        for record in self.usage(function, since, until):
            per.setdefault(record.function, []).append(record)
        out: dict[str, Any] = {}
        for name, records in sorted(per.items()):
            # Refused invocations (throttled, payload too large) never ran: billed 0 ms.
            ran_records = [r for r in records if r.billed_ms > 0]
            ran = sorted(r.duration_ms for r in ran_records)
            out[name] = {
                "invocations": len(ran_records),
                "errors": sum(1 for r in ran_records if r.outcome == "error"),
                "rejected": sum(
                    1 for r in records if r.billed_ms == 0 and r.outcome != "throttled"
                ),
                "throttles": sum(1 for r in records if r.outcome == "throttled"),
                "cold_starts": sum(1 for r in ran_records if r.cold),
                "gb_seconds": round(sum(r.gb_seconds for r in records), 9),
                "duration_ms": {"p50": percentile(ran, 0.5), "p99": percentile(ran, 0.99)},
                "fuel": sum(r.fuel for r in records),
            }
        return out

    def prune(
        self,
        older_than: float,
        per_function_bytes: int | None = None,
        total_bytes: int | None = None,
    ) -> int:
        """Delete logs older than `older_than` (a timestamp), then the oldest lines of each
        function storing more than `per_function_bytes` of log text and the oldest of the
        node past `total_bytes`; return how many log rows went."""
        with self.engine.begin() as conn:
            result = conn.execute(logs.delete().where(logs.c.ts < older_than))
            conn.execute(usage.delete().where(usage.c.ts < older_than))
        deleted = int(result.rowcount or 0)
        size = sa.func.length(logs.c.text)
        if per_function_bytes is not None:
            with self.engine.connect() as conn:
                over = [
                    str(row[0])
                    for row in conn.execute(
                        sa.select(logs.c.function)
                        .group_by(logs.c.function)
                        .having(sa.func.sum(size) > per_function_bytes)
                    )
                ]
            for function in over:
                deleted += self._trim(logs.c.function == function, per_function_bytes)
        if total_bytes is not None:
            with self.engine.connect() as conn:
                stored = int(
                    conn.execute(sa.select(sa.func.coalesce(sa.func.sum(size), 0))).scalar_one()
                )
            if stored > total_bytes:
                deleted += self._trim(sa.true(), total_bytes)
        return deleted

    def _trim(self, where: sa.ColumnElement[bool], keep_bytes: int) -> int:
        """Delete the oldest rows matching `where` beyond the newest `keep_bytes` of text."""
        cut: int | None = None
        kept = 0
        with self.engine.connect() as conn:
            rows = conn.execution_options(stream_results=True, yield_per=2000).execute(
                sa.select(logs.c.id, sa.func.length(logs.c.text))
                .where(where)
                .order_by(logs.c.id.desc())
            )
            for row_id, length in rows:
                kept += int(length or 0)
                if kept > keep_bytes:
                    cut = int(row_id)
                    break
            rows.close()
        if cut is None:
            return 0
        with self.engine.begin() as conn:
            result = conn.execute(logs.delete().where(where, logs.c.id <= cut))
        return int(result.rowcount or 0)
