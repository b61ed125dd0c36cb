"""The native API under /v1: functions, code, configuration, versions, aliases, provisioned
concurrency, tags, invoke, logs, usage, node stats (front-end layer)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from firebox.runtime.errors import BadRequest, PayloadTooLarge
from firebox.runtime.http.codec import (
    decode,
    encode,
    is_msgpack,
    json_to_msgpack,
    msgpack_to_json,
)
from firebox.runtime.http.errors import error_response, unavailable
from firebox.runtime.manifest import parse_toml
from firebox.runtime.node import Node
from firebox.runtime.specs import InvocationResult
from firebox.runtime.storage.registry import AliasRecord, FunctionRecord
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

MAX_ARTIFACT_BYTES = 256 * 1024 * 1024
MAX_JSON_BYTES = 1024 * 1024
LOG_TAIL_BYTES = 4096
HEALTH_PROBE_S = 2.0
INVOCATION_TYPES = ("RequestResponse", "Event", "DryRun")


async def read_body(request: Request, limit: int) -> bytes:
    """Read the request body, refusing (413) anything over `limit` bytes without buffering it."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge("Request body", int(declared), limit)
    chunks = bytearray()
    async for chunk in request.stream():
        chunks += chunk
        if len(chunks) > limit:
            raise PayloadTooLarge("Request body", len(chunks), limit)
    return bytes(chunks)


async def read_object(request: Request, limit: int = MAX_JSON_BYTES) -> dict[str, Any]:
    """Read a JSON or msgpack object body; raises BadRequest if it is not an object."""
    body = await read_body(request, limit)
    data = decode(body, request.headers.get("content-type")) if body.strip() else {}
    if not isinstance(data, dict):
        raise BadRequest("the body must be an object")
    return data


def node_of(request: Request) -> Node:
    """Return the node serving this app."""
    node: Node = request.app.state.node
    return node


def reply(request: Request, value: Any, status: int = 200) -> Response:
    """Encode `value` as the client asked (Accept: msgpack or JSON)."""
    body, media_type = encode(value, request.headers.get("accept"))
    return Response(body, status_code=status, media_type=media_type)


def describe(record: FunctionRecord) -> dict[str, Any]:
    """Return the public description of one version of a function."""
    return {
        "name": record.name,
        "version": record.version,
        "revision": record.revision,
        "runtime": record.kind,
        "digest": record.bundle_digest or record.digest,
        "description": record.description,
        "config": record.config,
        "tags": record.tags,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }


def describe_alias(alias: AliasRecord) -> dict[str, Any]:
    """Return the public description of an alias."""
    return {
        "function": alias.function,
        "name": alias.name,
        "version": alias.version,
        "routing": alias.routing,
        "description": alias.description,
        "created_at": alias.created_at,
        "updated_at": alias.updated_at,
    }


def code_of(data: dict[str, Any], required: bool = True) -> bytes | None:
    """Return the `code` (msgpack bytes) or `code_base64` (JSON) of a body."""
    code = data.get("code")
    if code is None and isinstance(data.get("code_base64"), str):
        try:
            code = base64.b64decode(data["code_base64"], validate=True)
        except ValueError:
            raise BadRequest("`code_base64` is not valid base64") from None
    if code is None and not required:
        return None
    if not isinstance(code, bytes):
        raise BadRequest("`code` (bytes, msgpack) or `code_base64` (JSON) is required")
    return code


