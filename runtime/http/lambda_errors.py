"""Lambda's error responses: a firebox error in Lambda's rest-json shape, so botocore raises
the matching exception class (front-end layer). Which type and status each error gets is
a column of the one table in `firebox.runtime.http.errors`."""

from __future__ import annotations

import json
import uuid

from firebox.runtime.errors import (
    FireboxError,
    LambdaError,
    NodeAtCapacity,
    ServiceUnavailable,
    Throttled,
)
from firebox.runtime.http import sigv4
from firebox.runtime.http.errors import RETRY_AFTER_S, shape_of, unavailable
from starlette.responses import Response


def invalid_parameter(message: str) -> LambdaError:
    """Return Lambda's InvalidParameterValueException (400)."""
    return LambdaError("InvalidParameterValueException", 400, message)


def invalid_content(message: str) -> LambdaError:
    """Return Lambda's InvalidRequestContentException (400): the body is not valid JSON."""
    return LambdaError("InvalidRequestContentException", 400, message)


SIGV4_STATUS = {sigv4.UNRECOGNIZED: 403, sigv4.INVALID: 403, sigv4.INCOMPLETE: 400}


def lambda_type(error: FireboxError) -> tuple[str, int]:
    """Return the Lambda error type and HTTP status of a firebox error (the table in
    `firebox.runtime.http.errors`; a LambdaError carries its own)."""
    if isinstance(error, LambdaError):
        return error.code, error.status
    shape = shape_of(error)
    return shape.lambda_type, shape.lambda_status


def function_error_type(error: FireboxError) -> str:
    """Return the `errorType` of an invocation's function error (not a HandlerError's own)."""
    return shape_of(error).function_error or "Runtime.Unknown"


def lambda_error_response(exc: Exception, request_id: str | None = None) -> Response:
    """Return Lambda's error response for `exc`: `x-amzn-ErrorType`, `{"Type", "message"}`.

    A SigV4Error keeps its own code; an exception that is not a FireboxError is a
    ServiceException (500) whose message names only its type.
    """
    extra: dict[str, str] = {}
    body: dict[str, object]
    down = unavailable(exc)
    if down is not None:
        exc = down
    if isinstance(exc, ServiceUnavailable):
        extra["Retry-After"] = str(RETRY_AFTER_S)
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
