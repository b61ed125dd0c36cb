"""Containment on a real node (Python functions): `time.sleep` in a handler ends at the call's
deadline (the host's sleep), a handler blocked in a WASI host call is answered at its deadline
and its thread set aside, an import that sleeps fails its deploy, no worker is killed, no deploy waits behind another's init, and a refill
stuck in a sleeping import does not stop the other pools' refills."""

from __future__ import annotations

import base64
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from firebox.runtime.errors import InvalidArtifact, TimedOut
from firebox.sdk.client import Client

from tests.conftest import Server, guest_wasm
from tests.integration.test_python_server import write_function

pytestmark = pytest.mark.slow

ENV = {
    "FIREBOX_PREPARE_PYTHON": "1",
    "FIREBOX_WORKERS": "1",
    "FIREBOX_WORKER_THREADS": "4",
    "FIREBOX_PYTHON_LOAD_TIMEOUT_S": "2",
}

SLEEPER = """
import time

def handler(event, context):
    time.sleep(event.get("s", 0))
    return event
"""

# Blocks in a WASI host call the host cannot end (a poll with no descriptors): the worker's
# watchdog answers the call at its deadline and sets its thread aside.
STUCK = """
import select

def handler(event, context):
    select.select([], [], [], event.get("s", 0))
    return event
"""

# Sleeps at import from the given instant on: the deploy's own instance loads fine, and
# every refill after that instant is stuck in its import.
LATE_SLEEPER = """
import time
if time.time() > {after}:
    time.sleep(10**9)

def handler(event, context):
    return "made before the trap"
"""


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(tmp_path_factory.mktemp("pycontain") / "data", env=ENV)
    server.data_dir.mkdir(parents=True)
    server.start()
    src = tmp_path_factory.mktemp("src")
    with server.client() as client:
        client.deploy_path(write_function(src, "pysleeper", SLEEPER, timeout=1.0))
        client.deploy_path(write_function(src, "pyquick", SLEEPER, timeout=3.0))
        client.deploy_path(write_function(src, "pystuck", STUCK, timeout=1.0))
        client.deploy({"name": "napper", "timeout": 5.0}, guest_wasm("nap"))
    yield server
    server.stop()


@pytest.fixture
def client(node: Server) -> Iterator[Client]:
    with node.client() as c:
        yield c


def test_sleep_in_a_handler_ends_at_its_deadline_and_frees_its_thread(
    node: Server, client: Client
) -> None:
    restarts = client.node()["restarts"]
    started = time.monotonic()
    result = client.invoke("pysleeper", {"s": 30})
    elapsed = time.monotonic() - started
    assert isinstance(result.error, TimedOut), result.error
    assert elapsed < 2.5, f"answered after {elapsed:.2f}s"
    # The host's sleep ended at the deadline: no thread was left asleep.
    stuck = {k: v for w in client.node()["workers"] for k, v in w["stuck"].items()}
    assert not [k for k in stuck if k.startswith("pysleeper:")], stuck
    assert client.node()["restarts"] == restarts
    # A sleep inside the deadline sleeps for as long as it was asked.
    started = time.monotonic()
    assert client.invoke("pysleeper", {"s": 0.3}).payload == {"s": 0.3}
    assert time.monotonic() - started >= 0.3


def test_a_handler_blocked_in_a_host_call_is_answered_and_the_neighbour_survives(
    node: Server, client: Client
) -> None:
    restarts = client.node()["restarts"]
    neighbour: dict[str, Any] = {}

    def nap() -> None:
        with node.client() as other:
            neighbour["result"] = other.invoke("napper", {"n": 1})

    thread = threading.Thread(target=nap)
    thread.start()
    time.sleep(0.3)
    started = time.monotonic()
    result = client.invoke("pystuck", {"s": 5})
    elapsed = time.monotonic() - started
    assert isinstance(result.error, TimedOut), result.error
    assert elapsed < 2.5, f"answered after {elapsed:.2f}s"
    stuck = {k: v for w in client.node()["workers"] for k, v in w["stuck"].items()}
    assert [k for k in stuck if k.startswith("pystuck:")], stuck  # set aside, named
    thread.join(10)
    assert neighbour["result"].payload == {"n": 1}, neighbour["result"].error
    time.sleep(1.5)  # past the node's kill grace
    assert client.node()["restarts"] == restarts, "a worker was killed"
    assert client.invoke("pyquick", {"q": 1}).payload == {"q": 1}
    deadline = time.monotonic() + 10  # the set-aside thread wakes up 5 s in and ends
    while time.monotonic() < deadline and any(w["stuck"] for w in client.node()["workers"]):
        time.sleep(0.2)
    assert client.invoke("pystuck", {"s": 0}).payload == {"s": 0}


