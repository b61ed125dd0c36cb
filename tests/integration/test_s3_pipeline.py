"""The Lambda glue pipeline, unchanged: an S3 put notification (configured with boto3's
put_bucket_notification_configuration) wakes a handler that reads the object with boto3,
writes a transformed copy to another bucket and sends a message to a queue; a second
function consumes the queue through an event source mapping. The same handler without
the bucket grant gets AccessDenied. Queue targets and bad configurations too."""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

boto3 = pytest.importorskip("boto3")
from botocore.config import Config  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

from tests.conftest import Server  # noqa: E402

pytestmark = pytest.mark.slow

# An ordinary Lambda S3-trigger handler, as the AWS tutorials write it.
TRANSFORM = """
import json
import urllib.parse

import boto3

s3 = boto3.client("s3")
sqs = boto3.client("sqs")


def handler(event, context):
    done = []
    for record in event["Records"]:
        bucket = record["s3"]["bucket"]["name"]
        key = urllib.parse.unquote_plus(record["s3"]["object"]["key"])
        text = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        out_key = key.rsplit(".", 1)[0] + ".upper.txt"
        s3.put_object(Bucket="processed", Key=out_key, Body=text.upper().encode(),
                      ContentType="text/plain")
        url = sqs.get_queue_url(QueueName="processed-events")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"bucket": "processed", "key": out_key}))
        done.append(out_key)
    return {"written": done}
"""

CONSUMER = """
def handler(event, context):
    for record in event["Records"]:
        print("CONSUMED " + record["body"])
    return {}
"""


def write(root: Path, name: str, source: str, capabilities: str) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "app.py").write_text(textwrap.dedent(source))
    (folder / "firebox.toml").write_text(
        f'name = "{name}"\nruntime = "python3.14"\nhandler = "app.handler"\ntimeout = 20\n'
        f"[capabilities]\n{capabilities}"
    )
    return folder


def admin(server: Server, service: str) -> Any:
    creds = server.credentials
    return boto3.client(
        service, endpoint_url=server.url, region_name="us-east-1",
        aws_access_key_id=creds.access_key_id, aws_secret_access_key=creds.secret_access_key,
        config=Config(retries={"total_max_attempts": 1}, s3={"addressing_style": "path"}),
    )  # fmt: skip


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


def log_lines(server: Server, function: str) -> list[str]:
    with server.client() as client:
        return [line for e in client.logs(function, limit=1000) for line in e.text.splitlines()]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(tmp_path_factory.mktemp("pipeline") / "data", {"FIREBOX_PREPARE_PYTHON": "1"})
    server.data_dir.mkdir(parents=True)
    server.start()
    src = tmp_path_factory.mktemp("src")
    granted = (
        'buckets = { incoming = "read", processed = "write" }\nqueues = ["processed-events"]\n'
    )
    with server.client() as client:
        client.deploy_path(write(src, "transform", TRANSFORM, granted))
        client.deploy_path(
            write(src, "transform-ungranted", TRANSFORM, 'queues = ["processed-events"]\n')
        )
        client.deploy_path(write(src, "consumer", CONSUMER, ""))
    yield server
    server.stop()


