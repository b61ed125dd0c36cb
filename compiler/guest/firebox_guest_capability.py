"""The guest side of the host's `capabilities` interface: one call, typed errors (guest side).

Every operation (a table read, a bucket write, an outbound request) is one JSON request
to the host, which checks the function's grants; the host's answer is a reply or an
error, raised here as the matching exception type (`CapabilityDenied` for a call
outside the grant, with the message saying how to grant it).
"""

from __future__ import annotations

import json
from typing import Any

# At build time: the bindings are not on any path once the snapshot is taken.
from wit_world.imports import capabilities


class FireboxError(Exception):
    """A host capability call failed; `type` is the host's error type."""

    type = "FireboxError"


class CapabilityDenied(FireboxError, PermissionError):
    """The function was not granted this table, bucket, host, queue or secret."""

    type = "CapabilityDenied"


class ConditionFailed(FireboxError):
    """A conditional write's condition did not hold (the item exists, or its version moved)."""

    type = "ConditionFailed"


class PayloadTooLarge(FireboxError, ValueError):
    """A value, object or body is larger than the host accepts."""

    type = "PayloadTooLarge"


class InvalidRequest(FireboxError, ValueError):
    """The call's arguments were refused (a bad key, range, limit or URL)."""

    type = "BadRequest"


class HostCallFailed(FireboxError, OSError):
    """The host could not complete the call (an upstream unreachable, a size cap, a
    refused address, the invocation's deadline)."""

    type = "HostCallFailed"


_TYPES: dict[str, type[FireboxError]] = {
    cls.type: cls
    for cls in (CapabilityDenied, ConditionFailed, PayloadTooLarge, InvalidRequest, HostCallFailed)
}


def call(op: str, **request: Any) -> Any:
    """Run the host operation `op` with `request` and return its reply; raises the
    FireboxError subclass matching the host's error."""
    answer = json.loads(capabilities.call(op, json.dumps(request, separators=(",", ":"))))
    if "error" in answer:
        error = answer["error"] or {}
        cls = _TYPES.get(str(error.get("type")), FireboxError)
        raise cls(str(error.get("message") or "the host call failed"))
    return answer.get("ok")
