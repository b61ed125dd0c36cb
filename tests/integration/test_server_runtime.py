"""A real firebox server driven over HTTP: round trips, triggers, limits, workers, errors."""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import time
from typing import Any

import httpx
import msgpack
import pytest
from firebox.runtime.errors import (
    FunctionNotFound,
    GuestTrap,
    HandlerError,
    InvalidArtifact,
    InvalidManifest,
    MemoryLimitExceeded,
    OutOfFuel,
    ResponseTooLarge,
    TimedOut,
)
from firebox.sdk.operations import Function

from tests.conftest import Server, ServerFactory, guest_wasm


def deploy(server: Server, manifest: dict[str, Any], guest: str) -> Function:
    with server.client() as client:
        return client.deploy(manifest, guest_wasm(guest))


@pytest.fixture(scope="module", autouse=True)
def functions(server: Server) -> None:
    deploy(server, {"name": "echo"}, "echo")
    deploy(
        server,
        {
            "name": "transform",
            "triggers": [
                {"type": "http", "route": "/wrap", "methods": ["POST"], "export": "handle"},
                {"route": "/private", "methods": ["POST"], "export": "handle", "auth": "key"},
            ],
        },
        "transform",
    )
    deploy(
        server, {"name": "hostile", "memory": 16, "timeout": 1.0, "max_log_bytes": 2000}, "hostile"
    )
    deploy(server, {"name": "starved", "fuel": 100_000, "timeout": 2.0}, "hostile")
    deploy(server, {"name": "reused", "isolation": "reuse"}, "hostile")
    deploy(server, {"name": "capped", "concurrency": 2, "provisioned": 1}, "hostile")


def test_echo_round_trip_json(server: Server) -> None:
    with server.http() as http:
        r = http.post("/v1/functions/echo/invoke", content=b'{"a": [1, 2, "x"]}',
                      headers={"Content-Type": "application/json"})  # fmt: skip
    assert r.status_code == 200
    assert r.json() == {"a": [1, 2, "x"]}
    assert r.headers["x-firebox-request-id"]
    assert r.headers["x-firebox-executed-version"] == "$LATEST"


def test_echo_round_trip_msgpack(server: Server) -> None:
    body = msgpack.packb({"n": 7, "s": "héllo"})
    with server.http() as http:
        r = http.post("/v1/functions/echo/invoke", content=body,
                      headers={"Content-Type": "application/msgpack"})  # fmt: skip
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/msgpack"
    assert msgpack.unpackb(r.content) == {"n": 7, "s": "héllo"}


def test_transform_json_and_msgpack_with_log_tail(server: Server) -> None:
    for use_msgpack in (True, False):
        with server.client(use_msgpack=use_msgpack) as client:
            result = client.invoke("transform", {"k": "v"}, tail=True)
        assert result.ok, result.error
        assert result.payload == {"wrapped": {"k": "v"}, "by": "wat"}
        assert "transform called" in result.log


def test_trigger_route_calls_its_export(server: Server) -> None:
    r = httpx.post(server.url + "/wrap?x=1", content=b'{"hello": "world"}',
                   headers={"Content-Type": "application/json"})  # fmt: skip
    assert r.status_code == 200
    event = r.json()["wrapped"]
    assert event["rawPath"] == "/wrap"
    assert event["queryStringParameters"] == {"x": "1"}
    assert json.loads(event["body"]) == {"hello": "world"}
    assert event["requestContext"]["http"]["method"] == "POST"
    assert httpx.get(server.url + "/wrap").status_code == 405
    assert httpx.get(server.url + "/nowhere").status_code == 404


def test_trigger_with_key_auth_needs_a_key(server: Server) -> None:
    assert httpx.post(server.url + "/private", content=b"{}").status_code == 401
    with server.http() as http:  # the admin key; issued keys work the same way
        assert http.post("/private", content=b"{}").json()["wrapped"]["rawPath"] == "/private"