def test_put_notification_transform_queue_and_mapped_consumer(node: Server) -> None:
    s3, sqs, lam = admin(node, "s3"), admin(node, "sqs"), admin(node, "lambda")
    for bucket in ("incoming", "processed"):
        s3.create_bucket(Bucket=bucket)
    queue_url = sqs.create_queue(QueueName="processed-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    lam.create_event_source_mapping(FunctionName="consumer", EventSourceArn=queue_arn, BatchSize=1)
    function_arn = lam.get_function(FunctionName="transform")["Configuration"]["FunctionArn"]
    wanted = {"LambdaFunctionConfigurations": [{
        "Id": "uppercase-texts", "LambdaFunctionArn": function_arn, "Events": ["s3:ObjectCreated:*"],
        "Filter": {"Key": {"FilterRules": [{"Name": "suffix", "Value": ".txt"}]}},
    }]}  # fmt: skip
    s3.put_bucket_notification_configuration(Bucket="incoming", NotificationConfiguration=wanted)
    stored = s3.get_bucket_notification_configuration(Bucket="incoming")
    stored.pop("ResponseMetadata")
    assert stored == wanted

    s3.put_object(Bucket="incoming", Key="notes/hello world.txt", Body=b"hello pipeline")
    s3.put_object(Bucket="incoming", Key="notes/skip.bin", Body=b"not a text")

    def output() -> bytes | None:
        try:
            got = s3.get_object(Bucket="processed", Key="notes/hello world.upper.txt")
        except ClientError:
            return None
        return bytes(got["Body"].read())

    assert wait_for("the transformed object", output) == b"HELLO PIPELINE"
    consumed = wait_for(
        "the consumed message",
        lambda: [ln for ln in log_lines(node, "consumer") if ln.startswith("CONSUMED ")],
    )
    assert [json.loads(line.split(" ", 1)[1]) for line in consumed] == [
        {"bucket": "processed", "key": "notes/hello world.upper.txt"}
    ]
    listed = s3.list_objects_v2(Bucket="processed")["Contents"]
    assert [o["Key"] for o in listed] == ["notes/hello world.upper.txt"]


def test_the_same_handler_without_the_grant_gets_access_denied(node: Server) -> None:
    s3, lam = admin(node, "s3"), admin(node, "lambda")
    s3.create_bucket(Bucket="incoming-ungranted")
    function_arn = lam.get_function(FunctionName="transform-ungranted")["Configuration"][
        "FunctionArn"
    ]
    s3.put_bucket_notification_configuration(
        Bucket="incoming-ungranted",
        NotificationConfiguration={"LambdaFunctionConfigurations": [
            {"LambdaFunctionArn": function_arn, "Events": ["s3:ObjectCreated:Put"]}]},
    )  # fmt: skip
    s3.put_object(Bucket="incoming-ungranted", Key="secret.txt", Body=b"keep out")
    denied = wait_for(
        "the denied call in the log",
        lambda: [ln for ln in log_lines(node, "transform-ungranted") if "AccessDenied" in ln],
    )
    assert any("GetObject" in ln or "incoming-ungranted" in ln for ln in denied), denied
    with pytest.raises(ClientError):
        s3.head_object(Bucket="processed", Key="secret.upper.txt")


def test_queue_targets_get_s3_events_of_removals(node: Server) -> None:
    s3, sqs = admin(node, "s3"), admin(node, "sqs")
    s3.create_bucket(Bucket="audited")
    url = sqs.create_queue(QueueName="audit-log")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    s3.put_bucket_notification_configuration(
        Bucket="audited",
        NotificationConfiguration={"QueueConfigurations": [
            {"Id": "removals", "QueueArn": arn, "Events": ["s3:ObjectRemoved:*"]}]},
    )  # fmt: skip
    s3.put_object(Bucket="audited", Key="a/b c.txt", Body=b"x")
    s3.delete_object(Bucket="audited", Key="a/b c.txt")
    messages = wait_for(
        "the removal message",
        lambda: sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages"),
    )
    (record,) = json.loads(messages[0]["Body"])["Records"]
    assert record["eventName"] == "ObjectRemoved:Delete"
    assert record["s3"]["object"]["key"] == "a/b+c.txt"
    assert record["s3"]["configurationId"] == "removals"
    assert "Messages" not in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)  # no put event


def test_bad_notification_configurations_are_refused_in_s3s_shape(node: Server) -> None:
    s3 = admin(node, "s3")
    s3.create_bucket(Bucket="strict")
    cases: list[dict[str, Any]] = [
        {"LambdaFunctionConfigurations": [{
            "LambdaFunctionArn": "arn:aws:lambda:us-east-1:000000000000:function:nope",
            "Events": ["s3:ObjectCreated:*"]}]},
        {"LambdaFunctionConfigurations": [{
            "LambdaFunctionArn": "arn:aws:lambda:eu-west-9:999999999999:function:transform",
            "Events": ["s3:ObjectCreated:*"]}]},
        {"TopicConfigurations": [{
            "TopicArn": "arn:aws:sns:us-east-1:000000000000:t", "Events": ["s3:ObjectCreated:*"]}]},
        {"QueueConfigurations": [{
            "QueueArn": "arn:aws:sqs:us-east-1:000000000000:missing", "Events": ["s3:ObjectCreated:*"]}]},
    ]  # fmt: skip
    for config in cases:
        with pytest.raises(ClientError) as exc:
            s3.put_bucket_notification_configuration(
                Bucket="strict", NotificationConfiguration=config
            )
        assert exc.value.response["Error"]["Code"] == "InvalidArgument", config
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_notification_configuration(Bucket="no-such-bucket")
    assert exc.value.response["Error"]["Code"] == "NoSuchBucket"
    empty = s3.get_bucket_notification_configuration(Bucket="strict")
    assert "LambdaFunctionConfigurations" not in empty
