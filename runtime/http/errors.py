"""One table: firebox error type -> native HTTP status, Lambda error type and function
`errorType`; and the native API's error response (front-end layer)."""

from __future__ import annotations

from dataclasses import dataclass

from firebox.runtime.errors import (
    AccessDenied,
    BadRequest,
    CapabilityDenied,
    ConditionFailed,
    Conflict,
    FireboxError,
    Forbidden,
    FunctionNotFound,
    GuestTrap,
    HandlerError,
    HostCallFailed,
    InvalidArtifact,
    InvalidFunctionResponse,
    InvalidManifest,
    InvalidReceiptHandle,
    InvalidSetting,
    InvocationError,
    ItemNotFound,
    KeyNotFound,
    MappingNotFound,
    MemoryLimitExceeded,
    MethodNotAllowed,
    NodeAtCapacity,
    OutOfFuel,
    PayloadTooLarge,
    QueueAlreadyExists,
    QueueNotFound,
    ResponseTooLarge,
    ScheduleNotFound,
    ServiceUnavailable,
    ShardNotFound,
    StreamAlreadyExists,
    StreamNotFound,
    Throttled,
    TimedOut,
    Unauthorized,
    WorkerLost,
)
from firebox.runtime.http.codec import encode
from starlette.responses import Response


@dataclass(frozen=True)
class ErrorShape:
    """How one error type is reported by each API.

    `status`: the native API's status. `lambda_type`, `lambda_status`: the Lambda-compatible
    API's `x-amzn-ErrorType` and status, chosen so botocore raises the matching exception.
    `function_error`: the `errorType` in an invocation's payload when the error ended the
    function (None for errors that are not function errors: `Runtime.Unknown`).
    """

    status: int
    lambda_type: str
    lambda_status: int
    function_error: str | None = None


_NOT_FOUND = ("ResourceNotFoundException", 404)
_CONFLICT = ("ResourceConflictException", 409)
_INVALID = ("InvalidParameterValueException", 400)
_SERVICE = ("ServiceException", 500)

# Errors the caller caused are 4xx; errors the function caused are 5xx of the gateway
# family (the node worked, the function did not), never a bare 500. Lambda has no 502 or
# 504: a function error there is a 200 with X-Amz-Function-Error, and what reaches the
# error path is a ServiceException. A type not listed takes its nearest base's row.
ERRORS: dict[type[FireboxError], ErrorShape] = {
    FireboxError: ErrorShape(500, *_SERVICE),
    InvalidSetting: ErrorShape(500, *_SERVICE),
    # --- the caller's errors
    BadRequest: ErrorShape(400, *_INVALID),
    InvalidArtifact: ErrorShape(400, *_INVALID),
    InvalidManifest: ErrorShape(400, *_INVALID),
    InvalidReceiptHandle: ErrorShape(400, *_INVALID),
    Unauthorized: ErrorShape(401, "UnrecognizedClientException", 403),
    Forbidden: ErrorShape(403, "InvalidSignatureException", 403),
    AccessDenied: ErrorShape(403, "AccessDeniedException", 403),
    CapabilityDenied: ErrorShape(403, "AccessDeniedException", 403),
    FunctionNotFound: ErrorShape(404, *_NOT_FOUND),
    KeyNotFound: ErrorShape(404, *_NOT_FOUND),
    QueueNotFound: ErrorShape(404, *_NOT_FOUND),
    StreamNotFound: ErrorShape(404, *_NOT_FOUND),
    ShardNotFound: ErrorShape(404, *_NOT_FOUND),
    MappingNotFound: ErrorShape(404, *_NOT_FOUND),
    ScheduleNotFound: ErrorShape(404, *_NOT_FOUND),
    ItemNotFound: ErrorShape(404, *_NOT_FOUND),
    MethodNotAllowed: ErrorShape(405, "UnknownOperationException", 404),
    Conflict: ErrorShape(409, *_CONFLICT),
    ConditionFailed: ErrorShape(412, *_CONFLICT),
    HostCallFailed: ErrorShape(502, *_SERVICE),
    QueueAlreadyExists: ErrorShape(409, *_CONFLICT),
    StreamAlreadyExists: ErrorShape(409, *_CONFLICT),
    PayloadTooLarge: ErrorShape(413, "RequestEntityTooLargeException", 413),
    Throttled: ErrorShape(429, "TooManyRequestsException", 429),
    # --- the node cannot take the call now
    ServiceUnavailable: ErrorShape(503, "ServiceException", 503),
    # --- the function's errors (`function_error` is Lambda's errorType for each)
    InvocationError: ErrorShape(502, *_SERVICE, "Runtime.ExitError"),
    HandlerError: ErrorShape(502, *_SERVICE, "Runtime.ExitError"),
    GuestTrap: ErrorShape(502, *_SERVICE, "Runtime.ExitError"),
    OutOfFuel: ErrorShape(502, *_SERVICE, "Runtime.OutOfFuel"),
    MemoryLimitExceeded: ErrorShape(502, *_SERVICE, "Runtime.OutOfMemory"),
    ResponseTooLarge: ErrorShape(502, *_SERVICE, "Function.ResponseSizeTooLarge"),
    InvalidFunctionResponse: ErrorShape(502, *_SERVICE, "Runtime.InvalidResponse"),
    TimedOut: ErrorShape(504, *_SERVICE, "Sandbox.Timedout"),
    WorkerLost: ErrorShape(503, *_SERVICE, "Runtime.ExitError"),
    NodeAtCapacity: ErrorShape(503, "TooManyRequestsException", 429, "Runtime.ExitError"),
}

