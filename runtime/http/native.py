"""The native API under /v1: deploy, list, get, delete, invoke, node stats (front-end layer)."""

from __future__ import annotations

import base64
import json
from typing import Any

from firebox.runtime.errors import BadRequest, FireboxError, PayloadTooLarge
from firebox.runtime.http.codec import decode, encode, is_msgpack, json_to_msgpack
from firebox.runtime.http.errors import error_response
from firebox.runtime.invoke import Deployed, InvocationResult
from firebox.runtime.manifest import parse_toml
from firebox.runtime.node import Node
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

MAX_ARTIFACT_BYTES = 256 * 1024 * 1024
LOG_TAIL_BYTES = 4096


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


def node_of(request: Request) -> Node:
    """Return the node serving this app."""
    node: Node = request.app.state.node
    return node


def reply(request: Request, value: Any, status: int = 200) -> Response:
    """Encode `value` as the client asked (Accept: msgpack or JSON)."""
    body, media_type = encode(value, request.headers.get("accept"))
    return Response(body, status_code=status, media_type=media_type)


def describe(fn: Deployed) -> dict[str, Any]:
    """Return the public description of a deployed function."""
    return {
        "name": fn.name,
        "version": fn.version,
        "revision": fn.revision,
        "runtime": fn.spec["kind"],
        "digest": fn.spec["digest"],
        "config": fn.config,
        "metrics": {
            "invocations": fn.invocations,
            "errors": fn.errors,
            "throttles": fn.throttles,
            "inflight": fn.inflight,
        },
    }


async def deploy(request: Request) -> Response:
    """POST /v1/functions: {manifest, code} (msgpack) or {manifest, code_base64} (JSON)."""
    data = decode(await read_body(request, MAX_ARTIFACT_BYTES), request.headers.get("content-type"))
    if not isinstance(data, dict):
        raise BadRequest("the body must be an object with `manifest` and `code`")
    manifest = data.get("manifest")
    if isinstance(manifest, str):
        manifest = parse_toml(manifest)
    if not isinstance(manifest, dict):
        raise BadRequest("`manifest` must be an object (or firebox.toml text)")
    code = data.get("code")
    if code is None and isinstance(data.get("code_base64"), str):
        try:
            code = base64.b64decode(data["code_base64"], validate=True)
        except ValueError:
            raise BadRequest("`code_base64` is not valid base64") from None
    if not isinstance(code, bytes):
        raise BadRequest("`code` (bytes, msgpack) or `code_base64` (JSON) is required")
    fn = await node_of(request).deploy(manifest, code)
    return reply(request, describe(fn), status=201)


async def list_functions(request: Request) -> Response:
    """GET /v1/functions."""
    return reply(request, {"functions": [describe(f) for f in node_of(request).all()]})


async def get_function(request: Request) -> Response:
    """GET /v1/functions/{name}: the function plus its pools' ready counts."""
    node = node_of(request)
    name = request.path_params["name"]
    out = describe(node.get(name))
    out["pool"] = await node.pool_stats(name)
    return reply(request, out)


async def delete_function(request: Request) -> Response:
    """DELETE /v1/functions/{name}."""
    await node_of(request).delete(request.path_params["name"])
    return Response(status_code=204)


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
    """POST /v1/functions/{name}/invoke: the body is the event (JSON or msgpack)."""
    node = node_of(request)
    fn = node.get(request.path_params["name"])
    content_type = request.headers.get("content-type")
    body = await read_body(request, fn.spec["limits"]["max_request_bytes"])
    if not body.strip():
        payload = b"{}"
    elif is_msgpack(content_type):
        payload = json.dumps(decode(body, content_type)).encode()
    else:
        decode(body, content_type)  # 400 on malformed JSON, before anything runs
        payload = body
    export = request.query_params.get("export")
    result = await node.invoke(fn.name, payload, export)
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


async def node_stats(request: Request) -> Response:
    """GET /v1/node: workers, compiled-cache counters, restarts."""
    return reply(request, await node_of(request).stats())


async def healthz(request: Request) -> Response:
    """GET /healthz: 200 while the node has at least one live worker."""
    node = node_of(request)
    alive = sum(1 for w in node.supervisor.workers if w.alive)
    status = 200 if alive else 503
    return reply(request, {"status": "ok" if alive else "degraded", "workers": alive}, status)


def routes() -> list[Route]:
    """Return the native API's routes."""
    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/v1/node", node_stats, methods=["GET"]),
        Route("/v1/functions", deploy, methods=["POST"]),
        Route("/v1/functions", list_functions, methods=["GET"]),
        Route("/v1/functions/{name}", get_function, methods=["GET"]),
        Route("/v1/functions/{name}", delete_function, methods=["DELETE"]),
        Route("/v1/functions/{name}/invoke", invoke, methods=["POST"]),
    ]


__all__ = ["FireboxError", "routes"]
