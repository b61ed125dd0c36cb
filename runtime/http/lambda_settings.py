"""The Lambda-compatible API's settings operations: reserved and provisioned concurrency,
account settings, tags (front-end layer)."""

from __future__ import annotations

from typing import Any

from firebox.runtime import config as defaults
from firebox.runtime.errors import FunctionNotFound, LambdaError
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
from firebox.runtime.http.lambda_shapes import RESERVED_MARK, Names, reserved_concurrency, timestamp
from firebox.runtime.http.native import node_of
from firebox.runtime.node import Node
from firebox.runtime.storage.lambda_meta import PROVISIONED
from firebox.runtime.storage.registry import LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

# Lambda's documented package limits, reported by GetAccountSettings.
CODE_SIZE_ZIPPED = 50 * 1024 * 1024
CODE_SIZE_UNZIPPED = 250 * 1024 * 1024
TOTAL_CODE_SIZE = 75 * 1024**3


# --- reserved concurrency ------------------------------------------------------------


async def put_concurrency(request: Request) -> Response:
    """PUT /2017-10-31/functions/{name}/concurrency (PutFunctionConcurrency)."""
    node = node_of(request)
    names, name, _ = target_of(request)
    data = await body_of(request)
    count = field_of(data, "ReservedConcurrentExecutions", int)
    if count is None or count < 0:
        raise invalid_parameter("ReservedConcurrentExecutions (an integer >= 0) is required")
    current = await record_of(node, names, name, None)
    meta = {**(current.config.get("metadata") or {}), RESERVED_MARK: "true"}
    changes: dict[str, Any] = {"concurrency": count, "metadata": meta}
    if int(current.config.get("provisioned", 0)) > count:
        changes["provisioned"] = count  # the warm-instance floor may not exceed the cap
    await node.functions.update_config(name, changes)
    return ok({"ReservedConcurrentExecutions": count})


async def get_concurrency(request: Request) -> Response:
    """GET /2019-09-30/functions/{name}/concurrency (GetFunctionConcurrency)."""
    names, name, _ = target_of(request)
    reserved = reserved_concurrency(await record_of(node_of(request), names, name, None))
    return ok({} if reserved is None else {"ReservedConcurrentExecutions": reserved})


async def delete_concurrency(request: Request) -> Response:
    """DELETE /2017-10-31/functions/{name}/concurrency (DeleteFunctionConcurrency)."""
    node = node_of(request)
    names, name, _ = target_of(request)
    current = await record_of(node, names, name, None)
    meta = {k: v for k, v in (current.config.get("metadata") or {}).items() if k != RESERVED_MARK}
    await node.functions.update_config(
        name, {"concurrency": defaults.DEFAULT_CONCURRENCY, "metadata": meta}
    )
    return Response(status_code=204)


# --- provisioned concurrency -----------------------------------------------------------


def _qualifier(request: Request) -> tuple[Names, str, str]:
    names, name, qualifier = target_of(request)
    if not qualifier or qualifier == LATEST:
        raise invalid_parameter(
            "Provisioned Concurrency Configs cannot be applied to unpublished function versions:"
            " give a version number or an alias as Qualifier"
        )
    return names, name, qualifier


def _provisioned_shape(entry: dict[str, Any]) -> dict[str, Any]:
    requested = int(entry["requested"])
    available = min(int(entry["ready"]), requested)
    return {
        "RequestedProvisionedConcurrentExecutions": requested,
        "AllocatedProvisionedConcurrentExecutions": available,
        "AvailableProvisionedConcurrentExecutions": available,
        "Status": "READY" if available >= requested else "IN_PROGRESS",
        "LastModified": timestamp(entry.get("updated_at") or 0),
    }


def _not_configured() -> LambdaError:
    return LambdaError(
        "ProvisionedConcurrencyConfigNotFoundException", 404,
        "No Provisioned Concurrency Config found for this function",
    )  # fmt: skip


async def put_provisioned(request: Request) -> Response:
    """PUT /2019-09-30/functions/{name}/provisioned-concurrency (PutProvisionedConcurrencyConfig)."""
    node = node_of(request)
    names, name, qualifier = _qualifier(request)
    data = await body_of(request)
    count = field_of(data, "ProvisionedConcurrentExecutions", int)
    if count is None or count < 1:
        raise invalid_parameter("ProvisionedConcurrentExecutions (an integer >= 1) is required")
    await record_of(node, names, name, qualifier)
    await node.functions.set_provisioned(name, qualifier, count)
    await node.run_blocking(
        lambda: node.stores.lambda_meta.put(PROVISIONED, name, qualifier, "", {})
    )
    entry = (await _status(node, name)).get(qualifier, {"requested": count, "ready": 0})
    return ok(_provisioned_shape(entry), 202)


