"""The SQS-compatible API driven by real boto3 against a real node, on SQLite and on Redis."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

boto3 = pytest.importorskip("boto3")
from botocore.auth import SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402
from firebox.runtime import roles  # noqa: E402

from tests.conftest import Server, guest_wasm  # noqa: E402

REGION = "us-east-1"


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("redis", marks=pytest.mark.services)]
)
def node(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    env = {}
    if request.param == "redis":
        env["FIREBOX_QUEUE_URL"] = request.getfixturevalue("redis_url")
    server = Server(tmp_path_factory.mktemp("sqs") / "data", env=env)
    server.data_dir.mkdir(parents=True)
    server.start()
    yield server
    server.stop()


def sqs_client(server: Server, **overrides: Any) -> Any:
    creds = server.credentials
    options: dict[str, Any] = {
        "endpoint_url": server.url,
        "region_name": REGION,
        "aws_access_key_id": creds.access_key_id,
        "aws_secret_access_key": creds.secret_access_key,
        "config": Config(retries={"total_max_attempts": 1}, read_timeout=60),
    }
    options.update(overrides)
    return boto3.client("sqs", **options)


@pytest.fixture(scope="module")
def sqs(node: Server) -> Any:
    return sqs_client(node)


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def test_queue_lifecycle_and_attributes(sqs: Any, node: Server) -> None:
    dlq_name, name = unique("dlq"), unique("orders")
    dlq_url = sqs.create_queue(QueueName=dlq_name)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    assert dlq_arn.endswith(f":sqs:{REGION}:{dlq_arn.split(':')[4]}:{dlq_name}")
    url = sqs.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": "45",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"}),
        },
    )["QueueUrl"]
    assert url == f"{node.url}/{dlq_arn.split(':')[4]}/{name}"
    assert sqs.get_queue_url(QueueName=name)["QueueUrl"] == url
    # Creating again with the same attributes is idempotent, with others refused.
    assert sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "45",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3})})["QueueUrl"] == url  # fmt: skip
    with pytest.raises(sqs.exceptions.QueueNameExists):
        sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "5"})

    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["VisibilityTimeout"] == "45"
    assert json.loads(attrs["RedrivePolicy"]) == {
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": 3,
    }
    assert attrs["ApproximateNumberOfMessages"] == "0"

    sqs.set_queue_attributes(
        QueueUrl=url, Attributes={"VisibilityTimeout": "7", "DelaySeconds": "0"}
    )
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout", "QueueArn"])
    assert attrs["Attributes"] == {
        "VisibilityTimeout": "7",
        "QueueArn": dlq_arn.replace(dlq_name, name),
    }
    sources = sqs.list_dead_letter_source_queues(QueueUrl=dlq_url)["queueUrls"]
    assert sources == [url]

    listed = sqs.list_queues(QueueNamePrefix=name)["QueueUrls"]
    assert listed == [url]
    sqs.delete_queue(QueueUrl=url)
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.get_queue_url(QueueName=name)
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.send_message(QueueUrl=url, MessageBody="x")


def test_send_receive_delete_with_typed_attributes(sqs: Any) -> None:
    url = sqs.create_queue(QueueName=unique("typed"))["QueueUrl"]
    attributes = {
        "kind": {"DataType": "String", "StringValue": "order"},
        "total": {"DataType": "Number", "StringValue": "12.50"},
        "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01\xff"},
    }
    sent = sqs.send_message(QueueUrl=url, MessageBody="héllo", MessageAttributes=attributes)
    assert sent["MD5OfMessageBody"] == hashlib.md5("héllo".encode()).hexdigest()

    got = sqs.receive_message(
        QueueUrl=url, MessageAttributeNames=["All"], AttributeNames=["All"], VisibilityTimeout=30
    )["Messages"]
    assert len(got) == 1
    message = got[0]
    assert message["Body"] == "héllo"
    assert message["MessageId"] == sent["MessageId"]
    assert message["MessageAttributes"] == attributes
    assert message["MD5OfMessageAttributes"] == sent["MD5OfMessageAttributes"]
    assert message["Attributes"]["ApproximateReceiveCount"] == "1"
    # Only the attributes asked for come back; their digest covers only those.
    sqs.change_message_visibility(
        QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
    )
    again = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["kind"])["Messages"][0]
    assert again["MessageAttributes"] == {"kind": attributes["kind"]}
    assert "Attributes" not in again
    sqs.delete_message(QueueUrl=url, ReceiptHandle=again["ReceiptHandle"])
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    # A stale handle deletes nothing and is not an error (as in SQS); a malformed one is.
    sqs.delete_message(QueueUrl=url, ReceiptHandle=again["ReceiptHandle"])
    with pytest.raises(sqs.exceptions.ReceiptHandleIsInvalid):
        sqs.delete_message(QueueUrl=url, ReceiptHandle="not a handle")


def test_batches_report_each_entry(sqs: Any) -> None:
    url = sqs.create_queue(QueueName=unique("batch"))["QueueUrl"]
    result = sqs.send_message_batch(
        QueueUrl=url,
        Entries=[
            {"Id": "a", "MessageBody": "one"},
            {"Id": "b", "MessageBody": "two", "DelaySeconds": 0},
            {"Id": "c", "MessageBody": "x", "DelaySeconds": 901},
        ],
    )
    assert sorted(s["Id"] for s in result["Successful"]) == ["a", "b"]
    [failed] = result["Failed"]
    assert (
        failed["Id"] == "c" and failed["SenderFault"] and failed["Code"] == "InvalidParameterValue"
    )
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert sorted(m["Body"] for m in got) == ["one", "two"]
    deleted = sqs.delete_message_batch(
        QueueUrl=url,
        Entries=[{"Id": f"d{i}", "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)]
        + [{"Id": "bad", "ReceiptHandle": "garbage"}],
    )
    assert len(deleted["Successful"]) == 2
    assert deleted["Failed"][0]["Code"] == "ReceiptHandleIsInvalid"
    with pytest.raises(sqs.exceptions.BatchEntryIdsNotDistinct):
        sqs.send_message_batch(
            QueueUrl=url, Entries=[{"Id": "x", "MessageBody": "1"}, {"Id": "x", "MessageBody": "2"}]
        )
    with pytest.raises(sqs.exceptions.TooManyEntriesInBatchRequest):
        sqs.send_message_batch(
            QueueUrl=url, Entries=[{"Id": f"e{i}", "MessageBody": "1"} for i in range(11)]
        )
    stats = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    assert stats["Attributes"]["ApproximateNumberOfMessages"] == "0"


def test_long_poll_returns_when_a_message_arrives(sqs: Any, node: Server) -> None:
    url = sqs.create_queue(QueueName=unique("poll"))["QueueUrl"]
    other = sqs_client(node)

    def send_later() -> None:
        time.sleep(1.0)
        other.send_message(QueueUrl=url, MessageBody="late")

    sender = threading.Thread(target=send_later)
    started = time.monotonic()
    sender.start()
    got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=10)["Messages"]
    waited = time.monotonic() - started
    sender.join()
    assert [m["Body"] for m in got] == ["late"]
    assert 0.9 <= waited < 8, waited
    # Many long polls at once hold no threads: the node still answers other calls.
    empty = sqs.create_queue(QueueName=unique("empty"))["QueueUrl"]
    polls = [threading.Thread(target=sqs_client(node).receive_message,
                              kwargs={"QueueUrl": empty, "WaitTimeSeconds": 3}) for _ in range(12)]  # fmt: skip
    for poll in polls:
        poll.start()
    time.sleep(0.3)
    quick = time.monotonic()
    sqs.send_message(QueueUrl=url, MessageBody="meanwhile")
    assert time.monotonic() - quick < 2.0
    for poll in polls:
        poll.join()


def test_bad_requests_get_sqs_shaped_errors(sqs: Any, node: Server) -> None:
    url = sqs.create_queue(QueueName=unique("bad"))["QueueUrl"]
    with pytest.raises(ClientError) as caught:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"KmsMasterKeyId": "alias/x"})
    assert caught.value.response["Error"]["Code"] == "InvalidAttributeName"
    assert "KmsMasterKeyId" in caught.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as caught:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "99999"})
    assert caught.value.response["Error"]["Code"] == "InvalidAttributeValue"
    with pytest.raises(ClientError) as caught:
        sqs.send_message(QueueUrl=url, MessageBody="x" * (256 * 1024 + 1))
    assert caught.value.response["Error"]["Code"] == "InvalidParameterValue"
    with pytest.raises(ClientError) as caught:
        sqs.tag_queue(QueueUrl=url, Tags={"a": "b"})
    assert caught.value.response["Error"]["Code"] == "UnsupportedOperation"
    assert "TagQueue" in caught.value.response["Error"]["Message"]
    # The node's own queues are out of reach.
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.get_queue_url(QueueName="firebox-async-invocations")
    with pytest.raises(ClientError) as caught:
        sqs.create_queue(QueueName="firebox-mine")
    assert caught.value.response["Error"]["Code"] == "InvalidParameterValue"
    # A DLQ that does not exist is refused.
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"RedrivePolicy": json.dumps(
            {"deadLetterTargetArn": f"arn:aws:sqs:{REGION}:000000000000:nope", "maxReceiveCount": 2})})  # fmt: skip


def test_credentials_are_checked(node: Server) -> None:
    wrong = sqs_client(node, aws_secret_access_key="not-the-secret")
    with pytest.raises(ClientError) as caught:
        wrong.list_queues()
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert caught.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    # Unsigned: refused in SQS's shape, never handed to a function's trigger.
    reply = httpx.post(node.url + "/", headers={"x-amz-target": "AmazonSQS.ListQueues",
                                                 "content-type": "application/x-amz-json-1.0"}, content=b"{}")  # fmt: skip
    assert reply.status_code == 403
    assert reply.json()["__type"].startswith("com.amazonaws.sqs#")
    # Signed for another service: refused.
    signed = AWSRequest(method="POST", url=node.url + "/", data=b"{}",
                        headers={"x-amz-target": "AmazonSQS.ListQueues",
                                 "content-type": "application/x-amz-json-1.0"})  # fmt: skip
    SigV4Auth(
        Credentials(node.credentials.access_key_id, node.credentials.secret_access_key),
        "lambda",
        REGION,
    ).add_auth(signed)
    reply = httpx.post(node.url + "/", headers=dict(signed.headers), content=b"{}")
    assert reply.status_code == 403
    assert "service" in reply.json()["message"]


def role_client(node: Server, function: str, version: str = "$LATEST", ttl_s: float = 600) -> Any:
    """An SQS client holding the execution-role credentials a function version gets."""
    creds = roles.issue(
        roles.role_key(node.credentials.secret_access_key), function, version, ttl_s
    )
    return sqs_client(
        node,
        aws_access_key_id=creds.access_key_id,
        aws_secret_access_key=creds.secret_access_key,
        aws_session_token=creds.session_token,
    )


def test_execution_role_credentials_reach_only_granted_queues(sqs: Any, node: Server) -> None:
    granted, other = unique("granted"), unique("other")
    granted_url = sqs.create_queue(QueueName=granted)["QueueUrl"]
    other_url = sqs.create_queue(QueueName=other)["QueueUrl"]
    with node.client() as admin:
        admin.deploy({"name": "sender", "capabilities": {"queues": [granted]}}, guest_wasm("echo"))
    role = role_client(node, "sender")

    role.send_message(QueueUrl=granted_url, MessageBody="from a function")
    got = role.receive_message(QueueUrl=granted_url)["Messages"]
    assert [m["Body"] for m in got] == ["from a function"]
    role.delete_message(QueueUrl=granted_url, ReceiptHandle=got[0]["ReceiptHandle"])
    assert role.get_queue_url(QueueName=granted)["QueueUrl"] == granted_url
    assert role.list_queues()["QueueUrls"] == [granted_url]

    refused: list[tuple[str, dict[str, Any]]] = [
        ("send_message", {"QueueUrl": other_url, "MessageBody": "x"}),
        ("get_queue_url", {"QueueName": other}),
        ("purge_queue", {"QueueUrl": granted_url}),
        ("create_queue", {"QueueName": unique("mine")}),
    ]
    for operation, kwargs in refused:
        with pytest.raises(ClientError) as caught:
            getattr(role, operation)(**kwargs)
        assert caught.value.response["Error"]["Code"] == "AccessDenied", caught.value.response
    with pytest.raises(ClientError) as caught:
        role.send_message(QueueUrl=other_url, MessageBody="x")
    assert f'queues = ["{other}"]' in caught.value.response["Error"]["Message"]

    # Role credentials open nothing else: not the native API, not Lambda's management API.
    lam = boto3.client("lambda", endpoint_url=node.url, region_name=REGION,
                       aws_access_key_id=role._request_signer._credentials.access_key,
                       aws_secret_access_key=role._request_signer._credentials.secret_key,
                       aws_session_token=role._request_signer._credentials.token)  # fmt: skip
    with pytest.raises(ClientError) as caught:
        lam.list_functions()
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_expired_or_foreign_role_credentials_are_refused(node: Server) -> None:
    expired = role_client(node, "sender", ttl_s=-1)
    with pytest.raises(ClientError) as caught:
        expired.list_queues()
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert "expired" in caught.value.response["Error"]["Message"]
    creds = roles.issue(roles.role_key("another cluster's secret"), "sender", "$LATEST")
    foreign = sqs_client(node, aws_access_key_id=creds.access_key_id,
                         aws_secret_access_key=creds.secret_access_key,
                         aws_session_token=creds.session_token)  # fmt: skip
    with pytest.raises(ClientError) as caught:
        foreign.list_queues()
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def sqs_attributes_md5(attributes: dict[str, dict[str, str]]) -> str:
    """MD5OfMessageAttributes as the AWS SDKs verify it: for each name in sorted order,
    the name, the data type and the value, each as a 4-byte big-endian length and its
    UTF-8 bytes, with a transport byte (1 string, 2 binary) before the value."""
    out = b""
    for name in sorted(attributes):
        attribute = attributes[name]
        for part in (name, attribute["DataType"]):
            out += len(part.encode()).to_bytes(4, "big") + part.encode()
        if attribute["DataType"].startswith("Binary"):
            value = base64.b64decode(attribute["BinaryValue"])
            out += b"\x02" + len(value).to_bytes(4, "big") + value
        else:
            value = attribute["StringValue"].encode()
            out += b"\x01" + len(value).to_bytes(4, "big") + value
    return hashlib.md5(out).hexdigest()


def aws_cli(node: Server, tmp_path: Path, *args: str, check: bool = True) -> Any:
    """Run the real AWS CLI (the venv's) against the node with the admin key; the config
    and credentials files and HOME point into tmp_path so the user's are never read."""
    aws = shutil.which("aws", path=str(Path(sys.executable).parent)) or shutil.which("aws")
    if aws is None:
        pytest.skip("the AWS CLI is not installed")
    (tmp_path / "config").write_text("")
    (tmp_path / "credentials").write_text("")
    creds = node.credentials
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        HOME=str(tmp_path),
        AWS_ACCESS_KEY_ID=creds.access_key_id,
        AWS_SECRET_ACCESS_KEY=creds.secret_access_key,
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE=str(tmp_path / "config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "credentials"),
        AWS_MAX_ATTEMPTS="1",
        AWS_PAGER="",
    )
    done = subprocess.run(
        [aws, "--endpoint-url", node.url, "--output", "json", *args],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    if not check:
        return done
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if done.stdout.strip() else {}


def test_aws_cli_sqs_commands(node: Server, tmp_path: Path) -> None:
    name = unique("cli")
    url = aws_cli(node, tmp_path, "sqs", "create-queue", "--queue-name", name)["QueueUrl"]
    assert url.endswith(f"/{name}")
    assert aws_cli(node, tmp_path, "sqs", "get-queue-url", "--queue-name", name) == {
        "QueueUrl": url
    }
    sending = {"kind": {"DataType": "String", "StringValue": "greeting"},
               "n": {"DataType": "Number", "StringValue": "7"},
               "raw": {"DataType": "Binary", "BinaryValue": "bytes as given"}}  # fmt: skip
    # CLI v1 sends a blob given in JSON as its text's bytes and prints blobs as base64.
    attributes = {**sending, "raw": {"DataType": "Binary",
                                     "BinaryValue": base64.b64encode(b"bytes as given").decode()}}  # fmt: skip
    # botocore does not check SQS's digests (the Java and .NET SDKs do), so the test
    # checks them the way those SDKs do, from SQS's documented algorithm.
    sent = aws_cli(node, tmp_path, "sqs", "send-message", "--queue-url", url,
                   "--message-body", "héllo cli", "--message-attributes", json.dumps(sending))  # fmt: skip
    assert sent["MD5OfMessageBody"] == hashlib.md5("héllo cli".encode()).hexdigest()
    assert sent["MD5OfMessageAttributes"] == sqs_attributes_md5(attributes)
    batch = aws_cli(node, tmp_path, "sqs", "send-message-batch", "--queue-url", url, "--entries",
                    json.dumps([{"Id": "b1", "MessageBody": "one"},
                                {"Id": "b2", "MessageBody": "two",
                                 "MessageAttributes": {"kind": {"DataType": "String",
                                                                "StringValue": "batch"}}}]))  # fmt: skip
    assert sorted(s["Id"] for s in batch["Successful"]) == ["b1", "b2"]
    assert "Failed" not in batch or batch["Failed"] == []
    stats = aws_cli(node, tmp_path, "sqs", "get-queue-attributes", "--queue-url", url,
                    "--attribute-names", "ApproximateNumberOfMessages")  # fmt: skip
    assert stats == {"Attributes": {"ApproximateNumberOfMessages": "3"}}

    received: dict[str, Any] = {}
    for _ in range(5):  # up to 10 per receive, but SQS may return fewer: take what comes
        got = aws_cli(node, tmp_path, "sqs", "receive-message", "--queue-url", url,
                      "--max-number-of-messages", "10", "--message-attribute-names", "All",
                      "--attribute-names", "All", "--visibility-timeout", "60")  # fmt: skip
        received.update({m["Body"]: m for m in got.get("Messages", [])})
        if len(received) == 3:
            break
    assert sorted(received) == ["héllo cli", "one", "two"]
    first = received["héllo cli"]
    assert first["MessageId"] == sent["MessageId"]
    assert first["MD5OfBody"] == sent["MD5OfMessageBody"]
    assert first["MessageAttributes"] == attributes
    assert first["MD5OfMessageAttributes"] == sent["MD5OfMessageAttributes"]
    for body, message in received.items():
        assert message["MD5OfBody"] == hashlib.md5(body.encode()).hexdigest()
        if "MessageAttributes" in message:
            assert message["MD5OfMessageAttributes"] == sqs_attributes_md5(
                message["MessageAttributes"]
            )
    assert first["Attributes"]["ApproximateReceiveCount"] == "1"
    assert received["two"]["MessageAttributes"] == {
        "kind": {"DataType": "String", "StringValue": "batch"}
    }
    assert "MessageAttributes" not in received["one"]
    aws_cli(node, tmp_path, "sqs", "delete-message", "--queue-url", url,
            "--receipt-handle", first["ReceiptHandle"])  # fmt: skip
    stats = aws_cli(node, tmp_path, "sqs", "get-queue-attributes", "--queue-url", url,
                    "--attribute-names", "All")  # fmt: skip
    assert stats["Attributes"]["ApproximateNumberOfMessages"] == "0"
    assert stats["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "2"

    aws_cli(node, tmp_path, "sqs", "purge-queue", "--queue-url", url)
    stats = aws_cli(node, tmp_path, "sqs", "get-queue-attributes", "--queue-url", url,
                    "--attribute-names", "All")  # fmt: skip
    assert stats["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "0"
    assert aws_cli(node, tmp_path, "sqs", "list-queues", "--queue-name-prefix", name) == {
        "QueueUrls": [url]
    }
    aws_cli(node, tmp_path, "sqs", "delete-queue", "--queue-url", url)
    assert aws_cli(node, tmp_path, "sqs", "list-queues", "--queue-name-prefix", name) == {}

    missing = aws_cli(node, tmp_path, "sqs", "get-queue-url", "--queue-name", name, check=False)
    assert missing.returncode != 0
    assert "QueueDoesNotExist" in missing.stderr, missing.stderr
    missing = aws_cli(node, tmp_path, "sqs", "send-message", "--queue-url", url,
                      "--message-body", "x", check=False)  # fmt: skip
    assert missing.returncode != 0
    assert "QueueDoesNotExist" in missing.stderr, missing.stderr
