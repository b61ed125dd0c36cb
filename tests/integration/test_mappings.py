"""Event source mappings on a real node in-process: queue and stream pollers over real SQLite
and Redis backends, partial failures, per-partition order, retries, destinations, the API."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

import httpx
import pytest
import redis
from firebox.compiler.build import build_function
from firebox.runtime.config import NodeConfig
from firebox.runtime.errors import BadRequest, FireboxError, FunctionNotFound, QueueNotFound
from firebox.runtime.events.mappings import MappingManager
from firebox.runtime.events.queue import (
    QueueAttributes,
    QueueBackend,
    QueueStats,
)
from firebox.runtime.events.stream import StreamBackend
from firebox.runtime.http import mappings_api
from firebox.runtime.http.app import firebox_error
from firebox.runtime.node import Node
from firebox.runtime.storage.backends import open_queue_backend, open_stream_backend
from firebox.runtime.storage.mappings import MappingStore
from starlette.applications import Starlette

from tests.conftest import SESSION_CACHE

pytestmark = pytest.mark.slow
T = TypeVar("T")
FUNCTION = "consumer"

# Prints each batch it sees, then fails the records whose body asks for it: `first` on the
# first delivery of a queue message, `young` while a stream record is younger than `age` s,
# `always`. With `report` it returns batchItemFailures (for a stream: from the first failure
# on, having processed only the records before it); otherwise it raises.
HANDLER = """
import base64, json, time

def handler(event, context):
    items = []
    for r in event["Records"]:
        if r["eventSource"] == "aws:sqs":
            body = json.loads(r["body"])
            items.append((body, r["messageId"], int(r["attributes"]["ApproximateReceiveCount"]), 0.0))
        else:
            body = json.loads(base64.b64decode(r["kinesis"]["data"]))
            age = time.time() - r["kinesis"]["approximateArrivalTimestamp"]
            items.append((body, r["kinesis"]["sequenceNumber"], 0, age))
    stream = event["Records"][0]["eventSource"] == "aws:kinesis"
    failed, done = [], []
    for body, ident, count, age in items:
        mode = body.get("fail")
        bad = mode == "always" or (mode == "first" and count == 1) or (
            mode == "young" and age < body.get("age", 1.0))
        if bad:
            failed.append(ident)
            if stream:
                break
        else:
            done.append(body["id"])
    report = all(body.get("report") for body, *_ in items)
    ok = not failed or report
    print("BATCH " + json.dumps({"ids": [b["id"] for b, *_ in items], "ok": ok,
                                 "done": done if ok else []}))
    if failed and not report:
        raise RuntimeError("failing " + ", ".join(failed))
    return {"batchItemFailures": [{"itemIdentifier": i} for i in failed]}
"""


class LoopThread:
    """An event loop in a thread, so one node serves every test of the module."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.fixture(scope="module")
def node(loop: LoopThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    mp = pytest.MonkeyPatch()
    mp.setenv("FIREBOX_COMPILED_CACHE", str(SESSION_CACHE))
    folder = tmp_path_factory.mktemp("consumer")
    (folder / "app.py").write_text(HANDLER)
    (folder / "firebox.toml").write_text('runtime = "python3.14"\n')
    code = build_function(folder).code
    data_dir = tmp_path_factory.mktemp("node") / "data"

    async def start() -> Node:
        node = Node(NodeConfig(data_dir=data_dir, workers=1, pool_slots=64, max_memory_mb=512))
        await node.start()
        await node.deploy({"name": FUNCTION, "runtime": "python3.14", "timeout": 10}, code)
        return node

    started = loop.run(start(), timeout=180)
    yield started
    loop.run(started.stop())
    mp.undo()


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.services)])
def backends(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[QueueBackend, StreamBackend]]:
    """A queue and a stream backend: SQLite in the test's dir, or Redis under a unique prefix."""
    url: str | None = None
    prefix = f"fbtest:{uuid.uuid4().hex}:"
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
    queues = open_queue_backend(url, tmp_path, redis_prefix=prefix)
    streams = open_stream_backend(url, tmp_path, redis_prefix=prefix)
    yield queues, streams
    queues.close()
    streams.close()
    if url is not None:
        client = redis.Redis.from_url(url)
        for key in client.scan_iter(match=prefix + "*", count=1000):
            client.delete(key)
        client.close()


@pytest.fixture
def manager(
    loop: LoopThread, node: Node, backends: tuple[QueueBackend, StreamBackend]
) -> Iterator[MappingManager]:
    store = MappingStore(node.registry.engine)
    made = MappingManager(
        node, *backends, store, poll_s=0.1, retry_base_s=0.1, retry_max_s=0.4, reload_s=0.5
    )
    loop.run(made.start())
    yield made
    loop.run(made.stop())
    for record in store.list():
        store.delete(record.id)


