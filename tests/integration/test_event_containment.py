"""Events that end: schedules validated at create, a scheduler that survives any one bad
schedule (across restarts), DLQs and destinations checked when configured, and the node's
internal queues out of the public API's reach."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from firebox.runtime.events import scheduler as scheduler_module
from firebox.runtime.events.async_invoke import ASYNC_QUEUE
from firebox.runtime.events.scheduler import Scheduler
from firebox.runtime.storage.schedules import ScheduleRecord, ScheduleStore

from tests.conftest import SESSION_CACHE, Server, guest_wasm
from tests.integration.test_schedules import Fired, deploy_tick, every_second, running_node, until


@pytest.fixture(autouse=True)
def node_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIREBOX_POOL_SLOTS", "64")
    monkeypatch.setenv("FIREBOX_MAX_MEMORY_MB", "512")
    monkeypatch.setenv("FIREBOX_SCHEDULE_ALLOW_SECONDS", "1")
    monkeypatch.setenv("FIREBOX_PREPARE_PYTHON", "0")
    monkeypatch.setenv("FIREBOX_COMPILED_CACHE", str(SESSION_CACHE))


@pytest.fixture(scope="module")
def node(server: Server) -> Iterator[Server]:
    with server.client() as client:
        client.deploy({"name": "tick"}, guest_wasm("echo"))
    with server.http() as http:
        assert http.post("/v1/queues", json={"name": "public"}).status_code == 201
    yield server


# --- schedules ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    [
        "rate(999999999 days)",
        "rate(36501 days)",
        "rate(1" + "0" * 5000 + " minutes)",
        "rate(² minutes)",
        "cron(" + "1," * 120_000 + "1 * * * ? *)",
        "cron(0 0 * * ? " + "2000," * 60 + "2001)",
    ],
    ids=["999999999-days", "over-100-years", "5000-digits", "superscript", "240KB-cron", "long"],
)
def test_schedules_that_cannot_run_are_refused_at_create(node: Server, expression: str) -> None:
    with node.http() as http:
        started = time.monotonic()
        response = http.post(
            "/v1/schedules", json={"name": "bad", "function": "tick", "expression": expression}
        )
        assert response.status_code == 400, response.text
        assert response.json()["error"]["type"] == "BadRequest"
        assert time.monotonic() - started < 1.0
        listed = http.get("/v1/schedules")
        assert listed.status_code == 200
        assert all(s["name"] != "bad" for s in listed.json()["schedules"])


def ticked(fired: Fired, wanted: int) -> bool:
    return len(fired.calls) >= wanted


class Exploding:
    """A schedule whose every computation raises (whatever a future bug might raise)."""

    def next_after(self, t: datetime) -> datetime | None:
        raise OverflowError("date value out of range")

    def latest_at_or_before(self, t: datetime) -> datetime | None:
        raise OverflowError("date value out of range")


def test_one_bad_schedule_never_stops_the_others_across_restarts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = scheduler_module.schedule_of

    def schedule_of(record: ScheduleRecord) -> Any:
        return Exploding() if record.name == "exploding" else real(record)

    monkeypatch.setattr(scheduler_module, "schedule_of", schedule_of)

    async def main() -> None:
        async with running_node(tmp_path / "a") as node:
            await deploy_tick(node)
            fired = Fired(node)
            store = ScheduleStore(node.registry.engine)
            # Stored directly, as a node of an older version (or a bug) could have.
            for name, expression in [
                ("huge-rate", "rate(999999999 days)"),
                ("huge-cron", "cron(" + "1," * 2000 + "1 * * * ? *)"),
                ("exploding", "rate(1 second)"),
            ]:
                store.create(ScheduleRecord(name=name, function="tick", expression=expression))
            store.create(every_second("good", catch_up="once"))
            for _restart in range(2):
                scheduler = Scheduler(node, store)
                await scheduler.start()
                wanted = len(fired.calls) + 2
                try:
                    await until(functools.partial(ticked, fired, wanted), "2 ticks of `good`")
                    assert scheduler._loop is not None and not scheduler._loop.done()
                    for record in store.list():
                        scheduler.next_fire(record)  # answers (None) for the bad ones
                finally:
                    await scheduler.stop()
            names = {e["resources"][0].rsplit("/", 1)[1] for _, _, e in fired.calls}
            assert names == {"good"}

    asyncio.run(main())


# --- DLQs, destinations and internal queues -------------------------------------------


@pytest.mark.parametrize(
    ("config", "status"),
    [
        ({"dead_letter_queue": "no-such-queue"}, 404),
        ({"on_failure": {"type": "queue", "name": "no-such-queue"}}, 404),
        ({"on_success": {"type": "queue", "name": "no-such-queue"}}, 404),
        ({"dead_letter_queue": ASYNC_QUEUE}, 403),
        ({"on_failure": {"type": "queue", "name": ASYNC_QUEUE}}, 403),
    ],
)
def test_dlqs_and_destinations_are_checked_when_configured(
    node: Server, config: dict[str, Any], status: int
) -> None:
    with node.http() as http:
        response = http.put("/v1/functions/tick/event-invoke-config", json=config)
        assert response.status_code == status, response.text
        assert "error" in response.json()
        assert (
            http.put(
                "/v1/functions/tick/event-invoke-config", json={"dead_letter_queue": "public"}
            ).status_code
            == 200
        )


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", f"/v1/queues/{ASYNC_QUEUE}", None),
        ("POST", f"/v1/queues/{ASYNC_QUEUE}/messages", {"body": "poison"}),
        ("POST", f"/v1/queues/{ASYNC_QUEUE}/purge", None),
        ("POST", f"/v1/queues/{ASYNC_QUEUE}/receive", {}),
        ("POST", f"/v1/queues/{ASYNC_QUEUE}/delete", {"receipt_handles": ["x"]}),
        ("POST", f"/v1/queues/{ASYNC_QUEUE}/visibility", {"receipt_handle": "x"}),
        ("DELETE", f"/v1/queues/{ASYNC_QUEUE}", None),
        ("POST", "/v1/queues", {"name": "firebox-mine"}),
        ("POST", "/v1/queues",
         {"name": "q2", "dead_letter_queue": ASYNC_QUEUE, "max_receive_count": 2}),
        ("POST", "/v1/event-source-mappings",
         {"function": "tick", "source": f"queue:{ASYNC_QUEUE}"}),
        ("POST", "/v1/event-source-mappings",
         {"function": "tick", "source": "queue:public", "maximum_retry_attempts": 1,
          "destination_on_failure": {"type": "queue", "name": ASYNC_QUEUE}}),
    ],
)  # fmt: skip
def test_internal_queues_are_unreachable(
    node: Server, method: str, path: str, body: dict[str, Any] | None
) -> None:
    with node.http() as http:
        response = http.request(method, path, json=body)
        assert response.status_code == 403, response.text
        assert response.json()["error"]["type"] == "Forbidden"
        assert "internal" in response.json()["error"]["message"]
        assert ASYNC_QUEUE not in http.get("/v1/queues").json()["queues"]
        # The async path still works: an event accepted and run.
        accepted = http.post(
            "/v1/functions/tick/invoke", content=b"{}",
            headers={"X-Firebox-Invocation-Type": "Event"},
        )  # fmt: skip
        assert accepted.status_code == 202