#: The native status of each listed type (a view of ERRORS).
STATUS: dict[type[FireboxError], int] = {cls: shape.status for cls, shape in ERRORS.items()}


def shape_of(error: FireboxError) -> ErrorShape:
    """Return the row of an error's own type, else its nearest listed base's."""
    for cls in type(error).__mro__:
        if cls in ERRORS:
            return ERRORS[cls]
    return ERRORS[FireboxError]


def status_of(error: FireboxError) -> int:
    """Return the native API's HTTP status of an error."""
    return shape_of(error).status


# Storage errors that mean "cannot reach it now" (named, so this module imports neither
# SQLAlchemy nor the optional redis client): 503 with Retry-After, never a 500.
UNREACHABLE = {
    "sqlalchemy": ("OperationalError", "InterfaceError", "DisconnectionError", "TimeoutError"),
    "redis": ("ConnectionError", "TimeoutError", "BusyLoadingError"),
}
RETRY_AFTER_S = 1


def unreachable_types() -> list[type[BaseException]]:
    """Return the installed exception classes UNREACHABLE names (to register as handlers
    where a catch-all would log and drop the connection)."""
    import importlib

    found: list[type[BaseException]] = []
    for package, names in UNREACHABLE.items():
        module_name = {"sqlalchemy": "sqlalchemy.exc", "redis": "redis.exceptions"}[package]
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        found += [getattr(module, name) for name in names if hasattr(module, name)]
    return found


def unavailable(exc: BaseException) -> ServiceUnavailable | None:
    """Return the 503 of an exception raised because PostgreSQL, SQLite or Redis cannot
    be reached (or is busy) right now, else None."""
    for cls in type(exc).__mro__:
        package = cls.__module__.partition(".")[0]
        if cls.__name__ in UNREACHABLE.get(package, ()):
            backend = "the registry database" if package == "sqlalchemy" else "Redis"
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            return ServiceUnavailable(
                f"{backend} is unreachable right now ({type(exc).__name__}: {first});"
                f" retry in {RETRY_AFTER_S} s"
            )
    return None


def error_response(
    error: FireboxError, accept: str | None = None, headers: dict[str, str] | None = None
) -> Response:
    """Return the response for `error`: `{"error": {...}}` with its status and headers."""
    extra = dict(headers or {})
    if isinstance(error, Throttled):
        extra["Retry-After"] = str(max(1, round(error.retry_after)))
    if isinstance(error, ServiceUnavailable):
        extra.setdefault("Retry-After", str(RETRY_AFTER_S))
    if isinstance(error, InvocationError):
        extra["X-Firebox-Function-Error"] = error.code
    body, media_type = encode({"error": error.to_dict()}, accept)
    return Response(body, status_code=status_of(error), media_type=media_type, headers=extra)
