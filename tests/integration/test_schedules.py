"""Schedules on a real in-process Node: ticks on time, one firing per tick across two nodes
on PostgreSQL, catch-up after downtime, the direct-invoke fallback, the HTTP routes."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from firebox.runtime.config import NodeConfig
from firebox.runtime.errors import FireboxError
from firebox.runtime.events.scheduler import Scheduler, iso
from firebox.runtime.http import errors as http_errors
from firebox.runtime.http import schedules_api
from firebox.runtime.node import Node
from firebox.runtime.storage.schedules import ScheduleRecord, ScheduleStore
from firebox.runtime.storage.schema import upgrade
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from tests.conftest import SESSION_CACHE, guest_wasm

pytestmark = pytest.mark.slow

WAIT_S = 15.0  # the bound on every wait below


@pytest.fixture(autouse=True)
def node_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIREBOX_POOL_SLOTS", "64")
    monkeypatch.setenv("FIREBOX_MAX_MEMORY_MB", "512")
    monkeypatch.setenv("FIREBOX_SCHEDULE_ALLOW_SECONDS", "1")
    monkeypatch.setenv("FIREBOX_PREPARE_PYTHON", "0")
    monkeypatch.setenv("FIREBOX_COMPILED_CACHE", str(SESSION_CACHE))


@asynccontextmanager
async def running_node(data_dir: Path, database_url: str | None = None) -> AsyncIterator[Node]:
    node = Node(NodeConfig(data_dir=data_dir, workers=1), database_url=database_url)
    await node.start()
    # The tests start and stop Schedulers of their own, to play nodes going down and up.
    await node.scheduler.stop()
    try:
        yield node
    finally:
        await node.stop()


class Fired:
    """Records every event a scheduler hands to `node.enqueue`: when, which tick, what."""

    def __init__(self, *nodes: Node) -> None:
        self.calls: list[tuple[float, datetime, Any]] = []
        for node in nodes:
            self._wrap(node)

    def _wrap(self, node: Node) -> None:
        original = node.enqueue

        async def enqueue(
            function: str, qualifier: str | None, payload: bytes, idempotency_key: str | None = None
        ) -> str:
            assert idempotency_key is not None and idempotency_key.startswith("schedule:")
            stamp = idempotency_key.split(":", 2)[2]  # schedule:<name>:<tick>
            tick = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            self.calls.append((time.time(), tick, json.loads(payload)))
            return await original(function, qualifier, payload, idempotency_key)

        node.enqueue = enqueue  # type: ignore[method-assign,assignment]

    @property
    def ticks(self) -> list[datetime]:
        return [tick for _, tick, _ in self.calls]


async def until(condition: Callable[[], Awaitable[bool] | bool], what: str) -> None:
    """Wait (bounded by WAIT_S) until `condition` holds."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        result = condition()
        if await result if isinstance(result, Awaitable) else result:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def invocations(node: Node, name: str = "tick") -> list[dict[str, Any]]:
    await node.recorder.flush()
    records: list[dict[str, Any]] = (await node.usage(name, None, None, records=True))["records"]
    return records


async def deploy_tick(node: Node) -> None:
    await node.deploy({"name": "tick"}, guest_wasm("echo"))


def every_second(name: str = "every-second", **kw: Any) -> ScheduleRecord:
    return ScheduleRecord(name=name, function="tick", expression="rate(1 second)", **kw)


# --- on time --------------------------------------------------------------------------


def test_rate_fires_every_tick_on_time(tmp_path: Path) -> None:
    async def main() -> None:
        async with running_node(tmp_path / "a") as node:
            await deploy_tick(node)
            fired = Fired(node)
            store = ScheduleStore(node.registry.engine)
            scheduler = Scheduler(node, store)
            await scheduler.start()
            try:
                store.create(every_second())
                scheduler.notify()
                await until(lambda: len(fired.calls) >= 4, "4 ticks")
            finally:
                await scheduler.stop()
            calls = list(fired.calls)
            ticks = [tick for _, tick, _ in calls]
            # Consecutive whole seconds, each fired once, at (not before) its time.
            assert all(t.microsecond == 0 for t in ticks)
            assert [b - a for a, b in pairwise(ticks)] == [timedelta(seconds=1)] * (len(ticks) - 1)
            for at, tick, _ in calls:
                assert 0 <= at - tick.timestamp() < 0.5, (at, tick)
            gaps = [b[0] - a[0] for a, b in pairwise(calls)]
            assert all(0.7 < gap < 1.3 for gap in gaps), gaps
            # EventBridge's scheduled event.
            _, tick, event = calls[0]
            assert event["detail-type"] == "Scheduled Event"
            assert event["source"] == "aws.events"
            assert event["time"] == iso(tick) and event["time"].endswith("Z")
            assert event["resources"] == ["arn:aws:events:us-east-1:000000000000:rule/every-second"]
            assert event["detail"] == {} and event["version"] == "0"
            assert uuid.UUID(event["id"]) and event["account"] and event["region"]
            assert len({e["id"] for _, _, e in calls}) == len(calls)
            # Every firing ran the function once (through the async path).
            await until(lambda: _count(node, len(calls)), f"{len(calls)} invocations of tick")
            assert store.get("every-second").last_fired == ticks[-1].timestamp()

    asyncio.run(main())


