"""The registry of error types: every wire `type` rebuilds its own class, whatever is imported."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from firebox.runtime import errors
from firebox.runtime.errors import (
    ERROR_TYPES,
    FireboxError,
    HandlerError,
    Throttled,
    TimedOut,
    error_from_dict,
)
from firebox.runtime.http.errors import STATUS, status_of

# Every error type a node may put on the wire, by its `type`.
WIRE_TYPES = [
    "FireboxError", "BadRequest", "FunctionNotFound", "KeyNotFound", "InvalidArtifact",
    "InvalidManifest", "InvalidSetting", "PayloadTooLarge", "Throttled", "Unauthorized",
    "Forbidden", "Conflict", "MethodNotAllowed", "ServiceUnavailable", "InvocationError",
    "TimedOut", "OutOfFuel", "MemoryLimitExceeded", "ResponseTooLarge", "GuestTrap",
    "HandlerError", "NodeAtCapacity", "WorkerLost", "QueueNotFound", "QueueAlreadyExists",
    "InvalidReceiptHandle", "StreamNotFound", "ShardNotFound", "StreamAlreadyExists",
    "MappingNotFound", "ScheduleNotFound",
]  # fmt: skip

_PROBE = """
import json, sys
import {module}
from firebox.runtime.errors import error_from_dict
types = json.loads(sys.argv[1])
print(json.dumps({{t: type(error_from_dict({{"type": t, "message": "m"}})).__name__ for t in types}}))
"""


@pytest.mark.parametrize("module", ["firebox.sdk.client", "firebox.runtime.errors"])
def test_a_fresh_process_rebuilds_every_type_from_its_wire_form(module: str) -> None:
    # A subprocess, so no test that imported the queue or stream modules can help.
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(module=module), json.dumps(WIRE_TYPES)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert json.loads(out.stdout) == {t: t for t in WIRE_TYPES}


def test_the_registry_holds_every_error_class_of_the_module_once() -> None:
    defined = {
        obj
        for obj in vars(errors).values()
        if isinstance(obj, type) and issubclass(obj, FireboxError)
    }
    assert set(ERROR_TYPES.values()) == defined
    assert all(ERROR_TYPES[cls.code] is cls for cls in defined)
    assert set(WIRE_TYPES) <= set(ERROR_TYPES)


def test_wire_form_keeps_the_message_and_extra_fields() -> None:
    err = error_from_dict({"type": "QueueNotFound", "message": "Queue not found: q", "name": "q"})
    assert isinstance(err, errors.QueueNotFound)
    assert err.message == "Queue not found: q" and str(err) == "Queue not found: q"
    assert err.name == "q"
    throttled = error_from_dict({"type": "Throttled", "message": "slow down"})
    assert isinstance(throttled, Throttled) and throttled.retry_after == 1.0
    assert type(error_from_dict({"type": None})) is FireboxError
    assert type(error_from_dict({})) is FireboxError


def test_key_not_found_is_a_function_not_found() -> None:
    # A missing key is a 404 like a missing function; code that catches one catches both.
    err = errors.KeyNotFound("FBKX")
    assert isinstance(err, errors.FunctionNotFound)
    assert err.to_dict() == {"type": "KeyNotFound", "message": "Access key not found: FBKX"}


def test_every_error_type_has_a_4xx_or_5xx_status_and_survives_the_wire() -> None:
    for cls in STATUS:
        assert 400 <= STATUS[cls] < 600
    assert status_of(Throttled("f", 2)) == 429
    assert status_of(TimedOut(1.0)) == 504
    err = error_from_dict(HandlerError({"errorMessage": "boom", "errorType": "KeyError"}).to_dict())
    assert isinstance(err, HandlerError) and err.payload["errorType"] == "KeyError"
    assert type(error_from_dict({"type": "Nope", "message": "m"})) is FireboxError
