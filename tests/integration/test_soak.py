"""A bounded soak on a real node: steady calls to well-behaved functions while a hostile mix
runs beside them (sleepers in host calls, spinners, memory bombs, huge results, a flood of
slow calls, failed deploys, compile bombs, anonymous big bodies, idle half-requests).
The well-behaved calls must see no error, bounded latency, no worker killed and bounded
worker memory. The numbers are printed (pytest -s) and quoted in docs/containment.md."""

from __future__ import annotations

import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
import wasmtime
from firebox.runtime.errors import FireboxError

from tests.conftest import Server, guest_wasm

pytestmark = pytest.mark.slow

SOAK_S = 40.0
ENV = {"FIREBOX_WORKER_THREADS": "16", "FIREBOX_HEADER_TIMEOUT_S": "2", "FIREBOX_POOL_SLOTS": "256",
       "FIREBOX_MAX_CONNECTIONS": "400"}  # fmt: skip


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(tmp_path_factory.mktemp("soak") / "data", env=ENV)
    server.data_dir.mkdir(parents=True)
    server.start()
    with server.client() as client:
        client.deploy({"name": "good"}, guest_wasm("echo"))
        client.deploy({"name": "good-http", "triggers": [{"route": "/good"}]}, guest_wasm("echo"))
        client.deploy({"name": "sleeper", "timeout": 1.0}, guest_wasm("hostile"))
        client.deploy({"name": "spinner", "timeout": 0.5}, guest_wasm("hostile"))
        client.deploy({"name": "bomb", "memory": 16}, guest_wasm("hostile"))
        client.deploy({"name": "flood", "timeout": 5.0}, guest_wasm("nap"))
    yield server
    server.stop()


def _bomb_module() -> bytes:
    funcs = "".join(f"(func (result i32) i32.const {i})" for i in range(25_000))
    return bytes(
        wasmtime.wat2wasm(
            '(module (memory (export "memory") 1)'
            ' (func (export "firebox_alloc") (param i32) (result i32) i32.const 0)'
            f' (func (export "handle") (param i32 i32) (result i64) i64.const 0) {funcs})'
        )
    )


def test_well_behaved_functions_see_no_error_beside_a_hostile_mix(node: Server) -> None:
    stop = threading.Event()
    latencies: list[float] = []
    errors: list[str] = []
    hostile: dict[str, int] = {}
    lock = threading.Lock()

    def count(what: str) -> None:
        with lock:
            hostile[what] = hostile.get(what, 0) + 1

    def good_sdk() -> None:
        with node.client() as client:
            i = 0
            while not stop.is_set():
                started = time.monotonic()
                result = client.invoke("good", {"i": i})
                latencies.append(time.monotonic() - started)
                if result.payload != {"i": i}:
                    errors.append(f"good: {result.error!r}")
                i += 1

    def good_http() -> None:
        with httpx.Client(base_url=node.url, timeout=30) as http:
            while not stop.is_set():
                started = time.monotonic()
                response = http.post("/good", content=b'{"h": 1}')
                latencies.append(time.monotonic() - started)
                if response.status_code != 200:
                    errors.append(f"good-http: {response.status_code} {response.text[:200]}")

    def invoker(name: str, export: str, pause: float = 0.0) -> Callable[[], None]:
        def run() -> None:
            with node.http() as http:
                while not stop.is_set():
                    r = http.post(f"/v1/functions/{name}/invoke?export={export}", content=b"{}")
                    count(f"{name}/{export} {r.status_code}")
                    stop.wait(pause)

        return run

    def deployer() -> None:
        bomb = _bomb_module()
        bad = [("zombie", guest_wasm("failing_init")), ("sleepy", guest_wasm("sleepy_init")),
               ("bombed", bomb)]  # fmt: skip
        with node.client() as client:
            i = 0
            while not stop.is_set():
                name, code = bad[i % len(bad)]
                try:
                    client.deploy({"name": name, "timeout": 1.0}, code)
                    count(f"deploy {name} accepted")
                except FireboxError as exc:
                    count(f"deploy {name} {exc.code}")
                i += 1

    def big_bodies() -> None:
        body = b"x" * (7 * 1024 * 1024)
        with httpx.Client(base_url=node.url, timeout=30) as http:
            while not stop.is_set():
                count(f"big body {http.post('/good', content=body).status_code}")

    def half_requests() -> None:
        while not stop.is_set():
            socks = []
            for _ in range(50):
                with_retry = socket.create_connection(("127.0.0.1", node.port), timeout=5)
                with_retry.sendall(b"POST /good HTTP/1.1\r\nHost: x\r\n")
                socks.append(with_retry)
            count("half requests x50")
            stop.wait(3.0)
            for sock in socks:
                sock.close()

    with node.client() as client:
        before = client.node()
    threads = [threading.Thread(target=fn, daemon=True) for fn in (
        good_sdk, good_http, deployer, big_bodies, half_requests,
        invoker("sleeper", "sleep"), invoker("sleeper", "sleep"),
        invoker("spinner", "spin", 0.5), invoker("bomb", "grow"), invoker("bomb", "huge"),
        *(invoker("flood", "handle") for _ in range(24)),
    )]  # fmt: skip
    for thread in threads:
        thread.start()
    time.sleep(SOAK_S)
    stop.set()
    for thread in threads:
        thread.join(30)
    with node.client() as client:
        after = client.node()
    rss_before = sum(w["rss"] for w in before["workers"]) / 2**20
    rss_after = sum(w["rss"] for w in after["workers"]) / 2**20
    ordered = sorted(latencies)
    p50 = statistics.median(ordered)
    p99 = ordered[int(len(ordered) * 0.99)]
    print(
        f"\nsoak {SOAK_S:.0f}s: {len(latencies)} good calls, {len(errors)} errors,"
        f" p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {ordered[-1] * 1000:.1f} ms;"
        f" worker RSS {rss_before:.0f} -> {rss_after:.0f} MiB;"
        f" restarts {before['restarts']} -> {after['restarts']}; hostile: {dict(sorted(hostile.items()))}"
    )
    assert errors == [], errors[:10]
    assert len(latencies) > 100
    assert p99 < 2.0, f"p99 {p99:.3f}s"
    assert after["restarts"] == before["restarts"], "a worker was killed"
    assert rss_after < rss_before + 1024, (rss_before, rss_after)
    assert not [k for w in after["workers"] for k in w["pools"] if k.split(":")[0]
                in ("zombie", "sleepy", "bombed")]  # fmt: skip
