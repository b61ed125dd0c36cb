"""The one error table: native status, Lambda error type and status, function errorType."""

from __future__ import annotations

import json

import pytest
from firebox.runtime import errors as e
from firebox.runtime.errors import ERROR_TYPES, FireboxError
from firebox.runtime.http import sigv4
from firebox.runtime.http.errors import ERRORS, error_response, status_of
from firebox.runtime.http.lambda_errors import (
    function_error_type,
    lambda_error_response,
    lambda_type,
)


def _bare(cls: type[FireboxError]) -> FireboxError:
    # Each type's constructor takes different arguments; the table only looks at the type.
    err = FireboxError.__new__(cls)
    Exception.__init__(err, "m")
    err.message = "m"
    return err


# (type, native status, (Lambda type, Lambda status), function errorType): what each API
# answered before the table was one table, kept exactly.
EXPECTED = [
    (e.FireboxError, 500, ("ServiceException", 500), "Runtime.Unknown"),
    (e.InvalidSetting, 500, ("ServiceException", 500), "Runtime.Unknown"),
    (e.BadRequest, 400, ("InvalidParameterValueException", 400), "Runtime.Unknown"),
    (e.FunctionNotFound, 404, ("ResourceNotFoundException", 404), "Runtime.Unknown"),
    (e.KeyNotFound, 404, ("ResourceNotFoundException", 404), "Runtime.Unknown"),
    (e.InvalidArtifact, 400, ("InvalidParameterValueException", 400), "Runtime.Unknown"),
    (e.InvalidManifest, 400, ("InvalidParameterValueException", 400), "Runtime.Unknown"),
    (e.PayloadTooLarge, 413, ("RequestEntityTooLargeException", 413), "Runtime.Unknown"),
    (e.Throttled, 429, ("TooManyRequestsException", 429), "Runtime.Unknown"),
    (e.Unauthorized, 401, ("UnrecognizedClientException", 403), "Runtime.Unknown"),
    (e.Forbidden, 403, ("InvalidSignatureException", 403), "Runtime.Unknown"),
    (e.AccessDenied, 403, ("AccessDeniedException", 403), "Runtime.Unknown"),
    (e.InvocationError, 502, ("ServiceException", 500), "Runtime.ExitError"),
    (e.TimedOut, 504, ("ServiceException", 500), "Sandbox.Timedout"),
    (e.OutOfFuel, 502, ("ServiceException", 500), "Runtime.OutOfFuel"),
    (e.MemoryLimitExceeded, 502, ("ServiceException", 500), "Runtime.OutOfMemory"),
    (e.ResponseTooLarge, 502, ("ServiceException", 500), "Function.ResponseSizeTooLarge"),
    (e.InvalidFunctionResponse, 502, ("ServiceException", 500), "Runtime.InvalidResponse"),
    (e.GuestTrap, 502, ("ServiceException", 500), "Runtime.ExitError"),
    (e.HandlerError, 502, ("ServiceException", 500), "Runtime.ExitError"),
    (e.NodeAtCapacity, 503, ("TooManyRequestsException", 429), "Runtime.ExitError"),
    (e.WorkerLost, 503, ("ServiceException", 500), "Runtime.ExitError"),
    (e.Conflict, 409, ("ResourceConflictException", 409), "Runtime.Unknown"),
    (e.MethodNotAllowed, 405, ("UnknownOperationException", 404), "Runtime.Unknown"),
    (e.ServiceUnavailable, 503, ("ServiceException", 503), "Runtime.Unknown"),
    (e.QueueNotFound, 404, ("ResourceNotFoundException", 404), "Runtime.Unknown"),
    (e.QueueAlreadyExists, 409, ("ResourceConflictException", 409), "Runtime.Unknown"),
    (e.InvalidReceiptHandle, 400, ("InvalidParameterValueException", 400), "Runtime.Unknown"),
    (e.StreamNotFound, 404, ("ResourceNotFoundException", 404), "Runtime.Unknown"),
    (e.ShardNotFound, 404, ("ResourceNotFoundException", 404), "Runtime.Unknown"),
    (e.StreamAlreadyExists, 409, ("ResourceConflictException", 409), "Runtime.Unknown"),
    (e.MappingNotFound, 404, ("ResourceNotFoundException", 404), "Runtime.Unknown"),
    (e.ScheduleNotFound, 404, ("ResourceNotFoundException", 404), "Runtime.Unknown"),
    (e.CapabilityDenied, 403, ("AccessDeniedException", 403), "Runtime.Unknown"),
    (e.ItemNotFound, 404, ("ResourceNotFoundException", 404), "Runtime.Unknown"),
    (e.ConditionFailed, 412, ("ResourceConflictException", 409), "Runtime.Unknown"),
    (e.HostCallFailed, 502, ("ServiceException", 500), "Runtime.Unknown"),
]