def wait_for(check: Callable[[], T | None], timeout: float = 20.0, what: str = "condition") -> T:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what} (last: {value!r})")
        time.sleep(0.1)


class Batches:
    """The batches the consumer printed since a point in time, for one test's tag."""

    def __init__(self, loop: LoopThread, node: Node, tag: str) -> None:
        self.loop, self.node, self.tag, self.since = loop, node, tag, time.time() - 1

    def __call__(self) -> list[dict[str, Any]]:
        logs = self.loop.run(self.node.logs(FUNCTION, since=self.since, limit=5000))
        found = []
        for entry in logs:
            for line in entry["text"].splitlines():
                if line.startswith("BATCH ") and self.tag in line:
                    found.append(json.loads(line.removeprefix("BATCH ")))
        return found

    def done(self) -> list[str]:
        """The ids the consumer processed successfully, in order."""
        return [i for batch in self() for i in batch["done"]]


def settled(queues: QueueBackend, queue: str) -> QueueStats | None:
    """The queue's stats once no message is in flight, else None."""
    stats = queues.stats(queue)
    return stats if stats.in_flight == 0 else None


def body(tag: str, n: int, **extra: Any) -> bytes:
    return json.dumps({"id": f"{tag}-{n}", **extra}).encode()


# --- queues -------------------------------------------------------------------------------


def test_queue_batches_hold_at_most_batch_size(
    loop: LoopThread, node: Node, manager: MappingManager
) -> None:
    tag = uuid.uuid4().hex[:8]
    manager.queues.create_queue(f"in-{tag}", QueueAttributes(visibility_timeout_s=10))
    for n in range(25):
        manager.queues.send(f"in-{tag}", body(tag, n))
    batches = Batches(loop, node, tag)
    loop.run(manager.create(FUNCTION, f"queue:in-{tag}",
                            {"batch_size": 10, "maximum_batching_window_s": 0.5}))  # fmt: skip
    wait_for(lambda: len(batches.done()) >= 25, what="25 messages processed")
    sizes = [len(b["ids"]) for b in batches()]
    assert max(sizes) == 10 and sum(sizes) == 25, sizes
    assert sorted(batches.done()) == sorted(f"{tag}-{n}" for n in range(25))
    stats = wait_for(lambda: settled(manager.queues, f"in-{tag}"), what="no message in flight")
    assert stats.depth == 0 and stats.deleted == 25


def test_partial_batch_failure_retries_only_failed_items(
    loop: LoopThread, node: Node, manager: MappingManager
) -> None:
    tag = uuid.uuid4().hex[:8]
    queue = f"in-{tag}"
    manager.queues.create_queue(queue, QueueAttributes(visibility_timeout_s=1))
    for n in range(6):
        manager.queues.send(queue, body(tag, n, report=True, fail="first" if n in (1, 4) else None))
    batches = Batches(loop, node, tag)
    created = loop.run(manager.create(FUNCTION, f"queue:{queue}",
                                      {"function_response_types": ["ReportBatchItemFailures"]}))  # fmt: skip
    wait_for(lambda: len(batches.done()) >= 6, what="every message processed")
    stats = wait_for(lambda: settled(manager.queues, queue), what="no message in flight")
    assert stats.depth == 0
    seen = Counter(i for b in batches() for i in b["ids"])
    # The two failed messages came back once; the others were deleted after the first batch.
    assert seen == {f"{tag}-{n}": 2 if n in (1, 4) else 1 for n in range(6)}
    assert Counter(batches.done()) == {f"{tag}-{n}": 1 for n in range(6)}
    status = loop.run(manager.status(created.id))
    assert status["records"] == 6 and status["failures"] >= 1
    assert status["last_processing_result"] == "OK"


def test_queue_messages_past_their_retries_go_to_the_failure_destination(
    loop: LoopThread, node: Node, manager: MappingManager
) -> None:
    tag = uuid.uuid4().hex[:8]
    queue, dead = f"in-{tag}", f"dead-{tag}"
    manager.queues.create_queue(queue, QueueAttributes(visibility_timeout_s=0.5))
    manager.queues.create_queue(dead)
    manager.queues.send(queue, body(tag, 0, fail="always"), attributes={"kind": "poison"})
    manager.queues.send(queue, body(tag, 1))
    loop.run(manager.create(FUNCTION, f"queue:{queue}", {"batch_size": 1, "maximum_retry_attempts": 1,
                            "destination_on_failure": {"type": "queue", "name": dead}}))  # fmt: skip
    got = wait_for(lambda: manager.queues.receive(dead, 1, 30, 0.2), what="the dead message")
    assert got[0].body == body(tag, 0, fail="always")
    assert got[0].attributes["kind"] == "poison"
    assert got[0].attributes["ApproximateReceiveCount"] == "2"
    assert got[0].attributes["FireboxCondition"] == "RetryAttemptsExhausted"
    wait_for(lambda: manager.queues.stats(queue).depth + manager.queues.stats(queue).in_flight == 0)
    assert Batches(loop, node, tag).done() == [f"{tag}-1"]


