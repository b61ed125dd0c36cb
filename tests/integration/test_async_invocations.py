"""Event (async) invocations over a real server: durable acceptance, retries with backoff,
destinations, the DLQ, event age, idempotency, and nothing lost across kill -9."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server, ServerFactory, guest_wasm

pytestmark = pytest.mark.slow

FLAKY = """
seen = {}

def handler(event, context):
    key = event["id"]
    seen[key] = seen.get(key, 0) + 1
    if event.get("always_fail") or seen[key] <= event.get("fail_times", 0):
        raise RuntimeError(f"attempt {seen[key]} of {key} fails")
    return {"id": key, "attempt": seen[key]}
"""


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # One worker and one reused instance: the flaky handler's memory of attempts is real.
    server = Server(tmp_path_factory.mktemp("async") / "data", env={"FIREBOX_WORKERS": "1"})
    server.data_dir.mkdir(parents=True)
    server.start()
    src = tmp_path_factory.mktemp("flaky")
    (src / "app.py").write_text(FLAKY)
    (src / "firebox.toml").write_text(
        'name = "flaky"\nruntime = "python3.14"\nisolation = "reuse"\nconcurrency = 1\nprovisioned = 1\n'
    )
    looper = tmp_path_factory.mktemp("looper")
    (looper / "app.py").write_text("def handler(event, context):\n    return None\n")
    (looper / "firebox.toml").write_text('name = "looper"\nruntime = "python3.14"\n')
    with server.client() as client:
        client.deploy_path(src)
        client.deploy_path(looper)
        client.deploy({"name": "echo"}, guest_wasm("echo"))
    with server.http() as http:
        for queue in ("ok-dest", "fail-dest", "dlq", "echo-dest", "loop-stopped"):
            assert http.post("/v1/queues", json={"name": queue}).status_code == 201
        for name, config in {
            "flaky": {"maximum_retry_attempts": 2, "backoff_base_s": 0.2,
                      "on_success": {"type": "queue", "name": "ok-dest"},
                      "on_failure": {"type": "queue", "name": "fail-dest"}, "dead_letter_queue": "dlq"},
            "echo": {"on_success": {"type": "queue", "name": "echo-dest"}},
            # A loop: the function is its own success destination.
            "looper": {"on_success": {"type": "function", "name": "looper"},
                       "on_failure": {"type": "function", "name": "looper"},
                       "dead_letter_queue": "loop-stopped"},
        }.items():  # fmt: skip
            assert (
                http.put(f"/v1/functions/{name}/event-invoke-config", json=config).status_code
                == 200
            )
    yield server
    server.stop()


def drain(
    server: Server, queue: str, want: int, timeout: float = 60, unique: Any = None
) -> list[dict[str, Any]]:
    """Receive (and delete) messages from a queue until `want` arrived or time runs out.

    With `unique` (a message -> key function), count distinct keys instead: delivery is
    at least once, so after a crash a duplicate may arrive before the last new one.
    """
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout

    def enough() -> bool:
        return len({unique(m) for m in out} if unique else out) >= want

    with server.http() as http:
        while not enough() and time.monotonic() < deadline:
            got = http.post(
                f"/v1/queues/{queue}/receive", json={"max_messages": 10, "wait_s": 0.5}
            ).json()["messages"]
            if got:
                http.post(
                    f"/v1/queues/{queue}/delete",
                    json={"receipt_handles": [m["receipt_handle"] for m in got]},
                )
            out += got
    return out


def send_event(server: Server, function: str, event: object, key: str | None = None) -> str:
    headers = {"X-Firebox-Invocation-Type": "Event"}
    if key:
        headers["X-Firebox-Idempotency-Key"] = key
    with server.http() as http:
        r = http.post(f"/v1/functions/{function}/invoke", json=event, headers=headers)
    assert r.status_code == 202, r.text
    return str(r.json()["request_id"])


def test_thousand_async_invocations_are_all_processed(node: Server) -> None:
    with node.client() as client:
        ids = {
            client.invoke("echo", {"n": n}, invocation_type="Event").request_id for n in range(1000)
        }
    assert len(ids) == 1000
    records = [json.loads(m["body"]) for m in drain(node, "echo-dest", 1000, timeout=120)]
    assert {r["requestContext"]["requestId"] for r in records} == ids
    assert all(r["requestContext"]["condition"] == "Success" for r in records)


def test_fails_twice_then_succeeds_on_the_success_destination(node: Server) -> None:
    request_id = send_event(node, "flaky", {"id": "twice", "fail_times": 2})
    (message,) = drain(node, "ok-dest", 1)
    record = json.loads(message["body"])
    assert record["requestContext"]["requestId"] == request_id
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["responsePayload"] == {"id": "twice", "attempt": 3}
    assert record["requestPayload"] == {"id": "twice", "fail_times": 2}


def test_always_failing_goes_to_failure_destination_and_dlq_after_exact_attempts(
    node: Server,
) -> None:
    request_id = send_event(node, "flaky", {"id": "never", "always_fail": True})
    (failure,) = drain(node, "fail-dest", 1)
    record = json.loads(failure["body"])
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["responseContext"]["functionError"] == "Unhandled"
    assert record["responsePayload"]["errorType"] == "RuntimeError"
    (dead,) = drain(node, "dlq", 1)
    assert json.loads(dead["body"]) == {"id": "never", "always_fail": True}
    assert dead["attributes"]["RequestID"] == request_id
    time.sleep(1.0)
    with node.client() as client:
        attempts = [
            r
            for r in client.usage("flaky", records=True)["records"]
            if r["request_id"] == request_id
        ]
    assert len(attempts) == 3 and all(r["outcome"] == "error" for r in attempts)


def test_expired_event_goes_to_the_failure_destination(node: Server) -> None:
    with node.http() as http:
        http.put(
            "/v1/functions/flaky/event-invoke-config?qualifier=1", json={}
        )  # unrelated qualifier
        http.put("/v1/functions/flaky/event-invoke-config", json={
            "maximum_retry_attempts": 2, "backoff_base_s": 4, "maximum_event_age_s": 2,
            "on_failure": {"type": "queue", "name": "fail-dest"},
        })  # fmt: skip
    try:
        send_event(node, "flaky", {"id": "old", "always_fail": True})
        (failure,) = drain(node, "fail-dest", 1)
        record = json.loads(failure["body"])
        assert record["requestContext"]["condition"] == "EventAgeExceeded"
        assert record["requestPayload"]["id"] == "old"
    finally:
        with node.http() as http:
            http.put("/v1/functions/flaky/event-invoke-config", json={
                "maximum_retry_attempts": 2, "backoff_base_s": 0.2,
                "on_success": {"type": "queue", "name": "ok-dest"},
                "on_failure": {"type": "queue", "name": "fail-dest"}, "dead_letter_queue": "dlq",
            })  # fmt: skip


def test_a_loop_of_destinations_stops_after_16_invocations(node: Server) -> None:
    with node.http() as http:
        before = http.get("/v1/events/metrics").json()["async"]
    send_event(node, "looper", {"start": True})
    [stopped] = drain(node, "loop-stopped", 1, timeout=90)
    assert stopped["attributes"]["Condition"] == "RecursiveInvocationDetected"
    # The stopped event is the 16th success record; each wraps the event before it.
    record = json.loads(stopped["body"])
    chain = 0
    while isinstance(record, dict) and "requestPayload" in record:
        assert record["requestContext"]["condition"] == "Success"
        chain += 1
        record = record["requestPayload"]
    assert (chain, record) == (16, {"start": True})
    # It ended there: the failure destination (the function itself) got nothing.
    time.sleep(1.0)
    with node.http() as http:
        after = http.get("/v1/events/metrics").json()["async"]
    assert after["recursion_stopped"] - before["recursion_stopped"] == 1
    assert after["succeeded"] - before["succeeded"] == 16
    assert drain(node, "loop-stopped", 1, timeout=1) == []


def test_duplicate_idempotency_key_is_invoked_once(node: Server) -> None:
    first = send_event(node, "echo", {"k": 1}, key="order-42")
    second = send_event(node, "echo", {"k": 1}, key="order-42")
    assert first == second
    records = drain(node, "echo-dest", 2, timeout=5)
    assert [json.loads(m["body"])["requestContext"]["requestId"] for m in records] == [first]


def test_bad_event_requests_get_4xx(node: Server) -> None:
    with node.http() as http:
        assert (
            http.post(
                "/v1/functions/nope/invoke", json={}, headers={"X-Firebox-Invocation-Type": "Event"}
            ).status_code
            == 404
        )
        assert (
            http.post(
                "/v1/functions/echo/invoke", json={}, headers={"X-Firebox-Invocation-Type": "Later"}
            ).status_code
            == 400
        )
        assert (
            http.put(
                "/v1/functions/echo/event-invoke-config", json={"maximum_retry_attempts": 99}
            ).status_code
            == 400
        )
        assert (
            http.put(
                "/v1/functions/echo/event-invoke-config", json={"on_success": {"type": "email"}}
            ).status_code
            == 400
        )
        assert http.post("/v1/queues/missing/receive", json={}).status_code == 404
        assert (
            http.post("/v1/queues", json={"name": "q", "visibility_timeout_s": -1}).status_code
            == 400
        )


PRINTER = """
def handler(event, context):
    for record in event["Records"]:
        print("processed", record["body"])
