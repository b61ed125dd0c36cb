"""Malformed input to the newer Lambda operations, sent raw (boto3 would refuse it
client-side): every answer is a Lambda-shaped 4xx naming the problem, never a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Server, guest_wasm

FN = "/2015-03-31/functions/target"
CASES: list[tuple[str, str, Any]] = [
    ("PUT", "/2019-09-25/functions/target/event-invoke-config",
     {"DestinationConfig": {"OnSuccess": "not-an-object"}}),
    ("PUT", "/2019-09-25/functions/target/event-invoke-config",
     {"DestinationConfig": {"OnFailure": {"Destination": "arn:aws:sqs:eu-west-1:000000000000:q"}}}),
    ("PUT", "/2019-09-25/functions/target/event-invoke-config", {"MaximumRetryAttempts": "two"}),
    ("POST", "/2015-03-31/event-source-mappings", {"FunctionName": "target"}),
    ("POST", "/2015-03-31/event-source-mappings",
     {"FunctionName": "target", "EventSourceArn": "arn:aws:sqs:us-east-1:000000000000:none"}),
    ("POST", "/2015-03-31/event-source-mappings",
     {"FunctionName": "target", "EventSourceArn": "arn:aws:dynamodb:us-east-1:000000000000:t"}),
    ("POST", "/2015-03-31/event-source-mappings",
     {"FunctionName": "target", "EventSourceArn": "arn:aws:sqs:us-east-1:000000000000:none",
      "ScalingConfig": {"MaximumConcurrency": "lots"}}),
    ("POST", "/2015-03-31/event-source-mappings",
     {"FunctionName": "target", "EventSourceArn": "arn:aws:sqs:us-east-1:000000000000:none",
      "DestinationConfig": {"OnFailure": 7}}),
    ("PUT", "/2015-03-31/event-source-mappings/nope", {"BatchSize": 1}),
    ("POST", FN + "/policy", {"StatementId": "x"}),
    ("POST", FN + "/policy", {"StatementId": "x", "Action": "lambda:Invoke", "Principal": 7}),
    ("POST", FN + "/policy", {"StatementId": "x y", "Action": "lambda:Invoke", "Principal": "*"}),
    ("POST", FN + "/policy", {"StatementId": "x", "Action": "lambda:Invoke", "Principal": "bob"}),
    ("DELETE", FN + "/policy/missing", None),
    ("POST", "/2021-10-31/functions/target/url", {}),
    ("POST", "/2021-10-31/functions/target/url", {"AuthType": "KERBEROS"}),
    ("POST", "/2021-10-31/functions/target/url", {"AuthType": "NONE", "Cors": {"MaxAge": -1}}),
    ("POST", "/2021-10-31/functions/target/url", {"AuthType": "NONE", "Cors": {"Nope": 1}}),
    ("POST", "/2021-10-31/functions/target/url",
     {"AuthType": "NONE", "Cors": {"AllowOrigins": [1, 2]}}),
    ("POST", "/2021-10-31/functions/target/url?Qualifier=7", {"AuthType": "NONE"}),
    ("POST", "/2018-10-31/layers/bad%20name/versions", {"Content": {"ZipFile": "eA=="}}),
    ("POST", "/2018-10-31/layers/l/versions", {"Content": {"ZipFile": "bm90IGEgemlw"}}),
    ("POST", "/2018-10-31/layers/l/versions", {"Content": {"S3Bucket": "b", "S3Key": "k"}}),
    ("GET", "/2018-10-31/layers/l/versions/x", None),
    ("GET", "/2018-10-31/layers/l/versions/99", None),
    ("GET", "/2018-10-31/layers?find=LayerVersion&Arn=nonsense", None),
    ("POST", "/2015-03-31/functions",
     {"FunctionName": "layered", "Runtime": "python3.12", "Role": "r", "Handler": "a.b",
      "Code": {"ZipFile": "eA=="}, "Layers": ["arn:aws:lambda:us-east-1:000000000000:layer:l:1"]}),
    ("PUT", FN + "/configuration", {"Layers": "not-a-list"}),
    ("PUT", FN + "/configuration", {"TracingConfig": {"Mode": "Loud"}}),
    ("PUT", FN + "/configuration", {"EphemeralStorage": {"Size": "big"}}),
    ("PUT", FN + "/configuration", {"LoggingConfig": {"ApplicationLogLevel": "LOUD"}}),
    ("PUT", FN + "/configuration", {"MemorySize": 127}),
    ("DELETE", FN + "?Qualifier=live", None),
    ("DELETE", FN + "?Qualifier=41", None),
    ("POST", "/2021-11-15/functions/target/response-streaming-invocations", b"not json"),
    ("POST", "/2014-11-13/functions/nope/invoke-async", {}),
    ("PUT", "/2024-08-31/functions/target/recursion-config", {"RecursiveLoop": "Allow"}),
]  # fmt: skip


@pytest.fixture(scope="module")
def node(server: Server) -> Iterator[Server]:
    with server.client() as client:
        client.deploy({"name": "target"}, guest_wasm("echo"))
    yield server


@pytest.mark.parametrize(("method", "path", "body"), CASES)
def test_bad_input_is_a_lambda_shaped_4xx(node: Server, method: str, path: str, body: Any) -> None:
    with node.http() as http:
        content = body if isinstance(body, bytes) else None
        response = http.request(method, path, json=None if content else body, content=content)
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["x-amzn-ErrorType"], response.text
    assert response.json()["message"]
