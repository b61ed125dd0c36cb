"""Containment on a real node (core modules): a guest blocked in a host call ends at its own
deadline without taking its worker's other calls down; admission by the node's real
execution slots; a deploy that fails to initialize leaves nothing behind and holds no lock."""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import wasmtime
from firebox.runtime.errors import InvalidArtifact, TimedOut

from tests.conftest import Server, guest_wasm
from tests.integration.test_metrics import wait_for

# One worker with four guest threads: every call shares the worker; the node has 4 slots
# (3 for any one function, 1 kept for the others).
ENV = {"FIREBOX_WORKERS": "1", "FIREBOX_WORKER_THREADS": "4"}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(tmp_path_factory.mktemp("contain") / "data", env=ENV)
    server.data_dir.mkdir(parents=True)
    server.start()
    with server.client() as client:
        client.deploy({"name": "echo"}, guest_wasm("echo"))
        client.deploy({"name": "sleeper", "timeout": 1.0}, guest_wasm("hostile"))
        client.deploy({"name": "napper", "timeout": 5.0}, guest_wasm("nap"))
        client.deploy({"name": "loud"}, guest_wasm("loud_failure"))
    yield server
    server.stop()


def _pools(server: Server) -> dict[str, Any]:
    with server.client() as client:
        workers = client.node()["workers"]
    return {k: v for w in workers for k, v in w["pools"].items()}


def _fill_errors(server: Server) -> dict[str, str]:
    with server.client() as client:
        workers = client.node()["workers"]
    return {k: v for w in workers for k, v in w["fill_errors"].items()}


def test_blocked_host_call_ends_at_its_deadline_and_the_neighbour_survives(node: Server) -> None:
    with node.client() as client:
        restarts = client.node()["restarts"]
        neighbour: dict[str, Any] = {}

        def nap() -> None:
            with node.client() as other:
                neighbour["result"] = other.invoke("napper", {"n": 1})  # 3 s in poll_oneoff

        thread = threading.Thread(target=nap)
        thread.start()
        time.sleep(0.3)  # the neighbour is now blocked in its host call on the same worker
        started = time.monotonic()
        result = client.invoke("sleeper", {}, export="sleep")  # 5 s sleep, 1 s timeout
        elapsed = time.monotonic() - started
        thread.join(10)
        assert isinstance(result.error, TimedOut), result.error
        assert result.error.message == "Task timed out after 1.00 seconds"
        assert elapsed < 2.0, f"answered after {elapsed:.2f}s"
        assert neighbour["result"].payload == {"n": 1}, neighbour["result"].error
        assert client.invoke("echo", {"y": 2}).payload == {"y": 2}
        assert client.node()["restarts"] == restarts, "a worker was killed"


def test_init_blocked_in_a_host_call_fails_its_deploy_and_holds_no_lock(node: Server) -> None:
    outcome: dict[str, Any] = {}

    def sleepy() -> None:
        started = time.monotonic()
        with node.client() as client:
            try:
                client.deploy({"name": "sleepy", "timeout": 1.0}, guest_wasm("sleepy_init"))
            except InvalidArtifact as exc:
                outcome["error"] = exc
        outcome["elapsed"] = time.monotonic() - started

    thread = threading.Thread(target=sleepy)
    thread.start()
    time.sleep(0.3)  # its init is now asleep (20 s) on the worker
    started = time.monotonic()
    with node.client() as client:
        client.deploy({"name": "bystander"}, guest_wasm("echo"))
        quick = time.monotonic() - started
        thread.join(30)
        assert quick < 1.0, f"another tenant's deploy waited {quick:.2f}s"
        assert "error" in outcome, "a 20 s init under a 1 s timeout deployed"
        assert "initialize" in outcome["error"].message
        assert outcome["elapsed"] < 4.0, outcome
        assert client.invoke("bystander", {"b": 1}).payload == {"b": 1}
        assert not [k for k in _pools(node) if k.startswith("sleepy:")]


def test_failed_deploy_leaves_no_pool_no_refill_and_no_artifact(node: Server) -> None:
    wasm = guest_wasm("failing_init")
    with node.client() as client, pytest.raises(InvalidArtifact, match="initialize"):
        client.deploy({"name": "zombie"}, wasm)
    time.sleep(1.5)  # three refill periods: a leftover pool would have failed again
    assert not [k for k in _pools(node) if k.startswith("zombie:")]
    assert not [k for k in _fill_errors(node) if k.startswith("zombie:")]
    digest = hashlib.sha256(wasm).hexdigest()
    assert not list((node.data_dir / "artifacts").rglob(f"{digest}*"))


