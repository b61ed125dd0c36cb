"""Function URLs and resource policies through real boto3, and the URLs called with httpx,
unsigned and SigV4-signed, on a real node."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import httpx
import pytest

from tests.conftest import Server, guest_wasm

boto3 = pytest.importorskip("boto3")
from botocore.auth import SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402

REGION, ACCOUNT = "us-east-1", "000000000000"


def module_zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("echo.wasm", guest_wasm("echo"))
    return out.getvalue()


@pytest.fixture(scope="module")
def lam(server: Server) -> Any:
    creds = server.credentials
    client = boto3.client(
        "lambda", endpoint_url=server.url, region_name=REGION,
        aws_access_key_id=creds.access_key_id, aws_secret_access_key=creds.secret_access_key,
        config=Config(retries={"total_max_attempts": 1}),
    )  # fmt: skip
    for name in ("web", "iam"):
        client.create_function(
            FunctionName=name, Runtime="provided.al2023", Role=f"arn:aws:iam::{ACCOUNT}:role/r",
            Handler="handle", Code={"ZipFile": module_zip()},
        )  # fmt: skip
    return client


def signed_get(url: str, key_id: str, secret: str, service: str = "lambda") -> httpx.Response:
    request = AWSRequest(method="GET", url=url, headers={"x-custom": "kept"})
    SigV4Auth(Credentials(key_id, secret), service, REGION).add_auth(request)
    return httpx.get(url, headers=dict(request.headers))


def test_permissions_are_stored_and_shown_as_lambda_shows_them(lam: Any) -> None:
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_policy(FunctionName="web")
    added = lam.add_permission(
        FunctionName="web", StatementId="s3-invoke", Action="lambda:InvokeFunction",
        Principal="s3.amazonaws.com", SourceArn="arn:aws:s3:::bucket", SourceAccount=ACCOUNT,
    )  # fmt: skip
    statement = json.loads(added["Statement"])
    assert statement == {
        "Sid": "s3-invoke", "Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"},
        "Action": "lambda:InvokeFunction",
        "Resource": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:web",
        "Condition": {"ArnLike": {"AWS:SourceArn": "arn:aws:s3:::bucket"},
                      "StringEquals": {"AWS:SourceAccount": ACCOUNT}},
    }  # fmt: skip
    with pytest.raises(lam.exceptions.ResourceConflictException):
        lam.add_permission(FunctionName="web", StatementId="s3-invoke",
                           Action="lambda:InvokeFunction", Principal="*")  # fmt: skip
    lam.add_permission(FunctionName="web", StatementId="account", Action="lambda:GetFunction",
                       Principal="123456789012")  # fmt: skip
    policy = json.loads(lam.get_policy(FunctionName="web")["Policy"])
    assert policy["Version"] == "2012-10-17"
    assert [s["Sid"] for s in policy["Statement"]] == ["s3-invoke", "account"]
    assert policy["Statement"][1]["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"}
    lam.remove_permission(FunctionName="web", StatementId="s3-invoke")
    lam.remove_permission(FunctionName="web", StatementId="account")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.remove_permission(FunctionName="web", StatementId="account")
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.add_permission(FunctionName="web", StatementId="bad", Action="s3:GetObject",
                           Principal="*")  # fmt: skip


def test_a_public_url_needs_its_permission_then_serves_payload_2(lam: Any, server: Server) -> None:
    created = lam.create_function_url_config(FunctionName="web", AuthType="NONE")
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    url = created["FunctionUrl"]
    assert url.startswith(server.url + "/lambda-url/") and url.endswith("/")
    assert created["FunctionArn"] == f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:web"
    with pytest.raises(lam.exceptions.ResourceConflictException):
        lam.create_function_url_config(FunctionName="web", AuthType="NONE")
    denied = httpx.get(url + "hello")
    assert denied.status_code == 403 and denied.json() == {"Message": "Forbidden"}
    lam.add_permission(
        FunctionName="web", StatementId="public-url", Action="lambda:InvokeFunctionUrl",
        Principal="*", FunctionUrlAuthType="NONE",
    )  # fmt: skip
    creds = server.credentials
    admin = {
        "Authorization": f"Bearer {creds.access_key_id}:{creds.secret_access_key}",
        "Content-Type": "application/json",
    }
    response = httpx.post(url + "hello/there?x=1&y=2", content=b'{"a": 1}', headers=admin)
    assert response.status_code == 200, response.text
    event = response.json()
    assert event["version"] == "2.0" and event["rawPath"] == "/hello/there"
    assert event["queryStringParameters"] == {"x": "1", "y": "2"}
    assert event["requestContext"]["http"]["method"] == "POST"
    assert event["requestContext"]["apiId"] == url.rstrip("/").rsplit("/", 1)[1]
    assert json.loads(event["body"]) == {"a": 1}
    assert "authorization" not in event["headers"]  # a firebox key never reaches the guest
    assert creds.secret_access_key not in response.text
    assert httpx.get(url).json()["rawPath"] == "/"
    got = lam.get_function_url_config(FunctionName="web")
    assert got["FunctionUrl"] == url and got["AuthType"] == "NONE"
    assert "LastModifiedTime" in got and "CreationTime" in got
    listed = lam.list_function_url_configs(FunctionName="web")["FunctionUrlConfigs"]
    assert [c["FunctionUrl"] for c in listed] == [url]


def test_cors_preflight_and_headers(lam: Any) -> None:
    url = lam.get_function_url_config(FunctionName="web")["FunctionUrl"]
    updated = lam.update_function_url_config(
        FunctionName="web",
        Cors={"AllowOrigins": ["https://app.example"], "AllowMethods": ["GET", "POST"],
              "AllowHeaders": ["x-custom"], "MaxAge": 300},
    )  # fmt: skip
    assert updated["Cors"]["AllowOrigins"] == ["https://app.example"]
    assert updated["AuthType"] == "NONE"  # not given: unchanged
    preflight = httpx.options(
        url, headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    assert preflight.headers["access-control-allow-methods"] == "GET,POST"
    assert preflight.headers["access-control-max-age"] == "300"
    simple = httpx.get(url, headers={"Origin": "https://app.example"})
    assert simple.headers["access-control-allow-origin"] == "https://app.example"
    other = httpx.get(url, headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_an_aws_iam_url_requires_sigv4(lam: Any, server: Server) -> None:
    url = lam.create_function_url_config(FunctionName="iam", AuthType="AWS_IAM")["FunctionUrl"]
    assert httpx.get(url + "x").status_code == 403
    creds = server.credentials
    response = signed_get(url + "x?q=1", creds.access_key_id, creds.secret_access_key)
    assert response.status_code == 200, response.text
    event = response.json()
    assert event["rawPath"] == "/x" and event["queryStringParameters"] == {"q": "1"}
    assert event["requestContext"]["authorizer"]["iam"]["accessKey"] == creds.access_key_id
    assert event["headers"]["x-custom"] == "kept"
    assert "authorization" not in event["headers"] and "x-amz-date" not in event["headers"]
    assert signed_get(url + "x", creds.access_key_id, "wrong-secret").status_code == 403
    assert (
        signed_get(url + "x", creds.access_key_id, creds.secret_access_key, "s3").status_code
        in (400, 403)  # signed for s3: the S3 API claims it and refuses it, never the URL
    )


def test_deleting_a_url_stops_serving_it(lam: Any) -> None:
    url = lam.get_function_url_config(FunctionName="iam")["FunctionUrl"]
    lam.delete_function_url_config(FunctionName="iam")
    assert httpx.get(url).status_code == 404
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function_url_config(FunctionName="iam")
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.create_function_url_config(FunctionName="iam", Qualifier="1", AuthType="NONE")


def test_deleting_the_function_deletes_its_url_and_policy(lam: Any) -> None:
    url = lam.get_function_url_config(FunctionName="web")["FunctionUrl"]
    lam.delete_function(FunctionName="web")
    lam.create_function(
        FunctionName="web", Runtime="provided.al2023", Role=f"arn:aws:iam::{ACCOUNT}:role/r",
        Handler="handle", Code={"ZipFile": module_zip()},
    )  # fmt: skip
    assert httpx.get(url).status_code == 404
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_policy(FunctionName="web")
