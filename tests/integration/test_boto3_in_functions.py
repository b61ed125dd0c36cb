"""boto3 inside a function, unchanged: its execution role's credentials come from the
container-credentials endpoint the host serves, its clients reach the node's own SQS API,
and what the role may do is the function's grant (AccessDenied outside it)."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

boto3 = pytest.importorskip("boto3")
from botocore.config import Config  # noqa: E402

from tests.conftest import Server  # noqa: E402

pytestmark = pytest.mark.slow

# Lambda code as people write it: the client made at module level (so at snapshot
# capture), used in the handler.
SENDER = """
import os
import boto3
from botocore.exceptions import ClientError

sqs = boto3.client("sqs")

def handler(event, context):
    try:
        url = sqs.get_queue_url(QueueName=event["queue"])["QueueUrl"]
        sent = sqs.send_message(QueueUrl=url, MessageBody=event["body"])
    except ClientError as exc:
        return {"error": exc.response["Error"]["Code"], "message": exc.response["Error"]["Message"]}
    creds = sqs._request_signer._credentials.get_frozen_credentials()
    return {"id": sent["MessageId"], "key": creds.access_key,
            "endpoint": os.environ["AWS_ENDPOINT_URL"]}
"""

LISTER = """
import boto3
from botocore.exceptions import ClientError

def handler(event, context):
    try:
        boto3.client("lambda").list_functions()
    except ClientError as exc:
        return exc.response["Error"]["Code"] + ": " + exc.response["Error"]["Message"]
    return "listed"
"""


ARCHIVER = """
import boto3
from botocore.exceptions import ClientError

s3 = boto3.client("s3")

def handler(event, context):
    s3.put_object(Bucket="reports", Key=event["key"], Body=event["body"].encode(),
                  ContentType="text/plain")
    got = s3.get_object(Bucket="reports", Key=event["key"])["Body"].read().decode()
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket="reports")["Contents"]]
    public = s3.get_object(Bucket="public", Key="notice.txt")["Body"].read().decode()
    refused = []
    for call in (lambda: s3.put_object(Bucket="public", Key="x", Body=b"no"),
                 lambda: s3.get_object(Bucket="private", Key="secret.txt"),
                 lambda: s3.create_bucket(Bucket="mine")):
        try:
            call()
            refused.append("allowed")
        except ClientError as exc:
            refused.append(exc.response["Error"]["Code"])
    return {"got": got, "listed": listed, "public": public, "refused": refused}
"""


ADDER = """
def handler(event, context):
    return {"sum": event["a"] + event["b"], "by": context.function_name}
"""

CALLER = """
import json
import boto3
from botocore.exceptions import ClientError

lam = boto3.client("lambda")

def handler(event, context):
    out = lam.invoke(FunctionName="adder", Payload=json.dumps({"a": 2, "b": 40}))
    result = json.loads(out["Payload"].read())
    try:
        lam.invoke(FunctionName="lister", Payload=b"{}")
        other = "allowed"
    except ClientError as exc:
        other = exc.response["Error"]["Code"]
    return {"status": out["StatusCode"], "result": result, "other": other}
"""


def write(
    root: Path, name: str, source: str, queues: list[str], buckets: str = "", extra: str = ""
) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "app.py").write_text(textwrap.dedent(source))
    (folder / "firebox.toml").write_text(
        f'name = "{name}"\nruntime = "python3.14"\nhandler = "app.handler"\ntimeout = 20\n'
        f"[capabilities]\nqueues = {json.dumps(queues)}\n"
        + (f"buckets = {buckets}\n" if buckets else "")
        + extra
    )
    return folder


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(tmp_path_factory.mktemp("boto3fn") / "data")
    server.data_dir.mkdir(parents=True)
    server.start()
    src = tmp_path_factory.mktemp("src")
    with server.client() as client:
        client.deploy_path(write(src, "sender", SENDER, ["orders"]))
        client.deploy_path(write(src, "lister", LISTER, []))
        client.deploy_path(write(src, "adder", ADDER, []))
        client.deploy_path(write(src, "caller", CALLER, [], extra='functions = ["adder"]\n'))
        client.deploy_path(
            write(src, "archiver", ARCHIVER, [], '{ reports = "readwrite", public = "read" }')
        )
    yield server
    server.stop()


def admin(server: Server, service: str, **config: Any) -> Any:
    """A boto3 client of the node's admin (outside any function)."""
    creds = server.credentials
    return boto3.client(
        service,
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id=creds.access_key_id,
        aws_secret_access_key=creds.secret_access_key,
        config=Config(retries={"total_max_attempts": 1}, **config),
    )


def test_a_function_sends_to_its_granted_queue_with_its_role(node: Server) -> None:
    sqs = admin(node, "sqs")
    url = sqs.create_queue(QueueName="orders")["QueueUrl"]
    sqs.create_queue(QueueName="payroll")
    with node.client() as client:
        result = client.invoke("sender", {"queue": "orders", "body": "order 42"})
        assert result.error is None, result.error
        sent = result.payload
        assert sent["key"].startswith("ASIA")  # the role's temporary key, fetched at the call
        assert sent["endpoint"] == "http://aws.firebox.internal"
        got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=2)["Messages"]
        assert [(m["MessageId"], m["Body"]) for m in got] == [(sent["id"], "order 42")]
        # Outside its grant: refused in SQS's shape, nothing sent.
        denied = client.invoke("sender", {"queue": "payroll", "body": "raise"}).payload
        assert denied["error"] == "AccessDenied", denied
        assert "payroll" in denied["message"]
        payroll = sqs.get_queue_url(QueueName="payroll")["QueueUrl"]
        assert "Messages" not in sqs.receive_message(QueueUrl=payroll, WaitTimeSeconds=0)


def test_role_credentials_do_not_reach_the_rest_of_the_api(node: Server) -> None:
    with node.client() as client:
        result = client.invoke("lister", {})
    assert result.error is None, result.error
    code, _, message = result.payload.partition(": ")
    assert code == "AccessDeniedException", result.payload
    assert "lister" in message and "sqs" in message


def test_a_function_reads_and_writes_its_granted_buckets_through_s3(node: Server) -> None:
    s3 = admin(node, "s3", s3={"addressing_style": "path"})
    for bucket in ("reports", "public", "private"):
        s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket="public", Key="notice.txt", Body=b"read me")
    s3.put_object(Bucket="private", Key="secret.txt", Body=b"not for functions")
    with node.client() as client:
        result = client.invoke("archiver", {"key": "2026/q4.txt", "body": "revenue up"})
    assert result.error is None, result.error
    assert result.payload == {
        "got": "revenue up",
        "listed": ["2026/q4.txt"],
        "public": "read me",
        "refused": ["AccessDenied", "AccessDenied", "AccessDenied"],
    }
    stored = s3.get_object(Bucket="reports", Key="2026/q4.txt")
    assert stored["Body"].read() == b"revenue up" and stored["ContentType"] == "text/plain"
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["private", "public", "reports"]


def test_a_function_invokes_the_functions_it_was_granted(node: Server) -> None:
    with node.client() as client:
        result = client.invoke("caller", {})
    assert result.error is None, result.error
    assert result.payload == {
        "status": 200,
        "result": {"sum": 42, "by": "adder"},
        "other": "AccessDeniedException",
    }
