"""Cluster-wide concurrency across real nodes on Redis: a function's cap and the account
limit hold for all nodes together (what ran is measured from the function's own clock),
and the slots of a node killed mid-invocation come back after their lease."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis
from firebox.runtime.errors import Throttled
from firebox.sdk.client import Client

from tests.conftest import Server, ServerFactory

pytestmark = [pytest.mark.slow, pytest.mark.services]

CAP = 3
SLEEPER = """
import time

def handler(event, context):
    start = time.time()
    time.sleep(event["sleep"])
    return {"start": start, "end": time.time()}
"""


@pytest.fixture
def shared(pg_schema_url: str, redis_url: str) -> Iterator[dict[str, str]]:
    yield {
        "FIREBOX_DATABASE_URL": pg_schema_url,
        "FIREBOX_QUEUE_URL": redis_url,
        "FIREBOX_REGISTRY_POLL_S": "0.2",
        "FIREBOX_CONCURRENCY_LEASE_S": "3",
        "FIREBOX_ACCOUNT_CONCURRENCY": "5",
        # Idle slots go back to Redis soon: a burst's lingering "wide" slots must not
        # count against the account when the "capped" calls below start.
        "FIREBOX_CONCURRENCY_LINGER_S": "0.2",
    }
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter("firebox:*"):
        client.delete(key)


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """Return the most spans open at one instant."""
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    best = now = 0
    for _, step in edges:
        now += step
        best = max(best, now)
    return best


def burst(nodes: list[Server], name: str, calls: int, sleep: float) -> tuple[list[Any], int]:
    """Invoke `name` `calls` times at once, round-robin over `nodes`; return the spans the
    function reported and how many calls were throttled."""

    def one(i: int) -> Any:
        node = nodes[i % len(nodes)]
        with Client(node.url, node.credentials) as c:
            try:
                return c.invoke(name, {"sleep": sleep}).payload
            except Throttled:
                return None

    with ThreadPoolExecutor(calls) as pool:
        results = list(pool.map(one, range(calls)))
    spans = [(r["start"], r["end"]) for r in results if r is not None]
    return spans, sum(r is None for r in results)


def settle(shared: dict[str, str]) -> None:
    """Wait until the last burst's idle slots are back in Redis (they linger on their
    node for FIREBOX_CONCURRENCY_LINGER_S, and count against the account meanwhile)."""
    rc = redis.Redis.from_url(shared["FIREBOX_QUEUE_URL"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(
        rc.zcard(key) for key in rc.scan_iter("firebox*conc:account")
    ):
        time.sleep(0.05)


def deploy(client: Client, tmp_path: Path, name: str, concurrency: int) -> None:
    src = tmp_path / name
    src.mkdir()
    (src / "app.py").write_text(SLEEPER)
    (src / "firebox.toml").write_text(
        f'name = "{name}"\nruntime = "python3.14"\nconcurrency = {concurrency}\ntimeout = 30\n'
    )
    client.deploy_path(src)


def test_caps_hold_across_nodes_and_a_dead_nodes_slots_come_back(
    shared: dict[str, str], server_factory: ServerFactory, tmp_path: Path
) -> None:
    first = server_factory(env={**shared, "FIREBOX_PREPARE_PYTHON": "1"}).start()
    second = server_factory(env=shared).start()
    with first.client() as a:
        deploy(a, tmp_path, "capped", CAP)
        deploy(a, tmp_path, "wide", 50)
        for name in ("capped", "wide"):  # warm both nodes (their first call compiles)
            for node in (first, second):
                with node.client() as c:
                    assert c.invoke(name, {"sleep": 0}).ok
    # Per node each would allow CAP; together they allow CAP.
    spans, throttled = burst([first, second], "capped", 12, 1.0)
    assert most_at_once(spans) == CAP
    assert throttled >= 12 - 2 * CAP  # at most two waves of CAP fit in the burst
    # The account limit (5) caps every function together, whatever each one's own cap.
    settle(shared)  # the first burst's idle slots would count against the account
    spans, throttled = burst([first, second], "wide", 12, 1.0)
    assert most_at_once(spans) == 5
    assert throttled > 0

    # The first node dies with its invocations running: their slots expire (3 s), then
    # the survivor gets all of them.
    settle(shared)

    def long_call(_: int) -> Any:
        with first.client() as c:
            return c.invoke("capped", {"sleep": 10})

    with ThreadPoolExecutor(CAP) as pool:
        running = [pool.submit(long_call, i) for i in range(CAP)]
        time.sleep(1.5)
        assert first.proc is not None
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(10)
        first.proc = None
        for future in running:
            with pytest.raises(Exception):  # noqa: B017 - the connection dies with the node
                future.result(10)
    with second.client() as b, pytest.raises(Throttled):
        b.invoke("capped", {"sleep": 0})  # the dead node's slots still count
    time.sleep(3.5)
    spans, throttled = burst([second], "capped", CAP, 0.5)
    assert (len(spans), throttled) == (CAP, 0)
