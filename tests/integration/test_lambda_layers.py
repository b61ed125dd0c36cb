"""Layers with real boto3 on a real node: published, listed, downloaded, permitted, and
used by a Python function whose handler imports from them."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Server, guest_wasm

boto3 = pytest.importorskip("boto3")
from botocore.config import Config  # noqa: E402

REGION, ACCOUNT = "us-east-1", "000000000000"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/any"
HANDLER = """
def lambda_handler(event, context):
    import greeting, extra_pkg, shadowed
    return {"greeting": greeting.hello(), "extra": extra_pkg.VALUE, "shadowed": shadowed.WHO}
"""


def zipped(files: dict[str, str]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return out.getvalue()


def layer_zip(word: str) -> bytes:
    return zipped({
        "python/greeting.py": f"def hello():\n    return {word!r}\n",
        "python/lib/python3.12/site-packages/extra_pkg/__init__.py": "VALUE = 42\n",
        "python/shadowed.py": "WHO = 'layer'\n",
        "bin/tool": "not importable, not used\n",
    })  # fmt: skip


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(tmp_path_factory.mktemp("layers") / "data", env={"FIREBOX_PREPARE_PYTHON": "1"})
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


def invoke(lam: Any, name: str) -> Any:
    out = lam.invoke(FunctionName=name, Payload=b"{}")
    assert "FunctionError" not in out, out["Payload"].read()
    return json.loads(out["Payload"].read())


def test_a_layer_is_published_listed_and_downloaded(lam: Any) -> None:
    content = layer_zip("hello from layer 1")
    published = lam.publish_layer_version(
        LayerName="greet", Description="greetings", Content={"ZipFile": content},
        CompatibleRuntimes=["python3.12"], LicenseInfo="MIT",
    )  # fmt: skip
    arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:greet"
    assert published["Version"] == 1 and published["LayerVersionArn"] == arn + ":1"
    assert published["LayerArn"] == arn and published["Content"]["CodeSize"] == len(content)
    assert httpx.get(published["Content"]["Location"]).content == content
    got = lam.get_layer_version(LayerName="greet", VersionNumber=1)
    assert got["Description"] == "greetings" and got["LicenseInfo"] == "MIT"
    by_arn = lam.get_layer_version_by_arn(Arn=arn + ":1")
    assert by_arn["Content"]["CodeSha256"] == published["Content"]["CodeSha256"]
    layers = lam.list_layers()["Layers"]
    assert [(x["LayerName"], x["LatestMatchingVersion"]["Version"]) for x in layers] == [
        ("greet", 1)
    ]
    versions = lam.list_layer_versions(LayerName="greet")["LayerVersions"]
    assert [v["Version"] for v in versions] == [1]
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_layer_version(LayerName="greet", VersionNumber=9)


def test_a_function_imports_from_its_layers(lam: Any) -> None:
    v1 = f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:greet:1"
    package = zipped({"lambda_function.py": HANDLER, "shadowed.py": "WHO = 'function'\n"})
    created = lam.create_function(
        FunctionName="layered", Runtime="python3.12", Role=ROLE,
        Handler="lambda_function.lambda_handler", Code={"ZipFile": package}, Layers=[v1],
    )  # fmt: skip
    assert [x["Arn"] for x in created["Layers"]] == [v1]
    # the function's own file wins over the layer's, as /var/task precedes /opt/python
    assert invoke(lam, "layered") == {"greeting": "hello from layer 1", "extra": 42,
                                      "shadowed": "function"}  # fmt: skip
    v2 = lam.publish_layer_version(
        LayerName="greet", Content={"ZipFile": layer_zip("hello from layer 2")}
    )["LayerVersionArn"]
    assert v2.endswith(":2")
    updated = lam.update_function_configuration(FunctionName="layered", Layers=[v2])
    assert [x["Arn"] for x in updated["Layers"]] == [v2]
    assert invoke(lam, "layered")["greeting"] == "hello from layer 2"
    # new code keeps the layers
    lam.update_function_code(FunctionName="layered", ZipFile=zipped({
        "lambda_function.py": HANDLER.replace('"extra"', '"more"'), "shadowed.py": "WHO = 'f2'\n",
    }))  # fmt: skip
    assert invoke(lam, "layered") == {
        "greeting": "hello from layer 2",
        "more": 42,
        "shadowed": "f2",
    }
    # a deleted layer version stays in the functions that use it
    lam.delete_layer_version(LayerName="greet", VersionNumber=1)
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_layer_version(LayerName="greet", VersionNumber=1)
    assert invoke(lam, "layered")["greeting"] == "hello from layer 2"
    assert lam.publish_layer_version(
        LayerName="greet", Content={"ZipFile": layer_zip("3")}
    )["Version"] == 3  # numbers are never reused  # fmt: skip
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.update_function_configuration(FunctionName="layered", Layers=[v1])


def test_layers_are_refused_for_a_module(lam: Any) -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("echo.wasm", guest_wasm("echo"))
    module = out.getvalue()
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.create_function(
            FunctionName="module-layers", Runtime="provided.al2023", Role=ROLE, Handler="handle",
            Code={"ZipFile": module},
            Layers=[f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:greet:2"],
        )  # fmt: skip


def test_layer_version_permissions(lam: Any) -> None:
    added = lam.add_layer_version_permission(
        LayerName="greet", VersionNumber=2, StatementId="everyone",
        Action="lambda:GetLayerVersion", Principal="*",
    )  # fmt: skip
    statement = json.loads(added["Statement"])
    assert statement["Principal"] == "*" and statement["Resource"].endswith(":layer:greet:2")
    policy = json.loads(lam.get_layer_version_policy(LayerName="greet", VersionNumber=2)["Policy"])
    assert [s["Sid"] for s in policy["Statement"]] == ["everyone"]
    with pytest.raises(lam.exceptions.ResourceConflictException):
        lam.add_layer_version_permission(
            LayerName="greet", VersionNumber=2, StatementId="everyone",
            Action="lambda:GetLayerVersion", Principal="*",
        )  # fmt: skip
    lam.remove_layer_version_permission(LayerName="greet", VersionNumber=2, StatementId="everyone")
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_layer_version_policy(LayerName="greet", VersionNumber=2)
