"""The Lambda-compatible API driven by real boto3 and the real AWS CLI against a real node."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

boto3 = pytest.importorskip("boto3")
botocore = pytest.importorskip("botocore")
from botocore.config import Config  # noqa: E402

from tests.conftest import GUESTS, Server  # noqa: E402

# The AWS CLI installed by the [dev] extra sits next to the interpreter running the tests.
AWS = Path(sys.executable).with_name("aws")
if not AWS.exists():
    AWS = Path(shutil.which("aws") or AWS)
REGION = "us-east-1"
ACCOUNT = "000000000000"

HANDLER_V1 = """
import os, time

def lambda_handler(event, context):
    print("hello from v1", event.get("name"))
    if event.get("fail"):
        raise ValueError("asked to fail: " + str(event["fail"]))
    if event.get("sleep"):
        time.sleep(event["sleep"])
    return {"version": 1, "name": event.get("name"), "greeting": os.environ.get("GREETING", "hi"),
            "request_id": context.aws_request_id}
"""
HANDLER_V2 = HANDLER_V1.replace('"version": 1', '"version": 2').replace("from v1", "from v2")


def lambda_zip(source: str, module: str = "lambda_function") -> bytes:
    """Return a Lambda deployment package (zip) holding one Python module."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{module}.py", source)
    return out.getvalue()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A node that prepares the Python interpreter (the functions here are Python)."""
    server = Server(tmp_path_factory.mktemp("lambda") / "data", env={"FIREBOX_PREPARE_PYTHON": "1"})
    server.data_dir.mkdir(parents=True)
    server.start()
    yield server
    server.stop()


def lambda_client(server: Server, **config: Any) -> Any:
    creds = server.credentials
    return boto3.client(
        "lambda",
        endpoint_url=server.url,
        region_name=REGION,
        aws_access_key_id=creds.access_key_id,
        aws_secret_access_key=creds.secret_access_key,
        config=Config(retries={"total_max_attempts": 1}, read_timeout=120, **config),
    )


@pytest.fixture(scope="module")
def client(node: Server) -> Any:
    return lambda_client(node)


def aws(server: Server, tmp_path: Path, *args: str, check: bool = True) -> Any:
    """Run the real AWS CLI against the node; returns its parsed JSON output.

    The CLI from PyPI is v1, which sends `--payload` text as is (v2 needs
    `--cli-binary-format raw-in-base64-out` for that, see docs/lambda.md).
    """
    creds = server.credentials
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "AWS_ACCESS_KEY_ID": creds.access_key_id,
        "AWS_SECRET_ACCESS_KEY": creds.secret_access_key,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_PAGER": "",
    }
    done = subprocess.run(
        [str(AWS), "--endpoint-url", server.url, "--output", "json", "lambda", *args],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if check:
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else None
    return done


def test_full_lifecycle_with_boto3(client: Any) -> None:
    name = "lifecycle"
    created = client.create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role="arn:aws:iam::000000000000:role/lambda-role",
        Handler="lambda_function.lambda_handler",
        Code={"ZipFile": lambda_zip(HANDLER_V1)},
        MemorySize=128,
        Timeout=5,
        Environment={"Variables": {"GREETING": "hello"}},
        Tags={"team": "fire"},
    )
    assert created["FunctionArn"] == f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
    assert created["Runtime"] == "python3.12"
    assert created["Role"] == "arn:aws:iam::000000000000:role/lambda-role"
    assert created["Handler"] == "lambda_function.lambda_handler"
    assert (created["MemorySize"], created["Timeout"], created["Version"]) == (128, 5, "$LATEST")
    assert created["Environment"] == {"Variables": {"GREETING": "hello"}}
    assert created["State"] == "Active"

    # RequestResponse with the log tail
    out = client.invoke(FunctionName=name, Payload=json.dumps({"name": "ada"}), LogType="Tail")
    assert out["StatusCode"] == 200
    assert "FunctionError" not in out
    assert out["ExecutedVersion"] == "$LATEST"
    body = json.loads(out["Payload"].read())
    assert body["version"] == 1 and body["name"] == "ada" and body["greeting"] == "hello"
    tail = base64.b64decode(out["LogResult"]).decode()
    assert "hello from v1 ada" in tail
    assert "START RequestId:" in tail and "REPORT RequestId:" in tail

    # Event -> 202, DryRun -> 204
    assert client.invoke(FunctionName=name, InvocationType="Event",
                         Payload=b'{"name": "later"}')["StatusCode"] == 202  # fmt: skip
    assert client.invoke(FunctionName=name, InvocationType="DryRun")["StatusCode"] == 204

    # A function error in Lambda's shape
    failed = client.invoke(FunctionName=name, Payload=json.dumps({"fail": "boom"}))
    assert failed["StatusCode"] == 200
    assert failed["FunctionError"] == "Unhandled"
    error = json.loads(failed["Payload"].read())
    assert error["errorType"] == "ValueError"
    assert error["errorMessage"] == "asked to fail: boom"
    assert isinstance(error.get("stackTrace"), list)

    # Malformed JSON payload
    with pytest.raises(client.exceptions.InvalidRequestContentException):
        client.invoke(FunctionName=name, Payload=b"{not json")

    # Update configuration, then code
    updated = client.update_function_configuration(
        FunctionName=name, MemorySize=256, Timeout=10,
        Environment={"Variables": {"GREETING": "bonjour"}}, Description="second",
    )  # fmt: skip
    assert (updated["MemorySize"], updated["Timeout"], updated["Description"]) == (
        256,
        10,
        "second",
    )
    got = client.get_function_configuration(FunctionName=name)
    assert got["Environment"]["Variables"]["GREETING"] == "bonjour"
    assert got["RevisionId"] == updated["RevisionId"]

    v1 = client.publish_version(FunctionName=name, Description="first")
    assert v1["Version"] == "1"
    assert v1["FunctionArn"].endswith(f":function:{name}:1")
    code = client.update_function_code(FunctionName=name, ZipFile=lambda_zip(HANDLER_V2))
    assert code["CodeSha256"] != v1["CodeSha256"]
    v2 = client.publish_version(FunctionName=name)
    assert v2["Version"] == "2"
    out = client.invoke(FunctionName=name, Qualifier="1", Payload=b"{}")
    assert json.loads(out["Payload"].read())["version"] == 1
    assert out["ExecutedVersion"] == "1"
    out = client.invoke(FunctionName=f"{name}:2", Payload=b"{}")
    assert json.loads(out["Payload"].read())["version"] == 2
    versions = client.list_versions_by_function(FunctionName=name)["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST", "1", "2"]

    # An alias routing 50/50 between the two versions: both are observed
    alias = client.create_alias(
        FunctionName=name, Name="live", FunctionVersion="1",
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.5}},
    )  # fmt: skip
    assert alias["AliasArn"].endswith(f":function:{name}:live")
    seen: Counter[int] = Counter()
    for _ in range(40):
        out = client.invoke(FunctionName=name, Qualifier="live", Payload=b"{}")
        version = json.loads(out["Payload"].read())["version"]
        assert out["ExecutedVersion"] == str(version)
        seen[version] += 1
    assert seen[1] > 0 and seen[2] > 0, seen
    got_alias = client.get_alias(FunctionName=name, Name="live")
    assert got_alias["RoutingConfig"]["AdditionalVersionWeights"] == {"2": 0.5}
    moved = client.update_alias(FunctionName=name, Name="live", FunctionVersion="2",
                                RoutingConfig={"AdditionalVersionWeights": {}})  # fmt: skip
    assert moved["FunctionVersion"] == "2" and "RoutingConfig" not in moved
    assert [a["Name"] for a in client.list_aliases(FunctionName=name)["Aliases"]] == ["live"]
    with pytest.raises(client.exceptions.ResourceConflictException):
        client.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    client.delete_alias(FunctionName=name, Name="live")
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_alias(FunctionName=name, Name="live")

    # Tags, by ARN
    arn = created["FunctionArn"]
    client.tag_resource(Resource=arn, Tags={"stage": "test"})
    assert client.list_tags(Resource=arn)["Tags"] == {"team": "fire", "stage": "test"}
    client.untag_resource(Resource=arn, TagKeys=["team"])
    assert client.list_tags(Resource=arn)["Tags"] == {"stage": "test"}
    assert client.get_function(FunctionName=arn)["Tags"] == {"stage": "test"}

    # Provisioned concurrency on a version
    put = client.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier="2", ProvisionedConcurrentExecutions=2
    )
    assert put["RequestedProvisionedConcurrentExecutions"] == 2
    got_pc = client.get_provisioned_concurrency_config(FunctionName=name, Qualifier="2")
    assert got_pc["RequestedProvisionedConcurrentExecutions"] == 2
    assert got_pc["Status"] in ("READY", "IN_PROGRESS")
    with pytest.raises(client.exceptions.ProvisionedConcurrencyConfigNotFoundException):
        client.get_provisioned_concurrency_config(FunctionName=name, Qualifier="1")
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        client.put_provisioned_concurrency_config(
            FunctionName=name, Qualifier="$LATEST", ProvisionedConcurrentExecutions=1
        )

    # Delete, then everything about it is gone
    client.delete_function(FunctionName=name)
    with pytest.raises(client.exceptions.ResourceNotFoundException) as info:
        client.get_function(FunctionName=name)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert name in info.value.response["Error"]["Message"]
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.invoke(FunctionName=name, Payload=b"{}")


def test_reserved_concurrency_throttles_a_burst(client: Any) -> None:
    name = "throttled"
    client.create_function(FunctionName=name, Runtime="python3.13", Role="r",
                           Handler="lambda_function.lambda_handler",
                           Code={"ZipFile": lambda_zip(HANDLER_V1)}, Timeout=10)  # fmt: skip
    assert "ReservedConcurrentExecutions" not in client.get_function_concurrency(FunctionName=name)
    assert client.put_function_concurrency(
        FunctionName=name, ReservedConcurrentExecutions=1
    )["ReservedConcurrentExecutions"] == 1  # fmt: skip
    assert client.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 1
    assert client.get_function(FunctionName=name)["Concurrency"] == {
        "ReservedConcurrentExecutions": 1
    }

    def call(_: int) -> str:
        try:
            client.invoke(FunctionName=name, Payload=json.dumps({"sleep": 1.0}))
        except client.exceptions.TooManyRequestsException as exc:
            assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 429
            assert exc.response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
            return "throttled"
        return "ok"

    with ThreadPoolExecutor(8) as pool:
        outcomes = Counter(pool.map(call, range(8)))
    assert outcomes["ok"] >= 1 and outcomes["throttled"] >= 1, outcomes

    client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    with pytest.raises(client.exceptions.TooManyRequestsException):
        client.invoke(FunctionName=name, Payload=b"{}")
    client.delete_function_concurrency(FunctionName=name)
    assert "ReservedConcurrentExecutions" not in client.get_function_concurrency(FunctionName=name)
    assert client.invoke(FunctionName=name, Payload=b"{}")["StatusCode"] == 200
    client.delete_function(FunctionName=name)


def test_list_functions_paginates(client: Any) -> None:
    wasm = (GUESTS / "echo.wat").read_text()
    import wasmtime

    module = wasmtime.wat2wasm(wasm)
    names = [f"page-{i:02d}" for i in range(7)]
    for name in names:
        client.create_function(FunctionName=name, Runtime="provided.al2023", Role="r",
                               Handler="handle", Code={"ZipFile": module})  # fmt: skip
    pages = list(client.get_paginator("list_functions").paginate(PaginationConfig={"PageSize": 3}))
    assert len(pages) >= 3
    listed = [f["FunctionName"] for p in pages for f in p["Functions"]]
    assert [n for n in listed if n.startswith("page-")] == names
    assert len(listed) == len(set(listed))
    first = client.list_functions(MaxItems=2)
    assert len(first["Functions"]) == 2 and "NextMarker" in first
    out = client.invoke(FunctionName="page-00", Payload=b'{"x": 1}')
    assert json.loads(out["Payload"].read()) == {"x": 1}
    settings = client.get_account_settings()
    assert settings["AccountUsage"]["FunctionCount"] >= 7
    for name in names:
        client.delete_function(FunctionName=name)

    # A zip holding one .wasm module is a module function too; two .wasm files are refused.
    package = io.BytesIO()
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("echo.wasm", module)
    client.create_function(FunctionName="zipped-wasm", Runtime="provided.al2023", Role="r",
                           Handler="handle", Code={"ZipFile": package.getvalue()})  # fmt: skip
    out = client.invoke(FunctionName="zipped-wasm", Payload=b'{"y": 2}')
    assert json.loads(out["Payload"].read()) == {"y": 2}
    client.delete_function(FunctionName="zipped-wasm")
    with zipfile.ZipFile(package, "a") as archive:
        archive.writestr("other.wasm", module)
    with pytest.raises(client.exceptions.InvalidParameterValueException, match="exactly one"):
        client.create_function(FunctionName="two-wasm", Runtime="provided", Role="r",
                               Handler="handle", Code={"ZipFile": package.getvalue()})  # fmt: skip


def test_errors_in_lambda_shapes(client: Any, node: Server) -> None:
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_function(FunctionName="nope")
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_function(FunctionName=f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:nope")
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        client.create_function(FunctionName="bad-runtime", Runtime="nodejs20.x", Role="r",
                               Handler="index.handler", Code={"ZipFile": b"PK"})  # fmt: skip
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        client.create_function(FunctionName="no-handler", Runtime="python3.12", Role="r",
                               Handler="missing.handler", Code={"ZipFile": lambda_zip(HANDLER_V1)})  # fmt: skip
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        client.create_function(FunctionName="too-big", Runtime="python3.12", Role="r",
                               Handler="lambda_function.lambda_handler", MemorySize=100_000,
                               Code={"ZipFile": lambda_zip(HANDLER_V1)})  # fmt: skip
    client.create_function(FunctionName="dup", Runtime="python3.12", Role="r",
                           Handler="lambda_function.lambda_handler",
                           Code={"ZipFile": lambda_zip(HANDLER_V1)})  # fmt: skip
    with pytest.raises(client.exceptions.ResourceConflictException):
        client.create_function(FunctionName="dup", Runtime="python3.12", Role="r",
                               Handler="lambda_function.lambda_handler",
                               Code={"ZipFile": lambda_zip(HANDLER_V1)})  # fmt: skip
    with pytest.raises(client.exceptions.RequestTooLargeException):
        client.invoke(FunctionName="dup", Payload=json.dumps({"x": "a" * (7 * 1024 * 1024)}))
    with pytest.raises(client.exceptions.PreconditionFailedException):
        client.update_function_configuration(FunctionName="dup", Timeout=4, RevisionId="stale")
    client.delete_function(FunctionName="dup")

    # Bad credentials: unknown key, wrong secret, wrong region
    creds = node.credentials
    stranger = boto3.client("lambda", endpoint_url=node.url, region_name=REGION,
                            aws_access_key_id="AKIAUNKNOWN", aws_secret_access_key="x",
                            config=Config(retries={"total_max_attempts": 1}))  # fmt: skip
    with pytest.raises(botocore.exceptions.ClientError) as info:
        stranger.list_functions()
    assert info.value.response["Error"]["Code"] == "UnrecognizedClientException"
    wrong = boto3.client("lambda", endpoint_url=node.url, region_name=REGION,
                         aws_access_key_id=creds.access_key_id, aws_secret_access_key="wrong",
                         config=Config(retries={"total_max_attempts": 1}))  # fmt: skip
    with pytest.raises(botocore.exceptions.ClientError) as info:
        wrong.list_functions()
    assert info.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    elsewhere = boto3.client("lambda", endpoint_url=node.url, region_name="eu-west-1",
                             aws_access_key_id=creds.access_key_id,
                             aws_secret_access_key=creds.secret_access_key,
                             config=Config(retries={"total_max_attempts": 1}))  # fmt: skip
    with pytest.raises(botocore.exceptions.ClientError) as info:
        elsewhere.list_functions()
    assert info.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert "region" in info.value.response["Error"]["Message"]


def test_malformed_json_body_is_invalid_request_content(node: Server) -> None:
    with node.http() as http:  # bearer auth works on the Lambda paths too
        response = http.post("/2015-03-31/functions", content=b"{oops")
        assert response.status_code == 400
        assert response.headers["x-amzn-ErrorType"] == "InvalidRequestContentException"
        listed = http.get("/2015-03-31/functions")
        assert listed.status_code == 200 and "Functions" in listed.json()
        unknown = http.get("/2015-03-31/layers")
        assert unknown.status_code == 404
        assert unknown.headers["x-amzn-ErrorType"] == "UnknownOperationException"


def test_aws_cli_lifecycle(node: Server, tmp_path: Path) -> None:
    package = tmp_path / "function.zip"
    package.write_bytes(lambda_zip(HANDLER_V1))
    created = aws(node, tmp_path, "create-function", "--function-name", "cli-fn",
                  "--runtime", "python3.12", "--role", "arn:aws:iam::000000000000:role/r",
                  "--handler", "lambda_function.lambda_handler",
                  "--zip-file", f"fileb://{package}")  # fmt: skip
    assert created["FunctionName"] == "cli-fn"
    result = tmp_path / "out.json"
    invoked = aws(node, tmp_path, "invoke", "--function-name", "cli-fn",
                  "--payload", '{"name": "cli"}',
                  "--log-type", "Tail", str(result))  # fmt: skip
    assert invoked["StatusCode"] == 200 and invoked["ExecutedVersion"] == "$LATEST"
    assert json.loads(result.read_text())["name"] == "cli"
    assert "hello from v1 cli" in base64.b64decode(invoked["LogResult"]).decode()
    failed = aws(node, tmp_path, "invoke", "--function-name", "cli-fn",
                 "--payload", '{"fail": 1}',
                 str(result))  # fmt: skip
    assert failed["FunctionError"] == "Unhandled"
    assert json.loads(result.read_text())["errorType"] == "ValueError"
    event = aws(node, tmp_path, "invoke", "--function-name", "cli-fn", "--invocation-type",
                "Event", "--payload", "{}",
                str(result))  # fmt: skip
    assert event["StatusCode"] == 202
    aws(node, tmp_path, "update-function-configuration", "--function-name", "cli-fn",
        "--timeout", "7")  # fmt: skip
    assert (
        aws(node, tmp_path, "get-function-configuration", "--function-name", "cli-fn")["Timeout"]
        == 7
    )
    published = aws(node, tmp_path, "publish-version", "--function-name", "cli-fn")
    assert published["Version"] == "1"
    listed = aws(node, tmp_path, "list-functions", "--max-items", "1")
    assert len(listed["Functions"]) == 1
    aws(node, tmp_path, "delete-function", "--function-name", "cli-fn")
    gone = aws(node, tmp_path, "get-function", "--function-name", "cli-fn", check=False)
    assert gone.returncode != 0
    assert "ResourceNotFoundException" in gone.stderr
