"""Lambda operations beyond functions and invoke, with real boto3 against a real node:
configuration that round-trips, DeleteFunction of one version, event-invoke configs,
event source mappings delivering a batch, the code download, permissions."""

from __future__ import annotations

import base64
import io
import json
import time
import zipfile
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Server, guest_wasm

boto3 = pytest.importorskip("boto3")
from botocore.config import Config  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

REGION, ACCOUNT = "us-east-1", "000000000000"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/any"
BATCH_HANDLER = """
import json

def lambda_handler(event, context):
    bodies = [r["body"] for r in event.get("Records", [])]
    print("BATCH " + json.dumps(sorted(bodies)))
    return {"batchItemFailures": []}
"""


def module_zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("echo.wasm", guest_wasm("echo"))
    return out.getvalue()


def python_zip(source: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("lambda_function.py", source)
    return out.getvalue()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(tmp_path_factory.mktemp("ops") / "data", env={"FIREBOX_PREPARE_PYTHON": "1"})
    server.data_dir.mkdir(parents=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def lam(node: Server) -> Any:
    creds = node.credentials
    return boto3.client(
        "lambda", endpoint_url=node.url, region_name=REGION,
        aws_access_key_id=creds.access_key_id, aws_secret_access_key=creds.secret_access_key,
        config=Config(retries={"total_max_attempts": 1}, read_timeout=120),
    )  # fmt: skip


def create_module(lam: Any, name: str, **extra: Any) -> dict[str, Any]:
    reply: dict[str, Any] = lam.create_function(
        FunctionName=name, Runtime="provided.al2023", Role=ROLE, Handler="handle",
        Code={"ZipFile": module_zip()}, **extra,
    )  # fmt: skip
    return reply


def test_configuration_round_trips_as_sent(lam: Any) -> None:
    sent = {
        "MemorySize": 3008,
        "TracingConfig": {"Mode": "Active"},
        "EphemeralStorage": {"Size": 1024},
        "LoggingConfig": {"LogFormat": "JSON", "ApplicationLogLevel": "DEBUG"},
    }
    created = create_module(lam, "honest", **sent)
    got = lam.get_function_configuration(FunctionName="honest")
    for reply in (created, got):
        assert reply["MemorySize"] == 3008
        assert reply["TracingConfig"] == {"Mode": "Active"}
        assert reply["EphemeralStorage"] == {"Size": 1024}
        assert reply["LoggingConfig"]["LogFormat"] == "JSON"
        assert reply["LoggingConfig"]["ApplicationLogLevel"] == "DEBUG"
    updated = lam.update_function_configuration(
        FunctionName="honest", MemorySize=10240, TracingConfig={"Mode": "PassThrough"}
    )
    assert updated["MemorySize"] == 10240 and updated["TracingConfig"] == {"Mode": "PassThrough"}
    assert updated["EphemeralStorage"] == {"Size": 1024}  # untouched fields stay
    for bad in ({"MemorySize": 10241}, {"EphemeralStorage": {"Size": 10241}},
                {"LoggingConfig": {"LogFormat": "XML"}}):  # fmt: skip
        with pytest.raises(lam.exceptions.InvalidParameterValueException):
            lam.update_function_configuration(FunctionName="honest", **bad)
    assert lam.get_function(FunctionName="honest")["Configuration"]["CodeSize"] > 0


def test_code_size_of_a_natively_deployed_function(lam: Any, node: Server) -> None:
    wasm = guest_wasm("echo")
    with node.client() as client:
        client.deploy({"name": "native-one"}, wasm)
    assert lam.get_function_configuration(FunctionName="native-one")["CodeSize"] == len(wasm)


def test_delete_function_with_a_qualifier_deletes_one_version(lam: Any) -> None:
    create_module(lam, "versions", Publish=True)
    lam.update_function_configuration(FunctionName="versions", Description="two")
    assert lam.publish_version(FunctionName="versions")["Version"] == "2"
    lam.create_alias(FunctionName="versions", Name="live", FunctionVersion="2")
    with pytest.raises(lam.exceptions.ResourceConflictException):
        lam.delete_function(FunctionName="versions", Qualifier="2")  # an alias names it
    lam.delete_function(FunctionName="versions", Qualifier="1")
    listed = [
        v["Version"] for v in lam.list_versions_by_function(FunctionName="versions")["Versions"]
    ]
    assert listed == ["$LATEST", "2"]
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function(FunctionName="versions", Qualifier="1")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.delete_function(FunctionName="versions", Qualifier="1")
    assert lam.invoke(FunctionName="versions:live", Payload=b"{}")["ExecutedVersion"] == "2"


def test_provisioned_config_last_modified_is_real(lam: Any) -> None:
    create_module(lam, "warm", Publish=True)
    before = time.time()
    lam.put_provisioned_concurrency_config(
        FunctionName="warm", Qualifier="1", ProvisionedConcurrentExecutions=1
    )
    got = lam.get_provisioned_concurrency_config(FunctionName="warm", Qualifier="1")
    # LastModified is a string in Lambda's shape: 2024-05-01T12:00:00.000+0000
    stamp = time.mktime(time.strptime(got["LastModified"][:19], "%Y-%m-%dT%H:%M:%S"))
    assert abs(stamp - time.timezone - before) < 60, got["LastModified"]


def test_event_invoke_config_through_the_lambda_api(lam: Any, node: Server) -> None:
    create_module(lam, "async-one")
    create_module(lam, "async-sink")
    with node.http() as http:
        assert http.post("/v1/queues", json={"name": "failures"}).status_code == 201
    sink = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:async-sink"
    queue = f"arn:aws:sqs:{REGION}:{ACCOUNT}:failures"
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function_event_invoke_config(FunctionName="async-one")
    put = lam.put_function_event_invoke_config(
        FunctionName="async-one", MaximumRetryAttempts=1, MaximumEventAgeInSeconds=600,
        DestinationConfig={"OnSuccess": {"Destination": sink}, "OnFailure": {"Destination": queue}},
    )  # fmt: skip
    assert put["MaximumRetryAttempts"] == 1 and put["MaximumEventAgeInSeconds"] == 600
    assert put["DestinationConfig"]["OnSuccess"]["Destination"] == sink
    assert put["DestinationConfig"]["OnFailure"]["Destination"] == queue
    assert put["FunctionArn"].endswith(":function:async-one:$LATEST")
    assert abs(put["LastModified"].timestamp() - time.time()) < 60
    updated = lam.update_function_event_invoke_config(
        FunctionName="async-one", MaximumRetryAttempts=0
    )
    assert updated["MaximumRetryAttempts"] == 0 and updated["MaximumEventAgeInSeconds"] == 600
    assert updated["DestinationConfig"]["OnSuccess"]["Destination"] == sink
    # the native view is the same config
    with node.http() as http:
        native = http.get("/v1/functions/async-one/event-invoke-config").json()
    assert native["maximum_retry_attempts"] == 0 and native["on_success"]["name"] == "async-sink"
    listed = lam.list_function_event_invoke_configs(FunctionName="async-one")
    assert [c["MaximumRetryAttempts"] for c in listed["FunctionEventInvokeConfigs"]] == [0]
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.put_function_event_invoke_config(
            FunctionName="async-one",
            DestinationConfig={"OnFailure": {"Destination": f"arn:aws:sns:{REGION}:{ACCOUNT}:t"}},
        )
    lam.delete_function_event_invoke_config(FunctionName="async-one")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function_event_invoke_config(FunctionName="async-one")


def test_an_sqs_mapping_created_through_the_lambda_api_delivers_a_batch(
    lam: Any, node: Server
) -> None:
    lam.create_function(
        FunctionName="batcher", Runtime="python3.12", Role=ROLE,
        Handler="lambda_function.lambda_handler", Code={"ZipFile": python_zip(BATCH_HANDLER)},
    )  # fmt: skip
    with node.http() as http:
        assert http.post("/v1/queues", json={"name": "jobs"}).status_code == 201
        sent = http.post(
            "/v1/queues/jobs/messages", json={"entries": [{"body": f"job-{i}"} for i in range(3)]}
        )
        assert sent.status_code == 201, sent.text
    arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:jobs"
    created = lam.create_event_source_mapping(
        EventSourceArn=arn, FunctionName="batcher", BatchSize=10,
        MaximumBatchingWindowInSeconds=1, FunctionResponseTypes=["ReportBatchItemFailures"],
        ScalingConfig={"MaximumConcurrency": 2},
    )  # fmt: skip
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert created["EventSourceArn"] == arn and created["BatchSize"] == 10
    assert created["FunctionArn"] == f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:batcher"
    assert created["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    mapping = created["UUID"]
    deadline = time.monotonic() + 60
    seen: list[str] = []
    with node.client() as client:
        while time.monotonic() < deadline and sorted(seen) != ["job-0", "job-1", "job-2"]:
            for entry in client.logs("batcher"):
                for line in entry.text.splitlines():
                    if line.startswith("BATCH "):
                        seen += json.loads(line[len("BATCH ") :])
            seen = sorted(set(seen))
            time.sleep(0.2)
    assert seen == ["job-0", "job-1", "job-2"]
    assert lam.get_event_source_mapping(UUID=mapping)["State"] == "Enabled"
    listed = lam.list_event_source_mappings(FunctionName="batcher")["EventSourceMappings"]
    assert [m["UUID"] for m in listed] == [mapping]
    assert (
        lam.list_event_source_mappings(EventSourceArn=arn)["EventSourceMappings"][0]["UUID"]
        == mapping
    )
    updated = lam.update_event_source_mapping(UUID=mapping, Enabled=False, BatchSize=5)
    assert (updated["State"], updated["BatchSize"]) == ("Disabled", 5)
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.create_event_source_mapping(
            EventSourceArn=arn, FunctionName="batcher",
            FilterCriteria={"Filters": [{"Pattern": "{}"}]},
        )  # fmt: skip
    assert lam.delete_event_source_mapping(UUID=mapping)["State"] == "Deleting"
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_event_source_mapping(UUID=mapping)


def test_errors_name_what_is_missing(lam: Any) -> None:
    with pytest.raises(ClientError) as info:
        lam.get_event_source_mapping(UUID="00000000-0000-0000-0000-000000000000")
    assert info.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.put_function_event_invoke_config(FunctionName="no-such-function")


def test_code_location_downloads_the_package_as_uploaded(lam: Any, node: Server) -> None:
    package = python_zip(BATCH_HANDLER)
    lam.create_function(
        FunctionName="download", Runtime="python3.12", Role=ROLE,
        Handler="lambda_function.lambda_handler", Code={"ZipFile": package}, Publish=True,
    )  # fmt: skip
    got = lam.get_function(FunctionName="download")
    url = got["Code"]["Location"]
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=600" in url
    response = httpx.get(url)  # no credentials: the URL is the credential
    assert response.status_code == 200, response.text
    assert response.content == package
    assert got["Configuration"]["CodeSize"] == len(package)
    # a new $LATEST package; version 1 keeps its own
    lam.update_function_code(FunctionName="download", ZipFile=python_zip(BATCH_HANDLER + "\n#2\n"))
    latest = httpx.get(lam.get_function(FunctionName="download")["Code"]["Location"]).content
    assert latest != package
    first = lam.get_function(FunctionName="download", Qualifier="1")["Code"]["Location"]
    assert httpx.get(first).content == package
    # the signature covers the version: another one is refused in Lambda's shape
    tampered = httpx.get(url.replace("Qualifier=%24LATEST", "Qualifier=1"))
    assert tampered.status_code == 403
    assert tampered.headers["x-amzn-ErrorType"] == "InvalidSignatureException"
    # the module's wasm deployed raw through the native API: Location returns that code
    wasm = guest_wasm("echo")
    with node.client() as client:
        client.deploy({"name": "native-code"}, wasm)
    assert (
        httpx.get(lam.get_function(FunctionName="native-code")["Code"]["Location"]).content == wasm
    )


def test_invoke_with_response_stream_and_invoke_async(lam: Any, node: Server) -> None:
    create_module(lam, "streamed")
    out = lam.invoke_with_response_stream(
        FunctionName="streamed", Payload=b'{"hello": "stream"}', LogType="Tail"
    )
    assert out["StatusCode"] == 200 and out["ExecutedVersion"] == "$LATEST"
    events = list(out["EventStream"])
    chunks = b"".join(e["PayloadChunk"]["Payload"] for e in events if "PayloadChunk" in e)
    assert json.loads(chunks) == {"hello": "stream"}
    complete = [e["InvokeComplete"] for e in events if "InvokeComplete" in e]
    assert len(complete) == 1 and "ErrorCode" not in complete[0]
    assert "REPORT RequestId:" in base64.b64decode(complete[0]["LogResult"]).decode()
    lam.create_function(
        FunctionName="raises", Runtime="python3.12", Role=ROLE,
        Handler="lambda_function.lambda_handler",
        Code={"ZipFile": python_zip("def lambda_handler(event, context):\n    raise KeyError('nope')\n")},
    )  # fmt: skip
    failed = list(
        lam.invoke_with_response_stream(FunctionName="raises", Payload=b"{}")["EventStream"]
    )
    done = next(e["InvokeComplete"] for e in failed if "InvokeComplete" in e)
    assert done["ErrorCode"] == "KeyError" and "nope" in done["ErrorDetails"]
    # InvokeAsync: 202, and the event runs from the async queue
    accepted = lam.invoke_async(FunctionName="streamed", InvokeArgs=b'{"async": 1}')
    assert accepted["Status"] == 202
    deadline = time.monotonic() + 30
    with node.client() as client:
        while time.monotonic() < deadline and not any(
            e.request_id == accepted["ResponseMetadata"]["RequestId"]
            for e in client.logs("streamed")
        ):
            time.sleep(0.1)
        assert any(
            e.request_id == accepted["ResponseMetadata"]["RequestId"]
            for e in client.logs("streamed")
        )


def test_fixed_settings_answer_with_firebox_values(lam: Any) -> None:
    create_module(lam, "fixed")
    got = lam.get_runtime_management_config(FunctionName="fixed")
    assert got["UpdateRuntimeOn"] == "Auto"
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.put_runtime_management_config(FunctionName="fixed", UpdateRuntimeOn="Manual",
                                          RuntimeVersionArn="arn:aws:lambda:us-east-1::runtime:x")  # fmt: skip
    assert lam.get_function_recursion_config(FunctionName="fixed")["RecursiveLoop"] == "Terminate"
    lam.put_function_recursion_config(FunctionName="fixed", RecursiveLoop="Terminate")
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.put_function_recursion_config(FunctionName="fixed", RecursiveLoop="Allow")
    assert lam.get_function_code_signing_config(FunctionName="fixed")["CodeSigningConfigArn"] == ""
    assert lam.list_code_signing_configs()["CodeSigningConfigs"] == []
    with pytest.raises(ClientError) as info:
        lam.create_code_signing_config(AllowedPublishers={"SigningProfileVersionArns": ["arn:x"]})
    error = info.value.response["Error"]
    assert error["Code"] == "UnsupportedOperationException"
    assert "CreateCodeSigningConfig" in error["Message"] and "sign" in error["Message"]
