"""Which Lambda operation a request is, read from botocore's Lambda service model, and the
Lambda-shaped refusal of the operations firebox does not serve (front-end layer).

A request under a Lambda prefix that no served route matched lands here: if it is an
operation of the model it is refused with `UnsupportedOperationException` (400) naming the
operation and why firebox does not serve it; otherwise `UnknownOperationException` (404).
Either way it never reaches a user function.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from firebox.runtime.errors import LambdaError
from starlette.requests import Request

# Why each operation firebox does not serve is refused (docs/lambda.md has the same table).
NO_CODE_SIGNING = "firebox does not sign or verify code"
NO_CAPACITY_PROVIDERS = "firebox runs functions on its own nodes: there are no capacity providers"
NO_DURABLE = "firebox has no durable executions"
NO_RESOURCE_POLICY = (
    "firebox keeps a function's policy statement by statement: use AddPermission,"
    " GetPolicy and RemovePermission"
)
REFUSED: dict[str, str] = {
    "CreateCodeSigningConfig": NO_CODE_SIGNING,
    "DeleteCodeSigningConfig": NO_CODE_SIGNING,
    "GetCodeSigningConfig": NO_CODE_SIGNING,
    "UpdateCodeSigningConfig": NO_CODE_SIGNING,
    "ListFunctionsByCodeSigningConfig": NO_CODE_SIGNING,
    "PutFunctionCodeSigningConfig": NO_CODE_SIGNING,
    "DeleteFunctionCodeSigningConfig": NO_CODE_SIGNING,
    "CreateCapacityProvider": NO_CAPACITY_PROVIDERS,
    "DeleteCapacityProvider": NO_CAPACITY_PROVIDERS,
    "GetCapacityProvider": NO_CAPACITY_PROVIDERS,
    "UpdateCapacityProvider": NO_CAPACITY_PROVIDERS,
    "ListFunctionVersionsByCapacityProvider": NO_CAPACITY_PROVIDERS,
    "PutFunctionScalingConfig": NO_CAPACITY_PROVIDERS,
    "GetFunctionScalingConfig": NO_CAPACITY_PROVIDERS,
    "CheckpointDurableExecution": NO_DURABLE,
    "GetDurableExecution": NO_DURABLE,
    "GetDurableExecutionHistory": NO_DURABLE,
    "GetDurableExecutionState": NO_DURABLE,
    "StopDurableExecution": NO_DURABLE,
    "DeleteDurableExecution": NO_DURABLE,
    "PauseDurableExecution": NO_DURABLE,
    "ResumeDurableExecution": NO_DURABLE,
    "GetResourcePolicy": NO_RESOURCE_POLICY,
    "PutResourcePolicy": NO_RESOURCE_POLICY,
    "DeleteResourcePolicy": NO_RESOURCE_POLICY,
    "SendDurableExecutionCallbackFailure": NO_DURABLE,
    "SendDurableExecutionCallbackHeartbeat": NO_DURABLE,
    "SendDurableExecutionCallbackSuccess": NO_DURABLE,
}
DEFAULT_REASON = "this operation is not implemented by firebox yet"


@dataclass(frozen=True)
class ModelOperation:
    """One operation of the model: its name, method, path pattern and required query."""

    name: str
    method: str
    path: re.Pattern[str]
    query: tuple[tuple[str, str], ...]

    def matches(self, method: str, path: str, query: dict[str, str]) -> bool:
        """Return True when a request is this operation."""
        if method != self.method or not self.path.fullmatch(path.rstrip("/") or "/"):
            return False
        return all(query.get(k) == v for k, v in self.query)


def _compile(uri: str) -> tuple[re.Pattern[str], tuple[tuple[str, str], ...]]:
    path, _, query = uri.partition("?")
    pattern = re.escape(path.rstrip("/"))
    pattern = re.sub(r"\\\{[^}]+\\\+\\\}", ".+", pattern)  # a greedy label: {Arn+}
    pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", pattern)
    pairs = tuple((k, v) for k, _, v in (item.partition("=") for item in query.split("&") if item))
    return re.compile(pattern), pairs


@functools.cache
def model_operations() -> tuple[ModelOperation, ...]:
    """Return every operation of botocore's Lambda model (none without botocore), the
    ones with a required query first (they share a path with another operation)."""
    try:
        from botocore.loaders import Loader

        model = Loader().load_service_model("lambda", "service-2")
    except Exception:  # no botocore: only the path-based refusal is possible
        return ()
    found = []
    for name, op in model["operations"].items():
        pattern, query = _compile(op["http"]["requestUri"])
        found.append(ModelOperation(name, op["http"]["method"], pattern, query))
    return tuple(sorted(found, key=lambda o: -len(o.query)))


def operation_name(method: str, path: str, query: dict[str, str]) -> str | None:
    """Return the model operation a request is, or None."""
    for op in model_operations():
        if op.matches(method, path, query):
            return op.name
    return None


def refusal(request: Request) -> LambdaError:
    """Return the Lambda error for a request under a Lambda prefix that firebox does not serve."""
    # Labels are matched percent-encoded: an ARN label's '/' arrives as %2F.
    raw = request.scope.get("raw_path") or request.url.path.encode()
    method, path = request.method, request.url.path
    name = operation_name(method, raw.decode("latin-1"), dict(request.query_params))
    if name is None:
        return LambdaError(
            "UnknownOperationException", 404,
            f"{method} {path} is no operation of the Lambda API firebox knows (see docs/lambda.md)",
        )  # fmt: skip
    reason = REFUSED.get(name, DEFAULT_REASON)
    return LambdaError(
        "UnsupportedOperationException", 400,
        f"firebox does not serve the {name} operation: {reason} (see docs/lambda.md)",
    )  # fmt: skip