# --- streams ------------------------------------------------------------------------------


@pytest.mark.parametrize("report", [False, True], ids=["error", "report"])
def test_stream_keeps_partition_order_across_retries(
    loop: LoopThread, node: Node, manager: MappingManager, report: bool
) -> None:
    tag = uuid.uuid4().hex[:8]
    stream = f"s-{tag}"
    manager.streams.create_stream(stream, shard_count=2)
    keys = [f"{tag}-p{k}" for k in range(4)]
    for n in range(8):
        for key in keys:
            extra = {"fail": "young", "age": 1.0} if (key == keys[1] and n == 3) else {}
            manager.streams.put(stream, key, body(key, n, report=report, **extra))
    batches = Batches(loop, node, tag)
    created = loop.run(manager.create(FUNCTION, f"stream:{stream}", {
        "batch_size": 5, "starting_position": "TRIM_HORIZON",
        "function_response_types": ["ReportBatchItemFailures"] if report else []}))  # fmt: skip
    wait_for(lambda: len(set(batches.done())) >= 32, what="32 records processed")
    done = batches.done()
    for key in keys:
        # Every record once, in order, though one of them failed (and was retried) a while.
        assert [i for i in done if i.startswith(key + "-")] == [f"{key}-{n}" for n in range(8)]
    status = loop.run(manager.status(created.id))
    assert status["retries"] >= 1 and status["failures"] >= 1 and status["records"] == 32
    if report:  # the retries started at the failed record, not at the batch's first
        assert any(b["ids"][0] == f"{keys[1]}-3" for b in batches())


def test_stream_records_past_their_retries_go_to_the_failure_destination(
    loop: LoopThread, node: Node, manager: MappingManager
) -> None:
    tag = uuid.uuid4().hex[:8]
    stream, dead = f"s-{tag}", f"dead-{tag}"
    manager.streams.create_stream(stream)
    manager.queues.create_queue(dead)
    seqs = [manager.streams.put(stream, tag, body(tag, n, fail="always" if n == 5 else None))
            for n in range(8)]  # fmt: skip
    loop.run(manager.create(FUNCTION, f"stream:{stream}", {
        "batch_size": 8, "starting_position": "TRIM_HORIZON", "bisect_batch_on_function_error": True,
        "maximum_retry_attempts": 1, "destination_on_failure": {"type": "queue", "name": dead}}))  # fmt: skip
    got = wait_for(lambda: manager.queues.receive(dead, 1, 30, 0.2), what="the failure record")
    record = json.loads(got[0].body)
    # Bisecting isolated the bad record; it was tried twice (1 retry), then sent on its own.
    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 2
    info = record["KinesisBatchInfo"]
    assert info["batchSize"] == 1 and info["shardId"] == seqs[5].shard_id
    assert info["startSequenceNumber"] == info["endSequenceNumber"] == seqs[5].sequence_number
    batches = Batches(loop, node, tag)
    wait_for(lambda: len(batches.done()) >= 7, what="the good records")
    assert batches.done() == [f"{tag}-{n}" for n in range(8) if n != 5]


def test_disable_stops_delivery_and_enable_resumes_from_the_checkpoint(
    loop: LoopThread, node: Node, manager: MappingManager
) -> None:
    tag = uuid.uuid4().hex[:8]
    stream = f"s-{tag}"
    manager.streams.create_stream(stream)
    manager.streams.put(stream, tag, body(tag, 0))  # before the mapping: LATEST skips it
    batches = Batches(loop, node, tag)
    created = loop.run(
        manager.create(FUNCTION, f"stream:{stream}", {"starting_position": "LATEST"})
    )
    for n in range(1, 4):
        manager.streams.put(stream, tag, body(tag, n))
    wait_for(lambda: len(batches.done()) >= 3, what="the first records")
    loop.run(manager.update(created.id, {"enabled": False}))
    status = loop.run(manager.status(created.id))
    assert status["state"] == "Disabled" and not status["polling"]
    for n in range(4, 7):
        manager.streams.put(stream, tag, body(tag, n))
    time.sleep(1.0)  # ten poll intervals of an enabled mapping: none may deliver
    assert batches.done() == [f"{tag}-{n}" for n in range(1, 4)]
    loop.run(manager.update(created.id, {"enabled": True}))
    wait_for(lambda: len(batches.done()) >= 6, what="the records put while disabled")
    assert batches.done() == [f"{tag}-{n}" for n in range(1, 7)]
    assert loop.run(manager.status(created.id))["state"] == "Enabled"


