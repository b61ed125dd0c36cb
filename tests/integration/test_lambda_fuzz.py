"""Property-based fuzzing of the Lambda-compatible API through botocore's own shapes:
hypothesis builds inputs from each operation's input shape in botocore's Lambda model
(members, types, enums; lengths, ranges and patterns not enforced, so out-of-range
values get through), boto3 signs and sends them to a real node.

For every operation firebox serves: no 5xx, no hang (a read deadline, no retries), and
every error a parsed Lambda error (a code and a message, as botocore reads them).
"""

from __future__ import annotations

import datetime
import json
import os
import re
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.exceptions
import httpx
import pytest
from botocore.config import Config
from botocore.loaders import Loader
from firebox.runtime.http import lambda_api, lambda_settings
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from tests.conftest import Server, guest_wasm

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "20"))
# Every case each test sent, by operation (printed by the last test).
RAN: dict[str, int] = {}
MODEL = Loader().load_service_model("lambda", "service-2")
SHAPES: dict[str, dict[str, Any]] = MODEL["shapes"]
# Names that exist on the fuzzed node, so some cases reach past the 404 of an unknown one.
NAMES = ["hello", "hello:live", "hello:$LATEST", "hello:1"]


def _norm(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path.split("?")[0].rstrip("/") or "/")


def served_operations() -> list[str]:
    """Return botocore's names of the Lambda operations firebox routes (not the fallback)."""
    routes = [*lambda_api.routes(), *lambda_settings.routes()]
    served = {(m, _norm(r.path)) for r in routes for m in (r.methods or set()) - {"HEAD"}}
    return sorted(
        name
        for name, op in MODEL["operations"].items()
        if (op["http"]["method"], _norm(op["http"]["requestUri"])) in served
    )


def strategy(
    shape_name: str, member: str = "", depth: int = 0, header: bool = False
) -> st.SearchStrategy[Any]:
    """Return a strategy of values of a botocore shape (`header`: one sent as an HTTP
    header, so printable ASCII: an HTTP client refuses control characters itself)."""
    shape = SHAPES[shape_name]
    kind = shape["type"]
    if kind == "structure":
        if depth > 3:
            return st.just({})
        members = shape.get("members", {})
        required = set(shape.get("required", []))
        parts = {
            k: strategy(v["shape"], k, depth + 1, v.get("location") == "header")
            for k, v in members.items()
        }
        return st.fixed_dictionaries(
            {k: s for k, s in parts.items() if k in required},
            optional={k: s for k, s in parts.items() if k not in required},
        )
    if kind == "list":
        return st.lists(strategy(shape["member"]["shape"], member, depth + 1), max_size=3)
    if kind == "map":
        return st.dictionaries(
            strategy(shape["key"]["shape"], member, depth + 1),
            strategy(shape["value"]["shape"], member, depth + 1),
            max_size=3,
        )
    if kind == "string":
        if header:
            printable = st.characters(min_codepoint=32, max_codepoint=126)
            return st.sampled_from(shape.get("enum", [""])) | st.text(printable, max_size=40)
        if "enum" in shape:
            return st.sampled_from(shape["enum"]) | st.text(max_size=20)
        if member in ("FunctionName", "Resource"):
            return st.sampled_from(NAMES) | st.text(min_size=1, max_size=80)
        if member in ("Name", "Qualifier", "FunctionVersion"):
            return st.sampled_from(["live", "$LATEST", "1"]) | st.text(min_size=1, max_size=40)
        return st.text(max_size=40)
    if kind in ("integer", "long"):
        return st.integers(-(2**31), 2**31 - 1) | st.integers(0, 100)
    if kind in ("float", "double"):
        return st.floats(allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "blob":
        return st.binary(max_size=64) | st.just(b'{"hello": "fuzz"}')
    if kind == "timestamp":
        return st.datetimes(
            min_value=datetime.datetime(2000, 1, 1), max_value=datetime.datetime(2100, 1, 1)
        )
    raise AssertionError(f"no strategy for botocore shape type {kind!r}")


@pytest.fixture(scope="module")
def lam(server: Server) -> Iterator[Any]:
    creds = server.credentials
    with server.client() as client:
        client.deploy({"name": "hello"}, guest_wasm("echo"))
        client.publish("hello")
        client.create_alias("hello", "live", "1")
    yield boto3.client(
        "lambda",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id=creds.access_key_id,
        aws_secret_access_key=creds.secret_access_key,
        config=Config(
            parameter_validation=False,
            retries={"max_attempts": 0, "mode": "standard"},
            read_timeout=30,
            connect_timeout=5,
        ),
    )


@pytest.mark.slow
@pytest.mark.parametrize("operation", served_operations())
def test_fuzz_lambda_operation(lam: Any, operation: str) -> None:
    method = getattr(lam, re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower())
    shape = MODEL["operations"][operation].get("input", {}).get("shape")
    inputs = strategy(shape) if shape else st.just({})
    ran = 0

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=bool(os.environ.get("CI")),
        suppress_health_check=list(HealthCheck),
    )
    @given(params=inputs)
    def fuzz(params: dict[str, Any]) -> None:
        nonlocal ran
        try:
            method(**params)
        except botocore.exceptions.ClientError as exc:
            status = exc.response["ResponseMetadata"]["HTTPStatusCode"]
            error = exc.response.get("Error", {})
            assert status < 500, f"{operation}({params!r:.300}) -> {status}: {error}"
            assert error.get("Code") and error.get("Message") is not None, (operation, exc.response)
        except (botocore.exceptions.ParamValidationError, TypeError, ValueError):
            reject()  # botocore cannot serialize this input (a URI label it cannot encode...)
        except botocore.exceptions.ReadTimeoutError:
            raise AssertionError(f"{operation}({params!r:.300}): no answer in 30 s") from None
        ran += 1

    fuzz()
    RAN[operation] = ran
    assert ran > 0


@pytest.mark.slow
def test_zz_fuzz_report(server: Server) -> None:
    """Print how many cases the tests above sent; the node is still healthy."""
    print(json.dumps({"lambda_operations": len(RAN), "cases": sum(RAN.values())}))
    assert httpx.get(server.url + "/healthz").status_code == 200