def test_flood_is_throttled_at_the_real_slots_and_a_bystander_keeps_working(node: Server) -> None:
    def flood(i: int) -> httpx.Response:
        with node.http() as http:
            return http.post("/v1/functions/napper/invoke", content=json.dumps({"i": i}))

    with node.client() as client:
        restarts = client.node()["restarts"]
        with concurrent.futures.ThreadPoolExecutor(30) as pool:
            flooding = [pool.submit(flood, i) for i in range(30)]
            time.sleep(0.5)  # the flood holds its share of the node's slots
            bystander = [client.invoke("echo", {"i": i}) for i in range(10)]
            responses = [f.result() for f in flooding]
        for result in bystander:
            assert result.ok, result.error
        statuses = [r.status_code for r in responses]
        assert set(statuses) <= {200, 429}, [r.text for r in responses if r.status_code >= 500]
        assert statuses.count(200) >= 3 and statuses.count(429) > 0, statuses
        throttled = next(r for r in responses if r.status_code == 429)
        assert throttled.json()["error"]["type"] == "Throttled"
        assert client.node()["restarts"] == restarts


def test_a_huge_error_message_is_clipped(node: Server) -> None:
    with node.http() as http:
        response = http.post("/v1/functions/loud/invoke", content=b"{}")
    assert response.status_code == 502, response.text[:200]
    assert len(response.content) < 300_000, len(response.content)
    message = response.json()["error"]["message"]
    assert message.startswith("Error: aaaa") and "truncated" in message


def _many_functions(count: int) -> bytes:
    funcs = "".join(f"(func (result i32) i32.const {i})" for i in range(count))
    return bytes(
        wasmtime.wat2wasm(
            '(module (memory (export "memory") 1)'
            ' (func (export "firebox_alloc") (param i32) (result i32) i32.const 0)'
            f' (func (export "handle") (param i32 i32) (result i64) i64.const 0) {funcs})'
        )
    )


def test_a_compile_bomb_is_refused_before_compiling(node: Server) -> None:
    bomb = _many_functions(25_000)  # ~5 s of Cranelift here, twice
    started = time.monotonic()
    with node.client() as client, pytest.raises(InvalidArtifact, match="25002 functions"):
        client.deploy({"name": "bomb"}, bomb)
    assert time.monotonic() - started < 2.0


def test_a_big_compile_does_not_hold_other_deploys(node: Server) -> None:
    big = _many_functions(15_000)  # allowed: a few seconds to validate and compile
    done = threading.Event()

    def deploy_big() -> None:
        with node.client() as client:
            client.deploy({"name": "big"}, big)
        done.set()

    thread = threading.Thread(target=deploy_big)
    thread.start()
    time.sleep(0.3)
    started = time.monotonic()
    with node.client() as client:
        client.deploy({"name": "small"}, guest_wasm("echo"))
    quick = time.monotonic() - started
    overlapped = not done.is_set()  # the big one was still compiling meanwhile
    thread.join(60)
    assert done.is_set() and overlapped
    assert quick < 1.0, f"a small deploy waited {quick:.2f}s behind a big compile"


def test_a_slow_provisioned_init_holds_no_lock(node: Server) -> None:
    # Deployed with a 5 s init (its trial load); a published version made provisioned
    # is a registry change whose pool load initializes 5 s more on the worker.
    with node.client() as client:
        client.deploy({"name": "slowinit", "timeout": 10.0}, guest_wasm("slow_init"))
        version = client.publish("slowinit").version
    outcome: dict[str, float] = {}

    def provision() -> None:
        started = time.monotonic()
        with node.client() as other:
            other.set_provisioned("slowinit", 1, qualifier=version)
        outcome["elapsed"] = time.monotonic() - started

    thread = threading.Thread(target=provision)
    thread.start()
    # The pool exists on the worker as soon as its load begins (then 5 s of init).
    wait_for(
        lambda: any(k.startswith(f"slowinit:{version}@") for k in _pools(node)),
        timeout=10,
        what="the provisioned pool's load to begin",
    )
    started = time.monotonic()
    with node.client() as client:
        client.deploy({"name": "meanwhile"}, guest_wasm("echo"))
        names = {f.name for f in client.list()}
        quick = time.monotonic() - started
        thread.join(15)
        print(f"deploy + list {quick:.2f} s, set_provisioned {outcome['elapsed']:.2f} s")
        assert quick < 1.0, f"a deploy and a list waited {quick:.2f}s behind a pool's init"
        assert "meanwhile" in names
        assert outcome["elapsed"] < 1.0, outcome  # answered before the init ended
        status = wait_for(
            lambda: (s := client.provisioned("slowinit")).get(version, {}).get("ready") and s,
            timeout=15,
            what="the provisioned instance to be ready",
        )
        assert status[version] == {"requested": 1, "ready": 1, "version": version}
        assert client.invoke(f"slowinit:{version}", {"v": 1}).payload == {"v": 1}
