"""A catch-all user route never sees firebox's own API paths, nor a caller's credentials."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from firebox.runtime.http import reserved

from tests.conftest import Server, guest_wasm

boto3 = pytest.importorskip("boto3")
from botocore.config import Config  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

ALL = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


@pytest.fixture(scope="module")
def node(server: Server) -> Iterator[Server]:
    """The shared server with `echo` on the catch-all `/*`: it answers with the event."""
    with server.client() as client:
        client.deploy(
            {"name": "catchall", "triggers": [{"route": "/*", "methods": ALL}]},
            guest_wasm("echo"),
        )
    yield server


def lambda_client(server: Server) -> Any:
    creds = server.credentials
    return boto3.client(
        "lambda",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id=creds.access_key_id,
        aws_secret_access_key=creds.secret_access_key,
        config=Config(retries={"total_max_attempts": 1}),
    )


def test_the_catch_all_route_serves_ordinary_paths(node: Server) -> None:
    event = httpx.post(node.url + "/anything/here", content=b"{}").json()
    assert event["rawPath"] == "/anything/here"


def test_prefixes_come_from_botocores_model() -> None:
    assert {"2015-03-31", "2018-10-31", "2019-09-25", "2021-10-31"} <= set(reserved.LAMBDA_PREFIXES)
    assert set(reserved.KNOWN_LAMBDA_PREFIXES) <= set(reserved.LAMBDA_PREFIXES)
    assert reserved.is_reserved("/2099-01-01/anything") and reserved.is_reserved("/metrics")
    assert not reserved.is_reserved("/2015-03-31x/a") and not reserved.is_reserved("/v1x")


@pytest.mark.parametrize(
    ("method", "kwargs"),
    [
        ("list_layers", {}),
        ("create_function_url_config", {"FunctionName": "catchall", "AuthType": "NONE"}),
        ("put_function_event_invoke_config", {"FunctionName": "catchall"}),
        ("get_runtime_management_config", {"FunctionName": "catchall"}),
        ("list_code_signing_configs", {}),
        ("get_function_recursion_config", {"FunctionName": "catchall"}),
    ],
)
def test_api_calls_never_reach_the_user_function(
    node: Server, method: str, kwargs: dict[str, Any]
) -> None:
    client = lambda_client(node)
    bodies: list[bytes] = []
    client.meta.events.register(
        "after-call.lambda", lambda http_response, **_: bodies.append(http_response.content)
    )
    try:
        getattr(client, method)(**kwargs)  # served by firebox, or refused in Lambda's shape
    except ClientError as exc:
        error = exc.response
        assert error["ResponseMetadata"]["HTTPStatusCode"] in (400, 404)
        assert error["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"]
        assert error["Error"]["Message"]
    assert bodies and all(b"rawPath" not in body for body in bodies)


@pytest.mark.parametrize("prefix", reserved.LAMBDA_PREFIXES)
@pytest.mark.parametrize("method", ["GET", "POST", "OPTIONS"])
def test_every_lambda_prefix_is_refused_in_lambdas_shape(
    node: Server, prefix: str, method: str
) -> None:
    with node.http() as http:  # the admin's bearer passes authentication
        response = http.request(method, f"/{prefix}/no-such-operation", content=b"{}")
    assert response.status_code == 404, response.text
    assert response.headers["x-amzn-ErrorType"] == "UnknownOperationException"
    assert "no-such-operation" in response.json()["message"]
    assert "rawPath" not in response.text and "authorization" not in response.text.lower()


@pytest.mark.parametrize("path", ["/v1", "/v1/nothing", "/metrics", "/metrics/x", "/healthz/x"])
def test_native_prefixes_are_never_routed(node: Server, path: str) -> None:
    with node.http() as http:
        response = http.post(path, content=b"{}")
    assert response.status_code in (404, 405)
    assert "error" in response.json() and "rawPath" not in response.text


def test_admin_bearer_to_a_lambda_path_never_reaches_the_function(node: Server) -> None:
    with node.http() as http:
        response = http.get("/2018-10-31/layers/no/such/operation")
    assert response.headers["x-amzn-ErrorType"] == "UnknownOperationException"
    assert node.credentials.secret_access_key not in response.text


def test_credentials_sent_to_firebox_are_not_forwarded(node: Server) -> None:
    creds = node.credentials
    sent = {
        "X-Amz-Date": "20260101T000000Z",
        "X-Amz-Security-Token": "session-token",
        "X-Amz-Content-Sha256": "UNSIGNED-PAYLOAD",
        "X-Custom": "kept",
    }
    query = "?X-Amz-Signature=abc&X-Amz-Credential=k%2F1&keep=1"
    with node.http() as http:  # Authorization: Bearer ADMIN_ID:SECRET
        event = http.post("/open" + query, content=b"{}", headers=sent).json()
    headers = event["headers"]
    assert "authorization" not in headers
    assert not {"x-amz-date", "x-amz-security-token", "x-amz-content-sha256"} & set(headers)
    assert headers["x-custom"] == "kept"
    assert event["queryStringParameters"] == {"keep": "1"}
    assert "X-Amz" not in event["rawQueryString"]
    assert creds.secret_access_key not in str(event)
    sigv4 = {"Authorization": "AWS4-HMAC-SHA256 Credential=x/y, Signature=z"}
    event = httpx.post(node.url + "/open", content=b"{}", headers=sigv4).json()
    assert "authorization" not in event["headers"]
    # A credential meant for the function itself (not a firebox key) is its to read.
    own = {"Authorization": "Bearer the-apps-own-token"}
    event = httpx.post(node.url + "/open", content=b"{}", headers=own).json()
    assert event["headers"]["authorization"] == "Bearer the-apps-own-token"