def _str_map(value: Any, what: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise BadRequest(f"`{what}` must be an object of strings")
    return value


async def deploy(request: Request) -> Response:
    """POST /v1/functions: {manifest, code | code_base64, tags?}; creates or replaces $LATEST."""
    data = await read_object(request, MAX_ARTIFACT_BYTES)
    manifest = data.get("manifest")
    if isinstance(manifest, str):
        manifest = parse_toml(manifest)
    if not isinstance(manifest, dict):
        raise BadRequest("`manifest` must be an object (or firebox.toml text)")
    tags = _str_map(data["tags"], "tags") if "tags" in data else None
    record = await node_of(request).functions.deploy(manifest, code_of(data) or b"", tags)
    return reply(request, describe(record), status=201)


async def list_functions(request: Request) -> Response:
    """GET /v1/functions?after=NAME&limit=N: a page of functions and the `next` marker."""
    limit = _int_param(request, "limit", 1000, 1, 10_000)
    page = await node_of(request).functions.list_latest(
        request.query_params.get("after"), limit + 1
    )
    more = len(page) > limit
    page = page[:limit]
    return reply(
        request, {"functions": [describe(r) for r in page], "next": page[-1].name if more else None}
    )


async def get_function(request: Request) -> Response:
    """GET /v1/functions/{name}: $LATEST, its versions, aliases and ready instances."""
    node = node_of(request)
    name = request.path_params["name"]
    out = describe(await node.functions.get(name))
    out["versions"] = [describe(v) for v in await node.functions.published(name)]
    out["aliases"] = [describe_alias(a) for a in await node.functions.aliases(name)]
    out["pool"] = await node.pool_stats(name)
    return reply(request, out)


async def delete_function(request: Request) -> Response:
    """DELETE /v1/functions/{name}: the function, its versions, aliases and artifacts."""
    await node_of(request).functions.delete(request.path_params["name"])
    return Response(status_code=204)


async def update_code(request: Request) -> Response:
    """PUT /v1/functions/{name}/code: {code | code_base64}; $LATEST's configuration stays."""
    data = await read_object(request, MAX_ARTIFACT_BYTES)
    record = await node_of(request).functions.update_code(
        request.path_params["name"], code_of(data) or b""
    )
    return reply(request, describe(record))


async def update_config(request: Request) -> Response:
    """PATCH /v1/functions/{name}/configuration: the keys to change (manifest names)."""
    data = await read_object(request)
    record = await node_of(request).functions.update_config(request.path_params["name"], data)
    return reply(request, describe(record))


async def publish(request: Request) -> Response:
    """POST /v1/functions/{name}/versions: {description?}; publishes $LATEST."""
    data = await read_object(request)
    record = await node_of(request).functions.publish(
        request.path_params["name"], str(data.get("description", ""))
    )
    return reply(request, describe(record), status=201)


async def list_versions(request: Request) -> Response:
    """GET /v1/functions/{name}/versions: $LATEST and every published version."""
    return reply(
        request,
        {
            "versions": [
                describe(v)
                for v in await node_of(request).functions.versions(request.path_params["name"])
            ]
        },
    )


async def list_aliases(request: Request) -> Response:
    """GET /v1/functions/{name}/aliases."""
    node = node_of(request)
    name = request.path_params["name"]
    await node.functions.get(name)
    return reply(
        request, {"aliases": [describe_alias(a) for a in await node.functions.aliases(name)]}
    )


def _routing(data: dict[str, Any]) -> dict[str, float] | None:
    routing = data.get("routing")
    if routing is None:
        return None
    if not isinstance(routing, dict):
        raise BadRequest("`routing` must map version -> weight (0..1)")
    try:
        return {str(k): float(v) for k, v in routing.items()}
    except (TypeError, ValueError):
        raise BadRequest("`routing` weights must be numbers") from None


async def create_alias(request: Request) -> Response:
    """POST /v1/functions/{name}/aliases: {name, version, routing?, description?}."""
    data = await read_object(request)
    if not isinstance(data.get("name"), str) or "version" not in data:
        raise BadRequest("`name` and `version` are required")
    alias = await node_of(request).functions.put_alias(
        request.path_params["name"], data["name"], str(data["version"]), _routing(data),
        data.get("description"), create=True,
    )  # fmt: skip
    return reply(request, describe_alias(alias), status=201)


async def get_alias(request: Request) -> Response:
    """GET /v1/functions/{name}/aliases/{alias}."""
    node = node_of(request)
    name, alias_name = request.path_params["name"], request.path_params["alias"]
    await node.functions.get(name)
    alias = await node.functions.alias(name, alias_name)
    if alias is None:
        from firebox.runtime.errors import FunctionNotFound

        raise FunctionNotFound(f"{name}:{alias_name}")
    return reply(request, describe_alias(alias))


async def update_alias(request: Request) -> Response:
    """PUT /v1/functions/{name}/aliases/{alias}: {version?, routing?, description?}."""
    node = node_of(request)
    data = await read_object(request)
    name, alias_name = request.path_params["name"], request.path_params["alias"]
    current = await node.functions.alias(name, alias_name)
    version = str(data.get("version", current.version if current else ""))
    alias = await node.functions.put_alias(
        name, alias_name, version, _routing(data), data.get("description"), create=False
    )
    return reply(request, describe_alias(alias))


async def delete_alias(request: Request) -> Response:
    """DELETE /v1/functions/{name}/aliases/{alias}."""
    await node_of(request).functions.delete_alias(
        request.path_params["name"], request.path_params["alias"]
    )
    return Response(status_code=204)


async def get_provisioned(request: Request) -> Response:
    """GET /v1/functions/{name}/provisioned: per qualifier, requested and ready instances."""
    return reply(
        request,
        {
            "provisioned": await node_of(request).functions.provisioned_status(
                request.path_params["name"]
            )
        },
    )


async def put_provisioned(request: Request) -> Response:
    """PUT /v1/functions/{name}/provisioned: {qualifier, count}."""
    data = await read_object(request)
    count = data.get("count")
    if not isinstance(count, int) or isinstance(count, bool):
        raise BadRequest("`count` (an integer) is required")
    node = node_of(request)
    name = request.path_params["name"]
    await node.functions.set_provisioned(name, str(data.get("qualifier", "$LATEST")), count)
    return reply(request, {"provisioned": await node.functions.provisioned_status(name)})


async def put_tags(request: Request) -> Response:
    """PUT /v1/functions/{name}/tags: {tags: {k: v}} replaces the tags."""
    data = await read_object(request)
    node = node_of(request)
    name = request.path_params["name"]
    await node.functions.set_tags(name, _str_map(data.get("tags", {}), "tags"))
    return reply(request, describe(await node.functions.get(name)))


def invocation_headers(result: InvocationResult, tail: bool) -> dict[str, str]:
    """Return the headers every invocation response carries."""
    headers = {
        "X-Firebox-Request-Id": result.request_id,
        "X-Firebox-Executed-Version": result.version,
        "X-Firebox-Warm": "true" if result.warm else "false",
        "X-Firebox-Duration-Ms": f"{result.duration_s * 1000:.3f}",
    }
    if tail:
        data = result.log.encode()[-LOG_TAIL_BYTES:]
        headers["X-Firebox-Log-Result"] = base64.b64encode(data).decode()
    return headers


async def invoke(request: Request) -> Response:
    """POST /v1/functions/{name[:qualifier]}/invoke: the body is the event (JSON or msgpack).

    `X-Firebox-Invocation-Type`: RequestResponse (default), Event (202, run later),
    DryRun (204: the function exists and the payload is acceptable).
    """
    node = node_of(request)
    kind = request.headers.get("x-firebox-invocation-type", "RequestResponse")
    if kind not in INVOCATION_TYPES:
        raise BadRequest(
            f"invocation type must be one of {', '.join(INVOCATION_TYPES)}, got {kind!r}"
        )
    qualifier = request.query_params.get("qualifier")
    resolved = node.resolve(request.path_params["name"], qualifier)
    fn = resolved.deployed
    content_type = request.headers.get("content-type")
    body = await read_body(request, fn.limits.max_request_bytes)
    if not body.strip():
        payload = b"{}"
    elif is_msgpack(content_type):
        payload = msgpack_to_json(body)
    else:
        decode(body, content_type)  # 400 on malformed JSON, before anything runs
        payload = body
    if kind == "DryRun":
        return Response(status_code=204, headers={"X-Firebox-Executed-Version": fn.version})
    if kind == "Event":
        request_id = await node.enqueue(fn.name, resolved.qualifier, payload,
                                        request.headers.get("x-firebox-idempotency-key"),
                                        resolved=resolved)  # fmt: skip
        return reply(request, {"request_id": request_id, "status": "accepted"}, status=202)
    # The version picked above (a weighted alias picks at random) is the one that runs.
    result = await node.invoke(
        fn.name, payload, export=request.query_params.get("export"), resolved=resolved
    )
    accept = request.headers.get("accept")
    if not accept or accept.strip() == "*/*":
        accept = content_type  # answer in the encoding the caller used
    headers = invocation_headers(result, request.query_params.get("log") == "tail")
    if result.error is not None:
        return error_response(result.error, accept, headers)
    if is_msgpack(accept):
        return Response(
            json_to_msgpack(result.output), media_type="application/msgpack", headers=headers
        )
    return Response(result.output, media_type="application/json", headers=headers)


def _float_param(request: Request, name: str) -> float | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except ValueError:
        raise BadRequest(f"`{name}` must be a Unix timestamp (seconds), got {raw!r}") from None


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise BadRequest(f"`{name}` must be an integer between {low} and {high}, got {raw!r}")
    return int(raw)


async def get_logs(request: Request) -> Response:
    """GET /v1/functions/{name}/logs (or /v1/logs, every function's)
    ?since&until&request_id&version&limit[&follow=1].

    With follow=1 the response streams NDJSON records as invocations happen (until the
    client disconnects or `timeout` seconds pass, default 1 hour).
    """
    node = node_of(request)
    name = request.path_params.get("name")
    query: dict[str, Any] = {
        "since": _float_param(request, "since"),
        "until": _float_param(request, "until"),
        "request_id": request.query_params.get("request_id"),
        "version": request.query_params.get("version"),
        "limit": _int_param(request, "limit", 100, 1, 10_000),
    }

    async def read(**window: Any) -> list[dict[str, Any]]:
        if name:
            return await node.logs(name, **window)
        await node.recorder.flush()
        rows = await asyncio.to_thread(node.telemetry.logs, None, **window)
        return [r.to_dict() for r in rows]

    records = await read(**query)
    if request.query_params.get("follow") not in ("1", "true"):
        return reply(request, {"logs": records})
    timeout = _float_param(request, "timeout") or 3600.0

    async def stream() -> AsyncIterator[bytes]:
        last = records[-1]["id"] if records else 0
        for record in records:
            yield json.dumps(record).encode() + b"\n"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await request.is_disconnected():
                return
            await asyncio.sleep(0.25)
            # `since` stays: with an empty first window `last` is 0, and dropping it
            # would replay the whole history.
            for record in await read(**{**query, "after_id": last, "limit": 1000}):
                last = record["id"]
                yield json.dumps(record).encode() + b"\n"

    return StreamingResponse(stream(), media_type="application/x-ndjson")


async def get_usage(request: Request) -> Response:
    """GET /v1/functions/{name}/usage or /v1/usage ?since&until[&records=1]."""
    since = _float_param(request, "since")
    until = _float_param(request, "until")
    records = request.query_params.get("records") in ("1", "true")
    result = await node_of(request).usage(request.path_params.get("name"), since, until, records)
    return reply(request, result)


async def node_stats(request: Request) -> Response:
    """GET /v1/node: workers, compiled-cache counters, restarts, registry."""
    return reply(request, await node_of(request).stats())


async def healthz(request: Request) -> Response:
    """GET /healthz: 200 while the node has at least one live worker and reaches its
    registry database; 503 (saying which) otherwise."""
    node = node_of(request)
    alive = node.workers_alive()
    body: dict[str, Any] = {"status": "ok", "workers": alive, "registry": "ok"}
    try:
        await asyncio.wait_for(asyncio.to_thread(_ping, node), timeout=HEALTH_PROBE_S)
    except Exception as exc:
        down = unavailable(exc)
        body["registry"] = down.message if down else f"unreachable ({type(exc).__name__})"
    if not alive or body["registry"] != "ok":
        body["status"] = "degraded"
        return reply(request, body, 503)
    return reply(request, body)


def _ping(node: Node) -> None:
    with node.registry.engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")


def routes() -> list[Route]:
    """Return the native API's routes."""
    fn = "/v1/functions/{name}"
    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/v1/node", node_stats, methods=["GET"]),
        Route("/v1/usage", get_usage, methods=["GET"]),
        Route("/v1/logs", get_logs, methods=["GET"]),
        Route("/v1/functions", deploy, methods=["POST"]),
        Route("/v1/functions", list_functions, methods=["GET"]),
        Route(fn, get_function, methods=["GET"]),
        Route(fn, delete_function, methods=["DELETE"]),
        Route(fn + "/code", update_code, methods=["PUT"]),
        Route(fn + "/configuration", update_config, methods=["PATCH"]),
        Route(fn + "/versions", publish, methods=["POST"]),
        Route(fn + "/versions", list_versions, methods=["GET"]),
        Route(fn + "/aliases", list_aliases, methods=["GET"]),
        Route(fn + "/aliases", create_alias, methods=["POST"]),
        Route(fn + "/aliases/{alias}", get_alias, methods=["GET"]),
        Route(fn + "/aliases/{alias}", update_alias, methods=["PUT"]),
        Route(fn + "/aliases/{alias}", delete_alias, methods=["DELETE"]),
        Route(fn + "/provisioned", get_provisioned, methods=["GET"]),
        Route(fn + "/provisioned", put_provisioned, methods=["PUT"]),
        Route(fn + "/tags", put_tags, methods=["PUT"]),
        Route(fn + "/invoke", invoke, methods=["POST"]),
        Route(fn + "/logs", get_logs, methods=["GET"]),
        Route(fn + "/usage", get_usage, methods=["GET"]),
    ]
