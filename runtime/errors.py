"""The typed errors of firebox, each with a message a user can act on (shared by every layer).

Every error type is defined here, so `ERROR_TYPES` (wire `type` -> class) is complete
whatever else a process imported: the SDK rebuilds a `QueueNotFound` without loading the
queue code. The HTTP status and Lambda error shape of each type live in one table in
`firebox.runtime.http.errors`; nothing here knows about HTTP.
"""

from __future__ import annotations

from typing import Any

MiB = 1024 * 1024


class FireboxError(Exception):
    """Base of every error firebox reports to a caller."""

    #: A stable machine-readable code, sent on the wire as `error.type`.
    code = "FireboxError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, Any]:
        """Return the wire form `{"type": ..., "message": ...}` of this error."""
        return {"type": self.code, "message": self.message}


# --- request and resource errors -------------------------------------------------


class BadRequest(FireboxError):
    """The request was malformed (bad JSON, a missing field, a wrong type)."""

    code = "BadRequest"


class FunctionNotFound(FireboxError):
    """No function of that name (or version) exists."""

    code = "FunctionNotFound"

    def __init__(self, name: str, message: str | None = None) -> None:
        super().__init__(message or f"Function not found: {name}")
        self.name = name


class KeyNotFound(FunctionNotFound):
    """No access key with that id exists (a 404, like a missing function)."""

    code = "KeyNotFound"

    def __init__(self, key_id: str) -> None:
        super().__init__(key_id, f"Access key not found: {key_id}")


class InvalidArtifact(FireboxError):
    """An uploaded module is not valid WebAssembly, or breaks the guest ABI."""

    code = "InvalidArtifact"


class InvalidManifest(FireboxError):
    """A manifest (firebox.toml) has an unknown key, a wrong type or an out-of-range value."""

    code = "InvalidManifest"


class InvalidSetting(FireboxError, ValueError):
    """A FIREBOX_* environment variable holds a value of the wrong type; names both."""

    code = "InvalidSetting"

    def __init__(self, name: str, expected: str, raw: str) -> None:
        super().__init__(f"{name} must be {expected}, got {raw!r}")
        self.name = name


class PayloadTooLarge(FireboxError):
    """A request or a response is larger than the function allows."""

    code = "PayloadTooLarge"

    def __init__(self, what: str, size: int, limit: int) -> None:
        super().__init__(
            f"{what} of {size} bytes exceeds the limit of {limit} bytes ({limit / MiB:.2f} MiB)"
        )
        self.size = size
        self.limit = limit


class Throttled(FireboxError):
    """The function is at its concurrency cap; retry after `retry_after` seconds."""

    code = "Throttled"

    def __init__(self, name: str, limit: int, retry_after: float = 1.0) -> None:
        super().__init__(
            f"Rate exceeded: function {name} is at its concurrency limit of {limit};"
            " retry later or raise its reserved concurrency"
        )
        self.retry_after = retry_after


class Unauthorized(FireboxError):
    """The request carries no credentials, or credentials firebox does not know."""

    code = "Unauthorized"


class Forbidden(FireboxError):
    """The credentials are known but the signature or token does not match."""

    code = "Forbidden"


class AccessDenied(Forbidden):
    """Valid credentials that may not make this call (a function's execution role
    calling an API its role does not cover)."""

    code = "AccessDenied"


# --- invocation errors -----------------------------------------------------------


class InvocationError(FireboxError):
    """Base of errors that end one invocation (the node and pool stay healthy)."""

    code = "InvocationError"


class TimedOut(InvocationError):
    """The invocation ran past the function's timeout."""

    code = "TimedOut"

    def __init__(self, seconds: float) -> None:
        super().__init__(f"Task timed out after {seconds:.2f} seconds")
        self.seconds = seconds


class OutOfFuel(InvocationError):
    """The invocation used up its fuel (CPU budget)."""

    code = "OutOfFuel"

    def __init__(self, units: int) -> None:
        super().__init__(
            f"Out of fuel after {units} units; raise the function's fuel budget"
            " or make the handler do less work per call"
        )
        self.units = units


class MemoryLimitExceeded(InvocationError):
    """The guest needed more linear memory than the function's memory limit."""

    code = "MemoryLimitExceeded"

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(
            f"Memory limit of {limit_bytes // MiB} MiB exceeded; raise the function's memory"
        )
        self.limit_bytes = limit_bytes


class ResponseTooLarge(InvocationError):
    """The function returned more bytes than its response limit allows."""

    code = "ResponseTooLarge"

    def __init__(self, size: int | None, limit: int) -> None:
        of = f" of {size} bytes" if size is not None else ""
        super().__init__(
            f"Response payload{of} exceeds the limit of {limit} bytes ({limit / MiB:.2f} MiB)"
        )


class InvalidFunctionResponse(InvocationError):
    """The function's answer to an HTTP trigger is not a valid HTTP response (Lambda's
    function-URL shape with a bad statusCode, headers, cookies or base64 body)."""

    code = "InvalidFunctionResponse"

    def __init__(self, why: str) -> None:
        super().__init__(f"The function returned a malformed HTTP response: {why}")


class GuestTrap(InvocationError):
    """The guest trapped (unreachable, out-of-bounds access, stack overflow, ...)."""

    code = "GuestTrap"

    def __init__(self, message: str) -> None:
        super().__init__(f"Guest trapped: {message}")


class HandlerError(InvocationError):
    """The handler raised; `payload` is Lambda's `{errorMessage, errorType, stackTrace}`."""

    code = "HandlerError"

    def __init__(self, payload: dict[str, Any]) -> None:
        message = str(payload.get("errorMessage", "handler failed"))
        super().__init__(f"{payload.get('errorType', 'Error')}: {message}")
        self.payload = payload

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "payload": self.payload}