def test_sleep_at_import_fails_the_deploy_and_other_deploys_do_not_wait(
    node: Server, tmp_path: Path
) -> None:
    folder = write_function(tmp_path, "pyimport", "import time\ntime.sleep(10**9)\n")
    outcome: dict[str, Any] = {}

    def deploy() -> None:
        started = time.monotonic()
        with node.client() as other:
            try:
                other.deploy_path(folder)
            except InvalidArtifact as exc:
                outcome["error"] = exc
        outcome["elapsed"] = time.monotonic() - started

    thread = threading.Thread(target=deploy, daemon=True)
    thread.start()
    time.sleep(1.0)  # its import is now asleep on the worker
    started = time.monotonic()
    with node.http() as http:
        code = base64.b64encode(guest_wasm("echo")).decode()
        body = {"manifest": {"name": "core-bystander"}, "code_base64": code}
        response = http.post("/v1/functions", json=body, timeout=10)
    quick = time.monotonic() - started
    assert response.status_code == 201, response.text
    assert quick < 1.5, f"another tenant's deploy waited {quick:.2f}s"
    thread.join(30)
    assert "error" in outcome, "an import sleeping forever deployed (or never answered)"
    assert "initialize" in outcome["error"].message
    assert outcome["elapsed"] < 10, outcome


def test_refill_stuck_in_a_sleeping_import_does_not_stop_other_refills(
    client: Client, tmp_path: Path
) -> None:
    after = time.time() + 4  # the deploy's instance loads before this instant
    source = textwrap.dedent(LATE_SLEEPER).format(after=after)
    client.deploy_path(write_function(tmp_path, "pylate", source, timeout=1.0))
    time.sleep(max(0.0, after - time.time()) + 0.2)
    # Takes the ready instance; its refill then sleeps in the import for good.
    assert client.invoke("pylate", {}).payload == "made before the trap"
    time.sleep(3.5)  # the refill thread gives up waiting after the 2 s load timeout
    warm = []
    for i in range(6):
        result = client.invoke("pyquick", {"i": i})
        assert result.payload == {"i": i}, result.error
        warm.append(result.warm)
        time.sleep(0.4)  # time for the filler to replace the instance the call used
    assert sum(warm[1:]) >= 4, f"pyquick's refills stopped: warm={warm}"


def test_threads_stuck_for_good_are_bounded_and_the_worker_recycled_gently(
    node: Server, client: Client, tmp_path: Path
) -> None:
    # One worker of 4 threads: 1 stuck call per function at most, recycled at 4 stuck.
    for i in range(4):
        client.deploy_path(write_function(tmp_path, f"pyforever{i}", STUCK, timeout=1.0))
    restarts = client.node()["restarts"]
    assert isinstance(client.invoke("pyforever0", {"s": 10**9}).error, TimedOut)
    with node.http() as http:
        again = http.post("/v1/functions/pyforever0/invoke", json={"s": 10**9})
    assert again.status_code == 429, again.text
    assert "stuck in host calls" in again.json()["error"]["message"]
    neighbour: dict[str, Any] = {}

    def nap() -> None:
        with node.client() as other:
            neighbour["result"] = other.invoke("napper", {"n": 2})

    thread = threading.Thread(target=nap)
    thread.start()
    time.sleep(0.3)
    for i in (1, 2, 3):
        assert isinstance(client.invoke(f"pyforever{i}", {"s": 10**9}).error, TimedOut)
    thread.join(15)
    assert neighbour["result"].payload == {"n": 2}, neighbour["result"].error  # drained
    deadline = time.monotonic() + 30
    while client.node()["restarts"] == restarts and time.monotonic() < deadline:
        time.sleep(0.2)
    assert client.node()["restarts"] == restarts + 1
    deadline = time.monotonic() + 30
    result = client.invoke("pyforever0", {"s": 0})
    while result.error is not None and time.monotonic() < deadline:
        time.sleep(0.5)
        result = client.invoke("pyforever0", {"s": 0})
    assert result.payload == {"s": 0}, result.error
