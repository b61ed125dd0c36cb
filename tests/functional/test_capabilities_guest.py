"""Host capabilities from a real Python guest: `firebox.kv`, `firebox.blobs` and outbound
HTTP through unchanged `urllib.request` / `http.client`, against real stores and a real
local HTTP server (real componentize-py, real wasmtime)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from firebox.runtime.grants import parse_grants
from firebox.runtime.host import services
from firebox.runtime.host.capabilities import COUNTS

from tests.functional.test_python_guest import (  # noqa: F401 - fixtures
    Make,
    Sink,
    call,
    component,
    engine,
    make,
)

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    where = tmp_path_factory.mktemp("data")
    services.configure(where, None)
    yield where
    services.close()


class _Upstream(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"hello {self.path} host={self.headers.get('Host')}".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("X-Upstream", "yes")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(201)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[::-1])

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def upstream() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


KV_HANDLER = """
import firebox

def handler(event, context):
    t = firebox.kv.table("orders")
    first = t.put("o-1", {"total": 12})
    t.put("o-2", [1, 2], ttl=60)
    t.put("p-1", "other")
    try:
        t.put("o-1", {}, if_absent=True)
        cond = "no error"
    except firebox.ConditionFailed as exc:
        cond = str(exc)
    page = t.query("o-", limit=1)
    everything = [item.key for item in t.items()]
    return {
        "get": t.get("o-1"), "version": first.version, "cond": cond,
        "page": [i.key for i in page.items], "cursor": page.cursor, "all": everything,
        "missing": t.get("nope", "dflt"), "deleted": t.delete("p-1"),
    }
"""


def test_kv_round_trip_from_a_handler(make: Make) -> None:  # noqa: F811 - the fixture
    grants = parse_grants({"tables": {"orders": "readwrite"}})
    instance = make(KV_HANDLER, grants=grants).instantiate()
    out = call(instance, {})
    instance.close()
    assert out["get"] == {"total": 12}
    assert out["version"] == 1
    assert "already exists" in out["cond"]
    assert out["page"] == ["o-1"] and out["cursor"] == "o-1"
    assert out["all"] == ["o-1", "o-2", "p-1"]
    assert out["missing"] == "dflt" and out["deleted"] is True
    assert services.data().kv.get("orders", "o-2") is not None


DENIED_HANDLER = """
import firebox

def handler(event, context):
    try:
        firebox.kv.table(event["table"]).put("k", 1)
    except firebox.CapabilityDenied as exc:
        return {"type": type(exc).__name__, "message": str(exc), "perm": isinstance(exc, PermissionError)}
    return "written"
"""


def test_a_table_not_granted_is_refused_with_how_to_grant(make: Make) -> None:  # noqa: F811 - the fixture
    before = COUNTS.get("denied.table", 0)
    grants = parse_grants({"tables": {"prices": "read"}})
    instance = make(DENIED_HANDLER, grants=grants).instantiate()
    other = call(instance, {"table": "orders"})
    read_only = call(instance, {"table": "prices"})
    instance.close()
    assert other["type"] == "CapabilityDenied" and other["perm"] is True
    assert "table capability for orders (write)" in other["message"]
    assert "[capabilities]" in other["message"] and "tables = {" in other["message"]
    assert "prices (write)" in read_only["message"]
    assert COUNTS.get("denied.table", 0) == before + 2


BLOB_HANDLER = """
import firebox

def handler(event, context):
    b = firebox.blobs.bucket("media")
    info = b.put("a/one.bin", bytes(range(256)), content_type="application/x-test")
    b.put("a/two.txt", "two")
    b.put("b/three.txt", "three")
    found, cursor = b.list("a/")
    return {
        "etag": info.etag, "size": info.size, "range": list(b.get("a/one.bin", start=10, end=14)),
        "whole": len(b.get("a/one.bin")), "head": b.head("a/two.txt").content_type,
        "listed": [o.key for o in found], "cursor": cursor, "all": [o.key for o in b.iter()],
        "missing": b.get("nope"), "deleted": b.delete("b/three.txt"), "gone": b.head("b/three.txt"),
    }
"""


def test_blob_round_trip_from_a_handler(make: Make) -> None:  # noqa: F811 - the fixture
    instance = make(BLOB_HANDLER, grants=parse_grants({"buckets": ["media"]})).instantiate()
    out = call(instance, {})
    instance.close()
    assert out["size"] == 256 and len(out["etag"]) == 64
    assert out["range"] == [10, 11, 12, 13] and out["whole"] == 256
    assert out["head"] == "application/octet-stream"
    assert out["listed"] == ["a/one.bin", "a/two.txt"] and out["cursor"] is None
    assert out["all"] == ["a/one.bin", "a/two.txt", "b/three.txt"]
    assert out["missing"] is None and out["deleted"] is True and out["gone"] is None
    _, data = services.data().buckets.get("media", "a/one.bin")
    assert data == bytes(range(256))


HTTP_HANDLER = """
import http.client
import json
import urllib.request
from urllib.parse import urlsplit

def handler(event, context):
    url = event["url"]
    with urllib.request.urlopen(url + "/via-urllib", timeout=5) as response:
        first = {"status": response.status, "body": response.read().decode(),
                 "header": response.headers["X-Upstream"]}
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    conn.request("POST", "/echo", body=b"abcdef", headers={"Content-Type": "text/plain"})
    answer = conn.getresponse()
    second = {"status": answer.status, "body": answer.read().decode()}
    conn.close()
    return {"urllib": first, "http.client": second}
"""


def test_urllib_and_http_client_reach_a_granted_host(make: Make, upstream: str) -> None:  # noqa: F811 - the fixture
    instance = make(HTTP_HANDLER, grants=parse_grants({"http": [upstream]})).instantiate()
    out = call(instance, {"url": upstream})
    instance.close()
    host = upstream.removeprefix("http://")
    assert out["urllib"] == {
        "status": 200, "body": f"hello /via-urllib host={host}", "header": "yes"
    }  # fmt: skip
    assert out["http.client"] == {"status": 201, "body": "fedcba"}
