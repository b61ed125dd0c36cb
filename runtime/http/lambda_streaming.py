"""InvokeWithResponseStream (the AWS event-stream encoding botocore parses) and the
deprecated InvokeAsync (front-end layer).

firebox runs a function to completion before it answers, so a streamed invocation is one
`PayloadChunk` with the whole output, then `InvokeComplete` (with the function's error, if
any, and the log tail when asked): a client reading the stream works unchanged, it just
sees the bytes at the end rather than as they are produced (docs/lambda.md).
"""

from __future__ import annotations

import json
import struct
import zlib

from firebox.runtime.http.lambda_api import (
    Endpoint,
    function_error_body,
    invocation_of,
    operation,
)
from firebox.runtime.http.lambda_errors import invalid_parameter
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

STREAM_TYPES = ("RequestResponse", "DryRun")
# The event-stream header value type of a string.
STRING = 7


def _headers(values: dict[str, str]) -> bytes:
    out = b""
    for name, value in values.items():
        key, data = name.encode(), value.encode()
        out += struct.pack("!B", len(key)) + key + struct.pack("!BH", STRING, len(data)) + data
    return out


def event_message(event_type: str, payload: bytes, content_type: str) -> bytes:
    """Return one event-stream message: prelude and its CRC, headers, payload, message CRC."""
    headers = _headers(
        {":event-type": event_type, ":content-type": content_type, ":message-type": "event"}
    )
    total = 12 + len(headers) + len(payload) + 4
    prelude = struct.pack("!II", total, len(headers))
    prelude += struct.pack("!I", zlib.crc32(prelude))
    body = prelude + headers + payload
    return body + struct.pack("!I", zlib.crc32(body))


async def invoke_with_response_stream(request: Request) -> Response:
    """POST /2021-11-15/functions/{name}/response-streaming-invocations."""
    kind = request.headers.get("x-amz-invocation-type") or "RequestResponse"
    if kind not in STREAM_TYPES:
        raise invalid_parameter(f"InvocationType must be one of {', '.join(STREAM_TYPES)}")
    call = await invocation_of(request, "InvokeWithResponseStream")
    if kind == "DryRun":
        return Response(status_code=204)
    result = await call.run(request)
    complete: dict[str, str] = {}
    error = function_error_body(result)
    output = result.output
    if error is not None:
        complete["ErrorCode"] = str(error.get("errorType", "Unhandled"))
        complete["ErrorDetails"] = str(error.get("errorMessage", ""))
        output = json.dumps(error).encode()
    if request.headers.get("x-amz-log-type") == "Tail":
        complete["LogResult"] = call.log_tail(result)
    stream = event_message("PayloadChunk", output, "application/octet-stream")
    stream += event_message("InvokeComplete", json.dumps(complete).encode(), "application/json")
    headers = {
        "X-Amz-Executed-Version": result.version,
        "x-amzn-RequestId": result.request_id,
        "Content-Type": "application/vnd.amazon.eventstream",
    }
    return Response(stream, headers=headers)


async def invoke_async(request: Request) -> Response:
    """POST /2014-11-13/functions/{name}/invoke-async (InvokeAsync, deprecated): 202."""
    call = await invocation_of(request, "InvokeAsync")
    request_id = await call.enqueue()
    return Response(
        json.dumps({"Status": 202}), status_code=202, media_type="application/json",
        headers={"x-amzn-RequestId": request_id},
    )  # fmt: skip


def routes() -> list[Route]:
    """Return the routes of the streamed and the deprecated async invoke."""
    table: list[tuple[str, Endpoint, str]] = [
        ("/2021-11-15/functions/{name}/response-streaming-invocations",
         invoke_with_response_stream, "POST"),
        ("/2014-11-13/functions/{name}/invoke-async", invoke_async, "POST"),
    ]  # fmt: skip
    return [Route(path, operation(endpoint), methods=[method]) for path, endpoint, method in table]