async def _count(node: Node, expected: int) -> bool:
    records = await invocations(node)
    assert len(records) <= expected, records
    return len(records) == expected


# --- two nodes, one registry ------------------------------------------------------------


def test_two_schedulers_fire_each_tick_once(tmp_path: Path, pg_schema_url: str) -> None:
    async def main() -> None:
        async with (
            running_node(tmp_path / "a", pg_schema_url) as a,
            running_node(tmp_path / "b", pg_schema_url) as b,
        ):
            await deploy_tick(a)
            await until(lambda: "tick" in b.catalog.latest, "node b to see the function")
            fired = Fired(a, b)
            attempts: dict[str, list[float]] = {"a": [], "b": []}
            schedulers = []
            for label, node in (("a", a), ("b", b)):
                store = ScheduleStore(node.registry.engine)
                claim = store.claim

                def counting(
                    name: str, tick: float, event: Any = None, _c: Any = claim, _l: str = label
                ) -> bool:
                    attempts[_l].append(tick)
                    return bool(_c(name, tick, event))

                store.claim = counting  # type: ignore[method-assign]
                schedulers.append(Scheduler(node, store))
            for scheduler in schedulers:
                await scheduler.start()
            try:
                schedulers[0].store.create(every_second())
                schedulers[0].notify()
                await until(lambda: len(fired.calls) >= 5, "5 ticks")
            finally:
                for scheduler in schedulers:
                    await scheduler.stop()
            ticks = sorted(fired.ticks)
            assert len(ticks) == len(set(ticks)), "a tick fired twice"
            assert ticks == [ticks[0] + timedelta(seconds=i) for i in range(len(ticks))]
            # Both schedulers raced for the ticks (after b's first look), and one won each.
            raced = [t.timestamp() for t in ticks[2:]]
            assert set(raced) <= set(attempts["a"]) and set(raced) <= set(attempts["b"])
            assert sum(s.fired for s in schedulers) == len(ticks)
            await until(lambda: _count(a, len(ticks)), f"{len(ticks)} invocations")

    asyncio.run(main())


# --- catch-up ---------------------------------------------------------------------------


@pytest.mark.parametrize("catch_up", ["skip", "once"])
def test_missed_ticks_after_downtime(tmp_path: Path, catch_up: str) -> None:
    async def main() -> None:
        async with running_node(tmp_path / "a") as node:
            await deploy_tick(node)
            fired = Fired(node)
            store = ScheduleStore(node.registry.engine)
            first = Scheduler(node, store)
            await first.start()
            try:
                store.create(every_second(catch_up=catch_up))
                first.notify()
                await until(lambda: len(fired.calls) >= 1, "a first tick")
            finally:
                await first.stop()
            last = fired.ticks[-1]
            assert store.get("every-second").last_fired == last.timestamp()
            # Down while 3 ticks pass.
            await asyncio.sleep(last.timestamp() + 3.5 - time.time())
            before = len(fired.calls)
            second = Scheduler(node, store)
            restarted = datetime.now(UTC)
            await second.start()
            try:
                await until(
                    lambda: any(t > restarted for t in fired.ticks[before:]), "the next tick"
                )
            finally:
                await second.stop()
            after = fired.calls[before:]
            missed = [tick for _, tick, _ in after if tick <= restarted]
            assert all(tick > last for _, tick, _ in after)
            if catch_up == "skip":
                assert missed == []
            else:
                # Exactly one, the most recent missed tick, fired right away.
                latest = restarted.replace(microsecond=0)
                assert missed == [latest]
                assert after[0][1] == latest and after[0][0] - restarted.timestamp() < 0.5
            future = [tick for _, tick, _ in after if tick > restarted]
            assert future[0] - restarted <= timedelta(seconds=1)

    asyncio.run(main())


def test_enabling_again_catches_up_once(tmp_path: Path) -> None:
    async def main() -> None:
        async with running_node(tmp_path / "a") as node:
            await deploy_tick(node)
            fired = Fired(node)
            store = ScheduleStore(node.registry.engine)
            scheduler = Scheduler(node, store)
            await scheduler.start()
            try:
                store.create(every_second(catch_up="once"))
                scheduler.notify()
                await until(lambda: len(fired.calls) >= 1, "a first tick")
                store.update("every-second", {"enabled": False})
                scheduler.notify()
                disabled = datetime.now(UTC)
                await asyncio.sleep(2.5)
                before = len(fired.calls)
                store.update("every-second", {"enabled": True})
                enabled = datetime.now(UTC)
                scheduler.notify()
                await until(lambda: any(t > enabled for t in fired.ticks[before:]), "a new tick")
            finally:
                await scheduler.stop()
            # Nothing fired while disabled but the one catch-up tick, fired at once.
            quiet = [t for t in fired.ticks if disabled + timedelta(seconds=0.2) < t <= enabled]
            assert quiet == [enabled.replace(microsecond=0)]
            assert fired.calls[before][1] == quiet[0]
            assert fired.calls[before][0] - enabled.timestamp() < 0.5

    asyncio.run(main())


