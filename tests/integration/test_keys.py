"""Access keys: issued, listed, revoked by the admin; SigV4 and bearer auth on every API."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from typing import Any
from unittest import mock

import httpx
import pytest
from firebox.runtime.credentials import Credentials
from firebox.runtime.errors import FireboxError, Forbidden, Unauthorized
from firebox.sdk.client import Client

from tests.conftest import Server

boto3 = pytest.importorskip("boto3")
from botocore.auth import SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.credentials import Credentials as AwsCredentials  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

REGION = "us-east-1"


def signed(
    server: Server,
    creds: Credentials,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    service: str = "firebox",
    region: str = REGION,
    at: datetime.datetime | None = None,
) -> httpx.Response:
    """Send a SigV4-signed request (botocore's own signer) to the node."""
    request = AWSRequest(method=method, url=server.url + path, data=body,
                         headers={"Content-Type": "application/json"})  # fmt: skip
    signer = SigV4Auth(
        AwsCredentials(creds.access_key_id, creds.secret_access_key), service, region
    )
    if at is None:
        signer.add_auth(request)
    else:
        with mock.patch("botocore.auth.get_current_datetime", return_value=at):
            signer.add_auth(request)
    prepared = request.prepare()
    return httpx.request(method, prepared.url, headers=dict(prepared.headers),
                         content=body, timeout=30)  # fmt: skip


def boto_lambda(server: Server, creds: Credentials) -> Any:
    return boto3.client(
        "lambda", endpoint_url=server.url, region_name=REGION,
        aws_access_key_id=creds.access_key_id, aws_secret_access_key=creds.secret_access_key,
        config=Config(retries={"total_max_attempts": 1}),
    )  # fmt: skip


def test_issued_key_works_everywhere_until_revoked(server: Server) -> None:
    with server.client() as admin:
        key = admin.create_key("ci robot")
        assert key.access_key_id and key.secret_access_key
        listed = {k.access_key_id: k for k in admin.list_keys()}
        assert listed[server.credentials.access_key_id].admin
        assert listed[key.access_key_id].description == "ci robot"
        assert listed[key.access_key_id].secret_access_key is None  # never listed
        assert listed[key.access_key_id].revoked_at is None
    creds = Credentials(key.access_key_id, key.secret_access_key)

    # Bearer on the native API, SigV4 (service "firebox") on the native API, boto3 on Lambda
    with Client(server.url, creds) as robot:
        assert isinstance(robot.list(), list)
        with pytest.raises(Forbidden, match="only the admin key"):
            robot.create_key("escalate")
        with pytest.raises(Forbidden):
            robot.list_keys()
    response = signed(server, creds, "GET", "/v1/functions")
    assert response.status_code == 200, response.text
    assert "functions" in response.json()
    assert "Functions" in boto_lambda(server, creds).list_functions()

    with server.client() as admin:
        admin.revoke_key(key.access_key_id)
        revoked = {k.access_key_id: k for k in admin.list_keys()}[key.access_key_id]
        assert revoked.revoked_at is not None
        with pytest.raises(FireboxError, match="Access key not found"):
            admin.revoke_key("FBKNOSUCHKEY")
        with pytest.raises(FireboxError, match="cannot be revoked"):
            admin.revoke_key(server.credentials.access_key_id)

    with Client(server.url, creds) as robot, pytest.raises(Unauthorized):
        robot.list()
    assert signed(server, creds, "GET", "/v1/functions").status_code == 401
    with pytest.raises(ClientError) as info:
        boto_lambda(server, creds).list_functions()
    assert info.value.response["Error"]["Code"] == "UnrecognizedClientException"


def test_sigv4_checks_date_scope_and_body(server: Server) -> None:
    creds = server.credentials
    ok = signed(server, creds, "GET", "/v1/functions")
    assert ok.status_code == 200

    stale = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=20)
    response = signed(server, creds, "GET", "/v1/functions", at=stale)
    assert response.status_code == 403
    assert "Signature expired" in response.json()["error"]["message"]

    future = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=20)
    response = signed(server, creds, "GET", "/2015-03-31/functions", service="lambda", at=future)
    assert response.status_code == 403
    assert response.headers["x-amzn-ErrorType"] == "InvalidSignatureException"

    # The native API wants service "firebox", the Lambda API "lambda", and the node's region.
    response = signed(server, creds, "GET", "/v1/functions", service="lambda")
    assert response.status_code == 403
    assert "correct service" in response.json()["error"]["message"]
    response = signed(
        server, creds, "GET", "/2015-03-31/functions", service="lambda", region="eu-west-1"
    )
    assert response.status_code == 403
    assert "region" in response.json()["message"]

    # A body other than the one signed is refused.
    good = signed(server, creds, "POST", "/v1/keys", json.dumps({"description": "x"}).encode())
    assert good.status_code == 201
    request = AWSRequest(method="POST", url=server.url + "/v1/keys", data=b'{"description": "a"}')
    SigV4Auth(
        AwsCredentials(creds.access_key_id, creds.secret_access_key), "firebox", REGION
    ).add_auth(request)
    prepared = request.prepare()
    tampered = httpx.post(
        prepared.url, headers=dict(prepared.headers), content=b'{"description": "b"}'
    )
    assert tampered.status_code == 403

    # No credentials at all, and a wrong bearer secret.
    assert httpx.get(server.url + "/v1/functions").status_code == 401
    bad = httpx.get(server.url + "/2015-03-31/functions",
                    headers={"Authorization": f"Bearer {creds.access_key_id}:wrong"})  # fmt: skip
    assert bad.status_code == 403
    assert bad.headers["x-amzn-ErrorType"] == "InvalidSignatureException"
    assert httpx.get(server.url + "/healthz").status_code == 200


def test_keys_cli(server: Server, tmp_path: Any) -> None:
    creds = server.credentials
    env = {**os.environ, "FIREBOX_ACCESS_KEY_ID": creds.access_key_id,
           "FIREBOX_SECRET_ACCESS_KEY": creds.secret_access_key, "HOME": str(tmp_path)}  # fmt: skip

    def cli(*args: str) -> Any:
        done = subprocess.run(
            [sys.executable, "-m", "firebox.sdk.cli", "--endpoint", server.url, "--json", "keys", *args],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    created = cli("create", "--description", "from the cli")
    assert created["secret_access_key"]
    listed = {k["access_key_id"]: k for k in cli("ls")}
    assert listed[created["access_key_id"]]["description"] == "from the cli"
    assert listed[created["access_key_id"]]["secret_access_key"] is None
    assert cli("revoke", created["access_key_id"]) == {"revoked": created["access_key_id"]}
    assert {k["access_key_id"]: k for k in cli("ls")}[created["access_key_id"]]["revoked_at"]
