"""Property-based fuzzing of every native route from the node's own OpenAPI document
(schemathesis generates valid and invalid requests; a real node answers them).

For every operation: no 5xx, no hang (each request has a deadline), and every 4xx in
the documented error shape `{"error": {"type", "message"}}`. Bounded: EXAMPLES valid and
EXAMPLES invalid cases per operation, about a minute for the whole API here.
"""

from __future__ import annotations

import json
import os
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from firebox.runtime.http.openapi_operations import OPERATIONS
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from tests.conftest import Server, guest_wasm

# Cases per operation and mode: 20 keeps CI's run near a minute; FUZZ_EXAMPLES=200 digs deeper.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "20"))
REQUEST_TIMEOUT_S = 30.0
# Every case each test ran, by operation (printed at the end of the module).
RAN: dict[str, int] = {}


@pytest.fixture(scope="module")
def api(server: Server) -> Any:
    with server.http() as http:
        r = http.get("/v1/openapi.json")
        assert r.status_code == 200
        doc = r.json()
    assert doc["openapi"] == "3.1.0"
    return schemathesis.openapi.from_dict(doc)


@pytest.fixture(autouse=True)
def seeded(server: Server) -> None:
    """The resources the document's examples name, recreated if a case deleted them."""
    with server.http() as http:
        if http.get("/v1/functions/hello").status_code == 404:
            with server.client() as client:
                client.deploy({"name": "hello"}, guest_wasm("echo"))
        if http.get("/v1/functions/hello/aliases/live").status_code == 404:
            http.post("/v1/functions/hello/aliases", json={"name": "live", "version": "$LATEST"})
        if http.get("/v1/queues/orders").status_code == 404:
            http.post("/v1/queues", json={"name": "orders"})
        if http.get("/v1/streams/clicks").status_code == 404:
            http.post("/v1/streams", json={"name": "clicks"})


def check(case: Any, response: requests.Response) -> None:
    what = f"{case.method} {case.formatted_path} query={case.query} body={case.body!r:.300}"
    assert response.status_code < 500, f"{what} -> {response.status_code}: {response.text[:500]}"
    if 400 <= response.status_code < 500:
        try:
            error = response.json()["error"]
        except (ValueError, KeyError, TypeError):
            raise AssertionError(f"{what} -> {response.status_code} not in the error shape: "
                                 f"{response.text[:300]}") from None  # fmt: skip
        assert isinstance(error.get("type"), str) and isinstance(error.get("message"), str), what


def has_input(method: str, path: str) -> bool:
    """Return True when an operation takes something a request can get wrong."""
    op = OPERATIONS[(method, path)]
    return "{" in path or bool(op.params) or op.body is not None or op.raw_body


CASES = [
    pytest.param(mode, m, p, id=f"{mode.value} {m} {p}")
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    for m, p in sorted(OPERATIONS)
    # Invalid requests need an input to be invalid in (GET /healthz has none).
    if mode is GenerationMode.POSITIVE or has_input(m, p)
]


@pytest.mark.slow
@pytest.mark.parametrize(("mode", "method", "path"), CASES)
def test_fuzz_operation(
    api: Any, server: Server, mode: GenerationMode, method: str, path: str
) -> None:
    operation = api.find_operation_by_path(method.lower(), path)
    assert operation is not None, f"{method} {path} is not in the served document"
    creds = server.credentials
    auth = {"Authorization": f"Bearer {creds.access_key_id}:{creds.secret_access_key}"}
    ran = 0

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=bool(os.environ.get("CI")),
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def fuzz(case: Any) -> None:
        nonlocal ran
        ran += 1
        if case.query and str(case.query.get("follow")) in ("1", "true"):
            case.query["timeout"] = 0.5  # a followed log stream lasts as long as it is asked to
        headers = {**(case.headers or {}), **auth}
        try:
            response = case.call(base_url=server.url, headers=headers, timeout=REQUEST_TIMEOUT_S)
        except requests.Timeout:
            raise AssertionError(f"{case.method} {case.formatted_path}: no answer in "
                                 f"{REQUEST_TIMEOUT_S} s (a hang)") from None  # fmt: skip
        check(case, response)

    fuzz()
    RAN[f"{mode.value} {method} {path}"] = ran
    assert ran > 0


@pytest.mark.slow
def test_zz_fuzz_report(server: Server) -> None:
    """Print how many cases ran (the counts of the tests above) and check the node is whole."""
    total = sum(RAN.values())
    print(json.dumps({"operations": len(OPERATIONS), "cases": total}))
    assert httpx.get(server.url + "/healthz").status_code == 200
