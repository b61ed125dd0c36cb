"""Queues, streams and event metrics through the SDK and the CLI against a real server."""

from __future__ import annotations

import json
import time

import pytest
from firebox.runtime.errors import FireboxError, QueueNotFound

from tests.conftest import Server, ServerFactory, guest_wasm
from tests.integration.test_cli import as_json, firebox


def test_queue_lifecycle_over_the_sdk(server: Server) -> None:
    with server.client() as client:
        q = client.queues
        q.create("jobs-dlq")  # a dead-letter queue must exist before a queue names it
        q.create("jobs", visibility_timeout_s=1, max_receive_count=2, dead_letter_queue="jobs-dlq")
        ids = q.send_batch("jobs", ["a", "b", b"\xff\x00"])
        assert len(set(ids)) == 3
        assert q.send("jobs", "once", dedup_id="d1") == q.send("jobs", "once", dedup_id="d1")
        got = q.receive("jobs", 10, wait_s=1)
        assert sorted(m.body for m in got) == sorted([b"a", b"b", b"\xff\x00", b"once"])
        assert q.get("jobs")["stats"]["in_flight"] == 4
        keep = [m for m in got if m.body != b"a"]
        assert q.delete_messages("jobs", [m.receipt_handle for m in keep]) == [True] * 3
        # "a" is redelivered after its visibility timeout, then redriven to the DLQ.
        again = q.receive("jobs", 1, wait_s=3)
        assert [m.body for m in again] == [b"a"] and again[0].receive_count == 2
        assert q.receive("jobs", 1, wait_s=2.5) == []
        (dead,) = q.receive("jobs-dlq", 1, wait_s=1)
        assert dead.body == b"a"
        assert q.get("jobs")["stats"]["dead_lettered"] == 1
        q.purge("jobs-dlq")
        q.delete("jobs")
        with pytest.raises(QueueNotFound):
            q.get("jobs")


def test_stream_put_and_read_by_position(server: Server) -> None:
    with server.client() as client:
        s = client.streams
        s.create("clicks", shards=2)
        placed = s.put_batch("clicks", [("user-1", f"e{i}") for i in range(5)])
        shard = placed[0]["shard_id"]
        assert {p["shard_id"] for p in placed} == {shard}  # one key, one shard
        records = s.read("clicks", shard)
        assert [r.data for r in records] == [f"e{i}".encode() for i in range(5)]
        after = s.read("clicks", shard, after=records[1].sequence_number)
        assert [r.data for r in after] == [b"e2", b"e3", b"e4"]


def test_queue_cli_and_event_metrics(server: Server) -> None:
    assert "created queue" in firebox(server, "queue", "create", "cli-q").stdout
    firebox(server, "queue", "send", "cli-q", "hello")
    stats = as_json(server, "queue", "stats", "cli-q")["stats"]
    assert stats["depth"] == 1
    out = firebox(server, "queue", "receive", "cli-q", "--delete").stdout
    assert out.strip() == "hello"
    metrics = as_json(server, "events", "stats")
    assert "cli-q" in metrics["queues"] and "accepted" in metrics["async"]
    assert "depth" in firebox(server, "events", "stats").stdout
    missing = firebox(server, "queue", "stats", "nowhere", check=False)
    assert missing.returncode == 1 and "Queue not found" in missing.stderr
    firebox(server, "queue", "rm", "cli-q")
    assert "cli-q" not in json.loads(firebox(server, "--json", "queue", "ls").stdout)


def test_schedule_and_queue_mapping_on_a_real_server(server_factory: ServerFactory) -> None:
    node = server_factory(env={"FIREBOX_SCHEDULE_ALLOW_SECONDS": "1"}).start()
    with node.client() as client:
        client.deploy({"name": "tick"}, guest_wasm("echo"))
        client.schedules.create("every-second", "tick", "rate(1 second)")
        assert client.schedules.get("every-second")["next_fire"]
        client.queues.create("inbox")
        mapping = client.mappings.create("tick", "queue:inbox", batch_size=5)
        client.queues.send_batch("inbox", [f"m{i}" for i in range(7)])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            summary = client.usage("tick").get("functions", {}).get("tick", {})
            if (
                summary.get("invocations", 0) >= 5
                and client.queues.get("inbox")["stats"]["depth"] == 0
            ):
                break
            time.sleep(0.5)
        assert client.queues.get("inbox")["stats"]["depth"] == 0
        assert client.mappings.get(mapping["id"])["records"] == 7
        client.schedules.delete("every-second")
        with pytest.raises(FireboxError, match="not found"):
            client.schedules.get("every-second")
        client.mappings.delete(mapping["id"])
        assert client.usage("tick")["functions"]["tick"]["invocations"] >= 5
