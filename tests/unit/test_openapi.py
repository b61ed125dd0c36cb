"""The OpenAPI document cannot drift: every native route has an operation entry, every
entry a route, and the document is one schemathesis can load."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from firebox.runtime.config import NodeConfig
from firebox.runtime.http.app import create_app
from firebox.runtime.http.openapi import document, native_operations
from firebox.runtime.http.openapi_operations import OPERATIONS
from firebox.runtime.node import Node
from schemathesis.core.result import Ok
from starlette.applications import Starlette


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Starlette:
    data = tmp_path_factory.mktemp("openapi") / "data"
    return create_app(Node(NodeConfig(data_dir=Path(data), workers=1)))


def test_every_native_route_and_only_those_are_documented(app: Starlette) -> None:
    served = {(method, template) for method, template, _ in native_operations(app.routes)}
    assert served - OPERATIONS.keys() == set(), "routes without an entry in OPERATIONS"
    assert OPERATIONS.keys() - served == set(), "entries in OPERATIONS that no route serves"
    doc = document(app.routes)
    documented = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    assert len(documented) == len(served)
    assert ("POST", "/v1/functions/{name}/invoke") in documented
    assert not any(path.startswith("/2015-03-31") for _, path in documented)


def test_every_operation_has_a_summary_and_the_error_shape(app: Starlette) -> None:
    doc = document(app.routes)
    ids = set()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op["summary"], (method, path)
            assert op["responses"]["4XX"] == {"$ref": "#/components/responses/Error"}
            ids.add(op["operationId"])
    assert len(ids) == sum(len(ops) for ops in doc["paths"].values()), "operationIds repeat"


def test_schemathesis_loads_the_document(app: Starlette) -> None:
    schema = schemathesis.openapi.from_dict(document(app.routes))
    results = list(schema.get_all_operations())
    assert all(isinstance(result, Ok) for result in results), results
    assert len(results) == len(OPERATIONS)