# --- configuration and the HTTP API -------------------------------------------------------


@pytest.mark.parametrize("backends", ["sqlite"], indirect=True)
def test_bad_settings_are_refused_with_clear_errors(
    loop: LoopThread, manager: MappingManager
) -> None:
    manager.queues.create_queue("q1")
    manager.streams.create_stream("s1")
    cases: list[tuple[str, str, dict[str, Any], type[FireboxError], str]] = [
        (FUNCTION, "queue:q1", {"batch_size": 0}, BadRequest, "batch_size must be"),
        (FUNCTION, "queue:q1", {"maximum_concurrency": 1}, BadRequest, "maximum_concurrency"),
        (FUNCTION, "queue:q1", {"maximum_batching_window_s": 301}, BadRequest, "0..300"),
        (FUNCTION, "queue:q1", {"starting_position": "LATEST"}, BadRequest, "unknown setting"),
        (FUNCTION, "queue:q1", {"destination_on_failure": {"type": "queue", "name": "q1"}},
         BadRequest, "maximum_retry_attempts >= 0"),
        (FUNCTION, "stream:s1", {}, BadRequest, "starting_position"),
        (FUNCTION, "stream:s1", {"starting_position": "LATEST", "maximum_concurrency": 5},
         BadRequest, "unknown setting"),
        (FUNCTION, "stream:s1", {"starting_position": "LATEST", "function_response_types": ["X"]},
         BadRequest, "function_response_types"),
        (FUNCTION, "topic:t", {}, BadRequest, "queue:NAME"),
        ("missing", "queue:q1", {}, FunctionNotFound, "missing"),
        (FUNCTION, "queue:nope", {}, QueueNotFound, "nope"),
    ]  # fmt: skip
    for function, source, config, error, message in cases:
        with pytest.raises(error, match=message):
            loop.run(manager.create(function, source, config))
    assert loop.run(manager.list()) == []


@pytest.mark.parametrize("backends", ["sqlite"], indirect=True)
def test_http_routes_create_read_update_delete(loop: LoopThread, manager: MappingManager) -> None:
    manager.queues.create_queue("q2")
    app = Starlette(routes=mappings_api.routes(), exception_handlers={FireboxError: firebox_error})
    app.state.node = SimpleNamespace(mappings=manager)

    async def exercise() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as http:
            base = "/v1/event-source-mappings"
            made = await http.post(base, json={"function": FUNCTION, "source": "queue:q2",
                                               "batch_size": 5, "enabled": False})  # fmt: skip
            assert made.status_code == 201, made.text
            mapping = made.json()
            assert mapping["batch_size"] == 5 and mapping["maximum_concurrency"] == 2
            assert mapping["source_arn"] == "arn:aws:sqs:us-east-1:000000000000:q2"
            assert mapping["state"] == "Disabled" and mapping["polling"] is False
            bad = await http.post(base, json={"function": FUNCTION, "source": "queue:q2", "x": 1})
            assert bad.status_code == 400 and bad.json()["error"]["type"] == "BadRequest"
            gone = await http.post(base, json={"function": FUNCTION, "source": "queue:none"})
            assert gone.status_code == 404 and gone.json()["error"]["type"] == "QueueNotFound"
            listed = await http.get(base, params={"function": FUNCTION})
            assert [m["id"] for m in listed.json()["mappings"]] == [mapping["id"]]
            assert (await http.get(base, params={"function": "other"})).json()["mappings"] == []
            changed = await http.patch(
                f"{base}/{mapping['id']}", json={"batch_size": 7, "enabled": True}
            )
            assert changed.status_code == 200 and changed.json()["batch_size"] == 7
            assert changed.json()["state"] == "Enabled" and changed.json()["polling"] is True
            fetched = (await http.get(f"{base}/{mapping['id']}")).json()
            assert fetched["batch_size"] == 7 and "last_processing_result" in fetched
            assert (await http.delete(f"{base}/{mapping['id']}")).status_code == 204
            missing = await http.get(f"{base}/{mapping['id']}")
            assert missing.status_code == 404
            assert missing.json()["error"]["type"] == "MappingNotFound"

    loop.run(exercise())
