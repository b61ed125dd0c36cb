"""The second error table: firebox error -> Lambda error type and status, in Lambda's
rest-json shape, so botocore raises the matching exception class (front-end layer)."""

from __future__ import annotations

import json
import uuid

from firebox.runtime.errors import (
    BadRequest,
    Conflict,
    FireboxError,
    Forbidden,
    FunctionNotFound,
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
)
from firebox.runtime.http import sigv4
from firebox.runtime.http.errors import status_of
from starlette.responses import Response


class LambdaError(FireboxError):
    """An error only the Lambda-compatible API reports; `code` is the Lambda error type."""

    code = "ServiceException"
    status = 500

    def __init__(self, code: str, status: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


def invalid_parameter(message: str) -> LambdaError:
    """Return Lambda's InvalidParameterValueException (400)."""
    return LambdaError("InvalidParameterValueException", 400, message)


def invalid_content(message: str) -> LambdaError:
    """Return Lambda's InvalidRequestContentException (400): the body is not valid JSON."""
    return LambdaError("InvalidRequestContentException", 400, message)


# firebox error type -> (Lambda error type, HTTP status). The nearest base in an error's
# MRO wins; anything else falls back on its native status (404 -> not found, ...).
LAMBDA_ERRORS: dict[type[FireboxError], tuple[str, int]] = {
    FunctionNotFound: ("ResourceNotFoundException", 404),
    BadRequest: ("InvalidParameterValueException", 400),
    InvalidManifest: ("InvalidParameterValueException", 400),
    InvalidArtifact: ("InvalidParameterValueException", 400),
    Conflict: ("ResourceConflictException", 409),
    PayloadTooLarge: ("RequestEntityTooLargeException", 413),
    Throttled: ("TooManyRequestsException", 429),
    NodeAtCapacity: ("TooManyRequestsException", 429),
    Unauthorized: ("UnrecognizedClientException", 403),
    Forbidden: ("InvalidSignatureException", 403),
    MethodNotAllowed: ("UnknownOperationException", 404),
    ServiceUnavailable: ("ServiceException", 503),
}
_BY_STATUS = {
    400: "InvalidParameterValueException",
    404: "ResourceNotFoundException",
    409: "ResourceConflictException",
    413: "RequestEntityTooLargeException",
    429: "TooManyRequestsException",
}
SIGV4_STATUS = {sigv4.UNRECOGNIZED: 403, sigv4.INVALID: 403, sigv4.INCOMPLETE: 400}

# The errorType a function error carries in an invocation's payload, as Lambda names them.
FUNCTION_ERROR_TYPES: dict[type[FireboxError], str] = {
    TimedOut: "Sandbox.Timedout",
    MemoryLimitExceeded: "Runtime.OutOfMemory",
    OutOfFuel: "Runtime.OutOfFuel",
    ResponseTooLarge: "Function.ResponseSizeTooLarge",
    InvocationError: "Runtime.ExitError",
}


def lambda_type(error: FireboxError) -> tuple[str, int]:
    """Return the Lambda error type and HTTP status of a firebox error."""
    if isinstance(error, LambdaError):
        return error.code, error.status
    for cls in type(error).__mro__:
        if cls in LAMBDA_ERRORS:
            return LAMBDA_ERRORS[cls]
    status = status_of(error)
    return _BY_STATUS.get(status, "ServiceException"), status if status in _BY_STATUS else 500


def function_error_type(error: FireboxError) -> str:
    """Return the `errorType` of an invocation's function error (not a HandlerError's own)."""
    for cls in type(error).__mro__:
        if cls in FUNCTION_ERROR_TYPES:
            return FUNCTION_ERROR_TYPES[cls]
    return "Runtime.Unknown"


def lambda_error_response(exc: Exception, request_id: str | None = None) -> Response:
    """Return Lambda's error response for `exc`: `x-amzn-ErrorType`, `{"Type", "message"}`.

    A SigV4Error keeps its own code; an exception that is not a FireboxError is a
    ServiceException (500) whose message names only its type.
    """
    extra: dict[str, str] = {}
    body: dict[str, object]
    if isinstance(exc, sigv4.SigV4Error):
        code, status, message = exc.code, SIGV4_STATUS.get(exc.code, 403), exc.message
    elif isinstance(exc, FireboxError):
        code, status = lambda_type(exc)
        message = exc.message
    else:
        code, status, message = "ServiceException", 500, f"internal error: {type(exc).__name__}"
    body = {"Type": "Service" if status >= 500 else "User", "message": message}
    if isinstance(exc, Throttled):
        extra["Retry-After"] = str(max(1, round(exc.retry_after)))
        body["retryAfterSeconds"] = extra["Retry-After"]
        body["Reason"] = "ReservedFunctionConcurrentInvocationLimitExceeded"
    elif isinstance(exc, NodeAtCapacity):
        body["Reason"] = "ConcurrentInvocationLimitExceeded"
    headers = {
        "x-amzn-ErrorType": code,
        "x-amzn-RequestId": request_id or str(uuid.uuid4()),
        **extra,
    }
    return Response(
        json.dumps(body), status_code=status, media_type="application/json", headers=headers
    )