async def _status(node: Node, name: str) -> dict[str, Any]:
    """Return provisioned_status with each entry's `updated_at` (when it was last put)."""
    status = await node.functions.provisioned_status(name)
    stamps = await node.run_blocking(node.stores.lambda_meta.list, PROVISIONED, name)
    when = {r.qualifier: r.updated_at for r in stamps}
    return {q: {**e, "updated_at": when.get(q, 0)} for q, e in status.items()}


async def get_provisioned(request: Request) -> Response:
    """GET .../provisioned-concurrency (Get-, or with List=ALL ListProvisionedConcurrencyConfigs)."""
    node = node_of(request)
    if request.query_params.get("List") == "ALL":
        names, name, _ = target_of(request)
        await record_of(node, names, name, None)
        status = await _status(node, name)
        configs = [
            {"FunctionArn": names.function_arn(name, q), **_provisioned_shape(e)}
            for q, e in status.items()
            if q != LATEST and int(e["requested"]) > 0
        ]
        return ok({"ProvisionedConcurrencyConfigs": configs})
    names, name, qualifier = _qualifier(request)
    await record_of(node, names, name, None)
    entry = (await _status(node, name)).get(qualifier)
    if not entry or int(entry["requested"]) <= 0:
        raise _not_configured()
    return ok(_provisioned_shape(entry))


async def delete_provisioned(request: Request) -> Response:
    """DELETE .../provisioned-concurrency (DeleteProvisionedConcurrencyConfig)."""
    node = node_of(request)
    names, name, qualifier = _qualifier(request)
    await record_of(node, names, name, None)
    if qualifier not in await node.functions.provisioned_status(name):
        raise _not_configured()
    await node.functions.set_provisioned(name, qualifier, 0)
    await node.run_blocking(node.stores.lambda_meta.delete, PROVISIONED, name, qualifier)
    return Response(status_code=204)


# --- account settings ------------------------------------------------------------------


async def account_settings(request: Request) -> Response:
    """GET /2016-08-19/account-settings (GetAccountSettings)."""
    node = node_of(request)
    functions = await node.functions.list_latest()
    slots = node.config.workers * node.config.pool_slots
    reserved = sum(reserved_concurrency(f) or 0 for f in functions)
    code_size = sum(int((f.config.get("metadata") or {}).get("CodeSize", "0")) for f in functions)
    return ok(
        {
            "AccountLimit": {
                "TotalCodeSize": TOTAL_CODE_SIZE,
                "CodeSizeUnzipped": CODE_SIZE_UNZIPPED,
                "CodeSizeZipped": CODE_SIZE_ZIPPED,
                "ConcurrentExecutions": slots,
                "UnreservedConcurrentExecutions": max(0, slots - reserved),
            },
            "AccountUsage": {"TotalCodeSize": code_size, "FunctionCount": len(functions)},
        }
    )


# --- tags ------------------------------------------------------------------------------


def _tagged(request: Request) -> tuple[Names, str]:
    names = Names(node_of(request).config, node_of(request).artifacts)
    name, qualifier = names.parse(request.path_params["arn"])
    if qualifier:
        raise invalid_parameter("tags belong to the function: give its unqualified ARN")
    try:
        node_of(request).get(name)
    except FunctionNotFound:
        raise names.not_found(name) from None
    return names, name


async def tag_resource(request: Request) -> Response:
    """POST /2017-03-31/tags/{arn} (TagResource): adds or replaces the given tags."""
    node = node_of(request)
    _, name = _tagged(request)
    tags = field_of(await body_of(request), "Tags", dict)
    if not tags:
        raise invalid_parameter("Tags is required")
    await node.functions.set_tags(name, {**(await node.functions.get(name)).tags, **tags})
    return Response(status_code=204)


async def list_tags(request: Request) -> Response:
    """GET /2017-03-31/tags/{arn} (ListTags)."""
    _, name = _tagged(request)
    return ok({"Tags": node_of(request).get(name).tags})


async def untag_resource(request: Request) -> Response:
    """DELETE /2017-03-31/tags/{arn}?tagKeys=... (UntagResource)."""
    node = node_of(request)
    _, name = _tagged(request)
    drop = set(request.query_params.getlist("tagKeys"))
    await node.functions.set_tags(
        name, {k: v for k, v in (await node.functions.get(name)).tags.items() if k not in drop}
    )
    return Response(status_code=204)


# --- settings firebox answers for, whose only honest value is its own ---------------------


async def get_runtime_management(request: Request) -> Response:
    """GET /2021-07-20/functions/{name}/runtime-management-config: `Auto` (the runtime
    is the node's: it changes when firebox is upgraded)."""
    names, name, qualifier = target_of(request)
    await record_of(node_of(request), names, name, qualifier)
    return ok({"UpdateRuntimeOn": "Auto", "FunctionArn": names.function_arn(name, qualifier)})


