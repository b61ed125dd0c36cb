"""Every operation of botocore's Lambda service model, called with real boto3 against a real
node: each is served, or refused in Lambda's shape; never a bare 404, never a 5xx.

Inputs are built from the operation's input shape (required members only, the smallest
valid value of each), so a botocore upgrade that adds an operation is walked too.
"""

from __future__ import annotations

import datetime
import io
import zipfile
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Server, guest_wasm

boto3 = pytest.importorskip("boto3")
botocore = pytest.importorskip("botocore")
from botocore.config import Config  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402
from botocore.model import Shape  # noqa: E402

FUNCTION = "walk"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
ARN = f"arn:aws:lambda:us-east-1:000000000000:function:{FUNCTION}"
# Values for members whose name says what they must be (the rest follow their shape).
BY_NAME: dict[str, Any] = {
    "FunctionName": FUNCTION,
    "Resource": ARN,
    "FunctionArn": ARN,
    "Role": "arn:aws:iam::000000000000:role/walk",
    "Handler": "handle",
    "Runtime": "provided.al2023",
    "Qualifier": "1",
    "FunctionVersion": "1",
    "LayerName": "walk-layer",
    "Arn": "arn:aws:lambda:us-east-1:000000000000:layer:walk-layer:1",
    "VersionNumber": 1,
    "EventSourceArn": "arn:aws:sqs:us-east-1:000000000000:walk-queue",
    "UUID": "00000000-0000-0000-0000-000000000000",
    "StatementId": "walk-statement",
    "Action": "lambda:InvokeFunction",
    "Principal": "*",
    "Name": "walk-alias",
    "CapacityProviderName": "walk-provider",
    "CodeSigningConfigArn": (
        "arn:aws:lambda:us-east-1:000000000000:code-signing-config:csc-0123456789abcdef0"
    ),
    "DurableExecutionArn": "arn:aws:lambda:us-east-1:000000000000:function:walk:1/durable/x/y",
    "CallbackId": "walk-callback",
    "UpdateRuntimeOn": "Auto",
    "RecursiveLoop": "Terminate",
    "AuthType": "NONE",
    "TagKeys": ["walk"],
    "ReservedConcurrentExecutions": 5,
    "ProvisionedConcurrentExecutions": 1,
}


def value_of(shape: Shape, name: str = "") -> Any:
    """Return the smallest value botocore accepts for a shape."""
    if name in BY_NAME:
        return BY_NAME[name]
    kind = shape.type_name
    if kind == "structure":
        return {m: value_of(shape.members[m], m) for m in shape.required_members}
    if kind == "list":
        low = shape.metadata.get("min", 0)
        return [value_of(shape.member) for _ in range(max(low, 1 if low else 0))]
    if kind == "map":
        return {}
    if kind == "string":
        if shape.enum:
            return shape.enum[0]
        return "x" * max(shape.metadata.get("min", 1), 1)
    if kind in ("integer", "long"):
        return max(shape.metadata.get("min", 1), 1)
    if kind == "boolean":
        return False
    if kind == "blob":
        return b"{}"
    if kind == "timestamp":
        return datetime.datetime.now(datetime.UTC)
    if kind in ("double", "float"):
        return 1.0
    raise AssertionError(f"no value for a {kind} shape")


def module_zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("echo.wasm", guest_wasm("echo"))
    return out.getvalue()


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[Any]:
    creds = server.credentials
    lam = boto3.client(
        "lambda",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id=creds.access_key_id,
        aws_secret_access_key=creds.secret_access_key,
        config=Config(retries={"total_max_attempts": 1}, read_timeout=60),
    )
    lam.create_function(
        FunctionName=FUNCTION, Runtime="provided.al2023", Role=BY_NAME["Role"],
        Handler="handle", Code={"ZipFile": module_zip()}, Publish=True,
    )  # fmt: skip
    # A user function on the catch-all route answers with its event: no API call may reach it.
    with server.client() as native:
        native.deploy(
            {"name": "catchall", "triggers": [{"route": "/*", "methods": list(METHODS)}]},
            guest_wasm("echo"),
        )
    assert "rawPath" in httpx.post(server.url + "/not/an/api", content=b"{}").text
    yield lam


def ordered(names: list[str]) -> list[str]:
    """Deletes last (DeleteFunction the very last), so the other calls find the function."""
    rank = {n: (2 if n == "DeleteFunction" else 1 if n.startswith("Delete") else 0) for n in names}
    return sorted(names, key=lambda n: (rank[n], n))


def test_every_operation_is_served_or_refused_in_lambdas_shape(client: Any) -> None:
    model = client.meta.service_model
    bodies: list[tuple[str, bytes]] = []
    client.meta.events.register(
        "after-call.lambda",
        lambda http_response, model, **_: bodies.append((model.name, http_response.content)),
    )
    counts: Counter[str] = Counter()
    broken: list[str] = []
    refused: list[str] = []
    for name in ordered(list(model.operation_names)):
        op = model.operation_model(name)
        params = value_of(op.input_shape) if op.input_shape is not None else {}
        if name in ("CreateFunction",):
            params = {**params, "FunctionName": "walk-created", "Code": {"ZipFile": module_zip()}}
        method = getattr(client, botocore.xform_name(name))
        try:
            reply = method(**params)
        except ClientError as exc:
            meta = exc.response["ResponseMetadata"]
            status = meta["HTTPStatusCode"]
            error_type = meta["HTTPHeaders"].get("x-amzn-errortype")
            message = exc.response["Error"].get("Message", "")
            if status >= 500 or not error_type or not message:
                broken.append(f"{name}: {status} {error_type!r} {message!r}")
            elif error_type in ("UnsupportedOperationException", "UnknownOperationException"):
                counts["refused"] += 1
                refused.append(name)
                if name not in message:
                    broken.append(f"{name}: the refusal does not name it: {message!r}")
                elif "not implemented by firebox yet" in message:
                    broken.append(f"{name}: refused without a reason (lambda_operations.REFUSED)")
            else:
                counts["served"] += 1  # a Lambda error of the operation itself
            continue
        status = reply["ResponseMetadata"]["HTTPStatusCode"]
        if status >= 300:
            broken.append(f"{name}: {status} without an error")
        counts["served"] += 1
        if "EventStream" in reply:
            list(reply["EventStream"])
    print(f"\nLambda model walk over {len(model.operation_names)} operations: {dict(counts)}")
    print("refused:", ", ".join(sorted(refused)))
    assert {name for name, _ in bodies} == set(model.operation_names)  # every answer was read
    reached = sorted({name for name, body in bodies if b"rawPath" in body})
    assert not reached, f"answered by the user's catch-all route: {reached}"
    assert not broken, "\n".join(broken)
    assert counts["served"] + counts["refused"] == len(model.operation_names)
