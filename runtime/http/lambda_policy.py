"""A function's resource-based policy: AddPermission, GetPolicy, RemovePermission, stored
per function and qualifier and shown as Lambda shows it (front-end layer).

firebox has no IAM: every live key may call every operation, so statements are stored
and returned, and enforced only where firebox has a principal to check: a function URL
with AuthType NONE answers only when a statement allows `lambda:InvokeFunctionUrl` to
everyone (`Principal: "*"`), as Lambda's do (docs/lambda.md).
"""

from __future__ import annotations

import json
import re
from typing import Any

from firebox.runtime.errors import LambdaError
from firebox.runtime.http.lambda_api import (
    Endpoint,
    body_of,
    field_of,
    ok,
    operation,
    record_of,
    target_of,
)
from firebox.runtime.http.lambda_errors import invalid_parameter
from firebox.runtime.http.lambda_shapes import Names, revision_id
from firebox.runtime.http.native import node_of
from firebox.runtime.node import Node
from firebox.runtime.storage.lambda_meta import POLICY
from firebox.runtime.storage.registry import LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

STATEMENT_ID = re.compile(r"^[a-zA-Z0-9_-]{1,100}$")
ACTION = re.compile(r"^(lambda:[A-Za-z]+|lambda:\*)$")
# Lambda's limit on a function's policy document.
MAX_POLICY_BYTES = 20 * 1024
URL_ACTIONS = ("lambda:InvokeFunctionUrl", "lambda:*")


def _principal(value: str, account: str) -> Any:
    if value == "*":
        return "*"
    if value.endswith(".amazonaws.com") or value.endswith(".amazon.com"):
        return {"Service": value}
    if re.fullmatch(r"\d{12}", value):
        return {"AWS": f"arn:aws:iam::{value}:root"}
    if value.startswith("arn:"):
        return {"AWS": value}
    raise invalid_parameter(
        f"Principal {value!r} must be '*', an account id, an IAM ARN or a service principal"
    )


def statement_of(
    names: Names, name: str, qualifier: str | None, data: dict[str, Any]
) -> dict[str, Any]:
    """Return Lambda's policy statement for an AddPermission request body."""
    sid = field_of(data, "StatementId", str)
    action = field_of(data, "Action", str)
    principal = field_of(data, "Principal", str)
    if not sid or not STATEMENT_ID.match(sid):
        raise invalid_parameter("StatementId must be 1-100 letters, digits, '-' or '_'")
    if not action or not ACTION.match(action):
        raise invalid_parameter(f"Action must be lambda:<Operation> or lambda:*, got {action!r}")
    if not principal:
        raise invalid_parameter("Principal is required")
    statement: dict[str, Any] = {
        "Sid": sid,
        "Effect": "Allow",
        "Principal": _principal(principal, names.account),
        "Action": action,
        "Resource": names.function_arn(name, qualifier),
    }
    conditions: dict[str, dict[str, str]] = {}
    for field, operator, key in (
        ("SourceArn", "ArnLike", "AWS:SourceArn"),
        ("SourceAccount", "StringEquals", "AWS:SourceAccount"),
        ("PrincipalOrgID", "StringEquals", "aws:PrincipalOrgID"),
        ("EventSourceToken", "StringEquals", "lambda:EventSourceToken"),
        ("FunctionUrlAuthType", "StringEquals", "lambda:FunctionUrlAuthType"),
    ):
        value = field_of(data, field, str)
        if value is not None:
            conditions.setdefault(operator, {})[key] = value
    if field_of(data, "InvokedViaFunctionUrl", bool):
        conditions.setdefault("Bool", {})["lambda:InvokedViaFunctionUrl"] = "true"
    auth_type = conditions.get("StringEquals", {}).get("lambda:FunctionUrlAuthType")
    if auth_type is not None and auth_type not in ("NONE", "AWS_IAM"):
        raise invalid_parameter("FunctionUrlAuthType must be NONE or AWS_IAM")
    if conditions:
        statement["Condition"] = conditions
    return statement


