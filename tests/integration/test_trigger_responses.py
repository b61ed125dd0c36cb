"""What a function answers an HTTP trigger with becomes the HTTP response, or a 502 that
says what is wrong with it: never a 500, a dropped connection or a broken header."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server

# The function answers with whatever JSON the request's body holds.
MIRROR = """
import json

def handler(event, context):
    return json.loads(event["body"])
"""


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(
        tmp_path_factory.mktemp("responses") / "data", env={"FIREBOX_PREPARE_PYTHON": "1"}
    )
    server.data_dir.mkdir(parents=True)
    server.start()
    src: Path = tmp_path_factory.mktemp("mirror")
    (src / "app.py").write_text(MIRROR)
    (src / "firebox.toml").write_text(
        'name = "mirror"\nruntime = "python3.14"\n\n[[triggers]]\nmethods = ["POST"]\nroute = "/mirror"\n'
    )
    with server.client() as client:
        client.deploy_path(src)
    yield server
    server.stop()


def answer(node: Server, response: Any) -> httpx.Response:
    with httpx.Client(base_url=node.url, timeout=60) as http:
        return http.post("/mirror", json=response)


def test_a_well_formed_response_is_served(node: Server) -> None:
    reply = answer(node, {"statusCode": 201, "headers": {"X-Thing": "café", "Retry": 3},
                          "cookies": ["a=1", "b=2; Path=/"],
                          "body": base64.b64encode(b"\x00\xff").decode(), "isBase64Encoded": True})  # fmt: skip
    assert reply.status_code == 201
    assert reply.content == b"\x00\xff"
    assert reply.headers["x-thing"] == "café"  # sent as Latin-1
    assert reply.headers["retry"] == "3"
    assert reply.headers.get_list("set-cookie") == ["a=1", "b=2; Path=/"]
    assert answer(node, {"statusCode": "204"}).status_code == 204
    assert answer(node, {"statusCode": 200, "body": {"n": 1}}).json() == {"n": 1}


@pytest.mark.parametrize(
    ("response", "why"),
    [
        ({"statusCode": "two hundred"}, "statusCode"),
        ({"statusCode": 200.5}, "statusCode"),
        ({"statusCode": 99}, "statusCode"),
        ({"statusCode": True}, "statusCode"),
        ({"statusCode": 10**30}, "statusCode"),
        ({"statusCode": None}, "statusCode"),
        ({"statusCode": 200, "body": "%%%not base64", "isBase64Encoded": True}, "base64"),
        ({"statusCode": 200, "headers": {"X-A": "line\r\nInjected: yes"}}, "header"),
        ({"statusCode": 200, "headers": {"X-Snow": "☃"}}, "header"),
        ({"statusCode": 200, "headers": {"Bad Name": "v"}}, "header name"),
        ({"statusCode": 200, "headers": {"X-A": {"nested": 1}}}, "header"),
        ({"statusCode": 200, "headers": ["X-A", "b"]}, "headers"),
        ({"statusCode": 200, "cookies": "a=1"}, "cookies"),
        ({"statusCode": 200, "cookies": ["a=\n1"]}, "cookie"),
        ({"statusCode": 200, "headers": {"X-Long": "v" * 10_000}}, "longer"),
    ],
)
def test_a_malformed_response_is_a_502_that_says_why(node: Server, response: Any, why: str) -> None:
    reply = answer(node, response)
    assert reply.status_code == 502, reply.text
    error = reply.json()["error"]
    assert error["type"] == "InvalidFunctionResponse"
    assert why in error["message"]
    assert "Injected" not in reply.headers
    # The node goes on serving the same connection's next request.
    assert answer(node, {"statusCode": 200, "body": "ok"}).text == "ok"
