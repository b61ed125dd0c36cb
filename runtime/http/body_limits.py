"""Request bodies bounded per route before anything buffers or authenticates them
(front-end layer).

Each route's cap is the largest body that route can use: deploy packages for the upload
routes, the platform's payload maximum for invokes and HTTP triggers (the function's own,
smaller `max_request_bytes` is checked where the body is read), batches for queues and
streams, and small JSON documents for everything else. The middleware refuses a
`Content-Length` over the cap before reading a byte, and stops a body without one as soon
as it passes the cap, so no layer behind it (SigV4 verification included) holds more.
"""

from __future__ import annotations

import re

from firebox.runtime import config
from firebox.runtime.errors import PayloadTooLarge
from firebox.runtime.http import reserved
from firebox.runtime.http.errors import error_response
from firebox.runtime.http.event_bodies import MAX_MESSAGE_BYTES
from firebox.runtime.http.lambda_errors import lambda_error_response
from firebox.runtime.http.native import MAX_ARTIFACT_BYTES, MAX_JSON_BYTES
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DATE = r"\d{4}-\d\d-\d\d"
# (methods, path pattern, cap): the first row that matches wins.
CAPS: tuple[tuple[frozenset[str], re.Pattern[str], int], ...] = tuple(
    (frozenset(methods.split()), re.compile(pattern), cap)
    for methods, pattern, cap in (
        ("POST", r"^/v1/functions/?$", MAX_ARTIFACT_BYTES),
        ("PUT", r"^/v1/functions/[^/]+/code/?$", MAX_ARTIFACT_BYTES),
        ("POST", rf"^/{DATE}/functions/?$", MAX_ARTIFACT_BYTES),
        ("PUT", rf"^/{DATE}/functions/[^/]+/code/?$", MAX_ARTIFACT_BYTES),
        ("POST", r"^/v1/functions/[^/]+/invoke/?$", config.MAX_PAYLOAD_BYTES),
        ("POST", rf"^/{DATE}/functions/[^/]+/(invocations|invoke-async)/?$",
         config.MAX_PAYLOAD_BYTES),
        ("POST PUT", r"^/v1/(queues|streams)/", 16 * MAX_MESSAGE_BYTES),
        ("PUT", r"^/v1/buckets/[^/]+/objects/", config.FIREBOX_BLOB_MAX_OBJECT_BYTES.get()),
    )
)  # fmt: skip


def body_cap(method: str, path: str) -> int:
    """Return the largest request body the route of `method path` accepts."""
    if not reserved.is_reserved(path):
        return config.MAX_PAYLOAD_BYTES  # an HTTP trigger
    for methods, pattern, cap in CAPS:
        if method in methods and pattern.match(path):
            return cap
    return MAX_JSON_BYTES


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit():
            return int(value)
    return None


def _refusal(error: PayloadTooLarge, scope: Scope) -> Response:
    if reserved.is_lambda_path(scope["path"]):
        return lambda_error_response(error)
    accept = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"accept"), None)
    return error_response(error, accept)


class BodyLimitMiddleware:
    """Refuses (413, in the route's API's error shape) a body larger than its route's cap."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = body_cap(scope["method"], scope["path"])
        declared = _declared_length(scope)
        if declared is not None and declared > cap:
            await _refusal(PayloadTooLarge("Request body", declared, cap), scope)(
                scope, receive, send
            )
            return
        received = 0
        started = False

        async def bounded() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    raise PayloadTooLarge("Request body", received, cap)
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, bounded, tracked)
        except PayloadTooLarge as exc:  # raised outside any handler (a middleware reading)
            if started:
                raise
            await _refusal(exc, scope)(scope, receive, send)
