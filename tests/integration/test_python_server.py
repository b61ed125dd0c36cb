"""Python Lambda handlers on a real server: compatibility, logs, errors, limits, isolation."""

from __future__ import annotations

import io
import json
import textwrap
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from firebox.compiler.build import build_function
from firebox.compiler.errors import NativeDependencyError
from firebox.runtime.errors import HandlerError, InvalidArtifact, ResponseTooLarge, TimedOut
from firebox.sdk.client import Client

from tests.conftest import EXAMPLES, Server

pytestmark = pytest.mark.slow

# The example from AWS's "Define Lambda function handler in Python" page, unchanged.
AWS_EXAMPLE = '''
import json
import os
import logging

logger = logging.getLogger()
logger.setLevel("INFO")

def lambda_handler(event, context):
    """
    Main Lambda handler function
    Parameters:
        event: Dict containing the Lambda function event data
        context: Lambda runtime context
    Returns:
        Dict containing status message
    """
    try:
        order_id = event['Order_id']
        amount = event['Amount']
        item = event['Item']
        receipt_content = (
            f"OrderID: {order_id}\\n"
            f"Amount: ${amount}\\n"
            f"Item: {item}"
        )
        logger.info(f"Successfully processed order {order_id}")
        return {
            "statusCode": 200,
            "message": "Receipt processed successfully"
        }
    except Exception as e:
        logger.error(f"Error processing order: {str(e)}")
        raise
'''

HOSTILE = """
import logging, time
calls = 0

def handler(event, context):
    global calls
    calls += 1
    what = event.get("do")
    if what == "count":
        return calls
    if what == "context":
        first = context.get_remaining_time_in_millis()
        time.sleep(0.05)
        return {
            "first": first,
            "second": context.get_remaining_time_in_millis(),
            "request_id": context.aws_request_id,
            "function_name": context.function_name,
            "function_version": context.function_version,
            "arn": context.invoked_function_arn,
            "memory": context.memory_limit_in_mb,
            "log_group": context.log_group_name,
            "log_stream": context.log_stream_name,
        }
    if what == "log":
        print("printed", event["tag"])
        logging.getLogger().warning("logged %s", event["tag"])
        return "ok"
    if what == "raise":
        raise KeyError("missing-thing")
    if what == "loop":
        while True:
            pass
    if what == "memory":
        return len(bytearray(10**10))
    if what == "recurse":
        def down(n):
            return down(n + 1) + 1
        return down(0)
    if what == "huge":
        return "x" * (20 * 1024 * 1024)
    return event
"""


def write_function(root: Path, name: str, source: str, **manifest: Any) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "app.py").write_text(textwrap.dedent(source))
    lines = [
        f'name = "{name}"',
        'runtime = "python3.14"',
        f'handler = "{manifest.pop("handler", "app.handler")}"',
    ]
    lines += [f"{k} = {json.dumps(v)}" for k, v in manifest.items()]
    (folder / "firebox.toml").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture(scope="module")
def py_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    node = Server(tmp_path_factory.mktemp("pynode") / "data", env={"FIREBOX_PREPARE_PYTHON": "1"})
    node.data_dir.mkdir(parents=True)
    node.start()
    src = tmp_path_factory.mktemp("src")
    with node.client() as client:
        for example in ("hello-python", "http-api-python", "deps-python"):
            client.deploy_path(EXAMPLES / example)
        client.deploy_path(
            write_function(src, "aws-example", AWS_EXAMPLE, handler="app.lambda_handler")
        )
        client.deploy_path(write_function(src, "hostile-py", HOSTILE, timeout=1.0, memory=128))
    yield node
    node.stop()


@pytest.fixture
def client(py_server: Server) -> Iterator[Client]:
    with py_server.client() as c:
        yield c


def test_examples_run(client: Client, py_server: Server) -> None:
    hello = client.invoke("hello-python", {"name": "Ada"}, tail=True)
    assert hello.payload["message"] == "Hello, Ada!"
    assert "greeting Ada" in hello.log
    assert (
        client.invoke("deps-python", {"title": "Crème Brûlée!"}).payload["slug"] == "creme-brulee"
    )
    r = httpx.get(py_server.url + "/todos/?done=false")
    assert r.status_code == 200 and [t["id"] for t in r.json()["items"]] == ["2"]
    r = httpx.post(py_server.url + "/todos/", json={"title": "ship"})
    assert r.status_code == 201 and r.headers["location"] == "/todos/3"
    assert httpx.post(py_server.url + "/todos/", content=b"{oops").status_code == 400
    assert httpx.get(py_server.url + "/todos/99").status_code == 404


