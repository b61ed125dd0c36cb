"""Shard leases on real SQLite and Redis: taking, renewing, asking, handing over, expiry,
and the fenced checkpoint a node that lost its lease cannot write."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from firebox.runtime.events.shard_leases import ShardLeases
from firebox.runtime.events.stream import StreamBackend
from firebox.runtime.storage.backends import open_shard_leases, open_stream_backend


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.services)])
def backends(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[StreamBackend, ShardLeases]]:
    url = None if request.param == "sqlite" else request.getfixturevalue("redis_url")
    prefix = f"fbxtest:{uuid.uuid4().hex[:8]}:"
    streams = open_stream_backend(url, tmp_path, redis_prefix=prefix)
    yield streams, open_shard_leases(streams)
    streams.close()
    if url is not None:
        client = redis.Redis.from_url(url)
        for key in client.scan_iter(prefix + "*"):
            client.delete(key)


def test_one_owner_at_a_time_and_a_fenced_checkpoint(
    backends: tuple[StreamBackend, ShardLeases],
) -> None:
    streams, leases = backends
    streams.create_stream("s", shard_count=1)
    shard = streams.shards("s")[0]
    (free,) = leases.leases("m", "s", [shard])
    assert (free.owner, free.live) == ("", False)
    a = leases.take("m", "s", shard, "a", free.counter, 0.5)
    assert a is not None
    assert leases.take("m", "s", shard, "b", free.counter, 0.5) is None  # stale counter
    assert leases.take("m", "s", shard, "b", a, 0.5) is None  # live
    assert leases.checkpoint("m", "s", shard, "a", a, "7")
    assert streams.get_checkpoint("m", "s", shard) == "7"
    # a stalls past its lease: b takes it over, and a can neither renew nor checkpoint.
    time.sleep(0.6)
    (expired,) = leases.leases("m", "s", [shard])
    assert (expired.owner, expired.live) == ("a", False)
    b = leases.take("m", "s", shard, "b", expired.counter, 5)
    assert b == a + 1
    assert leases.renew("m", "s", shard, "a", a, 5) == (False, "")
    assert not leases.checkpoint("m", "s", shard, "a", a, "9")
    assert streams.get_checkpoint("m", "s", shard) == "7"
    assert leases.checkpoint("m", "s", shard, "b", b, "8")
    assert streams.get_checkpoint("m", "s", shard) == "8"


def test_asking_and_handing_over(backends: tuple[StreamBackend, ShardLeases]) -> None:
    streams, leases = backends
    streams.create_stream("s", shard_count=1)
    shard = streams.shards("s")[0]
    a = leases.take("m", "s", shard, "a", 0, 5)
    assert a is not None
    assert leases.ask("m", "s", shard, "b", a)
    assert not leases.ask("m", "s", shard, "a", a)  # its own
    assert leases.renew("m", "s", shard, "a", a, 5) == (True, "b")
    assert leases.release("m", "s", shard, "a", a, "b", 5)
    (now,) = leases.leases("m", "s", [shard])
    assert (now.owner, now.counter, now.live, now.wanted_by) == ("b", a + 1, True, "")
    assert not leases.release("m", "s", shard, "a", a, "", 5)  # no longer a's
    assert leases.release("m", "s", shard, "b", a + 1, "", 5)  # leaving: free at once
    (freed,) = leases.leases("m", "s", [shard])
    assert (freed.owner, freed.live) == ("", False)
    assert leases.take("m", "s", shard, "c", freed.counter, 5) == a + 2
