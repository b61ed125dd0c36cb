"""HTTP triggers: a request on a manifest route becomes Lambda's function-URL event (front-end layer).

The event is payload format 2.0 (`rawPath`, `headers`, `queryStringParameters`, `body`,
`isBase64Encoded`, `requestContext`), and the function's output is read as Lambda reads
it: `{statusCode, headers, body, cookies, isBase64Encoded}`, or any other JSON value
returned as a 200 `application/json` body.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from typing import Any
from urllib.parse import urlencode

from firebox.runtime.errors import (
    FunctionNotFound,
    InvalidFunctionResponse,
    MethodNotAllowed,
)
from firebox.runtime.http import reserved
from firebox.runtime.http.errors import error_response
from firebox.runtime.http.lambda_errors import lambda_error_response
from firebox.runtime.http.lambda_operations import refusal
from firebox.runtime.http.native import invocation_headers, node_of, read_body
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match

# An HTTP header name (RFC 9110 token) and the longest header text a response may carry.
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
MAX_HEADER_CHARS = 8192

TEXT_TYPES = ("text/", "application/json", "application/xml", "application/x-www-form-urlencoded")


def function_url_event(
    request: Request,
    body: bytes,
    request_id: str,
    function: str,
    firebox_bearer: bool = False,
) -> dict[str, Any]:
    """Return Lambda's function-URL (payload format 2.0) event for a request.

    Credentials sent to firebox never reach the guest: SigV4 headers and presigned query
    parameters are dropped, and `Authorization` when it is SigV4 or (`firebox_bearer`)
    a firebox access key.
    """
    headers: dict[str, str] = {}
    for key, value in reserved.forwarded_headers(request.headers.items(), firebox_bearer):
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    query: dict[str, str] = {}
    query_items = reserved.forwarded_query(request.query_params.multi_items())
    for key, value in query_items:
        query[key] = f"{query[key]},{value}" if key in query else value
    content_type = headers.get("content-type", "")
    is_text = not body or any(content_type.startswith(t) for t in TEXT_TYPES)
    try:
        text = body.decode() if is_text else None
    except UnicodeDecodeError:
        text = None
    now = time.time()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": request.url.path,
        "rawQueryString": urlencode(query_items) if query_items else "",
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": function,
            "domainName": headers.get("host", ""),
            "domainPrefix": headers.get("host", "").split(".")[0],
            "http": {
                "method": request.method,
                "path": request.url.path,
                "protocol": f"HTTP/{request.scope.get('http_version', '1.1')}",
                "sourceIp": request.client.host if request.client else "",
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": text is None,
    }
    if request.cookies:
        event["cookies"] = [f"{k}={v}" for k, v in request.cookies.items()]
    if query:
        event["queryStringParameters"] = query
    if body:
        event["body"] = text if text is not None else base64.b64encode(body).decode()
    return event


def _header_text(value: Any, what: str) -> str:
    """A header name or value as the response may carry it (Latin-1, no control characters)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidFunctionResponse(
            f"{what} must be a string or a number, not {type(value).__name__}"
        )
    text = str(value)
    if len(text) > MAX_HEADER_CHARS:
        raise InvalidFunctionResponse(f"{what} is longer than {MAX_HEADER_CHARS} characters")
    if any((ord(c) < 32 and c != "\t") or ord(c) == 127 or ord(c) > 255 for c in text):
        raise InvalidFunctionResponse(
            f"{what} {text[:40]!r} holds characters a header cannot carry"
        )
    return text


def _status(value: Any) -> int:
    if isinstance(value, str) and value.isdecimal() and len(value) == 3:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
        raise InvalidFunctionResponse(f"statusCode must be an integer 100-599, not {value!r:.40}")
    return value


def function_url_response(output: bytes, headers: dict[str, str]) -> Response:
    """Turn a function's output into the HTTP response, as Lambda's function URLs do.

    Raises InvalidFunctionResponse (a 502) for a response the shape cannot carry."""
    try:
        value = json.loads(output) if output else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        return Response(output, media_type="application/octet-stream", headers=headers)
    if isinstance(value, dict) and "statusCode" in value:
        status = _status(value["statusCode"])
        given = value.get("headers") or {}
        if not isinstance(given, dict):
            raise InvalidFunctionResponse("headers must be an object of names to values")
        out_headers = {
            _header_text(k, "a header name").lower(): _header_text(v, f"header {k!r:.40}")
            for k, v in given.items()
        }
        if not all(_TOKEN.match(k) for k in out_headers):
            raise InvalidFunctionResponse("a header name is empty or not an HTTP token")
        body = value.get("body", "")
        if value.get("isBase64Encoded") and isinstance(body, str):
            try:
                data = base64.b64decode(body, validate=True)
            except ValueError:
                raise InvalidFunctionResponse(
                    "isBase64Encoded is true but body is not base64"
                ) from None
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = json.dumps(body).encode()
            out_headers.setdefault("content-type", "application/json")
        cookies = value.get("cookies") or []
        if not isinstance(cookies, list):
            raise InvalidFunctionResponse("cookies must be a list of strings")
        set_cookies = [_header_text(c, "a cookie").encode("latin-1") for c in cookies]
        response = Response(data, status_code=status, headers={**headers, **out_headers})
        for cookie in set_cookies:
            response.raw_headers.append((b"set-cookie", cookie))
        return response
    return Response(output, media_type="application/json", headers=headers)


async def trigger(request: Request) -> Response:
    """Serve a request on a trigger route: 404 if no route, 405 if no route for the method."""
    node = node_of(request)
    path = request.url.path
    if reserved.is_lambda_path(path):
        # Never a user route, whatever routes exist (`/*` included).
        return lambda_error_response(refusal(request))
    if reserved.is_reserved(path):
        # A native API path: 405 if some route has it with another method, else 404.
        if any(r.matches(request.scope)[0] == Match.PARTIAL for r in request.app.router.routes):
            raise MethodNotAllowed(f"{request.method} is not allowed on {path}")
        raise FunctionNotFound(path, f"no API route {path}")
    matches = node.match_route(path)
    if not matches:
        raise FunctionNotFound(path, f"no function serves the route {path}")
    route = next((r for r in matches if request.method in r.trigger.methods), None)
    if route is None:
        allowed = sorted({m for r in matches for m in r.trigger.methods})
        return error_response(
            MethodNotAllowed(
                f"{request.method} is not allowed on {path}; allowed: {', '.join(allowed)}"
            ),
            headers={"Allow": ", ".join(allowed)},
        )
    authenticator = request.app.state.authenticator
    if route.trigger.auth == "key":
        # Any live key (the admin's or one it issued), as a bearer token.
        authenticator.bearer(request.headers.get("authorization"))
    firebox_bearer = route.trigger.auth == "key" or authenticator.names_a_key(
        request.headers.get("authorization")
    )
    resolved = node.resolve(route.function)
    fn = resolved.deployed
    body = await read_body(request, fn.limits.max_request_bytes)
    request_id = str(uuid.uuid4())
    event = function_url_event(request, body, request_id, fn.name, firebox_bearer)
    event_bytes = json.dumps(event).encode()
    result = await node.invoke(
        fn.name, event_bytes, export=route.trigger.export, request_id=request_id, resolved=resolved
    )
    headers = invocation_headers(result, tail=False)
    if result.error is not None:
        return error_response(result.error, request.headers.get("accept"), headers)
    return function_url_response(result.output, headers)
