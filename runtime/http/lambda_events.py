"""The Lambda-compatible API's event operations: event-invoke configs over the async
machinery, and event source mappings over firebox's mappings (front-end layer).

Destinations and sources are named by ARN as in Lambda: a function
(`arn:aws:lambda:REGION:ACCOUNT:function:NAME`), a firebox queue
(`arn:aws:sqs:REGION:ACCOUNT:NAME`), stream (`arn:aws:kinesis:REGION:ACCOUNT:stream/NAME`) or
table's stream (`arn:aws:dynamodb:REGION:ACCOUNT:table/NAME/stream/LABEL`).
"""

from __future__ import annotations

import re
from typing import Any

from firebox.runtime.errors import FunctionNotFound, LambdaError, MappingNotFound
from firebox.runtime.events.mapping_config import source_arn
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
from firebox.runtime.http.lambda_shapes import Names
from firebox.runtime.http.native import node_of
from firebox.runtime.node import Node
from firebox.runtime.storage.lambda_meta import EVENT_CONFIG
from firebox.runtime.storage.mappings import MappingRecord
from firebox.runtime.storage.registry import LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

# Lambda's limits on event-invoke configs.
MAX_RETRY_ATTEMPTS = 2
MIN_EVENT_AGE_S, MAX_EVENT_AGE_S = 60, 21_600
_ARN = re.compile(r"^arn:aws[a-zA-Z-]*:(?P<service>[a-z0-9-]+):(?P<region>[a-z0-9-]*):"
                  r"(?P<account>\d{12}):(?P<resource>.+)$")  # fmt: skip


def _parse_arn(names: Names, arn: Any, what: str) -> tuple[str, str]:
    """Return (service, resource) of an ARN of this node's region and account."""
    match = _ARN.match(arn) if isinstance(arn, str) else None
    if match is None:
        raise invalid_parameter(f"{what} must be an ARN, got {arn!r}")
    if match["region"] != names.region or match["account"] != names.account:
        raise invalid_parameter(
            f"{what} {arn} is not of this node (region {names.region}, account {names.account})"
        )
    return match["service"], match["resource"]


def destination_of(names: Names, arn: Any, what: str) -> dict[str, str]:
    """Return firebox's destination for a Lambda destination ARN (a function or a queue)."""
    service, resource = _parse_arn(names, arn, what)
    if service == "lambda" and resource.startswith("function:"):
        name, _, qualifier = resource[len("function:") :].partition(":")
        if qualifier and qualifier != LATEST:
            raise invalid_parameter(f"{what}: firebox invokes a destination function's $LATEST")
        return {"type": "function", "name": name}
    if service == "sqs":
        return {"type": "queue", "name": resource}
    raise invalid_parameter(
        f"{what} {arn}: firebox delivers to functions and firebox queues (sqs ARNs) only"
    )


def _destination_member(destinations: dict[str, Any], field: str) -> Any:
    """Return DestinationConfig.<field>.Destination (None when absent)."""
    member = destinations.get(field)
    if member is None:
        return None
    if not isinstance(member, dict):
        raise invalid_parameter(f'DestinationConfig.{field} must be {{"Destination": ARN}}')
    return member.get("Destination")


def destination_arn(names: Names, destination: Any) -> str | None:
    """Return the Lambda ARN of a firebox destination (None for none)."""
    if not isinstance(destination, dict):
        return None
    if destination.get("type") == "function":
        return names.function_arn(str(destination["name"]))
    return source_arn("queue", str(destination["name"]))


# --- event-invoke configs ------------------------------------------------------------


