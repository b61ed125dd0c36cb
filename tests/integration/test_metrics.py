"""GET /metrics on a real node: a scripted workload moves each counter by exactly what happened."""

from __future__ import annotations

import concurrent.futures
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Server, ServerFactory, guest_wasm
from tests.integration.test_python_deadlines import STUCK
from tests.integration.test_python_server import write_function

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(http: httpx.Client) -> Samples:
    r = http.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    out: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of every sample of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def wait_for(check: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if got := check():
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def unique_module() -> bytes:
    """The echo guest with a custom section of its own, so no compiled cache has it."""
    name, payload = b"firebox-test", uuid.uuid4().bytes
    content = bytes([len(name)]) + name + payload
    return guest_wasm("echo") + b"\x00" + bytes([len(content)]) + content


@pytest.fixture(scope="module", autouse=True)
def functions(server: Server) -> None:
    with server.client() as client:
        client.deploy({"name": "m-echo"}, guest_wasm("echo"))
        client.deploy({"name": "m-slow", "timeout": 0.5}, guest_wasm("hostile"))
        client.deploy({"name": "m-none", "concurrency": 0, "provisioned": 0}, guest_wasm("echo"))
        client.deploy({"name": "m-queue"}, guest_wasm("echo"))
        client.deploy({"name": "m-fresh"}, unique_module())


def test_metrics_need_a_key(server: Server) -> None:
    r = httpx.get(server.url + "/metrics")
    assert r.status_code == 401
    assert r.json()["error"]["type"] == "Unauthorized"
    r = httpx.get(server.url + "/metrics", headers={"Authorization": "Bearer nobody:wrong"})
    assert r.status_code in (401, 403)


def test_workload_moves_the_counters_by_what_happened(server: Server) -> None:
    fn = {"function": "m-echo", "version": "$LATEST"}
    slow = {"function": "m-slow", "version": "$LATEST"}
    none = {"function": "m-none", "version": "$LATEST"}
    with server.http() as http:
        before = scrape(http)
        for n in range(5):
            r = http.post("/v1/functions/m-echo/invoke", json={"n": n})
            assert r.status_code == 200
        r = http.post("/v1/functions/m-none/invoke", json={})
        assert r.status_code == 429
        r = http.post("/v1/functions/m-slow/invoke?export=spin", json={})
        assert r.json()["error"]["type"] == "TimedOut", r.text
        r = http.get("/v1/functions/no-such-function")
        assert r.status_code == 404
        after = scrape(http)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    ok = {**fn, "outcome": "ok", "error_type": ""}
    assert moved("firebox_invocations_total", **ok) == 5
    assert moved("firebox_invocation_duration_seconds_count", **fn) == 5
    assert moved("firebox_invocation_duration_seconds_sum", **fn) > 0
    throttled = {**none, "outcome": "throttled", "error_type": "Throttled"}
    assert moved("firebox_invocations_total", **throttled) == 1
    assert moved("firebox_throttles_total", **none) == 1
    timed_out = {**slow, "outcome": "error", "error_type": "TimedOut"}
    assert moved("firebox_invocations_total", **timed_out) == 1
    assert moved("firebox_invocation_duration_seconds_count", **slow) == 1
    # A version's first invocations are warm (the pool was filled at deploy) unless the
    # pool ran dry: cold starts are whatever the node reported as cold, never more than ran.
    assert 0 <= moved("firebox_cold_starts_total", **fn) <= 5
    # HTTP requests by route template, never by raw path.
    invoke = {"route": "/v1/functions/{name}/invoke", "method": "POST"}
    assert moved("firebox_http_requests_total", **invoke, status="200") == 5
    assert moved("firebox_http_requests_total", **invoke, status="429") == 1
    got = {"route": "/v1/functions/{name}", "method": "GET", "status": "404"}
    assert moved("firebox_http_requests_total", **got) == 1
    assert not any("no-such-function" in str(labels) for _, labels in after)
    # State read at scrape time: pools, workers.
    assert value(after, "firebox_instances", **fn, state="ready") >= 1
    assert value(after, "firebox_concurrent_executions", function="m-echo") == 0
    assert total(after, "firebox_worker_up") == 2
    assert all(
        v > 0
        for (n, _), v in after.items()
        if n in ("firebox_worker_rss_bytes", "firebox_worker_uss_bytes")
    )
    assert value(after, "firebox_instance_init_seconds_count", **fn) >= 1
    # The deploys above were timed.
    assert total(before, "firebox_deploy_duration_seconds_count", route="/v1/functions") >= 4
    # m-fresh's module is new to the shared compiled cache: its deploy compiled it.
    compiled = value(before, "firebox_compile_seconds_count", where="deploy")
    assert compiled >= 1 and value(before, "firebox_compile_seconds_sum", where="deploy") > 0


def test_a_cold_start_is_counted(server: Server) -> None:
    with server.http() as http:
        before = scrape(http)
        # Two at once against a pool of one ready instance: at least one is cold.
        with (
            httpx.Client(base_url=server.url, headers=http.headers, timeout=30) as other,
            concurrent.futures.ThreadPoolExecutor(4) as pool,
        ):
            call = lambda _: other.post("/v1/functions/m-echo/invoke", json={})  # noqa: E731
            replies = list(pool.map(call, range(8)))
        assert all(r.status_code == 200 for r in replies)
        cold = sum(1 for r in replies if r.headers["x-firebox-warm"] == "false")
        after = scrape(http)
    fn = {"function": "m-echo", "version": "$LATEST"}
    moved = value(after, "firebox_cold_starts_total", **fn) - value(
        before, "firebox_cold_starts_total", **fn
    )
    assert moved == cold


def test_a_queue_delivery_and_its_depth(server: Server) -> None:
    with server.http() as http:
        assert http.post("/v1/queues", json={"name": "m-in"}).status_code == 201
        for n in range(3):
            r = http.post("/v1/queues/m-in/messages", json={"body": f"m-{n}"})
            assert r.status_code == 201, r.text
        depth = scrape(http)
        assert value(depth, "firebox_queue_messages", queue="m-in", state="visible") == 3
        assert value(depth, "firebox_queue_sent_total", queue="m-in") == 3
        before = value(
            depth, "firebox_invocations_total",
            function="m-queue", version="$LATEST", outcome="ok", error_type="",
        )  # fmt: skip
        r = http.post(
            "/v1/event-source-mappings",
            json={"function": "m-queue", "source": "queue:m-in", "batch_size": 1},
        )  # fmt: skip
        assert r.status_code == 201, r.text

        def drained() -> Samples | None:
            s = scrape(http)
            empty = sum(
                value(s, "firebox_queue_messages", queue="m-in", state=state)
                for state in ("visible", "in_flight", "delayed")
            )
            return s if empty == 0 else None

        after = wait_for(drained, what="the queue to drain")
    ran = (
        value(after, "firebox_invocations_total",
              function="m-queue", version="$LATEST", outcome="ok", error_type="")
        - before
    )  # fmt: skip
    assert ran == 3  # one invocation per message (batch_size 1)


def test_metrics_without_auth_when_configured(server_factory: ServerFactory) -> None:
    node = server_factory(env={"FIREBOX_METRICS_AUTH": "0"}).start()
    r = httpx.get(node.url + "/metrics")
    assert r.status_code == 200
    names = {f.name for f in text_string_to_metric_families(r.text)}
    assert {"firebox_invocations", "firebox_worker_up", "firebox_http_requests"} <= names
    with node.http() as http:
        assert http.get("/v1/node").status_code == 200  # the API itself still needs a key
    assert httpx.get(node.url + "/v1/node").status_code == 401


def test_a_worker_recycled_for_stuck_threads_is_counted_with_its_reason(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    # Its own node (a recycled worker must not disturb the other tests' pools), with one
    # thread per worker: one Python call stuck in a WASI poll past its timeout recycles it.
    node = server_factory(env={"FIREBOX_WORKER_THREADS": "1"}).start()
    with node.client() as client:
        client.deploy_path(write_function(tmp_path, "m-sleeper", STUCK, timeout=0.5))
    with node.http() as http:
        before = scrape(http)
        r = http.post("/v1/functions/m-sleeper/invoke", json={"s": 10**9})
        assert r.json()["error"]["type"] == "TimedOut"  # answered by the worker's watchdog

        def replaced() -> Samples | None:
            # Restarted, and the replacement up (it counts as restarted while it starts).
            s = scrape(http)
            done = value(s, "firebox_worker_restarts_total") > 0
            return s if done and total(s, "firebox_worker_up") == 2 else None

        after = wait_for(replaced, what="the worker with a stuck thread to be recycled")
    assert value(after, "firebox_worker_exits_total", reason="stuck") == 1
    assert value(after, "firebox_worker_exits_total", reason="deadline") == 0
    assert value(after, "firebox_worker_exits_total", reason="exited") == 0
    assert value(after, "firebox_worker_restarts_total") == 1
    assert value(before, "firebox_worker_restarts_total") == 0
    assert total(after, "firebox_worker_up") == 2