"""


def test_nothing_is_lost_across_kill_9(server_factory: ServerFactory, tmp_path: Path) -> None:
    node = server_factory(env={"FIREBOX_WORKERS": "1", "FIREBOX_PREPARE_PYTHON": "1"}).start()
    (tmp_path / "printer").mkdir()
    (tmp_path / "printer" / "app.py").write_text(PRINTER)
    (tmp_path / "printer" / "firebox.toml").write_text('name = "printer"\nruntime = "python3.14"\n')
    bodies = [f"m{i}" for i in range(500)]
    with node.client() as client:
        client.deploy({"name": "echo"}, guest_wasm("echo"))
        client.deploy_path(tmp_path / "printer")
        client.queues.create("in", visibility_timeout_s=2)
        client.mappings.create("printer", "queue:in", batch_size=10)
        for start in range(0, len(bodies), 10):
            client.queues.send_batch("in", list(bodies[start : start + 10]))
    with node.http() as http:
        http.post("/v1/queues", json={"name": "done"})
        http.put(
            "/v1/functions/echo/event-invoke-config",
            json={"on_success": {"type": "queue", "name": "done"}},
        )
    ids = set()
    with httpx.Client(base_url=node.url, headers=node.http().headers, timeout=30) as http:
        for n in range(1000):
            r = http.post(
                "/v1/functions/echo/invoke",
                json={"n": n},
                headers={"X-Firebox-Invocation-Type": "Event"},
            )
            assert r.status_code == 202
            ids.add(r.json()["request_id"])
    assert node.proc is not None
    node.proc.send_signal(signal.SIGKILL)  # mid-delivery: most events are still queued
    node.proc.wait(10)
    node.proc = None
    node.start()
    records = drain(
        node, "done", 1000, timeout=300,
        unique=lambda m: json.loads(m["body"])["requestContext"]["requestId"],
    )  # fmt: skip
    seen = {json.loads(m["body"])["requestContext"]["requestId"] for m in records}
    assert seen == ids  # every accepted event ran at least once; duplicates are allowed
    # And every queue message went through the mapping: its log is stored before its delete.
    with node.client() as client:
        deadline = time.monotonic() + 60
        while (stats := client.queues.get("in")["stats"])["depth"] + stats["in_flight"] > 0:
            assert time.monotonic() < deadline, stats
            time.sleep(0.5)
        time.sleep(0.5)
        texts = [e.text for e in client.logs("printer", limit=10_000)]
    printed = {
        line.split()[-1] for t in texts for line in t.splitlines() if line.startswith("processed ")
    }
    assert printed == set(bodies)
