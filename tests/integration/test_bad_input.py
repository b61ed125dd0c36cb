"""Malformed input gets a 4xx in the documented shape, never a 500, on every route."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import msgpack
import pytest
from firebox.runtime.http import (
    auth,
    event_configs_api,
    lambda_api,
    lambda_settings,
    mappings_api,
    native,
    queues_api,
    schedules_api,
    streams_api,
)

from tests.conftest import Server, guest_wasm

MODULES = (native, queues_api, streams_api, event_configs_api, mappings_api, schedules_api,
           auth, lambda_api, lambda_settings)  # fmt: skip
PARAMS = {"name": "echo", "alias": "live", "queue": "q", "stream": "s", "shard": "shard-0000"}


def body_routes() -> list[tuple[str, str]]:
    """Every (method, concrete path) of the APIs that reads a body."""
    found = set()
    for module in MODULES:
        for route in module.routes():
            for method in sorted(route.methods or ()):
                if method in ("POST", "PUT", "PATCH"):
                    path = re.sub(
                        r"\{(\w+)(:\w+)?\}", lambda m: PARAMS.get(m.group(1), "x"), route.path
                    )
                    found.add((method, path))
    return sorted(found)


ROUTES = body_routes()
HUGE_INT = b'{"a": 1' + b"0" * 5000 + b"}"
DEEP = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a":' * 50_000 + b"1" + b"}" * 50_000
SURROGATE = (
    b'{"Name": "\\udcff", "FunctionVersion": "1", "name": "\\udcff", "description": "\\ud800"}'
)


@pytest.fixture(scope="module")
def node(server: Server) -> Iterator[Server]:
    with server.client() as client:
        client.deploy({"name": "echo", "triggers": [{"route": "/echo"}]}, guest_wasm("echo"))
    with server.http() as http:
        http.post("/v1/queues", json={"name": "q"})
    yield server


def assert_refused(response: httpx.Response, path: str) -> None:
    assert response.status_code < 500, (path, response.status_code, response.text[:300])
    if response.status_code >= 400:
        if path.startswith("/20"):
            assert response.headers.get("x-amzn-ErrorType"), response.text[:300]
        else:
            assert "error" in response.json(), response.text[:300]


def test_there_are_many_routes_with_bodies() -> None:
    assert len(ROUTES) >= 25


@pytest.mark.parametrize("body", [HUGE_INT, DEEP, DEEP_OBJECT, SURROGATE],
                         ids=["5000-digits", "deep-array", "deep-object", "surrogates"])  # fmt: skip
@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_bad_json_bodies_are_4xx(node: Server, method: str, path: str, body: bytes) -> None:
    with node.http() as http:
        response = http.request(
            method, path, content=body, headers={"Content-Type": "application/json"}
        )
    assert_refused(response, path)
    assert response.status_code != 200 or body is SURROGATE


MSGPACK_BODIES = {
    "bin": msgpack.packb({"a": b"\x00\xff"}, use_bin_type=True),
    "ext": msgpack.packb({"a": msgpack.ExtType(5, b"xyz")}),
    "timestamp": msgpack.packb({"a": msgpack.Timestamp(1, 2)}),
    "bin-key": msgpack.packb({b"k": 1}, use_bin_type=True),
    "deep": b"\x91" * 100_000 + b"\xc0",
    "huge-int": msgpack.packb({"a": 2**64 - 1}),
}


@pytest.mark.parametrize("kind", sorted(MSGPACK_BODIES))
@pytest.mark.parametrize(("method", "path"), [r for r in ROUTES if r[1].startswith("/v1/")])
def test_msgpack_bodies_are_4xx(node: Server, method: str, path: str, kind: str) -> None:
    with node.http() as http:
        response = http.request(method, path, content=MSGPACK_BODIES[kind],
                                headers={"Content-Type": "application/msgpack"})  # fmt: skip
    assert response.status_code < 500, (path, response.status_code, response.text[:300])


@pytest.mark.parametrize("kind", ["bin", "ext", "timestamp", "bin-key"])
def test_msgpack_events_without_a_json_form_are_400(node: Server, kind: str) -> None:
    with node.http() as http:
        response = http.post("/v1/functions/echo/invoke", content=MSGPACK_BODIES[kind],
                             headers={"Content-Type": "application/msgpack"})  # fmt: skip
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "BadRequest"


BAD_NUMBERS = ["²", "1" * 25, "-1", "1e3", "٣"]


@pytest.mark.parametrize("value", BAD_NUMBERS)
@pytest.mark.parametrize(
    "template",
    [
        "/v1/functions?limit={v}",
        "/v1/functions/echo/logs?limit={v}",
        "/v1/functions/echo/invoke?qualifier={v}",
        "/v1/streams/s/shards/shard-0000/records?limit={v}",
        "/v1/streams/s/shards/shard-0000/records?after={v}",
        "/2015-03-31/functions?MaxItems={v}",
        "/2015-03-31/functions/echo/versions?MaxItems={v}",
        "/2015-03-31/functions/echo/aliases?MaxItems={v}",
        "/2015-03-31/functions/echo/configuration?Qualifier={v}",
        "/2015-03-31/functions/echo:{v}/configuration",
        "/2015-03-31/functions/echo/invocations?Qualifier={v}",
        "/v1/functions/echo:{v}",
        "/v1/functions/echo/event-invoke-config?qualifier={v}",
    ],
)
def test_bad_numbers_in_query_parameters_are_4xx(node: Server, template: str, value: str) -> None:
    path = template.format(v=value)
    method = "POST" if "invoke" in path and "config" not in path else "GET"
    with node.http() as http:
        http.post("/v1/streams", json={"name": "s"})
        response = http.request(method, path, content=b"{}")
    assert_refused(response, path)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/functions/echo/aliases", {"name": "\udcff", "version": "1"}),
        ("POST", "/2015-03-31/functions/echo/aliases", {"Name": "\udcff", "FunctionVersion": "1"}),
        ("POST", "/v1/keys", {"description": "\udcff"}),
        ("POST", "/v1/queues", {"name": "\udcff"}),
        ("PUT", "/2017-03-31/tags/arn:aws:lambda:us-east-1:000000000000:function:echo",
         {"Tags": {"\udcff": "x"}}),
    ],
)  # fmt: skip
def test_lone_surrogates_are_400(
    node: Server, method: str, path: str, body: dict[str, Any]
) -> None:
    import json

    with node.http() as http:
        response = http.request(method, path, content=json.dumps(body).encode(),
                                headers={"Content-Type": "application/json"})  # fmt: skip
    assert 400 <= response.status_code < 500, response.text
    assert_refused(response, path)


@pytest.mark.parametrize(
    "entries",
    [
        {"entries": "nope"},
        {"entries": [1, 2]},
        {"entries": [{"body": "x", "dedup_id": 5}]},
        {"entries": [{"body": "x", "attributes": ["a"]}]},
        {"entries": [{"body": "x", "delay_s": 10**400}]},
        {"entries": [{"body": "x", "delay_s": 10**30}]},
        {"entries": [{"body": 5}]},
        {"body": "x", "dedup_id": {"a": 1}},
        {"body": "x", "dedup_id": "d" * 200},
        {"body": "x", "delay_s": "soon"},
    ],
)
def test_wrong_typed_queue_entries_are_400(node: Server, entries: dict[str, Any]) -> None:
    with node.http() as http:
        response = http.post("/v1/queues/q/messages", json=entries)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]["type"] == "BadRequest"


@pytest.mark.parametrize(
    "body",
    [
        {"name": "dq", "dead_letter_queue": 5, "max_receive_count": 3},
        {"name": "dq", "dead_letter_queue": {"name": "x"}, "max_receive_count": 3},
        {"name": "dq", "dead_letter_queue": "no-such-queue", "max_receive_count": 3},
        {"name": "dq", "dead_letter_queue": "q", "max_receive_count": 2**64},
        {"name": "dq", "max_receives": "many"},
        {"name": "dq", "max_receives": 10**30},
        {"name": "dq", "visibility_timeout_s": 10**400},
    ],
)
def test_wrong_typed_queue_settings_are_400(node: Server, body: dict[str, Any]) -> None:
    with node.http() as http:
        response = http.post("/v1/queues", json=body)
    assert 400 <= response.status_code < 500, response.text


@pytest.mark.parametrize(
    "manifest",
    [
        {"name": "big", "fuel": 2**64},
        {"name": "big", "max_request_bytes": 2**64},
        {"name": "big", "concurrency": 2**64},
        {"name": "big", "environment": {"A": "x" * 5000}},
    ],
)
def test_huge_manifest_values_are_invalid_manifest(node: Server, manifest: dict[str, Any]) -> None:
    import base64

    body = {"manifest": manifest, "code_base64": base64.b64encode(guest_wasm("echo")).decode()}
    with node.http() as http:
        response = http.post("/v1/functions", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "InvalidManifest"


def _lying_zip(declared: int) -> bytes:
    """A bundle whose one entry's central-directory size says `declared` bytes (it has 4000)."""
    import io
    import struct
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("app.py", "def handler(e, c):\n    return 1\n" + "#" * 4000)
    data = bytearray(out.getvalue())
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, declared)  # uncompressed size
    return bytes(data)


@pytest.mark.parametrize("declared", [10, 1_000_000])
def test_zip_entries_that_lie_about_their_size_are_4xx(node: Server, declared: int) -> None:
    import base64

    manifest = {"name": "liar", "runtime": "python3.14", "handler": "app.handler"}
    code = base64.b64encode(_lying_zip(declared)).decode()
    with node.http() as http:
        response = http.post("/v1/functions", json={"manifest": manifest, "code_base64": code})
    assert response.status_code == 400, response.text
    assert "app.py" in response.json()["error"]["message"]