def _invoke_config_shape(
    names: Names, name: str, qualifier: str, data: dict[str, Any], stamp: float
) -> dict[str, Any]:
    destinations: dict[str, Any] = {}
    for key, field in (("on_success", "OnSuccess"), ("on_failure", "OnFailure")):
        arn = destination_arn(names, data.get(key))
        if arn:
            destinations[field] = {"Destination": arn}
    return {
        "FunctionArn": names.function_arn(name, qualifier),
        "MaximumRetryAttempts": int(data.get("maximum_retry_attempts", MAX_RETRY_ATTEMPTS)),
        "MaximumEventAgeInSeconds": int(data.get("maximum_event_age_s", MAX_EVENT_AGE_S)),
        "LastModified": stamp,
        "DestinationConfig": destinations,
    }


def _invoke_settings(names: Names, data: dict[str, Any]) -> dict[str, Any]:
    """Map Lambda's event-invoke fields to firebox's (only the fields given)."""
    out: dict[str, Any] = {}
    retries = field_of(data, "MaximumRetryAttempts", int)
    if retries is not None:
        if not 0 <= retries <= MAX_RETRY_ATTEMPTS:
            raise invalid_parameter(f"MaximumRetryAttempts must be 0-{MAX_RETRY_ATTEMPTS}")
        out["maximum_retry_attempts"] = retries
    age = field_of(data, "MaximumEventAgeInSeconds", int)
    if age is not None:
        if not MIN_EVENT_AGE_S <= age <= MAX_EVENT_AGE_S:
            raise invalid_parameter(
                f"MaximumEventAgeInSeconds must be {MIN_EVENT_AGE_S}-{MAX_EVENT_AGE_S}"
            )
        out["maximum_event_age_s"] = age
    destinations = field_of(data, "DestinationConfig", dict)
    if destinations is not None:
        for field, key in (("OnSuccess", "on_success"), ("OnFailure", "on_failure")):
            arn = _destination_member(destinations, field)
            out[key] = destination_of(names, arn, f"DestinationConfig.{field}") if arn else None
    return out


async def _invoke_target(request: Request) -> tuple[Node, Names, str, str]:
    node = node_of(request)
    names, name, qualifier = target_of(request)
    await record_of(node, names, name, qualifier)
    return node, names, name, qualifier or LATEST


async def _stored_invoke_config(
    node: Node, name: str, qualifier: str
) -> tuple[dict[str, Any], float] | None:
    data = await node.run_blocking(node.stores.event_configs.get, name, qualifier)
    if data is None:
        return None
    stamp = await node.run_blocking(node.stores.lambda_meta.get, EVENT_CONFIG, name, qualifier, "")
    return data, stamp.updated_at if stamp is not None else 0.0


async def _write_invoke_config(
    node: Node, names: Names, name: str, qualifier: str, settings: dict[str, Any]
) -> Response:
    config = await node.run_blocking(node.async_invoker.put_config, name, qualifier, settings)
    stamp = await node.run_blocking(
        lambda: node.stores.lambda_meta.put(EVENT_CONFIG, name, qualifier, "", {})
    )
    assert stamp is not None
    return ok(_invoke_config_shape(names, name, qualifier, config.to_dict(), stamp.updated_at))


async def put_invoke_config(request: Request) -> Response:
    """PUT /2019-09-25/functions/{name}/event-invoke-config (PutFunctionEventInvokeConfig)."""
    node, names, name, qualifier = await _invoke_target(request)
    settings = _invoke_settings(names, await body_of(request))
    return await _write_invoke_config(node, names, name, qualifier, settings)


async def update_invoke_config(request: Request) -> Response:
    """POST /2019-09-25/functions/{name}/event-invoke-config (UpdateFunctionEventInvokeConfig):
    the fields given change, the others keep their value."""
    node, names, name, qualifier = await _invoke_target(request)
    changes = _invoke_settings(names, await body_of(request))
    stored = await _stored_invoke_config(node, name, qualifier)
    current = {k: v for k, v in (stored[0] if stored else {}).items() if v is not None}
    return await _write_invoke_config(node, names, name, qualifier, {**current, **changes})


def _no_invoke_config(names: Names, name: str, qualifier: str) -> LambdaError:
    return LambdaError(
        "ResourceNotFoundException", 404,
        f"The function {names.function_arn(name, qualifier)} doesn't have an EventInvokeConfig",
    )  # fmt: skip


