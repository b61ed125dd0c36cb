"""The queue and stream storage backends, one suite run against SQLite and real Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
from firebox.runtime.errors import (
    InvalidReceiptHandle,
    QueueAlreadyExists,
    QueueNotFound,
    ShardNotFound,
    StreamAlreadyExists,
    StreamNotFound,
)
from firebox.runtime.events.queue import Message, QueueAttributes, QueueBackend, SendEntry
from firebox.runtime.events.stream import StreamBackend, shard_for_key
from firebox.runtime.storage.backends import open_queue_backend, open_stream_backend
from firebox.runtime.storage.queue_redis import RedisQueueBackend
from firebox.runtime.storage.queue_sqlite import SqliteQueueBackend
from firebox.runtime.storage.stream_redis import RedisStreamBackend
from firebox.runtime.storage.stream_sqlite import SqliteStreamBackend

FAST = QueueAttributes(visibility_timeout_s=1.0)


@pytest.fixture
def redis_prefix(request: pytest.FixtureRequest) -> Iterator[str]:
    """A unique key prefix in Redis db 15, deleted afterwards."""
    url: str = request.getfixturevalue("redis_url")
    prefix = f"fbtest:{uuid.uuid4().hex}:"
    yield prefix
    client = redis.Redis.from_url(url)
    for key in client.scan_iter(match=prefix + "*", count=1000):
        client.delete(key)
    client.close()


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.services)])
def backend_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def queues(
    backend_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[QueueBackend]:
    backend: QueueBackend
    if backend_kind == "sqlite":
        backend = SqliteQueueBackend(tmp_path / "events.db")
    else:
        url = request.getfixturevalue("redis_url")
        backend = RedisQueueBackend(
            url, consumer="test", prefix=request.getfixturevalue("redis_prefix")
        )
    yield backend
    backend.close()


@pytest.fixture
def streams(
    backend_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[StreamBackend]:
    backend: StreamBackend
    if backend_kind == "sqlite":
        backend = SqliteStreamBackend(tmp_path / "events.db")
    else:
        url = request.getfixturevalue("redis_url")
        backend = RedisStreamBackend(url, prefix=request.getfixturevalue("redis_prefix"))
    yield backend
    backend.close()


def receive_until(
    queues: QueueBackend, queue: str, done: Callable[[list[Message]], bool], timeout_s: float = 10.0
) -> list[Message]:
    """Receive (long polling) until `done(all received)` holds; fails after `timeout_s`."""
    got: list[Message] = []
    deadline = time.monotonic() + timeout_s
    while not done(got):
        assert time.monotonic() < deadline, f"gave up after {timeout_s} s with {len(got)} messages"
        got += queues.receive(queue, max_messages=10, wait_s=0.5)
    return got


# --- queues ---------------------------------------------------------------------------


def test_send_receive_delete(queues: QueueBackend) -> None:
    queues.create_queue("jobs")
    message_id = queues.send("jobs", b"\x00payload\xff", attributes={"trace": "t-1"})
    [message] = queues.receive("jobs")
    assert (message.id, message.body, message.attributes) == (
        message_id,
        b"\x00payload\xff",
        {"trace": "t-1"},
    )
    assert message.receive_count == 1
    assert abs(message.sent_at - time.time()) < 5
    assert queues.receive("jobs") == []
    assert queues.delete("jobs", message.receipt_handle) is True
    assert queues.delete("jobs", message.receipt_handle) is False
    assert queues.stats("jobs").deleted == 1


def test_visibility_timeout_expiry_redelivers(queues: QueueBackend) -> None:
    queues.create_queue("jobs", FAST)
    sent = queues.send("jobs", b"work")
    first = queues.receive("jobs")[0]
    assert queues.receive("jobs") == []
    started = time.monotonic()
    [again] = queues.receive("jobs", wait_s=5)
    assert time.monotonic() - started > 0.5
    assert (again.id, again.body, again.receive_count) == (sent, b"work", 2)
    assert again.receipt_handle != first.receipt_handle


def test_receive_visibility_override_and_change_visibility(queues: QueueBackend) -> None:
    queues.create_queue("jobs", QueueAttributes(visibility_timeout_s=30))
    queues.send("jobs", b"work")
    [message] = queues.receive("jobs", visibility_timeout_s=0.5)
    assert queues.receive("jobs") == []
    [again] = queues.receive("jobs", wait_s=5)
    assert again.receive_count == 2
    # Longer than the queue's timeout (a retry backoff), then back to visible at once.
    assert queues.change_visibility("jobs", again.receipt_handle, 60) is True
    assert queues.receive("jobs", wait_s=0.3) == []
    assert queues.change_visibility("jobs", again.receipt_handle, 0) is True
    [third] = queues.receive("jobs", wait_s=5)
    assert third.receive_count == 3
    assert queues.change_visibility("jobs", message.receipt_handle, 0) is False


def test_stale_receipt_handle_cannot_delete_the_new_delivery(queues: QueueBackend) -> None:
    queues.create_queue("jobs", FAST)
    queues.send("jobs", b"work")
    [old] = queues.receive("jobs")
    [new] = queues.receive("jobs", wait_s=5)
    assert queues.delete("jobs", old.receipt_handle) is False
    assert queues.change_visibility("jobs", old.receipt_handle, 0) is False
    assert queues.stats("jobs").in_flight == 1
    assert queues.delete("jobs", new.receipt_handle) is True
    with pytest.raises(InvalidReceiptHandle):
        queues.delete("jobs", "not-a-handle")


def test_redrive_to_dead_letter_queue_after_max_receives(queues: QueueBackend) -> None:
    queues.create_queue("jobs-dlq")
    queues.create_queue(
        "jobs",
        QueueAttributes(visibility_timeout_s=1, max_receive_count=2, dead_letter_queue="jobs-dlq"),
    )
    sent = queues.send("jobs", b"poison", attributes={"k": "v"})
    for count in (1, 2):
        [message] = queues.receive("jobs")
        assert message.receive_count == count
        queues.change_visibility("jobs", message.receipt_handle, 0)
    assert queues.receive("jobs") == []
    [dead] = queues.receive("jobs-dlq")
    assert (dead.id, dead.body, dead.attributes, dead.receive_count) == (
        sent,
        b"poison",
        {"k": "v"},
        1,
    )
    stats = queues.stats("jobs")
    assert (stats.dead_lettered, stats.depth, stats.in_flight, stats.received) == (1, 0, 0, 2)


def test_dedup_id_returns_the_original_and_enqueues_nothing(queues: QueueBackend) -> None:
    queues.create_queue("jobs")
    first = queues.send("jobs", b"once", dedup_id="order-17")
    assert queues.send("jobs", b"twice", dedup_id="order-17") == first
    other = queues.send("jobs", b"other", dedup_id="order-18")
    assert other != first
    got = receive_until(queues, "jobs", lambda got: len(got) >= 2)
    assert sorted(m.body for m in got) == [b"once", b"other"]
    assert queues.receive("jobs") == []
    assert queues.stats("jobs").sent == 2


def test_delay_hides_a_message_until_due(queues: QueueBackend) -> None:
    queues.create_queue("jobs")
    queues.create_queue("slow", QueueAttributes(delay_s=1))
    queues.send("jobs", b"later", delay_s=1)
    queues.send("slow", b"later too")
    for name in ("jobs", "slow"):
        assert queues.receive(name) == []
        assert queues.stats(name).delayed == 1
    started = time.monotonic()
    assert [m.body for m in queues.receive("jobs", wait_s=5)] == [b"later"]
    assert [m.body for m in queues.receive("slow", wait_s=5)] == [b"later too"]
    assert 0.5 < time.monotonic() - started < 5
    assert queues.stats("jobs").delayed == 0


def test_send_batch_and_receive_batches(queues: QueueBackend) -> None:
    queues.create_queue("jobs")
    entries = [SendEntry(f"m{i}".encode(), {"i": str(i)}) for i in range(15)]
    ids = queues.send_batch("jobs", entries)
    assert len(set(ids)) == 15
    first = queues.receive("jobs", max_messages=10)
    assert len(first) == 10
    rest = receive_until(queues, "jobs", lambda got: len(got) >= 5)
    by_id = {m.id: m for m in first + rest}
    assert set(by_id) == set(ids)
    assert all(by_id[i].body == f"m{n}".encode() for n, i in enumerate(ids))
    with pytest.raises(ValueError):
        queues.receive("jobs", max_messages=11)


def test_purge_drops_everything(queues: QueueBackend) -> None:
    queues.create_queue("jobs")
    queues.send_batch("jobs", [SendEntry(b"x") for _ in range(5)])
    queues.send("jobs", b"delayed", delay_s=60)
    queues.receive("jobs")
    queues.purge("jobs")
    stats = queues.stats("jobs")
    assert (stats.depth, stats.in_flight, stats.delayed) == (0, 0, 0)
    assert queues.receive("jobs") == []
    queues.send("jobs", b"after")
    assert [m.body for m in queues.receive("jobs")] == [b"after"]


def test_stats_counts(queues: QueueBackend) -> None:
    queues.create_queue("jobs")
    empty = queues.stats("jobs")
    assert (empty.depth, empty.in_flight, empty.delayed, empty.oldest_age_s, empty.sent) == (
        0,
        0,
        0,
        0.0,
        0,
    )
    queues.send_batch("jobs", [SendEntry(b"a"), SendEntry(b"b"), SendEntry(b"c")])
    queues.send("jobs", b"d", delay_s=60)
    time.sleep(0.05)
    [message] = queues.receive("jobs")
    stats = queues.stats("jobs")
    assert (stats.depth, stats.in_flight, stats.delayed) == (2, 1, 1)
    assert (stats.sent, stats.received, stats.deleted, stats.dead_lettered) == (4, 1, 0, 0)
    assert 0.04 < stats.oldest_age_s < 10
    queues.delete("jobs", message.receipt_handle)
    assert queues.stats("jobs").deleted == 1
    assert queues.stats("jobs").in_flight == 0


def test_queue_administration(queues: QueueBackend) -> None:
    attrs = QueueAttributes(visibility_timeout_s=5, retention_s=60)
    assert queues.create_queue("a", attrs) == attrs
    assert queues.create_queue("a", attrs) == attrs
    with pytest.raises(QueueAlreadyExists):
        queues.create_queue("a", QueueAttributes(visibility_timeout_s=6))
    queues.create_queue("b")
    assert queues.list_queues() == ["a", "b"]
    assert queues.list_queues("b") == ["b"]
    assert queues.get_attributes("a") == attrs
    with pytest.raises(QueueNotFound, match="no-dlq"):
        queues.create_queue("c", QueueAttributes(max_receive_count=3, dead_letter_queue="no-dlq"))
    with pytest.raises(ValueError):
        queues.create_queue("c", QueueAttributes(max_receive_count=3))
    with pytest.raises(ValueError):
        queues.create_queue("bad name!")
    queues.send("a", b"x")
    queues.delete_queue("a")
    assert queues.list_queues() == ["b"]
    for call in (
        lambda: queues.send("a", b"x"),
        lambda: queues.receive("a"),
        lambda: queues.stats("a"),
        lambda: queues.delete_queue("a"),
    ):
        with pytest.raises(QueueNotFound, match="Queue not found: a"):
            call()
    # A queue made again under the same name starts empty.
    queues.create_queue("a")
    assert queues.receive("a") == []


def test_long_poll_wakes_on_send(queues: QueueBackend) -> None:
    queues.create_queue("jobs")
    timer = threading.Timer(0.3, lambda: queues.send("jobs", b"wake"))
    started = time.monotonic()
    timer.start()
    try:
        got = queues.receive("jobs", wait_s=10)
    finally:
        timer.join(5)
    assert [m.body for m in got] == [b"wake"]
    assert time.monotonic() - started < 3


def test_thousand_messages_four_senders_four_receivers(queues: QueueBackend) -> None:
    queues.create_queue("jobs")
    expected = {f"{t}-{i}".encode() for t in range(4) for i in range(250)}
    received: list[bytes] = []
    lock = threading.Lock()
    senders_done = threading.Event()

    def send(t: int) -> None:
        for i in range(0, 250, 5):
            if i % 10 == 0:
                queues.send_batch("jobs", [SendEntry(f"{t}-{j}".encode()) for j in range(i, i + 5)])
            else:
                for j in range(i, i + 5):
                    queues.send("jobs", f"{t}-{j}".encode())

    def receive() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            batch = queues.receive("jobs", max_messages=10, wait_s=0.2)
            for message in batch:
                assert queues.delete("jobs", message.receipt_handle)
            with lock:
                received.extend(m.body for m in batch)
                if len(received) >= len(expected) or (senders_done.is_set() and not batch):
                    return

    with ThreadPoolExecutor(8) as pool:
        receivers = [pool.submit(receive) for _ in range(4)]
        for future in [pool.submit(send, t) for t in range(4)]:
            future.result(timeout=60)
        senders_done.set()
        for future in receivers:
            future.result(timeout=70)
    assert len(received) == len(expected)
    assert set(received) == expected
    stats = queues.stats("jobs")
    assert (stats.depth, stats.in_flight, stats.sent, stats.deleted) == (0, 0, 1000, 1000)


# --- crash safety ---------------------------------------------------------------------

SQLITE_CHILD = """
import sys
from pathlib import Path
from firebox.runtime.events.queue import QueueAttributes
from firebox.runtime.storage.queue_sqlite import SqliteQueueBackend
q = SqliteQueueBackend(Path(sys.argv[1]))
q.create_queue("jobs", QueueAttributes(visibility_timeout_s=1))
for i in range(500):
    q.send("jobs", f"m{i}".encode())
