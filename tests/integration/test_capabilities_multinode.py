"""Two nodes on one PostgreSQL database see the same tables and buckets: written by a
function on one node, through the SDK of the other, read back from both."""

from __future__ import annotations

from pathlib import Path

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
    server_factory: ServerFactory, pg_schema_url: str, tmp_path: Path
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
