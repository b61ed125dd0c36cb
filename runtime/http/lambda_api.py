"""The Lambda-compatible REST API: botocore's URIs and shapes for functions, invoke,
versions, aliases, concurrency, account settings and tags (front-end layer).

Every operation is served at the method and URI botocore's `lambda` service model gives
it; errors are answered in Lambda's rest-json shape (`lambda_errors`), so boto3 and the
AWS CLI raise the exception classes they would against AWS. docs/lambda.md lists what is
accepted, what is ignored and what is refused.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from firebox.runtime.errors import (
    BadRequest,
    FireboxError,
    FunctionNotFound,
    LambdaError,
    NodeAtCapacity,
    PayloadTooLarge,
)
from firebox.runtime.http.codec import decode_json
from firebox.runtime.http.lambda_code import (
    PACKAGE_MARK,
    PACKAGE_PATH,
    location,
    package_digest,
    store_package,
)
from firebox.runtime.http.lambda_errors import (
    function_error_type,
    invalid_content,
    invalid_parameter,
    lambda_error_response,
)
from firebox.runtime.http.lambda_layer_files import function_layers, layers_shape, merge_layers
from firebox.runtime.http.lambda_operations import refusal
from firebox.runtime.http.lambda_shapes import (
    DEFAULT_PYTHON_HANDLER,
    LOGGING_MARK,
    MEMORY_MARK,
    PYTHON_RUNTIME,
    STORAGE_MARK,
    TRACING_MARK,
    Names,
    alias_configuration,
    alias_revision_id,
    code_sha256,
    configuration,
    kind_of_runtime,
    module_code,
    reserved_concurrency,
    revision_id,
    zip_file,
)
from firebox.runtime.http.native import MAX_ARTIFACT_BYTES, MAX_JSON_BYTES, node_of, read_body
from firebox.runtime.http.reserved import LAMBDA_PREFIXES
from firebox.runtime.node import Node
from firebox.runtime.specs import InvocationResult, Resolved
from firebox.runtime.storage.registry import LATEST, FunctionRecord
from firebox.runtime.telemetry import framed_log
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

log = logging.getLogger("firebox.http")

# Lambda returns at most the last 4 KB of the log with LogType=Tail.
LOG_TAIL_BYTES = 4096
DEFAULT_PAGE = 50
MAX_PAGE = 10_000
INVOCATION_TYPES = ("RequestResponse", "Event", "DryRun")
# Lambda's MemorySize range; the linear-memory cap is min(MemorySize, FIREBOX_MAX_MEMORY_MB).
MIN_MEMORY_MB, MAX_MEMORY_MB = 128, 10_240
LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
# Fields that would change what runs, which firebox cannot honour: refused when set.
REFUSED_IF_SET = ("FileSystemConfigs", "ImageConfig", "CodeSigningConfigArn")
LAYERS_MARK = "Layers"  # metadata: JSON list of {Arn, CodeSize}, as GetFunction shows them

Endpoint = Callable[[Request], Awaitable[Response]]


def operation(endpoint: Endpoint) -> Endpoint:
    """Wrap an endpoint: Lambda's error shape for every failure, a request id on every reply."""

    @functools.wraps(endpoint)
    async def run(request: Request) -> Response:
        request_id = str(uuid.uuid4())
        request.state.request_id = request_id
        try:
            response = await endpoint(request)
        except Exception as exc:
            if not isinstance(exc, FireboxError):
                log.exception("Lambda API: unexpected error in %s", endpoint.__name__)
            return lambda_error_response(exc, request_id)
        response.headers.setdefault("x-amzn-RequestId", request_id)
        return response

    return run


def ok(value: Any, status: int = 200) -> Response:
    """Return a JSON response."""
    return Response(json.dumps(value), status_code=status, media_type="application/json")