async def get_invoke_config(request: Request) -> Response:
    """GET /2019-09-25/functions/{name}/event-invoke-config (GetFunctionEventInvokeConfig)."""
    node, names, name, qualifier = await _invoke_target(request)
    stored = await _stored_invoke_config(node, name, qualifier)
    if stored is None:
        raise _no_invoke_config(names, name, qualifier)
    return ok(_invoke_config_shape(names, name, qualifier, *stored))


async def delete_invoke_config(request: Request) -> Response:
    """DELETE /2019-09-25/functions/{name}/event-invoke-config (DeleteFunctionEventInvokeConfig)."""
    node, names, name, qualifier = await _invoke_target(request)
    if await _stored_invoke_config(node, name, qualifier) is None:
        raise _no_invoke_config(names, name, qualifier)
    await node.run_blocking(node.stores.event_configs.delete, name, qualifier)
    await node.run_blocking(node.stores.lambda_meta.delete, EVENT_CONFIG, name, qualifier)
    return Response(status_code=204)


async def list_invoke_configs(request: Request) -> Response:
    """GET /2019-09-25/functions/{name}/event-invoke-config/list (ListFunctionEventInvokeConfigs)."""
    node = node_of(request)
    names, name, _ = target_of(request)
    await record_of(node, names, name, None)
    qualifiers = [LATEST, *(r.version for r in await node.functions.published(name))]
    qualifiers += [a.name for a in await node.functions.aliases(name)]
    configs = []
    for qualifier in qualifiers:
        stored = await _stored_invoke_config(node, name, qualifier)
        if stored is not None:
            configs.append(_invoke_config_shape(names, name, qualifier, *stored))
    return ok({"FunctionEventInvokeConfigs": configs})


# --- event source mappings -------------------------------------------------------------

# Lambda's fields of a mapping -> firebox's settings.
_MAPPING_FIELDS = (
    ("BatchSize", "batch_size", int),
    ("MaximumBatchingWindowInSeconds", "maximum_batching_window_s", int),
    ("StartingPosition", "starting_position", str),
    ("FunctionResponseTypes", "function_response_types", list),
    ("MaximumRetryAttempts", "maximum_retry_attempts", int),
    ("MaximumRecordAgeInSeconds", "maximum_record_age_s", int),
    ("BisectBatchOnFunctionError", "bisect_batch_on_function_error", bool),
)
# Fields that would change what is delivered, which firebox does not do: refused when set.
_MAPPING_REFUSED = (
    "FilterCriteria", "StartingPositionTimestamp", "ParallelizationFactor", "Topics", "Queues",
    "SourceAccessConfigurations", "SelfManagedEventSource", "TumblingWindowInSeconds",
    "AmazonManagedKafkaEventSourceConfig", "SelfManagedKafkaEventSourceConfig",
    "DocumentDBEventSourceConfig", "ProvisionedPollerConfig",
)  # fmt: skip


def _mapping_settings(names: Names, data: dict[str, Any]) -> dict[str, Any]:
    for key in _MAPPING_REFUSED:
        if data.get(key):
            raise invalid_parameter(f"{key} is not supported by firebox's event source mappings")
    out: dict[str, Any] = {}
    for field, key, kind in _MAPPING_FIELDS:
        value = field_of(data, field, kind)
        if value is not None:
            out[key] = value
    scaling = field_of(data, "ScalingConfig", dict)
    if scaling and scaling.get("MaximumConcurrency") is not None:
        out["maximum_concurrency"] = scaling["MaximumConcurrency"]
    destinations = field_of(data, "DestinationConfig", dict)
    if destinations is not None:
        arn = _destination_member(destinations, "OnFailure")
        if arn:
            target = destination_of(names, arn, "DestinationConfig.OnFailure")
            if target["type"] != "queue":
                raise invalid_parameter("a mapping's OnFailure destination must be a queue")
            out["destination_on_failure"] = target
        else:
            out["destination_on_failure"] = None
    return out


