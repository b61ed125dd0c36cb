"""Request bodies, headers and connections bounded before anything buffers or authenticates."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from firebox.runtime import config

from tests.conftest import Server, ServerFactory, guest_wasm

# A SigV4 header whose signature is bogus: the node must not buffer a body to check it.
BOGUS_SIGV4 = {
    "Authorization": "AWS4-HMAC-SHA256 Credential=FBKNOPE/20260101/us-east-1/lambda/aws4_request,"
    " SignedHeaders=host;x-amz-date, Signature=" + "0" * 64,
    "X-Amz-Date": "20260101T000000Z",
}


@pytest.fixture(scope="module")
def node(server: Server) -> Iterator[Server]:
    with server.client() as client:
        client.deploy({"name": "open", "triggers": [{"route": "/open"}]}, guest_wasm("echo"))
    yield server


def chunks(total: int, size: int = 256 * 1024) -> Iterator[bytes]:
    """A body without Content-Length (chunked), `total` bytes long."""
    for _ in range(total // size):
        yield b"x" * size


@pytest.mark.parametrize(
    ("method", "path", "lambda_shape"),
    [
        ("PUT", "/2015-03-31/functions/f/configuration", True),
        ("POST", "/2018-10-31/layers/l/versions", True),
        ("POST", "/v1/queues", False),
        ("POST", "/v1/keys", False),
    ],
)
@pytest.mark.parametrize("declared", [True, False])
def test_a_body_over_the_route_cap_is_refused_before_the_signature(
    node: Server, method: str, path: str, lambda_shape: bool, declared: bool
) -> None:
    size = 2 * 1024 * 1024  # over the 1 MiB cap of JSON routes
    content = b"x" * size if declared else chunks(size)
    response = httpx.request(
        method, node.url + path, content=content, headers=BOGUS_SIGV4, timeout=30
    )
    assert response.status_code == 413, response.text
    if lambda_shape:
        assert response.headers["x-amzn-ErrorType"] == "RequestEntityTooLargeException"
    else:
        assert response.json()["error"]["type"] == "PayloadTooLarge"
    assert httpx.get(node.url + "/healthz").status_code == 200


def test_an_anonymous_big_body_to_a_trigger_is_refused_unread(node: Server) -> None:
    size = config.MAX_PAYLOAD_BYTES + 1
    response = httpx.post(
        node.url + "/open", content=b"x" * size, headers={"Content-Type": "text/plain"}, timeout=30
    )
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "PayloadTooLarge"
    # Under the cap, the function's own limit (6 MiB by default) answers in the same shape.
    response = httpx.post(node.url + "/open", content=chunks(8 * 1024 * 1024), timeout=30)
    assert response.status_code == 413
    assert httpx.post(node.url + "/open", content=b"{}").json()["rawPath"] == "/open"


def test_a_signed_request_under_the_cap_still_works(node: Server) -> None:
    with node.http() as http:
        assert http.get("/2015-03-31/functions").status_code == 200


def half_request(server: Server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # headers never finished
    return sock


def test_half_requests_are_closed_and_the_node_keeps_answering(
    server_factory: ServerFactory,
) -> None:
    node = server_factory(
        env={"FIREBOX_HEADER_TIMEOUT_S": "1", "FIREBOX_MAX_CONNECTIONS": "16"}
    ).start()
    idle = [socket.create_connection(("127.0.0.1", node.port)) for _ in range(10)]
    half = [half_request(node) for _ in range(20)]
    time.sleep(2.0)
    for sock in half + idle:
        sock.settimeout(2)
        assert sock.recv(1024) == b""  # closed by the node
        sock.close()
    started = time.monotonic()
    assert httpx.get(node.url + "/healthz", timeout=5).status_code == 200
    assert time.monotonic() - started < 1.0


def test_oversized_headers_are_a_4xx(node: Server) -> None:
    # Headers still incomplete past the cap are not held: a 400, and the node is fine.
    size = config.DEFAULT_MAX_HEADER_BYTES + 1024
    with socket.create_connection(("127.0.0.1", node.port), timeout=5) as sock:
        sock.sendall(b"GET /open HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * size)
        reply = sock.recv(1024)
    assert reply.startswith(b"HTTP/1.1 4"), reply
    assert httpx.get(node.url + "/healthz").status_code == 200