async def body_of(request: Request, limit: int = MAX_JSON_BYTES) -> dict[str, Any]:
    """Read a JSON object body; InvalidRequestContentException when it is not one."""
    body = await read_body(request, limit)
    if not body.strip():
        return {}
    try:
        data = decode_json(body)
    except BadRequest as exc:
        raise invalid_content(f"Could not parse request body into json: {exc.message}") from None
    if not isinstance(data, dict):
        raise invalid_content("Could not parse request body into json: not an object")
    return data


def field_of(data: dict[str, Any], key: str, kind: type) -> Any:
    """Return `data[key]` (None when absent); InvalidParameterValueException for a wrong type."""
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise invalid_parameter(f"{key} has the wrong type: {value!r}")
    return value


def _page(request: Request) -> tuple[str | None, int]:
    raw = request.query_params.get("MaxItems")
    if raw is not None and (not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_PAGE):
        raise invalid_parameter(f"MaxItems must be between 1 and {MAX_PAGE}, got {raw!r}")
    return request.query_params.get("Marker") or None, int(raw) if raw else DEFAULT_PAGE


def _index_page(items: list[Any], request: Request) -> tuple[list[Any], str | None]:
    marker, limit = _page(request)
    start = int(marker) if marker and marker.isdigit() else 0
    page = items[start : start + limit]
    return page, str(start + limit) if start + limit < len(items) else None


def target_of(request: Request, key: str = "name") -> tuple[Names, str, str | None]:
    """Return the names of this node and the (name, qualifier) the request's path names."""
    names = Names(node_of(request).config, node_of(request).artifacts)
    name, qualifier = names.parse(request.path_params[key], request.query_params.get("Qualifier"))
    return names, name, qualifier


async def record_of(node: Node, names: Names, name: str, qualifier: str | None) -> FunctionRecord:
    """Return the version a qualifier names (an alias: the version it points at)."""
    try:
        return await node.functions.record(name, qualifier)
    except FunctionNotFound:
        raise names.not_found(name, qualifier) from None


def _check_revision(data: dict[str, Any], current: FunctionRecord) -> None:
    wanted = data.get("RevisionId")
    if wanted is not None and wanted != revision_id(current):
        raise LambdaError(
            "PreconditionFailedException", 412,
            "The Revision Id provided does not match the latest Revision Id."
            " Call the GetFunction/GetAlias API to retrieve the latest Revision Id",
        )  # fmt: skip


def _refuse(data: dict[str, Any]) -> None:
    for key in REFUSED_IF_SET:
        if data.get(key):
            raise invalid_parameter(f"{key} is not supported by firebox (see docs/lambda.md)")
    if data.get("PackageType", "Zip") != "Zip":
        raise invalid_parameter("only PackageType Zip is supported: firebox runs no images")


def _meta(record: FunctionRecord) -> dict[str, str]:
    return dict(record.config.get("metadata") or {})


def _environment(data: dict[str, Any]) -> dict[str, str] | None:
    env = field_of(data, "Environment", dict)
    if env is None:
        return None
    variables = env.get("Variables") or {}
    if not isinstance(variables, dict):
        raise invalid_parameter("Environment.Variables must be a map of strings")
    return {str(k): str(v) for k, v in variables.items()}


def _settings(data: dict[str, Any], max_memory_mb: int) -> dict[str, Any]:
    """Map the configuration fields both Create and UpdateConfiguration take to manifest keys."""
    out: dict[str, Any] = {}
    for field, key, kind in (("Description", "description", str), ("Timeout", "timeout", int)):
        value = field_of(data, field, kind)
        if value is not None:
            out[key] = value
    memory = field_of(data, "MemorySize", int)
    if memory is not None:
        if not MIN_MEMORY_MB <= memory <= MAX_MEMORY_MB:
            raise invalid_parameter(
                f"MemorySize must be between {MIN_MEMORY_MB} and {MAX_MEMORY_MB} MB, got {memory}"
            )
        # The linear-memory cap is the node's ceiling at most (wasm32 tops out at 4 GiB);
        # the MemorySize asked for is kept and returned (docs/lambda.md).
        out["memory"] = min(memory, max_memory_mb)
    env = _environment(data)
    if env is not None:
        out["environment"] = env
    return out


