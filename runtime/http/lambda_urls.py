"""Function URLs: Create/Get/Update/Delete/ListFunctionUrlConfig(s), and the URLs
themselves, served by the node at `/lambda-url/{url-id}/...` (front-end layer).

A request to a URL becomes Lambda's function-URL event (payload format 2.0, the path
relative to the URL) and the function's output is read as Lambda reads it. `AuthType`
AWS_IAM requires a SigV4 signature (service `lambda`) by a live firebox key; NONE
requires a resource-policy statement allowing `lambda:InvokeFunctionUrl` to `*`, as
Lambda does (403 `{"Message": "Forbidden"}` otherwise). CORS is answered from `Cors`.
"""

from __future__ import annotations

import json
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

from firebox.runtime.errors import FireboxError, FunctionNotFound, LambdaError
from firebox.runtime.http import sigv4
from firebox.runtime.http.errors import error_response
from firebox.runtime.http.lambda_api import (
    Endpoint,
    body_of,
    field_of,
    ok,
    operation,
    record_of,
    target_of,
)
from firebox.runtime.http.lambda_errors import invalid_parameter
from firebox.runtime.http.lambda_policy import allows_public_url, statements
from firebox.runtime.http.lambda_shapes import Names
from firebox.runtime.http.native import invocation_headers, node_of, read_body
from firebox.runtime.http.triggers import function_url_event, function_url_response
from firebox.runtime.node import Node
from firebox.runtime.storage.lambda_meta import URL, Resource
from firebox.runtime.storage.registry import LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

#: The first path segment of every function URL the node serves.
URL_PREFIX = "lambda-url"
AUTH_TYPES = ("NONE", "AWS_IAM")
INVOKE_MODES = ("BUFFERED", "RESPONSE_STREAM")
CORS_KEYS: dict[str, type] = {
    "AllowCredentials": bool, "AllowHeaders": list, "AllowMethods": list,
    "AllowOrigins": list, "ExposeHeaders": list, "MaxAge": int,
}  # fmt: skip
MAX_CORS_AGE_S = 86_400


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _url_qualifier(qualifier: str | None) -> str:
    """Return the stored qualifier of a URL: "" for $LATEST, else an alias (not a version)."""
    if qualifier in (None, LATEST):
        return ""
    if str(qualifier).isdigit():
        raise invalid_parameter(
            "a function URL's Qualifier must be an alias or $LATEST, not a version number"
        )
    return str(qualifier)


