"""The typed errors of firebox, each with a message a user can act on (shared by every layer).

The HTTP status and Lambda error shape of each type live in one table in
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


class InvalidArtifact(FireboxError):
    """An uploaded module is not valid WebAssembly, or breaks the guest ABI."""

    code = "InvalidArtifact"


class InvalidManifest(FireboxError):
    """A manifest (firebox.toml) has an unknown key, a wrong type or an out-of-range value."""

    code = "InvalidManifest"


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


def _by_code(code: str) -> type[FireboxError]:
    # Walked at call time: error types defined in other modules (queues, streams) count too.
    pending: list[type[FireboxError]] = [FireboxError]
    while pending:
        cls = pending.pop()
        if cls.code == code:
            return cls
        pending.extend(cls.__subclasses__())
    return FireboxError


def error_from_dict(data: dict[str, Any]) -> FireboxError:
    """Rebuild a typed error from its wire form (used across the worker pipe and by the SDK)."""
    cls = _by_code(str(data.get("type")))
    err = FireboxError.__new__(cls)
    Exception.__init__(err, data.get("message", ""))
    err.message = str(data.get("message", ""))
    for key, value in data.items():
        if key not in ("type", "message"):
            setattr(err, key, value)
    if cls is Throttled and not hasattr(err, "retry_after"):
        err.retry_after = 1.0  # type: ignore[attr-defined]
    return err