def _stored_settings(data: dict[str, Any], meta: dict[str, str]) -> dict[str, str]:
    """Return `meta` with the fields firebox stores and returns as sent (TracingConfig,
    EphemeralStorage, LoggingConfig, MemorySize) checked and added."""
    out = dict(meta)
    memory = field_of(data, "MemorySize", int)
    if memory is not None:
        out[MEMORY_MARK] = str(memory)
    tracing = field_of(data, "TracingConfig", dict)
    if tracing is not None:
        mode = tracing.get("Mode", "PassThrough")
        if mode not in ("Active", "PassThrough"):
            raise invalid_parameter(
                f"TracingConfig.Mode must be Active or PassThrough, got {mode!r}"
            )
        out[TRACING_MARK] = json.dumps({"Mode": mode})
    storage = field_of(data, "EphemeralStorage", dict)
    if storage is not None:
        size = storage.get("Size")
        if not isinstance(size, int) or isinstance(size, bool) or not 512 <= size <= 10240:
            raise invalid_parameter(f"EphemeralStorage.Size must be 512-10240 MB, got {size!r}")
        out[STORAGE_MARK] = json.dumps({"Size": size})
    logging_config = field_of(data, "LoggingConfig", dict)
    if logging_config is not None:
        out[LOGGING_MARK] = json.dumps(_logging_config(logging_config))
    return out


def _logging_config(value: dict[str, Any]) -> dict[str, str]:
    fmt = value.get("LogFormat", "Text")
    if fmt not in ("Text", "JSON"):
        raise invalid_parameter(f"LoggingConfig.LogFormat must be Text or JSON, got {fmt!r}")
    out = {"LogFormat": fmt}
    for key, allowed in (("ApplicationLogLevel", LOG_LEVELS), ("SystemLogLevel", LOG_LEVELS[2:5])):
        level = value.get(key)
        if level is not None:
            if level not in allowed:
                raise invalid_parameter(f"LoggingConfig.{key} must be one of {', '.join(allowed)}")
            out[key] = level
    group = value.get("LogGroup")
    if group is not None:
        if not isinstance(group, str) or not 1 <= len(group) <= 512:
            raise invalid_parameter("LoggingConfig.LogGroup must be a string of 1-512 characters")
        out["LogGroup"] = group
    return out


#: The tag that picks a function's isolation at CreateFunction (docs/python.md): "reuse"
#: keeps instances warm across invocations like Lambda's execution environments.
ISOLATION_TAG = "firebox:isolation"


def _package(kind: str, package: bytes) -> bytes:
    return package if kind == "python" else module_code(package)


async def _with_layers(
    node: Node, names: Names, kind: str, package: bytes, arns: list[Any] | None
) -> tuple[bytes, str | None]:
    """Return the code to deploy (a Python package with its layers merged in) and the
    metadata value of `Layers` ("" for none; None when `arns` is None: unchanged)."""
    if arns is None:
        return _package(kind, package), None
    if arns and kind != "python":
        raise invalid_parameter(
            "Layers are for Python functions: a WebAssembly module has no file system for them"
        )
    layers = await function_layers(node, names, arns)
    if not layers:
        return _package(kind, package), ""
    merged = await node.run_blocking(merge_layers, package, [data for _, _, data in layers])
    return merged, json.dumps([{"Arn": arn, "CodeSize": size} for arn, size, _ in layers])


def _layer_arns(meta: dict[str, str]) -> list[Any] | None:
    """Return the layer ARNs a function was deployed with (None when it has none)."""
    shown = layers_shape(meta)
    return [layer["Arn"] for layer in shown] if shown else None


def _set(meta: dict[str, str], key: str, value: str | None) -> None:
    if value:
        meta[key] = value
    elif value == "":
        meta.pop(key, None)


# --- functions -----------------------------------------------------------------------