async def statements(node: Node, name: str, qualifier: str | None) -> list[dict[str, Any]]:
    """Return the statements of a function's (qualifier's) policy, oldest first."""
    rows = await node.run_blocking(
        node.stores.lambda_meta.list, POLICY, name, _stored_qualifier(qualifier)
    )
    return [r.document for r in rows]


def allows_public_url(policy: list[dict[str, Any]]) -> bool:
    """Return True when a policy lets anyone invoke the function's URL (AuthType NONE)."""
    for statement in policy:
        if statement.get("Principal") != "*" or statement.get("Action") not in URL_ACTIONS:
            continue
        auth = (statement.get("Condition") or {}).get("StringEquals", {})
        if auth.get("lambda:FunctionUrlAuthType", "NONE") == "NONE":
            return True
    return False


def _stored_qualifier(qualifier: str | None) -> str:
    return "" if qualifier in (None, LATEST) else str(qualifier)


def _check_revision(data: dict[str, Any], current: Any) -> None:
    wanted = data.get("RevisionId")
    if wanted is not None and wanted != revision_id(current):
        raise LambdaError("PreconditionFailedException", 412,
                          "The Revision Id provided does not match the latest Revision Id.")  # fmt: skip


async def add_permission(request: Request) -> Response:
    """POST /2015-03-31/functions/{name}/policy (AddPermission): 201 with the statement."""
    node = node_of(request)
    names, name, qualifier = target_of(request)
    record = await record_of(node, names, name, qualifier)
    data = await body_of(request)
    _check_revision(data, record)
    statement = statement_of(names, name, qualifier, data)
    current = await statements(node, name, qualifier)
    if len(json.dumps([*current, statement])) > MAX_POLICY_BYTES:
        raise LambdaError(
            "PolicyLengthExceededException", 400,
            f"The final policy size is bigger than the limit ({MAX_POLICY_BYTES} bytes).",
        )  # fmt: skip
    stored = await node.run_blocking(
        lambda: node.stores.lambda_meta.put(
            POLICY, name, _stored_qualifier(qualifier), statement["Sid"], statement, create=True
        )
    )
    if stored is None:
        raise LambdaError(
            "ResourceConflictException", 409,
            f"The statement id ({statement['Sid']}) provided already exists. Please provide a new"
            " statement id, or remove the existing statement.",
        )  # fmt: skip
    return ok({"Statement": json.dumps(statement)}, 201)


async def get_policy(request: Request) -> Response:
    """GET /2015-03-31/functions/{name}/policy (GetPolicy)."""
    node = node_of(request)
    names, name, qualifier = target_of(request)
    record = await record_of(node, names, name, qualifier)
    current = await statements(node, name, qualifier)
    if not current:
        raise LambdaError("ResourceNotFoundException", 404,
                          "The resource you requested does not exist.")  # fmt: skip
    policy = {"Version": "2012-10-17", "Id": "default", "Statement": current}
    return ok({"Policy": json.dumps(policy), "RevisionId": revision_id(record)})


async def remove_permission(request: Request) -> Response:
    """DELETE /2015-03-31/functions/{name}/policy/{sid} (RemovePermission): 204."""
    node = node_of(request)
    names, name, qualifier = target_of(request)
    record = await record_of(node, names, name, qualifier)
    if request.query_params.get("RevisionId") not in (None, revision_id(record)):
        raise LambdaError("PreconditionFailedException", 412,
                          "The Revision Id provided does not match the latest Revision Id.")  # fmt: skip
    sid = request.path_params["sid"]
    gone = await node.run_blocking(
        node.stores.lambda_meta.delete, POLICY, name, _stored_qualifier(qualifier), sid
    )
    if not gone:
        raise LambdaError("ResourceNotFoundException", 404,
                          f"Statement {sid} is not found in resource policy.")  # fmt: skip
    return Response(status_code=204)


def routes() -> list[Route]:
    """Return the routes of the permission operations."""
    policy = "/2015-03-31/functions/{name}/policy"
    table: list[tuple[str, Endpoint, str]] = [
        (policy, add_permission, "POST"),
        (policy, get_policy, "GET"),
        (policy + "/{sid}", remove_permission, "DELETE"),
    ]
    return [Route(path, operation(endpoint), methods=[method]) for path, endpoint, method in table]
