"""Many nodes on Redis and PostgreSQL: two servers consume one queue mapping; killing one
mid-batch loses nothing, the other finishes the work."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from firebox.sdk.client import Client

from tests.conftest import ServerFactory

pytestmark = pytest.mark.slow

SLOW_ECHO = """
import time

def handler(event, context):
    for record in event["Records"]:
        print("processed", record["body"])
    time.sleep(0.2)  # long enough for batches to be in flight when a node dies
    return {"batchItemFailures": []}
"""


@pytest.fixture
def shared(pg_schema_url: str, redis_url: str) -> Iterator[dict[str, str]]:
    yield {
        "FIREBOX_DATABASE_URL": pg_schema_url,
        "FIREBOX_QUEUE_URL": redis_url,
        "FIREBOX_REGISTRY_POLL_S": "0.2",
        "FIREBOX_MAPPING_RELOAD_S": "0.5",
    }
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter("firebox:*"):
        client.delete(key)


def test_killing_a_node_mid_batch_loses_nothing(
    shared: dict[str, str], server_factory: ServerFactory, tmp_path: Path
) -> None:
    first = server_factory(env={**shared, "FIREBOX_PREPARE_PYTHON": "1"}).start()
    second = server_factory(env=shared).start()
    src = tmp_path / "slow-echo"
    src.mkdir()
    (src / "app.py").write_text(SLOW_ECHO)
    (src / "firebox.toml").write_text(
        'name = "slow-echo"\nruntime = "python3.14"\nconcurrency = 4\n'
    )
    bodies = [f"msg-{i}" for i in range(200)]
    with first.client() as a, Client(second.url, second.credentials) as b:
        a.deploy_path(src)
        a.queues.create("work", visibility_timeout_s=3)
        a.mappings.create("slow-echo", "queue:work", batch_size=5, maximum_concurrency=2,
                          function_response_types=["ReportBatchItemFailures"])  # fmt: skip
        for start in range(0, len(bodies), 10):
            a.queues.send_batch("work", list(bodies[start : start + 10]))
        # Both nodes are consuming: wait until some work is done, then kill the first.
        deadline = time.monotonic() + 60
        while a.queues.get("work")["stats"]["deleted"] < 20:
            assert time.monotonic() < deadline, "the mapping never started"
            time.sleep(0.2)
        assert first.proc is not None
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(10)
        first.proc = None
        # The survivor drains the queue, including what the dead node held.
        deadline = time.monotonic() + 120
        while True:
            stats = b.queues.get("work")["stats"]
            if stats["depth"] == 0 and stats["in_flight"] == 0 and stats["delayed"] == 0:
                break
            assert time.monotonic() < deadline, f"the queue never drained: {stats}"
            time.sleep(0.5)
        time.sleep(0.5)
        texts = [entry.text for entry in b.logs("slow-echo", limit=10_000)]
    processed = {
        line.split()[-1]
        for text in texts
        for line in text.splitlines()
        if line.startswith("processed ")
    }
    assert processed == set(bodies)  # every message at least once, none lost