async def create_function(request: Request) -> Response:
    """POST /2015-03-31/functions (CreateFunction)."""
    node = node_of(request)
    names = Names(node.config, node.artifacts)
    data = await body_of(request, MAX_ARTIFACT_BYTES)
    raw_name = field_of(data, "FunctionName", str)
    if not raw_name:
        raise invalid_parameter("FunctionName is required")
    name, qualifier = names.parse(raw_name)
    if qualifier:
        raise invalid_parameter("FunctionName must not carry a qualifier in CreateFunction")
    _refuse(data)
    code = field_of(data, "Code", dict) or {}
    if code.get("S3Bucket") or code.get("ImageUri"):
        raise invalid_parameter("only Code.ZipFile is supported (no S3 or image code)")
    package = zip_file(code.get("ZipFile"))
    runtime = field_of(data, "Runtime", str)
    kind = kind_of_runtime(runtime, package)
    handler = field_of(data, "Handler", str)
    tags = field_of(data, "Tags", dict)
    code, layers = await _with_layers(node, names, kind, package, field_of(data, "Layers", list))
    if await node.functions.find(name) is not None:
        raise LambdaError("ResourceConflictException", 409, f"Function already exist: {name}")
    metadata = {
        "Runtime": runtime or (PYTHON_RUNTIME if kind == "python" else "provided.al2023"),
        PACKAGE_MARK: await node.run_blocking(store_package, node, package),
        "CodeSize": str(len(package)),
        "CodeSha256": code_sha256(package),
        "Architectures": ",".join(field_of(data, "Architectures", list) or ["x86_64"]),
    }
    if field_of(data, "Role", str):
        metadata["Role"] = data["Role"]
    metadata = _stored_settings(data, metadata)
    manifest: dict[str, Any] = {"name": name, "runtime": kind, "metadata": metadata}
    manifest.update(_settings(data, node.config.max_memory_mb))
    if kind == "python":
        manifest["handler"] = handler or DEFAULT_PYTHON_HANDLER
    elif handler:
        metadata["Handler"] = handler
    if ISOLATION_TAG in (tags or {}):
        manifest["isolation"] = tags[ISOLATION_TAG]  # "reuse": Lambda's warm environments
    _set(metadata, LAYERS_MARK, layers)
    record = await node.functions.deploy(manifest, code, tags)
    if data.get("Publish"):
        record = await node.functions.publish(name)
    return ok(configuration(names, record), 201)


async def get_function(request: Request) -> Response:
    """GET /2015-03-31/functions/{name} (GetFunction)."""
    node = node_of(request)
    names, name, qualifier = target_of(request)
    record = await record_of(node, names, name, qualifier)
    latest = await node.functions.get(name)
    config = configuration(names, record)
    if qualifier and not qualifier.isdigit() and qualifier != LATEST:
        config["FunctionArn"] = names.function_arn(name, qualifier)
    out: dict[str, Any] = {
        "Configuration": config,
        "Code": {"RepositoryType": "S3"},
        "Tags": latest.tags,
    }
    url = location(request, record)
    if url is not None:
        out["Code"]["Location"] = url
    reserved = reserved_concurrency(latest)
    if reserved is not None:
        out["Concurrency"] = {"ReservedConcurrentExecutions": reserved}
    return ok(out)


async def get_configuration(request: Request) -> Response:
    """GET /2015-03-31/functions/{name}/configuration (GetFunctionConfiguration)."""
    names, name, qualifier = target_of(request)
    return ok(configuration(names, await record_of(node_of(request), names, name, qualifier)))


async def list_functions(request: Request) -> Response:
    """GET /2015-03-31/functions (ListFunctions): Marker/MaxItems, FunctionVersion=ALL."""
    node = node_of(request)
    names = Names(node.config, node.artifacts)
    marker, limit = _page(request)
    every = request.query_params.get("FunctionVersion") == "ALL"
    page = await node.functions.list_latest(marker, limit + 1)
    more = len(page) > limit
    page = page[:limit]
    functions = []
    for record in page:
        functions.append(configuration(names, record))
        if every:
            functions += [
                configuration(names, v) for v in await node.functions.published(record.name)
            ]
    out: dict[str, Any] = {"Functions": functions}
    if more:
        out["NextMarker"] = page[-1].name
    return ok(out)


