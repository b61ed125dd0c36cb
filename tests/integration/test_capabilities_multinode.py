"""Two nodes on one PostgreSQL database see the same tables and buckets: written by a
function on one node, through the SDK of the other, read back from both."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from firebox.runtime.errors import ItemNotFound
from firebox.sdk.client import Client

from tests.conftest import ServerFactory

pytestmark = pytest.mark.slow

APP = """
import firebox

def handler(event, context):
    table = firebox.kv.table("shared")
    bucket = firebox.blobs.bucket("shared")
    seed = table.get("seed")
    table.put("from-function", {"seed": seed})
    bucket.put("from-function.bin", bytes([1, 2, 3]) * 1000)
    return {"seed": seed, "object": len(bucket.get("seeded.txt") or b"")}
"""


def test_two_nodes_share_tables_and_buckets(
    pg_schema_url: str, server_factory: ServerFactory, tmp_path: Path
) -> None:
    shared = {"FIREBOX_DATABASE_URL": pg_schema_url, "FIREBOX_REGISTRY_POLL_S": "0.2"}
    first = server_factory(env={**shared, "FIREBOX_PREPARE_PYTHON": "1"}).start()
    second = server_factory(env=shared).start()
    src = tmp_path / "sharer"
    src.mkdir()
    (src / "app.py").write_text(APP)
    (src / "firebox.toml").write_text(
        'name = "sharer"\nruntime = "python3.14"\n\n[capabilities]\n'
        'tables = ["shared"]\nbuckets = ["shared"]\n'
    )
    with first.client() as a, Client(second.url, second.credentials) as b:
        a.deploy_path(src)
        b.tables.put("shared", "seed", 41)
        b.buckets.put("shared", "seeded.txt", b"seeded on the second node")
        result = a.invoke("sharer", {})
        assert result.ok, result.error
        assert result.payload == {"seed": 41, "object": len(b"seeded on the second node")}
        for client in (a, b):
            assert client.tables.get("shared", "from-function")["value"] == {"seed": 41}
            assert client.buckets.get("shared", "from-function.bin") == bytes([1, 2, 3]) * 1000
        b.buckets.delete("shared", "from-function.bin")
        with pytest.raises(ItemNotFound):
            a.buckets.get("shared", "from-function.bin")
    # Nothing of it is in either node's data dir: the database holds it all.
    for node in (first, second):
        assert not (node.data_dir / "data.db").exists()


RECORDER = """
import json

def handler(event, context):
    for record in event["Records"]:
        print("RECORD " + json.dumps(record))
    return {}
"""


def _records(client: Client, name: str) -> list[dict[str, Any]]:
    return [
        json.loads(line[len("RECORD ") :])
        for entry in client.logs(name, limit=1000)
        for line in entry.text.splitlines()
        if line.startswith("RECORD ")
    ]


def _wait(client: Client, name: str, count: int, timeout: float = 40) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while len(found := _records(client, name)) < count:
        assert time.monotonic() < deadline, f"{len(found)} of {count}: {found}"
        time.sleep(0.25)
    return found


def test_change_events_of_both_nodes_are_dispatched_once_and_survive_the_dispatcher(
    pg_schema_url: str, server_factory: ServerFactory, redis_url: str, tmp_path: Path
) -> None:
    shared = {"FIREBOX_DATABASE_URL": pg_schema_url, "FIREBOX_QUEUE_URL": redis_url,
              "FIREBOX_REGISTRY_POLL_S": "0.2", "FIREBOX_CHANGE_LEASE_S": "2"}  # fmt: skip
    first = server_factory(env={**shared, "FIREBOX_PREPARE_PYTHON": "1"}).start()
    second = server_factory(env={**shared, "FIREBOX_PREPARE_PYTHON": "1"}).start()
    src = tmp_path / "recorder"
    src.mkdir()
    (src / "app.py").write_text(RECORDER)
    (src / "firebox.toml").write_text('name = "recorder"\nruntime = "python3.14"\n')
    with first.client() as a, Client(second.url, second.credentials) as b:
        a.deploy_path(src)
        a.buckets.set_notifications("inbox", functions=[{"function": "recorder"}])
        b.mappings.create("recorder", "table:ledger", starting_position="TRIM_HORIZON")
        a.buckets.put("inbox", "from-a.txt", b"a")
        b.buckets.put("inbox", "from-b.txt", b"b")
        a.tables.put("ledger", "k1", {"n": 1})
        b.tables.put("ledger", "k1", {"n": 2})
        found = _wait(a, "recorder", 4)
        time.sleep(1.5)
        found = _records(a, "recorder")
        holders = [c for c in (a, b) if c.node()["changes"]["dispatching"]]
        assert len(holders) == 1, "exactly one node dispatches at a time"
    keys = sorted(r["s3"]["object"]["key"] for r in found if r["eventSource"] == "aws:s3")
    assert keys == ["from-a.txt", "from-b.txt"]  # each once, whichever node wrote it
    table = [r["eventName"] for r in found if r["eventSource"] == "aws:dynamodb"]
    assert table == ["INSERT", "MODIFY"]  # in commit order across the two nodes

    # The dispatcher dies: the other node takes its lease and delivers what is written next.
    dispatcher, other = (first, second) if holders[0] is a else (second, first)
    assert dispatcher.proc is not None
    dispatcher.proc.kill()
    dispatcher.proc.wait(10)
    dispatcher.proc = None
    with other.client() as c:
        c.buckets.put("inbox", "after.txt", b"c")
        found = _wait(c, "recorder", 5)
    assert "after.txt" in [r["s3"]["object"]["key"] for r in found if "s3" in r]