def _cors(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid_parameter("Cors must be an object")
    out: dict[str, Any] = {}
    for key, item in value.items():
        kind = CORS_KEYS.get(key)
        if kind is None:
            raise invalid_parameter(f"unknown Cors field {key!r}")
        if not isinstance(item, kind) or (
            isinstance(item, list) and not all(isinstance(i, str) for i in item)
        ):
            raise invalid_parameter(f"Cors.{key} has the wrong type")
        out[key] = item
    if not 0 <= int(out.get("MaxAge", 0)) <= MAX_CORS_AGE_S:
        raise invalid_parameter(f"Cors.MaxAge must be 0-{MAX_CORS_AGE_S}")
    return out


def _settings(data: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    out = dict(current)
    auth = field_of(data, "AuthType", str)
    if auth is not None:
        if auth not in AUTH_TYPES:
            raise invalid_parameter(f"AuthType must be NONE or AWS_IAM, got {auth!r}")
        out["AuthType"] = auth
    if "Cors" in data:
        out["Cors"] = _cors(data["Cors"])
    mode = field_of(data, "InvokeMode", str)
    if mode is not None:
        if mode not in INVOKE_MODES:
            raise invalid_parameter(f"InvokeMode must be BUFFERED or RESPONSE_STREAM, got {mode!r}")
        out["InvokeMode"] = mode
    return out


def url_of(request: Request, url_id: str) -> str:
    """Return the URL a function URL is served at, on the host the caller used."""
    return f"{str(request.base_url).rstrip('/')}/{URL_PREFIX}/{url_id}/"


def url_shape(request: Request, names: Names, row: Resource) -> dict[str, Any]:
    """Return Lambda's FunctionUrlConfig for a stored URL."""
    doc = row.document
    return {
        "FunctionUrl": url_of(request, row.key),
        "FunctionArn": names.function_arn(row.function, row.qualifier or None),
        "AuthType": doc["AuthType"],
        "Cors": doc.get("Cors") or {},
        "CreationTime": _iso(row.created_at),
        "LastModifiedTime": _iso(row.updated_at),
        "InvokeMode": doc.get("InvokeMode", "BUFFERED"),
    }


async def _find(node: Node, name: str, qualifier: str) -> Resource | None:
    rows = await node.run_blocking(node.stores.lambda_meta.list, URL, name, qualifier)
    return rows[0] if rows else None


def _no_url(names: Names, name: str, qualifier: str) -> LambdaError:
    return LambdaError("ResourceNotFoundException", 404,
                       f"The resource you requested does not exist: no function URL for"
                       f" {names.function_arn(name, qualifier or None)}")  # fmt: skip


async def _target(request: Request) -> tuple[Node, Names, str, str]:
    node = node_of(request)
    names, name, qualifier = target_of(request)
    stored = _url_qualifier(qualifier)
    await record_of(node, names, name, qualifier)
    return node, names, name, stored


# --- the configuration operations --------------------------------------------------------


async def create_url(request: Request) -> Response:
    """POST /2021-10-31/functions/{name}/url (CreateFunctionUrlConfig): 201."""
    node, names, name, qualifier = await _target(request)
    data = await body_of(request)
    settings = _settings(data, {"InvokeMode": "BUFFERED", "Cors": {}})
    if "AuthType" not in settings:
        raise invalid_parameter("AuthType is required (NONE or AWS_IAM)")
    if await _find(node, name, qualifier) is not None:
        raise LambdaError("ResourceConflictException", 409,
                          f"Failed to create function url config for [functionArn ="
                          f" {names.function_arn(name, qualifier or None)}]. Error message:"
                          " FunctionUrlConfig exists for this Lambda function")  # fmt: skip
    url_id = secrets.token_hex(16)  # 32 characters, as Lambda's url-id
    row = await node.run_blocking(
        lambda: node.stores.lambda_meta.put(URL, name, qualifier, url_id, settings, create=True)
    )
    assert row is not None
    shape = url_shape(request, names, row)
    shape.pop("LastModifiedTime")
    return ok(shape, 201)


async def get_url(request: Request) -> Response:
    """GET /2021-10-31/functions/{name}/url (GetFunctionUrlConfig)."""
    node, names, name, qualifier = await _target(request)
    row = await _find(node, name, qualifier)
    if row is None:
        raise _no_url(names, name, qualifier)
    return ok(url_shape(request, names, row))


async def update_url(request: Request) -> Response:
    """PUT /2021-10-31/functions/{name}/url (UpdateFunctionUrlConfig)."""
    node, names, name, qualifier = await _target(request)
    row = await _find(node, name, qualifier)
    if row is None:
        raise _no_url(names, name, qualifier)
    settings = _settings(await body_of(request), row.document)
    updated = await node.run_blocking(
        lambda: node.stores.lambda_meta.put(URL, name, qualifier, row.key, settings)
    )
    assert updated is not None
    return ok(url_shape(request, names, updated))


async def delete_url(request: Request) -> Response:
    """DELETE /2021-10-31/functions/{name}/url (DeleteFunctionUrlConfig): 204."""
    node, names, name, qualifier = await _target(request)
    if not await node.run_blocking(node.stores.lambda_meta.delete, URL, name, qualifier):
        raise _no_url(names, name, qualifier)
    return Response(status_code=204)


async def list_urls(request: Request) -> Response:
    """GET /2021-10-31/functions/{name}/urls (ListFunctionUrlConfigs)."""
    node = node_of(request)
    names, name, _ = target_of(request)
    await record_of(node, names, name, None)
    rows = await node.run_blocking(node.stores.lambda_meta.list, URL, name)
    return ok({"FunctionUrlConfigs": [url_shape(request, names, r) for r in rows]})


# --- serving a URL ---------------------------------------------------------------------------


def _forbidden() -> Response:
    return Response(json.dumps({"Message": "Forbidden"}), status_code=403,
                    media_type="application/json",
                    headers={"x-amzn-ErrorType": "AccessDeniedException"})  # fmt: skip


def _cors_headers(cors: dict[str, Any], origin: str | None) -> dict[str, str]:
    origins = cors.get("AllowOrigins") or []
    if not origin or not ("*" in origins or origin in origins):
        return {}
    out = {"Access-Control-Allow-Origin": "*" if "*" in origins else origin}
    if cors.get("AllowCredentials"):
        out["Access-Control-Allow-Credentials"] = "true"
        out["Access-Control-Allow-Origin"] = origin
    if cors.get("ExposeHeaders"):
        out["Access-Control-Expose-Headers"] = ",".join(cors["ExposeHeaders"])
    if "*" not in origins:
        out["Vary"] = "Origin"
    return out


def _preflight(cors: dict[str, Any], request: Request) -> Response:
    headers = _cors_headers(cors, request.headers.get("origin"))
    if headers:
        headers["Access-Control-Allow-Methods"] = ",".join(cors.get("AllowMethods") or ["*"])
        if cors.get("AllowHeaders"):
            headers["Access-Control-Allow-Headers"] = ",".join(cors["AllowHeaders"])
        if cors.get("MaxAge"):
            headers["Access-Control-Max-Age"] = str(cors["MaxAge"])
    return Response(status_code=200, headers=headers)


def _relative(request: Request, url_id: str) -> Request:
    """Return the request as the function sees it: the path relative to its URL."""
    prefix = f"/{URL_PREFIX}/{url_id}"
    scope = dict(request.scope)
    scope["path"] = request.url.path[len(prefix) :] or "/"
    raw = bytes(scope.get("raw_path") or b"")
    scope["raw_path"] = raw[len(prefix) :] or b"/"
    return Request(scope, request.receive)


async def serve_url(request: Request) -> Response:
    """Any method on /lambda-url/{url_id}[/path]: the function URL's invocation."""
    node = node_of(request)
    url_id = request.path_params["url_id"]
    rows = await node.run_blocking(node.stores.lambda_meta.list, URL, None, None, url_id)
    if not rows:
        return Response(json.dumps({"Message": "Not Found"}), status_code=404,
                        media_type="application/json")  # fmt: skip
    row = rows[0]
    doc = row.document
    cors = doc.get("Cors") or {}
    if (
        request.method == "OPTIONS"
        and cors
        and request.headers.get("access-control-request-method")
    ):
        return _preflight(cors, request)
    try:
        resolved = node.resolve(row.function, row.qualifier or None)
    except FunctionNotFound:
        return Response(json.dumps({"Message": "Not Found"}), status_code=404,
                        media_type="application/json")  # fmt: skip
    fn = resolved.deployed
    try:
        body = await read_body(request, fn.limits.max_request_bytes)
    except FireboxError as exc:
        return error_response(exc, request.headers.get("accept"))
    caller: str | None = None
    if doc["AuthType"] == "AWS_IAM":
        try:
            signed = sigv4.from_asgi(request.scope, body)
            caller, _ = request.app.state.authenticator.signed(signed, "lambda")
        except sigv4.SigV4Error:
            return _forbidden()
    elif not allows_public_url(await statements(node, row.function, row.qualifier or None)):
        return _forbidden()
    authenticator = request.app.state.authenticator
    firebox_bearer = authenticator.names_a_key(request.headers.get("authorization"))
    request_id = str(uuid.uuid4())
    event = function_url_event(
        _relative(request, url_id), body, request_id, fn.name, firebox_bearer
    )
    context = event["requestContext"]
    context["apiId"] = url_id
    context["domainPrefix"] = url_id
    if caller is not None:
        context["accountId"] = node.config.account_id
        context["authorizer"] = {"iam": {
            "accessKey": caller, "accountId": node.config.account_id, "callerId": caller,
            "cognitoIdentity": None, "principalOrgId": None,
            "userArn": f"arn:aws:iam::{node.config.account_id}:user/{caller}",
            "userId": caller,
        }}  # fmt: skip
    result = await node.invoke(fn.name, json.dumps(event).encode(), request_id=request_id,
                               resolved=resolved)  # fmt: skip
    headers = {**invocation_headers(result, tail=False), "x-amzn-RequestId": request_id}
    headers.update(_cors_headers(cors, request.headers.get("origin")))
    if result.error is not None:
        return error_response(result.error, request.headers.get("accept"), headers)
    return function_url_response(result.output, headers)


def routes() -> list[Route]:
    """Return the routes of the function URL operations and of the URLs themselves."""
    base = "/2021-10-31/functions/{name}"
    table: list[tuple[str, Endpoint, str]] = [
        (base + "/url", create_url, "POST"),
        (base + "/url", get_url, "GET"),
        (base + "/url", update_url, "PUT"),
        (base + "/url", delete_url, "DELETE"),
        (base + "/urls", list_urls, "GET"),
    ]
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    return [
        *(Route(path, operation(endpoint), methods=[method]) for path, endpoint, method in table),
        Route(f"/{URL_PREFIX}/{{url_id}}", serve_url, methods=methods),
        Route(f"/{URL_PREFIX}/{{url_id}}/{{path:path}}", serve_url, methods=methods),
    ]