async def update_code(request: Request) -> Response:
    """PUT /2015-03-31/functions/{name}/code (UpdateFunctionCode)."""
    node = node_of(request)
    names, name, _ = target_of(request)
    data = await body_of(request, MAX_ARTIFACT_BYTES)
    current = await record_of(node, names, name, None)
    _check_revision(data, current)
    if data.get("S3Bucket") or data.get("ImageUri"):
        raise invalid_parameter("only ZipFile is supported (no S3 or image code)")
    package = zip_file(data.get("ZipFile"))
    code, _ = await _with_layers(node, names, current.kind, package, _layer_arns(_meta(current)))
    if data.get("DryRun"):
        return ok(configuration(names, current))
    meta = {**_meta(current), "CodeSize": str(len(package)), "CodeSha256": code_sha256(package)}
    meta[PACKAGE_MARK] = await node.run_blocking(store_package, node, package)
    if field_of(data, "Architectures", list):
        meta["Architectures"] = ",".join(data["Architectures"])
    record = await node.functions.deploy({**current.config, "metadata": meta}, code)
    if data.get("Publish"):
        record = await node.functions.publish(name)
    return ok(configuration(names, record))


async def update_configuration(request: Request) -> Response:
    """PUT /2015-03-31/functions/{name}/configuration (UpdateFunctionConfiguration)."""
    node = node_of(request)
    names, name, _ = target_of(request)
    data = await body_of(request)
    current = await record_of(node, names, name, None)
    _check_revision(data, current)
    _refuse(data)
    changes = _settings(data, node.config.max_memory_mb)
    meta = _stored_settings(data, _meta(current))
    runtime = field_of(data, "Runtime", str)
    if runtime is not None:
        if kind_of_runtime(runtime, None) != current.kind:
            raise invalid_parameter(
                f"cannot change Runtime to {runtime}: the function's code is"
                f" {'Python' if current.kind == 'python' else 'a WebAssembly module'}"
            )
        meta["Runtime"] = runtime
    if field_of(data, "Role", str):
        meta["Role"] = data["Role"]
    changes["metadata"] = meta
    handler = field_of(data, "Handler", str)
    arns = field_of(data, "Layers", list)
    new_handler = handler and current.kind == "python" and handler != current.config.get("handler")
    if new_handler or arns is not None:
        # New code to check (a handler, layers): redeploy the package as uploaded, with them.
        package = await _uploaded(node, current)
        code, layers = await _with_layers(
            node, names, current.kind, package, arns if arns is not None else _layer_arns(meta)
        )
        _set(meta, LAYERS_MARK, layers)
        record = await node.functions.deploy(
            {**current.config, **changes, "handler": handler or current.config.get("handler")},
            code,
        )
    else:
        if handler and current.kind != "python":
            meta["Handler"] = handler
        record = await node.functions.update_config(name, changes)
    return ok(configuration(names, record))


async def _uploaded(node: Node, record: FunctionRecord) -> bytes:
    """Return the package a version was deployed with (as uploaded, else the code it runs)."""
    digest = package_digest(record)
    await node.run_blocking(node.prepare.ensure_local, digest)
    return await node.run_blocking(node.artifacts.get, digest)


async def delete_function(request: Request) -> Response:
    """DELETE /2015-03-31/functions/{name} (DeleteFunction); with a version as Qualifier,
    only that version (not one an alias routes to)."""
    node = node_of(request)
    names, name, qualifier = target_of(request)
    if qualifier and qualifier != LATEST:
        if not qualifier.isdigit():
            raise invalid_parameter(
                "DeleteFunction's Qualifier must be a version number: delete an alias with"
                " DeleteAlias"
            )
        try:
            await node.functions.delete_version(name, qualifier)
        except FunctionNotFound:
            raise names.not_found(name, qualifier) from None
        return Response(status_code=204)
    try:
        await node.functions.delete(name)
    except FunctionNotFound:
        raise names.not_found(name) from None
    return Response(status_code=204)


