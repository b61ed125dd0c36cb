"""One table: firebox error type -> HTTP status, and the error response (front-end layer)."""

from __future__ import annotations

from firebox.runtime.errors import (
    BadRequest,
    Conflict,
    FireboxError,
    Forbidden,
    FunctionNotFound,
    GuestTrap,
    HandlerError,
    InvalidArtifact,
    InvalidManifest,
    InvocationError,
    MemoryLimitExceeded,
    MethodNotAllowed,
    NodeAtCapacity,
    OutOfFuel,
    PayloadTooLarge,
    ResponseTooLarge,
    ServiceUnavailable,
    Throttled,
    TimedOut,
    Unauthorized,
    WorkerLost,
)
from firebox.runtime.events.queue import InvalidReceiptHandle, QueueAlreadyExists, QueueNotFound
from firebox.runtime.events.stream import ShardNotFound, StreamAlreadyExists, StreamNotFound
from firebox.runtime.http.codec import encode
from firebox.runtime.storage.mappings import MappingNotFound
from firebox.runtime.storage.schedules import ScheduleNotFound
from starlette.responses import Response

# Errors the caller caused are 4xx; errors the function caused are 5xx of the gateway
# family (the node worked, the function did not), never a bare 500.
STATUS: dict[type[FireboxError], int] = {
    BadRequest: 400,
    InvalidArtifact: 400,
    InvalidManifest: 400,
    Unauthorized: 401,
    Forbidden: 403,
    FunctionNotFound: 404,
    MethodNotAllowed: 405,
    Conflict: 409,
    PayloadTooLarge: 413,
    Throttled: 429,
    HandlerError: 502,
    GuestTrap: 502,
    OutOfFuel: 502,
    MemoryLimitExceeded: 502,
    ResponseTooLarge: 502,
    WorkerLost: 503,
    NodeAtCapacity: 503,
    ServiceUnavailable: 503,
    TimedOut: 504,
    InvocationError: 502,
    QueueNotFound: 404,
    StreamNotFound: 404,
    ShardNotFound: 404,
    QueueAlreadyExists: 409,
    StreamAlreadyExists: 409,
    InvalidReceiptHandle: 400,
    MappingNotFound: 404,
    ScheduleNotFound: 404,
}


def status_of(error: FireboxError) -> int:
    """Return the HTTP status of an error (its own type's, else its nearest base's)."""
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def error_response(
    error: FireboxError, accept: str | None = None, headers: dict[str, str] | None = None
) -> Response:
    """Return the response for `error`: `{"error": {...}}` with its status and headers."""
    extra = dict(headers or {})
    if isinstance(error, Throttled):
        extra["Retry-After"] = str(max(1, round(error.retry_after)))
    if isinstance(error, InvocationError):
        extra["X-Firebox-Function-Error"] = error.code
    body, media_type = encode({"error": error.to_dict()}, accept)
    return Response(body, status_code=status_of(error), media_type=media_type, headers=extra)
