"""Push for registry changes across real nodes on PostgreSQL (LISTEN/NOTIFY): with the
poll set to 30 s, another node's writes and key revocations still arrive at once; a
dropped listening connection reconnects and catches up."""

from __future__ import annotations

import statistics
import time

import pytest
import sqlalchemy as sa
from firebox.runtime.credentials import Credentials
from firebox.runtime.errors import Unauthorized
from firebox.sdk.client import Client

from tests.conftest import Server, ServerFactory, guest_wasm

pytestmark = [pytest.mark.slow, pytest.mark.services]


def generation(node: Server) -> int:
    with node.client() as c:
        return int(c.node()["registry"]["generation"])


def seen_within(node: Server, wanted: int, timeout: float) -> float:
    """Return how long `node` took to see generation `wanted` (fails after `timeout`)."""
    start = time.monotonic()
    while generation(node) < wanted:
        assert time.monotonic() - start < timeout, f"generation {wanted} never arrived"
        time.sleep(0.005)
    return time.monotonic() - start


def lags_of(a: Server, b: Server) -> tuple[list[float], list[float]]:
    """Return how long `b` took to see 10 writes made on `a`, and 5 key revocations."""
    with a.client() as admin:
        admin.deploy({"name": "echo"}, guest_wasm("echo"))
        lags = []
        for i in range(10):
            admin.set_tags("echo", {"round": str(i)})
            lags.append(seen_within(b, generation(a), timeout=5))
        revocations = []
        for i in range(5):
            key = admin.create_key(f"robot {i}")
            assert key.secret_access_key is not None
            creds = Credentials(key.access_key_id, key.secret_access_key)
            with Client(b.url, creds) as robot:
                robot.list()  # b now holds the key in its 2 s lookup cache
                admin.revoke_key(key.access_key_id)
                start = time.monotonic()
                while True:
                    try:
                        robot.list()
                    except Unauthorized:
                        break
                    assert time.monotonic() - start < 5
                revocations.append(time.monotonic() - start)
    for what, values in (("a change", lags), ("a revocation", revocations)):
        print(f"{what} seen by the other node: median {statistics.median(values) * 1000:.1f} ms,"
              f" max {max(values) * 1000:.1f} ms")  # fmt: skip
    return lags, revocations


def test_poll_only_is_the_fallback(pg_schema_url: str, server_factory: ServerFactory) -> None:
    env = {
        "FIREBOX_DATABASE_URL": pg_schema_url,
        "FIREBOX_REGISTRY_PUSH": "0",
        "FIREBOX_KEY_ENCRYPTION_KEY": "cluster",
    }
    a, b = server_factory(env=env).start(), server_factory(env=env).start()
    lags, revocations = lags_of(a, b)
    assert max(lags) < 5 and max(revocations) < 5  # the 0.5 s poll, the 2 s key cache
    assert max(revocations) > 1.0  # a key cached just before its revocation lives on


def test_writes_and_revocations_reach_other_nodes_at_once(
    pg_schema_url: str, server_factory: ServerFactory
) -> None:
    env = {
        "FIREBOX_DATABASE_URL": pg_schema_url,
        "FIREBOX_REGISTRY_POLL_S": "30",
        "FIREBOX_KEY_ENCRYPTION_KEY": "cluster",
    }
    a, b = server_factory(env=env).start(), server_factory(env=env).start()
    lags, revocations = lags_of(a, b)
    assert max(lags) < 5  # the 30 s poll never had its turn
    # Without the push, a key cached just before its revocation works for its 2 s TTL.
    assert max(revocations) < 1.0
    with a.client() as admin:
        # The listening connection drops (the database restarted it, say): b reconnects
        # and catches up on what it missed, long before its 30 s poll.
        engine = sa.create_engine(pg_schema_url)
        with engine.begin() as conn:
            killed = conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE query LIKE 'LISTEN firebox_%%' AND pid <> pg_backend_pid()"
            ).fetchall()
        engine.dispose()
        assert killed, "no listening connection found"
        admin.set_tags("echo", {"round": "after the drop"})
        seen_within(b, generation(a), timeout=10)
