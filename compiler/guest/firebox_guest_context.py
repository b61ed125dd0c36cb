"""Lambda's `context` object, environment variables and `[ERROR]` log lines, as awslambdaric makes them (guest side).

The reference is Lambda's runtime interface client (awslambdaric: lambda_context.py,
bootstrap.py): `memory_limit_in_mb` is a string, `client_context` is an object with
`custom`, `env` and `client` (itself an object), `identity` is always an object with
`cognito_identity_id` and `cognito_identity_pool_id`, and an unhandled error is logged
as `[ERROR] Type: message` then the traceback, one record whose lines are joined by
carriage returns and indented with no-break spaces.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from wit_world.imports import host
from wit_world.imports.types import FunctionConfig, InvocationContext

TASK_ROOT = "/var/task"

#: Lambda's PATH and library path for its Python runtimes (the guest runs no programs,
#: but code reads them).
PATH = "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin"
LD_LIBRARY_PATH = (
    "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib"
)

#: The function's execution role, as Lambda serves it to SnapStart functions: botocore's
#: container provider fetches the role's short-lived credentials from this address (the
#: host answers it, for this function only) and refreshes them before they expire; every
#: client goes to the node's own S3, SQS and Lambda APIs (runtime/host/aws.py). A
#: function's own environment variables override both.
ROLE_ENVIRONMENT = {
    "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://169.254.170.2/v1/credentials",
    "AWS_ENDPOINT_URL": "http://aws.firebox.internal",
}

ERROR_LOG_LINE_TERMINATE = "\r"
ERROR_LOG_IDENT = "\u00a0"  # awslambdaric indents traceback lines with NO-BREAK SPACE


def region_of(arn: str) -> str:
    """Return the region field of an ARN (`arn:aws:lambda:REGION:...`), or us-east-1."""
    parts = arn.split(":")
    return parts[3] if len(parts) > 3 and parts[3] else "us-east-1"


def log_stream_name(version: str) -> str:
    """Return a stream name in Lambda's shape: `YYYY/MM/DD/[$LATEST]<32 hex digits>`."""
    return f"{time.strftime('%Y/%m/%d', time.gmtime())}/[{version}]{os.urandom(16).hex()}"


def environment(config: FunctionConfig, handler: str, stream: str) -> dict[str, str]:
    """Return the environment Lambda's Python runtime gives, then the function's own variables."""
    region = region_of(config.invoked_function_arn)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    env = {
        "_HANDLER": handler,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_python{version}",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_LAMBDA_FUNCTION_NAME": config.function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": config.function_version,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.memory_limit_mb),
        "AWS_LAMBDA_LOG_GROUP_NAME": config.log_group_name,
        "AWS_LAMBDA_LOG_STREAM_NAME": stream,
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        **ROLE_ENVIRONMENT,
        "LAMBDA_TASK_ROOT": TASK_ROOT,
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "LANG": "en_US.UTF-8",
        "PATH": PATH,
        "LD_LIBRARY_PATH": LD_LIBRARY_PATH,
        "PYTHONPATH": "/var/runtime",
        "TZ": ":UTC",
        "TMPDIR": "/tmp",
    }
    env.update(dict(config.environment))
    return env


class CognitoIdentity:
    """`context.identity`: the Amazon Cognito identity of the caller (attributes may be None)."""

    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")

    def __init__(self, data: dict[str, Any] | None = None) -> None:
        data = data or {}
        self.cognito_identity_id = data.get("cognitoIdentityId")
        self.cognito_identity_pool_id = data.get("cognitoIdentityPoolId")

    def __repr__(self) -> str:
        return (
            f"CognitoIdentity([cognito_identity_id={self.cognito_identity_id},"
            f"cognito_identity_pool_id={self.cognito_identity_pool_id}])"
        )


class Client:
    """`context.client_context.client`: the mobile app that called, from its client context."""

    # awslambdaric's order, kept for __repr__.
    FIELDS = (
        "installation_id",
        "app_title",
        "app_version_name",
        "app_version_code",
        "app_package_name",
    )
    __slots__ = FIELDS

    def __init__(self, data: dict[str, Any]) -> None:
        for name in self.FIELDS:
            setattr(self, name, data.get(name))

    def __repr__(self) -> str:
        fields = ",".join(f"{name}={getattr(self, name)}" for name in self.FIELDS)
        return f"Client([{fields}])"


class ClientContext:
    """`context.client_context`: `custom` and `env` dicts and the `client` object."""

    __slots__ = ("client", "custom", "env")

    def __init__(self, data: dict[str, Any]) -> None:
        self.custom = data.get("custom")
        self.env = data.get("env")
        client = data.get("client")
        self.client = Client(client) if isinstance(client, dict) else None

    def __repr__(self) -> str:
        return f"ClientContext([custom={self.custom},env={self.env},client={self.client}])"


def _parse(raw: str | None) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class LambdaContext:
    """The `context` argument of a handler, with the attributes of Lambda's Python runtime."""

    def __init__(self, config: FunctionConfig, call: InvocationContext) -> None:
        self.aws_request_id = call.aws_request_id
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", config.log_group_name)
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.function_name = config.function_name
        # Lambda's runtime exposes the memory size as a string (from an env var).
        self.memory_limit_in_mb = str(config.memory_limit_mb)
        self.function_version = config.function_version
        self.invoked_function_arn = call.invoked_function_arn or config.invoked_function_arn
        self.tenant_id: str | None = None
        client_context = _parse(call.client_context)
        self.client_context = ClientContext(client_context) if client_context else None
        self.identity = CognitoIdentity(_parse(call.identity))
        self._deadline_ms = call.deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        """Return the milliseconds left before the invocation times out (never negative)."""
        return max(0, self._deadline_ms - host.monotonic_ms())

    def log(self, msg: object) -> None:
        """Write `msg` to the invocation's log, as `context.log` does on Lambda."""
        sys.stdout.write(str(msg))

    def __repr__(self) -> str:
        return (
            f"LambdaContext([aws_request_id={self.aws_request_id},"
            f"log_group_name={self.log_group_name},"
            f"log_stream_name={self.log_stream_name},"
            f"function_name={self.function_name},"
            f"memory_limit_in_mb={self.memory_limit_in_mb},"
            f"function_version={self.function_version},"
            f"invoked_function_arn={self.invoked_function_arn},"
            f"client_context={self.client_context},"
            f"identity={self.identity},"
            f"tenant_id={self.tenant_id}])"
        )


def _indent(line: str) -> str:
    stripped = line.lstrip(" ")
    return ERROR_LOG_IDENT * (len(line) - len(stripped)) + stripped


def error_log_text(error: dict[str, Any]) -> str:
    """Return the log record Lambda writes for an error result (text log format)."""
    description = "[ERROR]"
    error_type = error.get("errorType")
    message = error.get("errorMessage")
    if error_type:
        description += " " + error_type
    if message:
        description += (":" if error_type else "") + " " + message
    lines = [description]
    stack = error.get("stackTrace")
    if stack is not None:
        lines.append("Traceback (most recent call last):")
        for element in stack:
            lines.extend([_indent(line) for line in element.splitlines()] if element else [""])
    return ERROR_LOG_LINE_TERMINATE.join(lines) + "\n"


def log_error(payload: str | bytes) -> None:
    """Write a JSON error payload to the log (stderr) as Lambda's runtime does."""
    try:
        error = json.loads(payload)
    except ValueError:
        return
    if isinstance(error, dict):
        sys.stderr.write(error_log_text(error))