@pytest.mark.parametrize(
    ("function", "export", "error", "message"),
    [
        ("hostile", "spin", TimedOut, "Task timed out after 1.00 seconds"),
        ("starved", "spin", OutOfFuel, "Out of fuel after 100000 units"),
        ("hostile", "grow", MemoryLimitExceeded, "Memory limit of 16 MiB exceeded"),
        ("hostile", "trap", GuestTrap, "unreachable"),
        ("hostile", "recurse", GuestTrap, "stack overflow"),
        ("hostile", "oob", GuestTrap, "out of bounds"),
        ("hostile", "huge", ResponseTooLarge, "exceeds the limit"),
        ("hostile", "fail", HandlerError, "something went wrong"),
    ],
)
def test_limit_breach_is_typed_and_next_call_succeeds(
    server: Server, function: str, export: str, error: type, message: str
) -> None:
    with server.client() as client:
        result = client.invoke(function, {"i": 1}, export=export)
        assert result.error is not None and isinstance(result.error, error), result.error
        assert message in result.error.message
        after = client.invoke(function, {"i": 2}, export="handle")
        assert after.ok, after.error
        assert after.payload == {"i": 2}
        assert client.get("hostile").name == "hostile"


def test_error_statuses_are_clear(server: Server) -> None:
    with server.http() as http:
        r = http.post("/v1/functions/hostile/invoke?export=spin", content=b"{}")
        assert r.status_code == 504
        assert r.json()["error"]["type"] == "TimedOut"
        assert r.headers["x-firebox-function-error"] == "TimedOut"
        assert (
            http.post("/v1/functions/hostile/invoke?export=trap", content=b"{}").status_code == 502
        )


def test_printing_forever_truncates_the_log(server: Server) -> None:
    with server.client() as client:
        result = client.invoke("hostile", {}, export="print_forever", tail=True)
        assert isinstance(result.error, TimedOut)
        assert "log truncated" in result.log
        assert len(result.log.encode()) < 4096
        assert client.invoke("echo", {"ok": 1}).payload == {"ok": 1}


def test_fresh_isolation_and_trapped_reused_instance_is_discarded(server: Server) -> None:
    with server.client() as client:
        # Default isolation: every invocation sees a fresh instance.
        assert [client.invoke("hostile", {}, export="count").payload for _ in range(3)] == [1, 1, 1]
        # Reuse mode keeps the instance warm across calls, until it traps.
        counts = [client.invoke("reused", {}, export="count").payload for _ in range(3)]
        assert counts[-1] > counts[0]
        assert isinstance(client.invoke("reused", {}, export="trap").error, GuestTrap)
        assert client.invoke("reused", {}, export="count").payload == 1


def test_guest_blocked_in_host_call_is_answered_on_time_and_no_worker_killed(
    server: Server,
) -> None:
    with server.client() as client:
        before = client.node()
        started = time.monotonic()
        result = client.invoke("hostile", {}, export="sleep")  # WASI sleep of 5 s, timeout 1 s
        elapsed = time.monotonic() - started
        assert isinstance(result.error, TimedOut)
        assert result.error.message == "Task timed out after 1.00 seconds"
        assert elapsed < 3.0, f"answered after {elapsed:.2f}s, not on time"
        time.sleep(1.5)  # past the node's kill grace: a stuck worker would be killed now
        assert client.node()["restarts"] == before["restarts"]
        assert client.invoke("hostile", {"x": 1}, export="busy").payload == {"x": 1}
        assert client.invoke("echo", {"y": 2}).payload == {"y": 2}