async def download_package(request: Request) -> Response:
    """GET /2015-03-31/functions/{name}/code-package?Qualifier= (GetFunction's Code.Location,
    presigned): the deployment package."""
    node = node_of(request)
    names, name, qualifier = target_of(request)
    record = await record_of(node, names, name, qualifier)
    digest = package_digest(record)
    await node.run_blocking(node.prepare.ensure_local, digest)
    data = await node.run_blocking(node.artifacts.get, digest)
    filename = f"{record.name}-{record.version}.zip".replace("$", "")
    return Response(data, media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})  # fmt: skip


# --- invoke --------------------------------------------------------------------------


def client_context_of(request: Request) -> str | None:
    """Return the caller's ClientContext (base64 JSON in X-Amz-Client-Context) decoded, or None."""
    raw = request.headers.get("x-amz-client-context")
    if not raw:
        return None
    try:
        return base64.b64decode(raw, validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        raise invalid_parameter(
            "Client context must be a valid Base64-encoded JSON object."
        ) from None


async def invocation_of(request: Request, operation_name: str = "InvokeFunction") -> Invocation:
    """Resolve an invoke request's function and read its JSON payload (an empty body is `{}`).

    Raises ResourceNotFoundException, RequestTooLargeException, InvalidRequestContentException.
    """
    node = node_of(request)
    names, name, qualifier = target_of(request)
    try:
        resolved = node.resolve(name, qualifier)
    except FunctionNotFound:
        raise names.not_found(name, qualifier) from None
    limit = resolved.deployed.limits.max_request_bytes
    try:
        payload = await read_body(request, limit)
    except PayloadTooLarge:
        # The modeled class botocore raises for Invoke (other operations answer
        # RequestEntityTooLargeException, as AWS does).
        raise LambdaError("RequestTooLargeException", 413,
                          f"Request must be smaller than {limit} bytes for the {operation_name}"
                          " operation") from None  # fmt: skip
    if not payload.strip():
        payload = b"{}"
    try:
        decode_json(payload)
    except BadRequest as exc:
        raise invalid_content(f"Could not parse request body into json: {exc.message}") from None
    return Invocation(node, name, resolved, payload)


class Invocation:
    """An invoke request, resolved and read: the node, the function's name, the version
    picked (a weighted alias picks once) and the payload."""

    def __init__(self, node: Node, name: str, resolved: Resolved, payload: bytes) -> None:
        self.node, self.name, self.resolved, self.payload = node, name, resolved, payload

    async def run(self, request: Request) -> InvocationResult:
        """Run the picked version synchronously; the result carries the function's error."""
        return await self.node.invoke(self.name, self.payload, resolved=self.resolved,
                                      request_id=request.state.request_id,
                                      client_context=client_context_of(request))  # fmt: skip

    async def enqueue(self) -> str:
        """Store the event for the async queue; returns its request id."""
        return await self.node.enqueue(self.name, self.resolved.qualifier, self.payload,
                                       resolved=self.resolved)  # fmt: skip

    def log_tail(self, result: InvocationResult) -> str:
        """Return Lambda's LogResult: the base64 of the framed log's last 4 KB."""
        memory_mb = self.resolved.deployed.limits.memory_mb
        log = framed_log(result, result.version, memory_mb, result.duration_s * 1000)
        return base64.b64encode(log.encode()[-LOG_TAIL_BYTES:]).decode()


def function_error_body(result: InvocationResult) -> dict[str, Any] | None:
    """Return Lambda's error payload of a failed invocation (None when it succeeded).

    Raises the error itself when it is the platform's limit (429), not the function's.
    """
    error = result.error
    if error is None:
        return None
    if isinstance(error, NodeAtCapacity):
        raise error
    body = getattr(error, "payload", None)
    if not isinstance(body, dict):
        body = {"errorMessage": f"RequestId: {result.request_id} Error: {error.message}",
                "errorType": function_error_type(error)}  # fmt: skip
    return body


async def invoke(request: Request) -> Response:
    """POST /2015-03-31/functions/{name}/invocations (Invoke)."""
    kind = request.headers.get("x-amz-invocation-type") or "RequestResponse"
    if kind not in INVOCATION_TYPES:
        raise invalid_parameter(f"InvocationType must be one of {', '.join(INVOCATION_TYPES)}")
    call = await invocation_of(request)
    if kind == "DryRun":
        return Response(status_code=204)
    if kind == "Event":
        request_id = await call.enqueue()
        return Response(status_code=202, headers={"x-amzn-RequestId": request_id})
    result = await call.run(request)
    headers = {"X-Amz-Executed-Version": result.version, "x-amzn-RequestId": result.request_id}
    if request.headers.get("x-amz-log-type") == "Tail":
        headers["X-Amz-Log-Result"] = call.log_tail(result)
    body = function_error_body(result)
    if body is None:
        return Response(result.output, media_type="application/json", headers=headers)
    headers["X-Amz-Function-Error"] = "Unhandled"
    return Response(json.dumps(body), media_type="application/json", headers=headers)


# --- versions and aliases ------------------------------------------------------------


async def publish_version(request: Request) -> Response:
    """POST /2015-03-31/functions/{name}/versions (PublishVersion)."""
    node = node_of(request)
    names, name, _ = target_of(request)
    data = await body_of(request)
    current = await record_of(node, names, name, None)
    _check_revision(data, current)
    wanted = field_of(data, "CodeSha256", str)
    actual = configuration(names, current)["CodeSha256"]
    if wanted and wanted != actual:
        raise invalid_parameter(
            f"CodeSHA256 ({wanted}) is different from current CodeSHA256 in $LATEST ({actual})."
            " Please try again with the CodeSHA256 in $LATEST."
        )
    record = await node.functions.publish(name, field_of(data, "Description", str) or "")
    return ok(configuration(names, record), 201)


async def list_versions(request: Request) -> Response:
    """GET /2015-03-31/functions/{name}/versions (ListVersionsByFunction)."""
    node = node_of(request)
    names, name, _ = target_of(request)
    try:
        records = await node.functions.versions(name)
    except FunctionNotFound:
        raise names.not_found(name) from None
    page, marker = _index_page(records, request)
    out: dict[str, Any] = {"Versions": [configuration(names, r) for r in page]}
    if marker:
        out["NextMarker"] = marker
    return ok(out)


def _routing(data: dict[str, Any]) -> dict[str, float] | None:
    routing = field_of(data, "RoutingConfig", dict)
    if routing is None:
        return None
    weights = routing.get("AdditionalVersionWeights") or {}
    if not isinstance(weights, dict):
        raise invalid_parameter("RoutingConfig.AdditionalVersionWeights must map version -> weight")
    try:
        return {str(k): float(v) for k, v in weights.items()}
    except (TypeError, ValueError):
        raise invalid_parameter("RoutingConfig weights must be numbers") from None


def _alias_not_found(names: Names, name: str, alias: str) -> LambdaError:
    arn = names.function_arn(name, alias)
    return LambdaError("ResourceNotFoundException", 404, f"Cannot find alias arn: {arn}")


async def create_alias(request: Request) -> Response:
    """POST /2015-03-31/functions/{name}/aliases (CreateAlias)."""
    node = node_of(request)
    names, name, _ = target_of(request)
    data = await body_of(request)
    alias, version = field_of(data, "Name", str), field_of(data, "FunctionVersion", str)
    if not alias or not version:
        raise invalid_parameter("Name and FunctionVersion are required")
    await record_of(node, names, name, None)
    record = await node.functions.put_alias(name, alias, version, _routing(data),
                                  field_of(data, "Description", str) or "", create=True)  # fmt: skip
    return ok(alias_configuration(names, record), 201)


async def get_alias(request: Request) -> Response:
    """GET /2015-03-31/functions/{name}/aliases/{alias} (GetAlias)."""
    node = node_of(request)
    names, name, _ = target_of(request)
    await record_of(node, names, name, None)
    record = await node.functions.alias(name, request.path_params["alias"])
    if record is None:
        raise _alias_not_found(names, name, request.path_params["alias"])
    return ok(alias_configuration(names, record))


async def update_alias(request: Request) -> Response:
    """PUT /2015-03-31/functions/{name}/aliases/{alias} (UpdateAlias)."""
    node = node_of(request)
    names, name, _ = target_of(request)
    alias = request.path_params["alias"]
    data = await body_of(request)
    await record_of(node, names, name, None)
    current = await node.functions.alias(name, alias)
    if current is None:
        raise _alias_not_found(names, name, alias)
    if data.get("RevisionId") not in (None, alias_revision_id(current)):
        raise LambdaError("PreconditionFailedException", 412,
                          "The Revision Id provided does not match the latest Revision Id.")  # fmt: skip
    version = field_of(data, "FunctionVersion", str) or current.version
    record = await node.functions.put_alias(name, alias, version, _routing(data),
                                  field_of(data, "Description", str), create=False)  # fmt: skip
    return ok(alias_configuration(names, record))


async def delete_alias(request: Request) -> Response:
    """DELETE /2015-03-31/functions/{name}/aliases/{alias} (DeleteAlias)."""
    node = node_of(request)
    names, name, _ = target_of(request)
    try:
        await node.functions.delete_alias(name, request.path_params["alias"])
    except FunctionNotFound:
        raise _alias_not_found(names, name, request.path_params["alias"]) from None
    return Response(status_code=204)


async def list_aliases(request: Request) -> Response:
    """GET /2015-03-31/functions/{name}/aliases (ListAliases), by FunctionVersion if given."""
    node = node_of(request)
    names, name, _ = target_of(request)
    await record_of(node, names, name, None)
    aliases = await node.functions.aliases(name)
    version = request.query_params.get("FunctionVersion")
    if version:
        aliases = [a for a in aliases if a.version == version]
    page, marker = _index_page(aliases, request)
    out: dict[str, Any] = {"Aliases": [alias_configuration(names, a) for a in page]}
    if marker:
        out["NextMarker"] = marker
    return ok(out)


async def unknown_operation(request: Request) -> Response:
    """Any other path under the Lambda API's prefixes: refused, naming the operation."""
    raise refusal(request)


def routes() -> list[Route]:
    """Return the routes of the function, invoke, version and alias operations."""
    fn = "/2015-03-31/functions/{name}"
    table: list[tuple[str, Endpoint, str]] = [
        ("/2015-03-31/functions", create_function, "POST"),
        ("/2015-03-31/functions/", list_functions, "GET"),
        ("/2015-03-31/functions", list_functions, "GET"),
        (fn, get_function, "GET"),
        (fn, delete_function, "DELETE"),
        (fn + "/configuration", get_configuration, "GET"),
        (fn + "/configuration", update_configuration, "PUT"),
        (fn + "/code", update_code, "PUT"),
        (fn + "/invocations", invoke, "POST"),
        (PACKAGE_PATH, download_package, "GET"),
        (fn + "/versions", publish_version, "POST"),
        (fn + "/versions", list_versions, "GET"),
        (fn + "/aliases", create_alias, "POST"),
        (fn + "/aliases", list_aliases, "GET"),
        (fn + "/aliases/{alias}", get_alias, "GET"),
        (fn + "/aliases/{alias}", update_alias, "PUT"),
        (fn + "/aliases/{alias}", delete_alias, "DELETE"),
    ]
    return [Route(path, operation(endpoint), methods=[method]) for path, endpoint, method in table]


def fallback_routes() -> list[Route]:
    """Return the catch-all routes of the Lambda prefixes (mount them after every operation)."""
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    return [
        Route(f"/{prefix}/{{rest:path}}", operation(unknown_operation), methods=methods)
        for prefix in LAMBDA_PREFIXES
    ]