# --- the direct-invoke fallback, custom payloads, slow functions ------------------------


class InvokeOnly:
    """A node without `enqueue`: the scheduler falls back to a direct invoke."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started: list[tuple[float, str, Any, str | None]] = []

    async def invoke(self, name: str, payload: bytes, *, qualifier: str | None = None) -> Any:
        self.started.append((time.time(), name, json.loads(payload), qualifier))
        await asyncio.sleep(self.seconds)
        return None


def test_fallback_invokes_directly_without_blocking(tmp_path: Path) -> None:
    async def main() -> None:
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'registry.db'}")
        upgrade(engine)
        store = ScheduleStore(engine)
        node = InvokeOnly(seconds=5.0)  # slower than the schedule
        scheduler = Scheduler(node, store)
        await scheduler.start()
        try:
            store.create(every_second(payload={"hello": "world"}, qualifier="live"))
            scheduler.notify()
            await until(lambda: len(node.started) >= 3, "3 overlapping invocations")
        finally:
            await scheduler.stop()
            engine.dispose()
        assert [(n, p, q) for _, n, p, q in node.started[:3]] == [
            ("tick", {"hello": "world"}, "live")
        ] * 3
        assert node.started[2][0] - node.started[0][0] < 2.5

    asyncio.run(main())


# --- HTTP routes ------------------------------------------------------------------------


def app_for(node: Node) -> Starlette:
    async def firebox_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, FireboxError)
        return http_errors.error_response(exc, request.headers.get("accept"))

    app = Starlette(routes=schedules_api.routes(), exception_handlers={FireboxError: firebox_error})
    app.state.node = node
    return app


def test_http_routes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:

    async def main() -> None:
        async with running_node(tmp_path / "a") as node:
            await deploy_tick(node)
            node.scheduler = Scheduler(node, ScheduleStore(node.registry.engine))
            transport = httpx.ASGITransport(app=app_for(node))
            async with httpx.AsyncClient(transport=transport, base_url="http://node") as http:
                body = {"name": "nightly", "function": "tick", "expression": "cron(0 3 * * ? *)"}
                created = await http.post("/v1/schedules", json=body)
                assert created.status_code == 201, created.text
                got = created.json()
                assert got["qualifier"] == "$LATEST" and got["catch_up"] == "skip"
                assert got["enabled"] is True and got["payload"] is None
                assert got["last_fired"] is None and got["next_fire"].endswith("T03:00:00Z")

                again = await http.post("/v1/schedules", json=body)
                assert again.status_code == 409 and "already exists" in again.text

                bad = await http.post("/v1/schedules", json={**body, "name": "x",
                                                             "expression": "cron(0 25 * * ? *)"})  # fmt: skip
                assert bad.status_code == 400 and "Hours field" in bad.json()["error"]["message"]
                wrong = await http.post("/v1/schedules", json={**body, "name": "y",
                                                               "catch_up": "all"})  # fmt: skip
                assert wrong.status_code == 400 and "catch_up" in wrong.text
                ghost = await http.post("/v1/schedules", json={**body, "name": "z",
                                                               "function": "nope"})  # fmt: skip
                assert (
                    ghost.status_code == 404 and ghost.json()["error"]["type"] == "FunctionNotFound"
                )
                unknown = await http.post("/v1/schedules", json={**body, "name": "u", "cron": 1})
                assert unknown.status_code == 400 and "cron" in unknown.text

                listed = (await http.get("/v1/schedules")).json()["schedules"]
                assert [s["name"] for s in listed] == ["nightly"]

                patched = await http.patch(
                    "/v1/schedules/nightly",
                    json={"enabled": False, "payload": {"k": 1}, "catch_up": "once"},
                )
                assert patched.status_code == 200
                assert patched.json()["next_fire"] is None and patched.json()["payload"] == {"k": 1}
                back = await http.patch("/v1/schedules/nightly", json={"enabled": True,
                                                                         "payload": None})  # fmt: skip
                assert back.json()["payload"] is None and back.json()["next_fire"] is not None
                broken = await http.patch(
                    "/v1/schedules/nightly", json={"expression": "rate(1 minutes)"}
                )
                assert broken.status_code == 400 and "singular" in broken.text
                assert (await http.get("/v1/schedules/nightly")).json()["expression"] == body[
                    "expression"
                ]

                assert (await http.delete("/v1/schedules/nightly")).status_code == 204
                missing = await http.get("/v1/schedules/nightly")
                assert missing.status_code == 404
                assert missing.json()["error"]["type"] == "ScheduleNotFound"
                assert (await http.delete("/v1/schedules/nightly")).status_code == 404

    asyncio.run(main())
