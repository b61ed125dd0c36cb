"""The schedules' outbox across real nodes on PostgreSQL and Redis: a node SIGKILLed right
after claiming a tick (or right after enqueueing it, before deleting its outbox row)
loses nothing; another node fires that tick exactly once."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa

from tests.conftest import ServerFactory

pytestmark = [pytest.mark.slow, pytest.mark.services]

TICKER = """
def handler(event, context):
    print("tick", event["time"])
    return {}
"""


@pytest.fixture
def shared(pg_schema_url: str, redis_url: str) -> Iterator[dict[str, str]]:
    yield {
        "FIREBOX_DATABASE_URL": pg_schema_url,
        "FIREBOX_QUEUE_URL": redis_url,
        "FIREBOX_REGISTRY_POLL_S": "0.2",
        "FIREBOX_SCHEDULE_ALLOW_SECONDS": "1",
        "FIREBOX_SCHEDULE_OUTBOX_S": "1",
    }
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter("firebox:*"):
        client.delete(key)


def outbox(url: str) -> list[tuple[str, float]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [
                (r[0], r[1]) for r in conn.exec_driver_sql("SELECT name, tick FROM schedule_outbox")
            ]
    finally:
        engine.dispose()


@pytest.mark.parametrize("point", ["schedule-claimed", "schedule-enqueued"])
def test_a_node_killed_mid_firing_loses_no_tick_and_fires_none_twice(
    shared: dict[str, str], server_factory: ServerFactory, tmp_path: Path, point: str
) -> None:
    doomed = server_factory(
        env={**shared, "FIREBOX_PREPARE_PYTHON": "1", "FIREBOX_FAULT_KILL_AT": point}
    ).start()
    src = tmp_path / "ticker"
    src.mkdir()
    (src / "app.py").write_text(TICKER)
    (src / "firebox.toml").write_text('name = "ticker"\nruntime = "python3.14"\n')
    with doomed.client() as a:
        a.deploy_path(src)
        a.schedules.create("beat", "ticker", "rate(3 seconds)")
    assert doomed.proc is not None
    assert doomed.proc.wait(30) == -9  # it claimed the first tick and killed itself
    doomed.proc = None
    left = outbox(shared["FIREBOX_DATABASE_URL"])
    assert len(left) == 1, "the claimed tick's outbox row is gone with its node"
    lost_tick = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(left[0][1]))

    survivor = server_factory(env=shared).start()
    # After a claimed-then-enqueued kill the event may sit on the dead node's consumer
    # until the async queue's visibility timeout (60 s) gives it back.
    deadline = time.monotonic() + (100 if point == "schedule-enqueued" else 40)
    with survivor.client() as b:
        while True:
            ticks = Counter(
                line.split()[1]
                for entry in b.logs("ticker", limit=1000)
                for line in entry.text.splitlines()
                if line.startswith("tick ")
            )
            if lost_tick in ticks and len(ticks) >= 3:
                break
            assert time.monotonic() < deadline, f"the lost tick never fired: {ticks}"
            time.sleep(0.5)
        time.sleep(2.0)  # a second firing of any tick would show by now
        ticks = Counter(
            line.split()[1]
            for entry in b.logs("ticker", limit=1000)
            for line in entry.text.splitlines()
            if line.startswith("tick ")
        )
    assert ticks[lost_tick] == 1
    assert all(n == 1 for n in ticks.values()), f"a tick fired twice: {ticks}"
    assert left[0] not in outbox(shared["FIREBOX_DATABASE_URL"])  # retried, then deleted