def test_worker_killed_from_outside_is_replaced(server: Server) -> None:
    with server.client() as client:
        before = client.node()
        pid = before["workers"][0]["pid"]
        os.kill(pid, signal.SIGKILL)
        # The server keeps answering while the worker is replaced.
        for i in range(20):
            result = client.invoke("echo", {"i": i})
            assert result.ok or (result.error is not None and result.error.code == "WorkerLost"), (
                result.error
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            pids = [w["pid"] for w in client.node()["workers"]]
            if len(pids) == len(before["workers"]) and pid not in pids:
                break
            time.sleep(0.1)
        after = client.node()
        assert pid not in [w["pid"] for w in after["workers"]]
        assert len(after["workers"]) == len(before["workers"])
        assert after["restarts"] > before["restarts"]
        assert client.invoke("echo", {"z": 3}).payload == {"z": 3}


def test_burst_above_concurrency_cap_gets_429s_and_no_errors(server: Server) -> None:
    def call(i: int) -> httpx.Response:
        with server.http() as http:
            return http.post(
                "/v1/functions/capped/invoke?export=busy", content=json.dumps({"i": i})
            )

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(call, range(32)))
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 429}, statuses
    assert statuses.count(429) > 0 and statuses.count(200) > 0
    throttled = next(r for r in responses if r.status_code == 429)
    assert int(throttled.headers["retry-after"]) >= 1
    assert throttled.json()["error"]["type"] == "Throttled"


def test_bad_input_gets_4xx(server: Server) -> None:
    with server.client() as client:
        with pytest.raises(InvalidArtifact, match="bad magic"):
            client.deploy({"name": "junk"}, b"this is not wasm at all")
        with pytest.raises(InvalidArtifact, match="WAT text"):
            client.deploy({"name": "junk"}, b"(module)")
        with pytest.raises(InvalidArtifact, match="invalid WebAssembly module"):
            client.deploy({"name": "junk"}, b"\0asm\x01\x00\x00\x00\xff\xff")
        with pytest.raises(InvalidArtifact, match="ABI v1"):
            client.deploy(
                {"name": "junk"}, guest_wasm("echo").replace(b"firebox_alloc", b"firebox_allox")
            )
        with pytest.raises(InvalidManifest, match="unknown manifest key"):
            client.deploy({"name": "junk", "memroy": 5}, guest_wasm("echo"))
        with pytest.raises(InvalidManifest, match="memory"):
            client.deploy({"name": "junk", "memory": -1}, guest_wasm("echo"))
        with pytest.raises(FunctionNotFound):
            client.get("junk")
        with pytest.raises(FunctionNotFound):
            client.invoke("nope", {})
    stored = {p.name for p in (server.data_dir / "artifacts").glob("*/*")}
    with server.client() as client:
        assert stored == {f.digest for f in client.list()}
    with server.http() as http:
        r = http.post("/v1/functions/echo/invoke", content=b"{not json")
        assert r.status_code == 400 and "malformed JSON" in r.json()["error"]["message"]
        r = http.post("/v1/functions/echo/invoke", content=b"x" * (7 * 1024 * 1024))
        assert r.status_code == 413
        assert http.put("/v1/functions/echo").status_code == 405
        assert http.post("/v1/functions", content=b"[]").status_code == 400
    assert httpx.get(server.url + "/v1/functions").status_code == 401
    r = httpx.get(server.url + "/v1/functions",
                  headers={"Authorization": f"Bearer {server.credentials.access_key_id}:wrong"})  # fmt: skip
    assert r.status_code == 403


def test_compiled_cache_is_reused_after_restart(server_factory: ServerFactory) -> None:
    node = server_factory(env={"FIREBOX_COMPILED_CACHE": ""}).start()  # its own cache
    with node.client() as client:
        client.deploy({"name": "echo"}, guest_wasm("echo"))
        assert client.node()["compiles"]["deploy"] == 1
    node.stop()
    node.start()
    with node.client() as client:
        assert client.invoke("echo", {"again": True}).payload == {"again": True}
        stats = client.node()
    assert stats["compiles"] == {"deploy": 0, "workers": 0}
    assert stats["cache_hits"] >= 1