@pytest.mark.parametrize(("cls", "status", "lambda_", "function_error"), EXPECTED)
def test_each_type_maps_to_its_status_lambda_type_and_error_type(
    cls: type[FireboxError], status: int, lambda_: tuple[str, int], function_error: str
) -> None:
    err = _bare(cls)
    assert status_of(err) == status
    assert lambda_type(err) == lambda_
    assert function_error_type(err) == function_error


def test_every_registered_type_has_a_row() -> None:
    # LambdaError carries its own type and status; every other wire type is in the table.
    listed = {cls for cls, *_ in EXPECTED}
    assert set(ERROR_TYPES.values()) - {e.LambdaError} == listed
    assert set(ERRORS) == listed


def test_a_type_not_listed_takes_its_nearest_base_row() -> None:
    class LostQueue(e.QueueNotFound):
        pass

    class Odd(FireboxError):
        pass

    assert lambda_type(LostQueue("q")) == ("ResourceNotFoundException", 404)
    assert status_of(Odd("m")) == 500 and lambda_type(Odd("m")) == ("ServiceException", 500)


def test_a_lambda_error_carries_its_own_type_and_status() -> None:
    err = e.LambdaError("PreconditionFailedException", 412, "revision moved")
    assert lambda_type(err) == ("PreconditionFailedException", 412)
    response = lambda_error_response(err, "rid")
    assert response.status_code == 412
    assert response.headers["x-amzn-ErrorType"] == "PreconditionFailedException"
    assert response.headers["x-amzn-RequestId"] == "rid"
    assert json.loads(bytes(response.body)) == {"Type": "User", "message": "revision moved"}


def test_lambda_throttle_shapes_name_the_reason() -> None:
    throttled = lambda_error_response(e.Throttled("f", 2, retry_after=2.6))
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "3"
    assert json.loads(bytes(throttled.body)) == {
        "Type": "User",
        "message": e.Throttled("f", 2).message,
        "retryAfterSeconds": "3",
        "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded",
    }
    busy = lambda_error_response(e.NodeAtCapacity("full"))
    assert busy.status_code == 429
    assert busy.headers["x-amzn-ErrorType"] == "TooManyRequestsException"
    assert json.loads(bytes(busy.body))["Reason"] == "ConcurrentInvocationLimitExceeded"


@pytest.mark.parametrize(
    ("code", "status"),
    [(sigv4.UNRECOGNIZED, 403), (sigv4.INVALID, 403), (sigv4.INCOMPLETE, 400)],
)
def test_lambda_signature_errors_keep_their_code(code: str, status: int) -> None:
    response = lambda_error_response(sigv4.SigV4Error(code, "bad"))
    assert response.status_code == status and response.headers["x-amzn-ErrorType"] == code


def test_a_non_firebox_exception_is_a_service_exception_naming_only_its_type() -> None:
    response = lambda_error_response(KeyError("secret detail"))
    assert response.status_code == 500
    assert json.loads(bytes(response.body)) == {
        "Type": "Service",
        "message": "internal error: KeyError",
    }


def test_native_response_carries_the_status_and_function_error_header() -> None:
    response = error_response(e.TimedOut(1.0))
    assert response.status_code == 504
    assert response.headers["X-Firebox-Function-Error"] == "TimedOut"
    assert json.loads(bytes(response.body))["error"]["type"] == "TimedOut"
    throttled = error_response(e.Throttled("f", 1, retry_after=0.2))
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "1"
