"""Layers: PublishLayerVersion, Get/List/Delete, layer-version permissions, and the
`Layers` of a Python function, merged into its bundle at deploy (front-end layer).

A layer version is its zip, stored content-addressed like a bundle (shared with the
other nodes) and described in the `lambda_meta` store. A Python function that names
layers deploys with the content of each layer's `python/` folder (and of
`python/lib/python3.x/site-packages/`) importable, as Lambda puts `/opt/python` on
`sys.path`: later layers override earlier ones and the function's own files override
them all, Lambda's precedence. Other folders of a layer are not used (docs/lambda.md).
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from firebox.runtime.errors import LambdaError
from firebox.runtime.http.lambda_api import (
    Endpoint,
    body_of,
    field_of,
    ok,
    operation,
)
from firebox.runtime.http.lambda_code import presigned_url, store_package
from firebox.runtime.http.lambda_errors import invalid_parameter
from firebox.runtime.http.lambda_layer_files import (
    COUNTER,
    LAYER_ARN,
    LAYER_NAME,
    check_scope,
    layer_arn,
    unzipped_size,
    version_row,
    versions,
)
from firebox.runtime.http.lambda_shapes import Names, code_sha256, zip_file
from firebox.runtime.http.native import MAX_ARTIFACT_BYTES, node_of
from firebox.runtime.node import Node
from firebox.runtime.storage.lambda_meta import LAYER, LAYER_POLICY, Resource
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def _created(seconds: float) -> str:
    when = datetime.fromtimestamp(seconds, UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}+0000"


def layer_name(names: Names, value: str) -> str:
    """Return the layer name a LayerName (a name or a layer ARN) gives."""
    if LAYER_NAME.match(value):
        return value
    match = LAYER_ARN.match(value)
    if match is None or match["version"] is not None:
        raise invalid_parameter(f"LayerName must be a name or a layer ARN, got {value!r}")
    check_scope(names, match, value)
    return match["name"]


def _version_shape(request: Request, names: Names, row: Resource, full: bool) -> dict[str, Any]:
    doc = row.document
    out: dict[str, Any] = {
        "LayerVersionArn": layer_arn(names, row.function, row.qualifier),
        "Version": int(row.qualifier),
        "Description": doc.get("Description", ""),
        "CreatedDate": _created(row.created_at),
        "CompatibleRuntimes": doc.get("CompatibleRuntimes", []),
        "CompatibleArchitectures": doc.get("CompatibleArchitectures", []),
    }
    if doc.get("LicenseInfo"):
        out["LicenseInfo"] = doc["LicenseInfo"]
    if full:
        path = f"/2018-10-31/layers/{quote(row.function)}/versions/{row.qualifier}/content"
        content: dict[str, Any] = {"CodeSha256": doc["CodeSha256"], "CodeSize": doc["CodeSize"]}
        url = presigned_url(request, path, "")
        if url:
            content["Location"] = url
        out = {"Content": content, "LayerArn": layer_arn(names, row.function), **out}
    return out


def _strings(data: dict[str, Any], key: str) -> list[str]:
    value = field_of(data, key, list) or []
    if not all(isinstance(v, str) for v in value) or len(value) > 15:
        raise invalid_parameter(f"{key} must be a list of at most 15 strings")
    return list(value)


async def publish(request: Request) -> Response:
    """POST /2018-10-31/layers/{layer}/versions (PublishLayerVersion): 201."""
    node = node_of(request)
    names = Names(node.config, node.artifacts)
    name = layer_name(names, request.path_params["layer"])
    data = await body_of(request, MAX_ARTIFACT_BYTES)
    content = field_of(data, "Content", dict) or {}
    if content.get("S3Bucket"):
        raise invalid_parameter("only Content.ZipFile is supported (no S3)")
    package = zip_file(content.get("ZipFile"))
    unzipped_size(package)  # a zip, and not a bomb
    doc: dict[str, Any] = {
        "Description": field_of(data, "Description", str) or "",
        "CompatibleRuntimes": _strings(data, "CompatibleRuntimes"),
        "CompatibleArchitectures": _strings(data, "CompatibleArchitectures"),
        "CodeSha256": code_sha256(package),
        "CodeSize": len(package),
        "Digest": await node.run_blocking(store_package, node, package),
    }
    if field_of(data, "LicenseInfo", str):
        doc["LicenseInfo"] = data["LicenseInfo"]
    version = await node.run_blocking(_next_version, node, name)
    row = await node.run_blocking(
        lambda: node.stores.lambda_meta.put(LAYER, name, str(version), "", doc, create=True)
    )
    if row is None:
        raise LambdaError("ResourceConflictException", 409,
                          f"layer {name} version {version} was published concurrently")  # fmt: skip
    return ok(_version_shape(request, names, row, full=True), 201)


def _next_version(node: Node, name: str) -> int:
    """Return the next version number of a layer (numbers are never reused). Blocking."""
    store = node.stores.lambda_meta
    counter = store.get(LAYER, name, COUNTER, "")
    number = int(counter.document.get("last", 0)) + 1 if counter is not None else 1
    store.put(LAYER, name, COUNTER, "", {"last": number})
    return number


async def get_version(request: Request) -> Response:
    """GET /2018-10-31/layers/{layer}/versions/{version} (GetLayerVersion)."""
    node = node_of(request)
    names = Names(node.config)
    name = layer_name(names, request.path_params["layer"])
    row = await version_row(node, names, name, request.path_params["version"])
    return ok(_version_shape(request, names, row, full=True))


async def list_versions(request: Request) -> Response:
    """GET /2018-10-31/layers/{layer}/versions (ListLayerVersions), newest first."""
    node = node_of(request)
    names = Names(node.config)
    name = layer_name(names, request.path_params["layer"])
    rows = list(reversed(await versions(node, name)))
    runtime = request.query_params.get("CompatibleRuntime")
    if runtime:
        rows = [r for r in rows if runtime in r.document.get("CompatibleRuntimes", [])]
    return ok({"LayerVersions": [_version_shape(request, names, r, full=False) for r in rows]})


async def list_layers(request: Request) -> Response:
    """GET /2018-10-31/layers (ListLayers), or with find=LayerVersion GetLayerVersionByArn."""
    node = node_of(request)
    names = Names(node.config)
    if request.query_params.get("find") == "LayerVersion":
        arn = request.query_params.get("Arn") or ""
        match = LAYER_ARN.match(arn)
        if match is None or match["version"] is None:
            raise invalid_parameter(f"Arn must be a layer version ARN, got {arn!r}")
        check_scope(names, match, arn)
        row = await version_row(node, names, match["name"], match["version"])
        return ok(_version_shape(request, names, row, full=True))
    rows = await node.run_blocking(node.stores.lambda_meta.list, LAYER)
    latest: dict[str, Resource] = {}
    for row in rows:
        if row.qualifier == COUNTER:
            continue
        if row.function not in latest or int(row.qualifier) > int(latest[row.function].qualifier):
            latest[row.function] = row
    layers = [
        {"LayerName": name, "LayerArn": layer_arn(names, name),
         "LatestMatchingVersion": _version_shape(request, names, row, full=False)}
        for name, row in sorted(latest.items())
    ]  # fmt: skip
    return ok({"Layers": layers})


async def delete_version(request: Request) -> Response:
    """DELETE /2018-10-31/layers/{layer}/versions/{version} (DeleteLayerVersion): 204,
    also when there is no such version (as Lambda). Functions that use it keep their code."""
    node = node_of(request)
    names = Names(node.config)
    name = layer_name(names, request.path_params["layer"])
    version = request.path_params["version"]
    if not version.isdigit():
        raise invalid_parameter(f"VersionNumber must be a number, got {version!r}")
    store = node.stores.lambda_meta
    await node.run_blocking(store.delete, LAYER, name, str(int(version)))
    await node.run_blocking(store.delete, LAYER_POLICY, name, str(int(version)))
    return Response(status_code=204)


async def download(request: Request) -> Response:
    """GET /2018-10-31/layers/{layer}/versions/{version}/content (Content.Location, presigned)."""
    node = node_of(request)
    names = Names(node.config)
    name = layer_name(names, request.path_params["layer"])
    row = await version_row(node, names, name, request.path_params["version"])
    digest = row.document["Digest"]
    await node.run_blocking(node.prepare.ensure_local, digest)
    return Response(await node.run_blocking(node.artifacts.get, digest),
                    media_type="application/zip")  # fmt: skip


# --- layer version permissions ---------------------------------------------------------


async def add_permission(request: Request) -> Response:
    """POST .../versions/{version}/policy (AddLayerVersionPermission): 201."""
    node = node_of(request)
    names = Names(node.config)
    name = layer_name(names, request.path_params["layer"])
    row = await version_row(node, names, name, request.path_params["version"])
    data = await body_of(request)
    sid, action = field_of(data, "StatementId", str), field_of(data, "Action", str)
    principal, org = field_of(data, "Principal", str), field_of(data, "OrganizationId", str)
    if not sid or not re.fullmatch(r"[a-zA-Z0-9_-]{1,100}", sid):
        raise invalid_parameter("StatementId must be 1-100 letters, digits, '-' or '_'")
    if action != "lambda:GetLayerVersion":
        raise invalid_parameter("Action must be lambda:GetLayerVersion")
    if not principal or not (principal == "*" or re.fullmatch(r"\d{12}", principal)):
        raise invalid_parameter("Principal must be '*' or an account id")
    statement: dict[str, Any] = {
        "Sid": sid, "Effect": "Allow",
        "Principal": "*" if principal == "*" else {"AWS": f"arn:aws:iam::{principal}:root"},
        "Action": action, "Resource": layer_arn(names, name, row.qualifier),
    }  # fmt: skip
    if org:
        statement["Condition"] = {"StringEquals": {"aws:PrincipalOrgID": org}}
    stored = await node.run_blocking(
        lambda: node.stores.lambda_meta.put(
            LAYER_POLICY, name, row.qualifier, sid, statement, create=True
        )
    )
    if stored is None:
        raise LambdaError("ResourceConflictException", 409,
                          f"The statement id ({sid}) provided already exists.")  # fmt: skip
    return ok({"Statement": json.dumps(statement), "RevisionId": _revision(stored)}, 201)


def _revision(row: Resource) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{row.function}|{row.qualifier}|{row.updated_at}"))


async def get_policy(request: Request) -> Response:
    """GET .../versions/{version}/policy (GetLayerVersionPolicy)."""
    node = node_of(request)
    names = Names(node.config)
    name = layer_name(names, request.path_params["layer"])
    row = await version_row(node, names, name, request.path_params["version"])
    rows = await node.run_blocking(node.stores.lambda_meta.list, LAYER_POLICY, name, row.qualifier)
    if not rows:
        raise LambdaError("ResourceNotFoundException", 404,
                          "No policy is associated with the given resource.")  # fmt: skip
    policy = {"Version": "2012-10-17", "Id": "default", "Statement": [r.document for r in rows]}
    return ok({"Policy": json.dumps(policy), "RevisionId": _revision(rows[-1])})


async def remove_permission(request: Request) -> Response:
    """DELETE .../versions/{version}/policy/{sid} (RemoveLayerVersionPermission): 204."""
    node = node_of(request)
    names = Names(node.config)
    name = layer_name(names, request.path_params["layer"])
    row = await version_row(node, names, name, request.path_params["version"])
    sid = request.path_params["sid"]
    if not await node.run_blocking(
        node.stores.lambda_meta.delete, LAYER_POLICY, name, row.qualifier, sid
    ):
        raise LambdaError("ResourceNotFoundException", 404,
                          f"Statement {sid} is not found in resource policy.")  # fmt: skip
    return Response(status_code=204)


# --- layers of a function ----------------------------------------------------------------


def routes() -> list[Route]:
    """Return the routes of the layer operations."""
    layer = "/2018-10-31/layers/{layer}/versions"
    version = layer + "/{version}"
    table: list[tuple[str, Endpoint, str]] = [
        ("/2018-10-31/layers", list_layers, "GET"),
        ("/2018-10-31/layers/", list_layers, "GET"),
        (layer, publish, "POST"),
        (layer, list_versions, "GET"),
        (version, get_version, "GET"),
        (version, delete_version, "DELETE"),
        (version + "/content", download, "GET"),
        (version + "/policy", add_permission, "POST"),
        (version + "/policy", get_policy, "GET"),
        (version + "/policy/{sid}", remove_permission, "DELETE"),
    ]
    return [Route(path, operation(endpoint), methods=[method]) for path, endpoint, method in table]
