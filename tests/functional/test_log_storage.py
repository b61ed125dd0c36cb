"""Stored logs are bounded per function and per node (oldest lines go first), on SQLite
and PostgreSQL, and a function flooding its logs prunes early without hurting others."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from firebox.runtime.storage.backends import open_registry
from firebox.runtime.storage.telemetry import LogRecord, TelemetryStore
from firebox.runtime.telemetry import Recorder

LINE = 1000  # bytes of text per stored log row


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TelemetryStore]:
    url = None if request.param == "sqlite" else request.getfixturevalue("pg_schema_url")
    registry = open_registry(url, tmp_path)
    yield TelemetryStore(registry.engine)
    registry.engine.dispose()


def rows(function: str, n: int, start: float) -> list[LogRecord]:
    return [
        LogRecord(function, "$LATEST", f"{function}-{i}", start + i, "x" * LINE) for i in range(n)
    ]


def stored(store: TelemetryStore, function: str) -> list[str]:
    return [r.request_id for r in store.logs(function, limit=10_000)]


def test_each_function_keeps_its_newest_lines_within_its_cap(store: TelemetryStore) -> None:
    now = time.time()
    store.write(rows("chatty", 50, now), [])
    store.write(rows("quiet", 5, now), [])
    deleted = store.prune(now - 3600, per_function_bytes=10 * LINE)
    assert deleted == 40
    assert sorted(stored(store, "chatty")) == sorted(f"chatty-{i}" for i in range(40, 50))
    assert len(stored(store, "quiet")) == 5  # under its cap: untouched


def test_the_node_cap_deletes_the_oldest_lines_of_all(store: TelemetryStore) -> None:
    now = time.time()
    store.write(rows("a", 10, now), [])
    store.write(rows("b", 10, now + 100), [])
    store.prune(now - 3600, total_bytes=15 * LINE)
    assert sorted(stored(store, "a")) == [f"a-{i}" for i in range(5, 10)]  # oldest first
    assert len(stored(store, "b")) == 10


def test_retention_still_applies(store: TelemetryStore) -> None:
    now = time.time()
    store.write(rows("old", 3, now - 10_000), [])
    store.write(rows("new", 3, now), [])
    assert store.prune(now - 3600) == 3
    assert stored(store, "old") == [] and len(stored(store, "new")) == 3


def test_a_flood_of_output_prunes_before_the_minute_is_up(tmp_path: Path) -> None:
    registry = open_registry(None, tmp_path)
    store = TelemetryStore(registry.engine)
    recorder = Recorder(store, 86400, per_function_bytes=20 * LINE, total_bytes=1000 * LINE)

    async def run() -> None:
        store.write(rows("flood", 100, time.time()), [])
        recorder._written_since_prune = 100 * LINE  # what record() counts as it buffers
        await recorder.start()
        try:
            deadline = time.monotonic() + 5
            while len(stored(store, "flood")) > 20 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        finally:
            await recorder.stop()

    asyncio.run(run())
    assert len(stored(store, "flood")) == 20
    registry.engine.dispose()