# A DynamoDB stream's resource: table/NAME/stream/LABEL (any label: a table has one stream).
DYNAMODB_STREAM = re.compile(r"^table/([A-Za-z0-9_.-]{1,255})/stream/[^/]+$")


def source_of(names: Names, arn: Any) -> str:
    """Return firebox's `queue:NAME` / `stream:NAME` / `table:NAME` for an sqs, kinesis or
    dynamodb stream ARN."""
    service, resource = _parse_arn(names, arn, "EventSourceArn")
    if service == "sqs":
        return f"queue:{resource}"
    if service == "kinesis" and resource.startswith("stream/"):
        return f"stream:{resource[len('stream/') :]}"
    table = DYNAMODB_STREAM.match(resource) if service == "dynamodb" else None
    if table is not None:
        return f"table:{table.group(1)}"
    raise invalid_parameter(
        f"EventSourceArn {arn}: firebox maps its own queues (sqs ARNs), streams"
        " (kinesis stream ARNs) and tables' streams (dynamodb table/NAME/stream/LABEL ARNs) only"
    )


def mapping_shape(names: Names, record: MappingRecord) -> dict[str, Any]:
    """Return Lambda's EventSourceMappingConfiguration for a mapping."""
    config = record.config
    qualifier = record.qualifier if record.qualifier != LATEST else None
    out: dict[str, Any] = {
        "UUID": record.id,
        "EventSourceArn": source_arn(record.source_kind, record.source),
        "FunctionArn": names.function_arn(record.function, qualifier),
        "BatchSize": config.get("batch_size"),
        "MaximumBatchingWindowInSeconds": int(config.get("maximum_batching_window_s") or 0),
        "FunctionResponseTypes": list(config.get("function_response_types") or []),
        "LastModified": record.updated_at or record.created_at,
        "State": record.state,
        "StateTransitionReason": record.state_reason or "USER_INITIATED",
        "LastProcessingResult": "No records processed",
        "EventSourceMappingArn": f"arn:aws:lambda:{names.region}:{names.account}"
        f":event-source-mapping:{record.id}",
    }
    if config.get("maximum_concurrency") is not None:
        out["ScalingConfig"] = {"MaximumConcurrency": config["maximum_concurrency"]}
    if config.get("starting_position"):
        out["StartingPosition"] = config["starting_position"]
    if record.source_kind == "stream" or int(config.get("maximum_retry_attempts", -1)) >= 0:
        out["MaximumRetryAttempts"] = int(config.get("maximum_retry_attempts", -1))
    if config.get("maximum_record_age_s") is not None:
        out["MaximumRecordAgeInSeconds"] = int(config["maximum_record_age_s"])
    if config.get("bisect_batch_on_function_error") is not None:
        out["BisectBatchOnFunctionError"] = config["bisect_batch_on_function_error"]
    failure = destination_arn(names, config.get("destination_on_failure"))
    out["DestinationConfig"] = {"OnFailure": {"Destination": failure}} if failure else {}
    return out


async def _mapping(request: Request) -> MappingRecord:
    try:
        return await node_of(request).mappings.get(request.path_params["uuid"])
    except MappingNotFound:
        raise LambdaError(
            "ResourceNotFoundException", 404,
            f"The resource you requested does not exist. (mapping {request.path_params['uuid']})",
        ) from None  # fmt: skip


def _function_of(names: Names, data: dict[str, Any]) -> tuple[str | None, str | None]:
    raw = field_of(data, "FunctionName", str)
    if raw is None:
        return None, None
    return names.parse(raw)