class NodeAtCapacity(InvocationError):
    """The worker has no free instance slot (pooling allocator exhausted); retry shortly."""

    code = "NodeAtCapacity"


class WorkerLost(InvocationError):
    """The worker process running the invocation died (killed, crashed); safe to retry."""

    code = "WorkerLost"


class Conflict(FireboxError):
    """The request conflicts with existing state (a trigger route already taken, ...)."""

    code = "Conflict"


class MethodNotAllowed(FireboxError):
    """The route exists but not for this HTTP method."""

    code = "MethodNotAllowed"


class ServiceUnavailable(FireboxError):
    """The node is starting or shutting down and cannot take the call right now."""

    code = "ServiceUnavailable"


# --- queues, streams, mappings, schedules -----------------------------------------


class QueueNotFound(FireboxError):
    """No queue of that name exists."""

    code = "QueueNotFound"

    def __init__(self, name: str) -> None:
        super().__init__(f"Queue not found: {name}")
        self.name = name


class QueueAlreadyExists(FireboxError):
    """A queue of that name exists with different attributes."""

    code = "QueueAlreadyExists"

    def __init__(self, name: str) -> None:
        super().__init__(f"Queue {name} already exists with different attributes; delete it first")
        self.name = name


class InvalidReceiptHandle(FireboxError):
    """A receipt handle was not produced by this backend (malformed, not merely stale)."""

    code = "InvalidReceiptHandle"

    def __init__(self, handle: str) -> None:
        super().__init__(f"Invalid receipt handle: {handle!r}")
        self.handle = handle


class StreamNotFound(FireboxError):
    """No stream of that name exists."""

    code = "StreamNotFound"

    def __init__(self, name: str) -> None:
        super().__init__(f"Stream not found: {name}")
        self.name = name


class ShardNotFound(FireboxError):
    """The stream has no shard of that id."""

    code = "ShardNotFound"

    def __init__(self, stream: str, shard_id: str) -> None:
        super().__init__(f"Stream {stream} has no shard {shard_id!r}")
        self.stream = stream
        self.shard_id = shard_id


class StreamAlreadyExists(FireboxError):
    """A stream of that name exists with a different shard count or retention."""

    code = "StreamAlreadyExists"

    def __init__(self, name: str) -> None:
        super().__init__(f"Stream {name} already exists with different settings")
        self.name = name


class MappingNotFound(FireboxError):
    """No event source mapping has that id."""

    code = "MappingNotFound"

    def __init__(self, mapping_id: str) -> None:
        super().__init__(f"Event source mapping not found: {mapping_id}")
        self.mapping_id = mapping_id


class ScheduleNotFound(FireboxError):
    """No schedule of that name exists."""

    code = "ScheduleNotFound"

    def __init__(self, name: str) -> None:
        super().__init__(f"Schedule not found: {name}")
        self.name = name


# --- host capabilities ----------------------------------------------------------------


class CapabilityDenied(Forbidden):
    """A function called a host capability (an outbound host, a table, a bucket, a queue,
    a secret) its version was not granted; says which and how to grant it."""

    code = "CapabilityDenied"

    def __init__(self, kind: str, target: str, grant: str) -> None:
        super().__init__(
            f"this function has no {kind} capability for {target}: grant it with"
            f" `{grant}` under [capabilities] in firebox.toml (or the function's"
            " configuration), then deploy or publish again"
        )
        self.kind = kind


class ItemNotFound(FireboxError):
    """No item (a table's key, a bucket's object, a secret) of that name exists."""

    code = "ItemNotFound"


class ConditionFailed(Conflict):
    """A conditional write's condition did not hold (the item exists, or its version moved)."""

    code = "ConditionFailed"


class HostCallFailed(FireboxError):
    """A host capability call could not be completed (an upstream unreachable, a response
    past the size cap, a refused address); the message says which."""

    code = "HostCallFailed"


# --- the Lambda-compatible API's own errors ------------------------------------------


class LambdaError(FireboxError):
    """An error only the Lambda-compatible API reports; `code` is the Lambda error type.

    Its `code` and `status` are per instance (ResourceConflictException 409, ...); the
    class's own code, ServiceException, is what a bare one is registered under.
    """

    code = "ServiceException"
    status = 500

    def __init__(self, code: str, status: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


# --- the registry ------------------------------------------------------------------


def _registry() -> dict[str, type[FireboxError]]:
    # Built once from the classes above: every subclass of FireboxError defined in this
    # module (a subclass defined elsewhere is not a wire type and is not registered).
    found: dict[str, type[FireboxError]] = {}
    pending: list[type[FireboxError]] = [FireboxError]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.__module__ != __name__:
            continue
        if cls.code in found:
            raise TypeError(f"error code {cls.code} is used by {found[cls.code]} and {cls}")
        found[cls.code] = cls
    return found


#: Wire `type` -> error class, for every error firebox reports.
ERROR_TYPES: dict[str, type[FireboxError]] = _registry()


def error_from_dict(data: dict[str, Any]) -> FireboxError:
    """Rebuild a typed error from its wire form (used across the worker pipe and by the SDK).

    An unknown `type` gives a plain FireboxError carrying the message.
    """
    cls = ERROR_TYPES.get(str(data.get("type")), FireboxError)
    err = FireboxError.__new__(cls)
    Exception.__init__(err, data.get("message", ""))
    err.message = str(data.get("message", ""))
    for key, value in data.items():
        if key not in ("type", "message"):
            setattr(err, key, value)
    if cls is Throttled and not hasattr(err, "retry_after"):
        err.retry_after = 1.0  # type: ignore[attr-defined]
    return err
