"""A worker the node kills as the last resort (it answers nothing past a deadline): the calls
it had not begun are sent again to the replacement, the calls it was running fail with
WorkerLost, and the call it overstayed is named in the log."""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from firebox.runtime.errors import FireboxError, TimedOut, WorkerLost

from tests.conftest import Server, guest_wasm
from tests.integration.test_metrics import scrape, value

T = TypeVar("T")

# One worker, so every call shares it; 8 threads (8 node slots), so admission lets the
# queued calls through to it.
ENV = {"FIREBOX_WORKERS": "1", "FIREBOX_WORKER_THREADS": "8"}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(tmp_path_factory.mktemp("loss") / "data", env=ENV)
    server.data_dir.mkdir(parents=True)
    server.start()
    with server.client() as client:
        # nap.wat naps 3 s in poll_oneoff: cut at 1 s (its timeout) when the worker runs.
        client.deploy({"name": "wedge", "timeout": 1.0}, guest_wasm("nap"))
        client.deploy({"name": "napper", "timeout": 8.0}, guest_wasm("nap"))
        client.deploy({"name": "patient", "timeout": 10.0}, guest_wasm("echo"))
    yield server
    server.stop()


def wait_for(check: Callable[[], T | None], what: str, timeout: float = 10.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (got := check()) is not None:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _call(node: Server, name: str, event: Any) -> Any:
    """Invoke and return the result, or the error raised before the function answered."""
    with node.client() as client:
        try:
            return client.invoke(name, event)
        except FireboxError as exc:
            return exc


def _error(outcome: Any) -> FireboxError | None:
    return outcome if isinstance(outcome, FireboxError) else outcome.error


def test_calls_not_started_on_a_killed_worker_run_on_the_replacement(node: Server) -> None:
    with node.client() as client:
        stats = client.node()
        restarts = stats["restarts"]
        pid = stats["workers"][0]["pid"]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        wedge = pool.submit(_call, node, "wedge", {"w": 1})
        napper = pool.submit(_call, node, "napper", {"n": 1})

        def both_running() -> bool | None:
            with node.client() as c:
                pools = {k.split(":")[0]: v for k, v in c.node()["workers"][0]["pools"].items()}
            leased = [pools.get(n, {}).get("leased", 0) for n in ("wedge", "napper")]
            return True if leased == [1, 1] else None

        # Leased means begun: the worker sent each call's "started" frame before that.
        wait_for(both_running, "both naps to be running on the worker")
        # The worker now answers nothing at all, as a wedged process (the watchdog
        # included): what the node's last resort is for.
        os.kill(pid, signal.SIGSTOP)
        try:
            patients = [pool.submit(_call, node, "patient", {"p": i}) for i in range(3)]
            started = time.monotonic()
            outcomes = [f.result(timeout=30) for f in patients]
            elapsed = time.monotonic() - started
            wedged, running = wedge.result(timeout=30), napper.result(timeout=30)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
    for i, outcome in enumerate(outcomes):
        assert _error(outcome) is None, f"queued call {i} failed: {_error(outcome)}"
        assert outcome.payload == {"p": i}
    print(f"queued calls answered by the replacement in {elapsed:.2f} s")  # pytest -s
    assert elapsed < 10.0, f"the queued calls took {elapsed:.2f}s"
    assert isinstance(_error(wedged), TimedOut), _error(wedged)
    lost = _error(running)
    assert isinstance(lost, WorkerLost), lost
    assert "while running" in lost.message
    with node.client() as client:
        stats = client.node()
        assert stats["restarts"] == restarts + 1
        assert stats["workers"][0]["pid"] != pid
    with node.http() as http:
        samples = scrape(http)
    assert value(samples, "firebox_worker_exits_total", reason="deadline") == 1
    assert value(samples, "firebox_worker_lost_invocations_total", outcome="resent") == 3
    assert value(samples, "firebox_worker_lost_invocations_total", outcome="failed") == 1
    log = node.log_text()
    assert "did not answer call" in log and "(function wedge)" in log, log[-2000:]