async def create_mapping(request: Request) -> Response:
    """POST /2015-03-31/event-source-mappings (CreateEventSourceMapping): 202."""
    node = node_of(request)
    names = Names(node.config, node.artifacts)
    data = await body_of(request)
    name, qualifier = _function_of(names, data)
    if not name:
        raise invalid_parameter("FunctionName is required")
    source = source_of(names, data.get("EventSourceArn"))
    enabled = field_of(data, "Enabled", bool)
    settings = {k: v for k, v in _mapping_settings(names, data).items() if v is not None}
    await record_of(node, names, name, qualifier)
    try:
        record = await node.mappings.create(
            name, source, settings, qualifier=qualifier, enabled=enabled is not False
        )
    except FunctionNotFound:
        raise names.not_found(name, qualifier) from None
    return ok(mapping_shape(names, record), 202)


async def get_mapping(request: Request) -> Response:
    """GET /2015-03-31/event-source-mappings/{uuid} (GetEventSourceMapping)."""
    names = Names(node_of(request).config)
    return ok(mapping_shape(names, await _mapping(request)))


async def update_mapping(request: Request) -> Response:
    """PUT /2015-03-31/event-source-mappings/{uuid} (UpdateEventSourceMapping): 202."""
    node = node_of(request)
    names = Names(node.config)
    current = await _mapping(request)
    data = await body_of(request)
    changes = _mapping_settings(names, data)
    name, qualifier = _function_of(names, data)
    if name:
        changes["function"], changes["qualifier"] = name, qualifier or LATEST
    enabled = field_of(data, "Enabled", bool)
    if enabled is not None:
        changes["enabled"] = enabled
    record = await node.mappings.update(current.id, changes)
    return ok(mapping_shape(names, record), 202)


async def delete_mapping(request: Request) -> Response:
    """DELETE /2015-03-31/event-source-mappings/{uuid} (DeleteEventSourceMapping): 202."""
    node = node_of(request)
    record = await _mapping(request)
    await node.mappings.delete(record.id)
    shape = mapping_shape(Names(node.config), record)
    return ok({**shape, "State": "Deleting"}, 202)


async def list_mappings(request: Request) -> Response:
    """GET /2015-03-31/event-source-mappings (ListEventSourceMappings): by FunctionName and
    EventSourceArn, Marker/MaxItems."""
    node = node_of(request)
    names = Names(node.config)
    query = request.query_params
    name = None
    if query.get("FunctionName"):
        name, _ = names.parse(query["FunctionName"])
    records = await node.mappings.list(name)
    if query.get("EventSourceArn"):
        wanted = query["EventSourceArn"]
        records = [r for r in records if source_arn(r.source_kind, r.source) == wanted]
    start = int(query["Marker"]) if query.get("Marker", "").isdigit() else 0
    raw = query.get("MaxItems") or "100"
    if not (raw.isdigit() and 1 <= int(raw) <= 10_000):
        raise invalid_parameter(f"MaxItems must be between 1 and 10000, got {raw!r}")
    end = start + int(raw)
    out: dict[str, Any] = {
        "EventSourceMappings": [mapping_shape(names, r) for r in records[start:end]]
    }
    if end < len(records):
        out["NextMarker"] = str(end)
    return ok(out)


def routes() -> list[Route]:
    """Return the routes of the event-invoke config and event source mapping operations."""
    eic = "/2019-09-25/functions/{name}/event-invoke-config"
    esm = "/2015-03-31/event-source-mappings"
    table: list[tuple[str, Endpoint, str]] = [
        (eic, put_invoke_config, "PUT"),
        (eic, update_invoke_config, "POST"),
        (eic, get_invoke_config, "GET"),
        (eic, delete_invoke_config, "DELETE"),
        (eic + "/list", list_invoke_configs, "GET"),
        (esm, create_mapping, "POST"),
        (esm + "/", create_mapping, "POST"),
        (esm, list_mappings, "GET"),
        (esm + "/", list_mappings, "GET"),
        (esm + "/{uuid}", get_mapping, "GET"),
        (esm + "/{uuid}", update_mapping, "PUT"),
        (esm + "/{uuid}", delete_mapping, "DELETE"),
    ]
    return [Route(path, operation(endpoint), methods=[method]) for path, endpoint, method in table]