async def put_runtime_management(request: Request) -> Response:
    """PUT /2021-07-20/functions/{name}/runtime-management-config: only `Auto`."""
    names, name, qualifier = target_of(request)
    await record_of(node_of(request), names, name, qualifier)
    mode = field_of(await body_of(request), "UpdateRuntimeOn", str)
    if mode != "Auto":
        raise invalid_parameter(
            f"UpdateRuntimeOn {mode!r} is not supported: a firebox function runs the node's"
            " runtime, which changes only when firebox is upgraded (Auto)"
        )
    return ok({"UpdateRuntimeOn": "Auto", "FunctionArn": names.function_arn(name, qualifier)})


async def get_recursion(request: Request) -> Response:
    """GET /2024-08-31/functions/{name}/recursion-config: `Terminate` (a chain of async
    destinations stops at 16 invocations, see docs/events.md)."""
    names, name, _ = target_of(request)
    await record_of(node_of(request), names, name, None)
    return ok({"RecursiveLoop": "Terminate"})


async def put_recursion(request: Request) -> Response:
    """PUT /2024-08-31/functions/{name}/recursion-config: only `Terminate`."""
    names, name, _ = target_of(request)
    await record_of(node_of(request), names, name, None)
    loop = field_of(await body_of(request), "RecursiveLoop", str)
    if loop != "Terminate":
        raise invalid_parameter(
            f"RecursiveLoop {loop!r} is not supported: firebox always stops a loop of async"
            " destinations after 16 invocations (Terminate)"
        )
    return ok({"RecursiveLoop": "Terminate"})


async def get_code_signing(request: Request) -> Response:
    """GET /2020-06-30/functions/{name}/code-signing-config: none (firebox signs no code)."""
    names, name, _ = target_of(request)
    await record_of(node_of(request), names, name, None)
    return ok({"CodeSigningConfigArn": "", "FunctionName": name})


async def list_code_signing_configs(request: Request) -> Response:
    """GET /2020-04-22/code-signing-configs: none (firebox signs no code)."""
    return ok({"CodeSigningConfigs": []})


async def list_capacity_providers(request: Request) -> Response:
    """GET /2025-11-30/capacity-providers: none (firebox runs functions on its nodes)."""
    return ok({"CapacityProviders": []})


async def list_durable_executions(request: Request) -> Response:
    """GET /2025-12-01/functions/{name}/durable-executions: none (firebox has none)."""
    names, name, _ = target_of(request)
    await record_of(node_of(request), names, name, None)
    return ok({"DurableExecutions": []})


def routes() -> list[Route]:
    """Return the routes of the concurrency, account, tag and fixed-setting operations."""
    table: list[tuple[str, Endpoint, str]] = [
        ("/2017-10-31/functions/{name}/concurrency", put_concurrency, "PUT"),
        ("/2017-10-31/functions/{name}/concurrency", delete_concurrency, "DELETE"),
        ("/2019-09-30/functions/{name}/concurrency", get_concurrency, "GET"),
        ("/2019-09-30/functions/{name}/provisioned-concurrency", put_provisioned, "PUT"),
        ("/2019-09-30/functions/{name}/provisioned-concurrency", get_provisioned, "GET"),
        ("/2019-09-30/functions/{name}/provisioned-concurrency", delete_provisioned, "DELETE"),
        ("/2016-08-19/account-settings", account_settings, "GET"),
        ("/2016-08-19/account-settings/", account_settings, "GET"),
        ("/2017-03-31/tags/{arn}", tag_resource, "POST"),
        ("/2017-03-31/tags/{arn}", list_tags, "GET"),
        ("/2017-03-31/tags/{arn}", untag_resource, "DELETE"),
        ("/2021-07-20/functions/{name}/runtime-management-config", get_runtime_management, "GET"),
        ("/2021-07-20/functions/{name}/runtime-management-config", put_runtime_management, "PUT"),
        ("/2024-08-31/functions/{name}/recursion-config", get_recursion, "GET"),
        ("/2024-08-31/functions/{name}/recursion-config", put_recursion, "PUT"),
        ("/2020-06-30/functions/{name}/code-signing-config", get_code_signing, "GET"),
        ("/2020-04-22/code-signing-configs", list_code_signing_configs, "GET"),
        ("/2020-04-22/code-signing-configs/", list_code_signing_configs, "GET"),
        ("/2025-11-30/capacity-providers", list_capacity_providers, "GET"),
        ("/2025-11-30/capacity-providers/", list_capacity_providers, "GET"),
        ("/2025-12-01/functions/{name}/durable-executions", list_durable_executions, "GET"),
    ]
    return [Route(path, operation(endpoint), methods=[method]) for path, endpoint, method in table]
