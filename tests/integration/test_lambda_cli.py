"""The newer Lambda operations through the real AWS CLI (v1 from PyPI, the [dev] extra):
a function URL with its permission called with httpx, a layer, an event source mapping,
the code download."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.conftest import Server, guest_wasm
from tests.integration.test_lambda_api import AWS, aws

pytestmark = pytest.mark.skipif(not AWS.exists(), reason="the AWS CLI is not installed")
ROLE = "arn:aws:iam::000000000000:role/r"


def module_zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("echo.wasm", guest_wasm("echo"))
    return out.getvalue()


def test_cli_function_url_layer_mapping_and_code(server: Server, tmp_path: Path) -> None:
    package = tmp_path / "function.zip"
    package.write_bytes(module_zip())
    aws(server, tmp_path, "create-function", "--function-name", "cli-url",
        "--runtime", "provided.al2023", "--role", ROLE, "--handler", "handle",
        "--zip-file", f"fileb://{package}")  # fmt: skip
    # function URL + the permission Lambda requires for AuthType NONE
    url = aws(server, tmp_path, "create-function-url-config", "--function-name", "cli-url",
              "--auth-type", "NONE")["FunctionUrl"]  # fmt: skip
    assert httpx.get(url).status_code == 403
    aws(server, tmp_path, "add-permission", "--function-name", "cli-url",
        "--statement-id", "url", "--action", "lambda:InvokeFunctionUrl", "--principal", "*",
        "--function-url-auth-type", "NONE")  # fmt: skip
    event = httpx.get(url + "from/cli?q=1").json()
    assert event["rawPath"] == "/from/cli" and event["queryStringParameters"] == {"q": "1"}
    policy = json.loads(aws(server, tmp_path, "get-policy", "--function-name", "cli-url")["Policy"])
    assert policy["Statement"][0]["Action"] == "lambda:InvokeFunctionUrl"
    # the code, downloaded from Code.Location
    location = aws(server, tmp_path, "get-function", "--function-name", "cli-url")["Code"][
        "Location"
    ]
    assert httpx.get(location).content == package.read_bytes()
    # a layer
    layer = tmp_path / "layer.zip"
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("python/helper.py", "X = 1\n")
    layer.write_bytes(out.getvalue())
    published = aws(server, tmp_path, "publish-layer-version", "--layer-name", "cli-layer",
                    "--zip-file", f"fileb://{layer}")  # fmt: skip
    assert published["Version"] == 1
    listed = aws(server, tmp_path, "list-layers")["Layers"]
    assert "cli-layer" in [x["LayerName"] for x in listed]
    # an event source mapping over a firebox queue
    with server.http() as http:
        assert http.post("/v1/queues", json={"name": "cli-jobs"}).status_code == 201
    mapping = aws(server, tmp_path, "create-event-source-mapping", "--function-name", "cli-url",
                  "--event-source-arn", "arn:aws:sqs:us-east-1:000000000000:cli-jobs",
                  "--batch-size", "5")  # fmt: skip
    assert mapping["BatchSize"] == 5 and mapping["State"] == "Enabled"
    found = aws(server, tmp_path, "list-event-source-mappings", "--function-name", "cli-url")
    assert [m["UUID"] for m in found["EventSourceMappings"]] == [mapping["UUID"]]
    aws(server, tmp_path, "delete-event-source-mapping", "--uuid", mapping["UUID"])
    aws(server, tmp_path, "delete-function-url-config", "--function-name", "cli-url")
    assert httpx.get(url).status_code == 404