held = [m for _ in range(5) for m in q.receive("jobs", max_messages=10)]
print(len(held), flush=True)
import time
time.sleep(120)
"""

REDIS_CHILD = """
import sys
from firebox.runtime.storage.queue_redis import RedisQueueBackend
q = RedisQueueBackend(sys.argv[1], consumer="node-a", prefix=sys.argv[2])
held = [m for _ in range(3) for m in q.receive("jobs", max_messages=10)]
print(" ".join(m.id for m in held), flush=True)
import time
time.sleep(120)
"""


def run_until_first_line(code: str, *args: str) -> tuple[subprocess.Popen[str], str]:
    """Start `python -c code args`, return it and the first line it prints (bounded)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line: list[str] = []
    reader = threading.Thread(
        target=lambda: line.append(proc.stdout.readline() if proc.stdout else "")
    )
    reader.start()
    reader.join(60)
    if not line or not line[0]:
        proc.kill()
        _, err = proc.communicate(timeout=10)
        pytest.fail(f"child printed nothing: {err}")
    return proc, line[0].strip()


def kill9(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(10) == -signal.SIGKILL
    proc.communicate(timeout=10)


def test_sqlite_queue_survives_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    proc, held = run_until_first_line(SQLITE_CHILD, str(path))
    assert held == "50"
    kill9(proc)
    queues = SqliteQueueBackend(path)
    try:
        got = receive_until(queues, "jobs", lambda got: len({m.body for m in got}) >= 500, 20)
        assert {m.body for m in got} == {f"m{i}".encode() for i in range(500)}
        assert sum(m.receive_count == 2 for m in got) == 50
    finally:
        queues.close()


@pytest.mark.services
def test_redis_queue_messages_of_a_killed_consumer_are_autoclaimed(
    redis_url: str, redis_prefix: str
) -> None:
    node_b = RedisQueueBackend(redis_url, consumer="node-b", prefix=redis_prefix)
    try:
        node_b.create_queue("jobs", QueueAttributes(visibility_timeout_s=1))
        sent = set(node_b.send_batch("jobs", [SendEntry(f"m{i}".encode()) for i in range(100)]))
        proc, line = run_until_first_line(REDIS_CHILD, redis_url, redis_prefix)
        held = set(line.split())
        assert len(held) == 30
        assert node_b.stats("jobs").in_flight == 30  # the child really holds them
        kill9(proc)
        got = receive_until(node_b, "jobs", lambda got: len({m.id for m in got}) >= 100, 20)
        for message in got:
            assert node_b.delete("jobs", message.receipt_handle)
        assert {m.id for m in got} == sent
        assert {m.id for m in got if m.receive_count == 2} == held
        assert node_b.stats("jobs").depth == 0
    finally:
        node_b.close()


# --- streams ---------------------------------------------------------------------------


def test_stream_per_shard_ordering(streams: StreamBackend) -> None:
    streams.create_stream("clicks", shard_count=4)
    shards = streams.shards("clicks")
    assert shards == [f"shardId-{i:012d}" for i in range(4)]
    puts = [streams.put("clicks", f"user-{i % 20}", f"{i}".encode()) for i in range(100)]
    puts += streams.put_batch(
        "clicks", [(f"user-{i % 20}", f"{i}".encode()) for i in range(100, 200)]
    )
    for i, (shard, _) in enumerate(puts):
        assert shard == shards[shard_for_key(f"user-{i % 20}", 4)]
    seen: dict[str, list[int]] = {}
    for shard in shards:
        records = streams.read("clicks", shard, limit=1000)
        assert [r.sequence_number for r in records] == [s for sh, s in puts if sh == shard]
        for record in records:
            seen.setdefault(record.partition_key, []).append(int(record.data))
    assert sum(len(v) for v in seen.values()) == 200
    assert all(values == sorted(values) for values in seen.values())
    assert len({shard for shard, _ in puts}) > 1


def test_stream_read_after_sequence(streams: StreamBackend) -> None:
    streams.create_stream("log")
    puts = [streams.put("log", "k", f"r{i}".encode()) for i in range(10)]
    shard = puts[0].shard_id
    records = streams.read("log", shard, after_sequence=puts[4].sequence_number, limit=3)
    assert [r.data for r in records] == [b"r5", b"r6", b"r7"]
    assert records[0].partition_key == "k"
    assert abs(records[0].arrival_ts - time.time()) < 5
    assert streams.read("log", shard, after_sequence=puts[9].sequence_number) == []
    assert len(streams.read("log", shard)) == 10


def test_stream_checkpoint_round_trip(streams: StreamBackend) -> None:
    streams.create_stream("log", shard_count=2)
    shard = streams.shards("log")[1]
    assert streams.get_checkpoint("mapping-1", "log", shard) is None
    seq = streams.put("log", "k", b"x").sequence_number
    streams.set_checkpoint("mapping-1", "log", shard, seq)
    assert streams.get_checkpoint("mapping-1", "log", shard) == seq
    streams.set_checkpoint("mapping-1", "log", shard, "later")
    assert streams.get_checkpoint("mapping-1", "log", shard) == "later"
    assert streams.get_checkpoint("mapping-2", "log", shard) is None
    assert streams.get_checkpoint("mapping-1", "log", streams.shards("log")[0]) is None


def test_stream_retention_trim(streams: StreamBackend) -> None:
    streams.create_stream("short", retention_s=1)
    for i in range(5):
        streams.put("short", "k", f"old{i}".encode())
    time.sleep(1.2)
    fresh = streams.put("short", "k", b"new")
    assert streams.trim("short") == 5
    assert [r.data for r in streams.read("short", fresh.shard_id)] == [b"new"]
    assert streams.trim("short") == 0


def test_stream_administration(streams: StreamBackend) -> None:
    info = streams.create_stream("s", shard_count=2, retention_s=60)
    assert (info.name, info.shard_count, info.retention_s) == ("s", 2, 60)
    assert streams.create_stream("s", shard_count=2, retention_s=60).shard_count == 2
    with pytest.raises(StreamAlreadyExists):
        streams.create_stream("s", shard_count=3, retention_s=60)
    with pytest.raises(ValueError):
        streams.create_stream("t", shard_count=0)
    assert streams.list_streams() == ["s"]
    assert streams.describe_stream("s").shard_count == 2
    with pytest.raises(ShardNotFound):
        streams.read("s", "shardId-000000000002")
    streams.put("s", "k", b"x")
    streams.delete_stream("s")
    with pytest.raises(StreamNotFound):
        streams.put("s", "k", b"x")
    streams.create_stream("s", shard_count=2, retention_s=60)
    assert all(streams.read("s", shard) == [] for shard in streams.shards("s"))


# --- choosing a backend by URL ---------------------------------------------------------


def test_auto_picks_sqlite_by_default(tmp_path: Path) -> None:
    queue_backend = open_queue_backend(None, tmp_path)
    stream_backend = open_stream_backend("sqlite:///" + str(tmp_path / "other.db"), tmp_path)
    try:
        assert isinstance(queue_backend, SqliteQueueBackend)
        assert isinstance(stream_backend, SqliteStreamBackend)
        assert (tmp_path / "events.db").exists() and (tmp_path / "other.db").exists()
    finally:
        queue_backend.close()
        stream_backend.close()
    with pytest.raises(ValueError, match="postgres"):
        open_queue_backend("postgres://x", tmp_path)


@pytest.mark.services
def test_auto_picks_redis_by_url(tmp_path: Path, redis_url: str, redis_prefix: str) -> None:
    queue_backend = open_queue_backend(
        redis_url, tmp_path, consumer="n1", redis_prefix=redis_prefix
    )
    stream_backend = open_stream_backend(redis_url, tmp_path, redis_prefix=redis_prefix)
    try:
        assert isinstance(queue_backend, RedisQueueBackend) and queue_backend.consumer == "n1"
        assert isinstance(stream_backend, RedisStreamBackend)
        queue_backend.create_queue("q")
        assert queue_backend.list_queues() == ["q"]
    finally:
        queue_backend.close()
        stream_backend.close()
    assert not (tmp_path / "events.db").exists()