def test_aws_documentation_handler_runs_unchanged(client: Client) -> None:
    result = client.invoke(
        "aws-example",
        {"Order_id": "12345", "Amount": 199.99, "Item": "Wireless Headphones"},
        tail=True,
    )
    assert result.payload == {"statusCode": 200, "message": "Receipt processed successfully"}
    assert "Successfully processed order 12345" in result.log
    failed = client.invoke("aws-example", {"Order_id": "1"}, tail=True)
    assert isinstance(failed.error, HandlerError)
    assert failed.error.payload["errorType"] == "KeyError"
    assert "Error processing order" in failed.log


def test_first_invocation_after_deploy_is_warm(client: Client) -> None:
    client.deploy_path(EXAMPLES / "hello-python")
    assert client.invoke("hello-python", {}).warm


def test_context_fields(client: Client) -> None:
    one = client.invoke("hostile-py", {"do": "context"}).payload
    two = client.invoke("hostile-py", {"do": "context"}).payload
    assert one["second"] < one["first"] <= 1000
    assert one["request_id"] != two["request_id"]
    assert one["function_name"] == "hostile-py"
    assert one["function_version"] == "$LATEST"
    assert one["arn"].endswith(":function:hostile-py")
    assert one["memory"] == "128"
    assert one["log_group"] == "/aws/lambda/hostile-py"


def test_logs_are_captured_per_invocation(client: Client) -> None:
    a = client.invoke("hostile-py", {"do": "log", "tag": "AAA"}, tail=True)
    b = client.invoke("hostile-py", {"do": "log", "tag": "BBB"}, tail=True)
    assert "printed AAA" in a.log and "logged AAA" in a.log and "BBB" not in a.log
    assert "printed BBB" in b.log and "AAA" not in b.log


def test_exception_comes_back_in_lambdas_shape(client: Client) -> None:
    result = client.invoke("hostile-py", {"do": "raise"})
    assert isinstance(result.error, HandlerError)
    payload = result.error.payload
    assert payload["errorType"] == "KeyError"
    assert "missing-thing" in payload["errorMessage"]
    assert any("raise KeyError" in line for line in payload["stackTrace"])


@pytest.mark.parametrize(
    ("what", "check"),
    [
        (
            "loop",
            lambda e: isinstance(e, TimedOut) and e.message == "Task timed out after 1.00 seconds",
        ),
        (
            "memory",
            lambda e: isinstance(e, HandlerError) and e.payload["errorType"] == "MemoryError",
        ),
        (
            "recurse",
            lambda e: isinstance(e, HandlerError) and e.payload["errorType"] == "RecursionError",
        ),
        ("huge", lambda e: isinstance(e, ResponseTooLarge)),
    ],
)
def test_limit_breaches_and_the_next_call_succeeds(client: Client, what: str, check: Any) -> None:
    result = client.invoke("hostile-py", {"do": what})
    assert check(result.error), result.error
    assert client.invoke("hostile-py", {"do": "echo", "n": 1}).payload == {"do": "echo", "n": 1}


def test_module_state_does_not_leak_between_invocations(client: Client) -> None:
    assert [client.invoke("hostile-py", {"do": "count"}).payload for _ in range(3)] == [1, 1, 1]


def test_native_dependency_is_refused_at_deploy(client: Client, tmp_path: Path) -> None:
    folder = write_function(
        tmp_path, "native", "import fastmath\ndef handler(e, c):\n    return 1\n"
    )
    (folder / "fastmath").mkdir()
    (folder / "fastmath" / "__init__.py").write_text("from ._speedups import *\n")
    (folder / "fastmath" / "_speedups.cpython-314-x86_64-linux-gnu.so").write_bytes(b"\x7fELF")
    with pytest.raises(NativeDependencyError, match="fastmath"):
        build_function(folder)
    # A hand-made bundle with native code is refused by the server too.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("app.py", "def handler(e, c):\n    return 1\n")
        zf.writestr("fastmath/_speedups.so", b"\x7fELF")
    with pytest.raises(InvalidArtifact, match="fastmath"):
        client.deploy(
            {"name": "native", "runtime": "python3.14", "handler": "app.handler"}, buffer.getvalue()
        )


def test_handler_that_fails_to_import_is_refused_at_deploy(client: Client, tmp_path: Path) -> None:
    folder = write_function(
        tmp_path, "broken", "import not_a_module\ndef handler(e, c):\n    return 1\n"
    )
    with pytest.raises(InvalidArtifact, match="not_a_module"):
        client.deploy_path(folder)
    with pytest.raises(Exception, match="not found"):
        client.get("broken")
