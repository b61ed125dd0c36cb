"""What the route table cannot say about each native operation: its query parameters, its
body and its answers, as OpenAPI 3.1 fragments keyed by (method, route template) (front-end layer).

`runtime/http/openapi.py` walks the app's routes and looks each one up here; a route
without an entry, or an entry without a route, fails `tests/unit/test_openapi.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Schema = dict[str, Any]

STRING: Schema = {"type": "string"}
OBJECT: Schema = {"type": "object"}
STR_MAP: Schema = {"type": "object", "additionalProperties": {"type": "string"}}
TIMESTAMP: Schema = {"type": "number", "description": "Unix time, seconds"}
NAME: Schema = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}


def obj(*required: str, **properties: Schema) -> Schema:
    """Return an object schema with these properties (others allowed, as the API ignores
    or refuses them with a 400 itself)."""
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


def array(items: Schema, **extra: Any) -> Schema:
    """Return an array schema."""
    return {"type": "array", "items": items, **extra}


def integer(low: int, high: int) -> Schema:
    """Return a bounded integer schema."""
    return {"type": "integer", "minimum": low, "maximum": high}


@dataclass(frozen=True)
class Param:
    """A query parameter (or a header, with `where="header"`)."""

    name: str
    schema: Schema
    description: str = ""
    required: bool = False
    where: str = "query"


@dataclass(frozen=True)
class Operation:
    """The parts of one operation the route table does not carry."""

    tag: str
    ok: int = 200
    body: Schema | None = None
    body_required: bool = False
    params: tuple[Param, ...] = ()
    #: The success body's schema and media type (None: no body, e.g. 204).
    result: Schema | None = field(default_factory=lambda: dict(OBJECT))
    media_type: str = "application/json"
    #: The body is the invocation's event: any JSON value.
    raw_body: bool = False
    public: bool = False


WINDOW = (
    Param("since", TIMESTAMP, "only records at or after this time"),
    Param("until", TIMESTAMP, "only records before this time"),
)
LOG_QUERY = (
    *WINDOW,
    Param("request_id", STRING, "one invocation's log"),
    Param("version", STRING, "one version's logs"),
    Param("limit", integer(1, 10_000), "at most this many records (default 100)"),
    Param("follow", {"type": "string", "enum": ["0", "1", "true"]}, "1: stream NDJSON records"),
    Param("timeout", {"type": "number", "minimum": 0}, "seconds a followed stream lasts"),
)
USAGE_QUERY = (*WINDOW, Param("records", {"type": "string", "enum": ["0", "1", "true"]}))
QUALIFIER = Param("qualifier", STRING, "a version or alias (default $LATEST)")
ROUTING: Schema = {"type": "object", "additionalProperties": {"type": "number"}}
MANIFEST = obj(
    "name",
    name=NAME,
    runtime={"type": "string", "enum": ["module", "python"]},
    handler=STRING,
    memory=integer(1, 4096),
    timeout={"type": "number"},
    concurrency=integer(0, 10_000),
    provisioned=integer(0, 10_000),
    environment=STR_MAP,
    triggers=array(obj(route=STRING, methods=array(STRING), export=STRING)),
)
CODE = obj(code_base64={"type": "string", "contentEncoding": "base64"})
QUEUE_ATTRIBUTES = dict(
    visibility_timeout_s={"type": "number"},
    retention_s={"type": "number"},
    delay_s={"type": "number"},
    max_receive_count=integer(1, 1000),
    dead_letter_queue=STRING,
)
MESSAGE = obj("body", body=STRING, attributes=STR_MAP, delay_s={"type": "number"}, dedup_id=STRING)
MAPPING_SETTINGS = dict(
    batch_size=integer(1, 10_000),
    maximum_batching_window_s={"type": "number"},
    maximum_retry_attempts=integer(-1, 10_000),
    starting_position={"type": "string", "enum": ["TRIM_HORIZON", "LATEST"]},
    enabled={"type": "boolean"},
)
SCHEDULE = dict(
    name=NAME,
    function=STRING,
    qualifier=STRING,
    expression={"type": "string", "examples": ["rate(5 minutes)", "cron(0 12 * * ? *)"]},
    payload={},
    catch_up={"type": "string", "enum": ["skip", "one", "all"]},
    enabled={"type": "boolean"},
)
DESTINATION = obj(type=STRING, name=STRING)
TEXT = {"type": "string"}

F = "/v1/functions/{name}"
Q = "/v1/queues/{queue}"
S = "/v1/streams/{stream}"
M = "/v1/event-source-mappings"

#: Every native operation, by (method, route template).
OPERATIONS: dict[tuple[str, str], Operation] = {
    ("GET", "/healthz"): Operation("node", public=True),
    ("GET", "/metrics"): Operation("node", result=TEXT, media_type="text/plain"),
    ("GET", "/v1/openapi.json"): Operation("node"),
    ("GET", "/v1/node"): Operation("node"),
    ("GET", "/v1/usage"): Operation("telemetry", params=USAGE_QUERY),
    ("GET", "/v1/logs"): Operation("telemetry", params=LOG_QUERY),
    ("POST", "/v1/functions"): Operation(
        "functions",
        ok=201,
        body=obj(
            "manifest",
            manifest={"oneOf": [MANIFEST, STRING]},
            code_base64={"type": "string", "contentEncoding": "base64"},
            tags=STR_MAP,
        ),
        body_required=True,
    ),
    ("GET", "/v1/functions"): Operation(
        "functions",
        params=(Param("after", STRING), Param("limit", integer(1, 10_000))),
    ),
    ("GET", F): Operation("functions"),
    ("DELETE", F): Operation("functions", ok=204, result=None),
    ("PUT", F + "/code"): Operation("functions", body=CODE, body_required=True),
    ("PATCH", F + "/configuration"): Operation(
        "functions",
        body=obj(
            memory=integer(1, 4096),
            timeout={"type": "number"},
            concurrency=integer(0, 10_000),
            environment=STR_MAP,
            description=STRING,
        ),
    ),
    ("POST", F + "/versions"): Operation("versions", ok=201, body=obj(description=STRING)),
    ("GET", F + "/versions"): Operation("versions"),
    ("GET", F + "/aliases"): Operation("aliases"),
    ("POST", F + "/aliases"): Operation(
        "aliases",
        ok=201,
        body=obj(
            "name", "version", name=STRING, version=STRING, routing=ROUTING, description=STRING
        ),
        body_required=True,
    ),
    ("GET", F + "/aliases/{alias}"): Operation("aliases"),
    ("PUT", F + "/aliases/{alias}"): Operation(
        "aliases", body=obj(version=STRING, routing=ROUTING, description=STRING)
    ),
    ("DELETE", F + "/aliases/{alias}"): Operation("aliases", ok=204, result=None),
    ("GET", F + "/provisioned"): Operation("functions"),
    ("PUT", F + "/provisioned"): Operation(
        "functions",
        body=obj("count", qualifier=STRING, count=integer(0, 10_000)),
        body_required=True,
    ),
    ("PUT", F + "/tags"): Operation("functions", body=obj("tags", tags=STR_MAP)),
    ("POST", F + "/invoke"): Operation(
        "invoke",
        raw_body=True,
        params=(
            QUALIFIER,
            Param("export", STRING, "the export to call (default the manifest's)"),
            Param("log", {"type": "string", "enum": ["tail"]}, "tail: the log's end in a header"),
            Param(
                "X-Firebox-Invocation-Type",
                {"type": "string", "enum": ["RequestResponse", "Event", "DryRun"]},
                where="header",
            ),
            Param("X-Firebox-Idempotency-Key", STRING, where="header"),
        ),
        result={},
    ),
    ("GET", F + "/logs"): Operation("telemetry", params=LOG_QUERY),
    ("GET", F + "/usage"): Operation("telemetry", params=USAGE_QUERY),
    ("PUT", F + "/event-invoke-config"): Operation(
        "events",
        params=(QUALIFIER,),
        body=obj(
            maximum_retry_attempts=integer(0, 2),
            maximum_event_age_s={"type": "number"},
            on_success=DESTINATION,
            on_failure=DESTINATION,
        ),
    ),
    ("GET", F + "/event-invoke-config"): Operation("events", params=(QUALIFIER,)),
    ("GET", "/v1/events/metrics"): Operation("events"),
    ("GET", "/v1/tables"): Operation("data"),
    ("GET", "/v1/tables/{table}/items"): Operation(
        "data",
        params=(Param("prefix", STRING), Param("limit", integer(1, 1000)), Param("cursor", STRING)),
    ),
    ("GET", "/v1/tables/{table}/items/{key:path}"): Operation("data"),
    ("PUT", "/v1/tables/{table}/items/{key:path}"): Operation(
        "data",
        body=obj(
            "value",
            value={},
            ttl={"type": "number"},
            if_absent={"type": "boolean"},
            if_version={"type": "integer"},
        ),
        body_required=True,
    ),
    ("DELETE", "/v1/tables/{table}/items/{key:path}"): Operation(
        "data", ok=204, result=None, params=(Param("if_version", {"type": "integer"}),)
    ),
    ("GET", "/v1/buckets"): Operation("data"),
    ("GET", "/v1/buckets/{bucket}/objects"): Operation(
        "data",
        params=(Param("prefix", STRING), Param("limit", integer(1, 1000)), Param("cursor", STRING)),
    ),
    ("GET", "/v1/buckets/{bucket}/objects/{key:path}"): Operation(
        "data",
        result={"type": "string", "contentEncoding": "binary"},
        media_type="application/octet-stream",
    ),
    ("PUT", "/v1/buckets/{bucket}/objects/{key:path}"): Operation("data", ok=201, raw_body=True),
    ("DELETE", "/v1/buckets/{bucket}/objects/{key:path}"): Operation("data", ok=204, result=None),
    ("GET", "/v1/buckets/{bucket}/notifications"): Operation("data"),
    ("PUT", "/v1/buckets/{bucket}/notifications"): Operation(
        "data",
        body=obj(
            functions=array(
                obj(
                    "function",
                    id=STRING,
                    function=STRING,
                    events=array(STRING),
                    prefix=STRING,
                    suffix=STRING,
                )
            ),
            queues=array(
                obj(
                    "queue",
                    id=STRING,
                    queue=STRING,
                    events=array(STRING),
                    prefix=STRING,
                    suffix=STRING,
                )
            ),
        ),
    ),
    ("GET", "/v1/tables/{table}/stream"): Operation("data"),
    ("PUT", "/v1/tables/{table}/stream"): Operation(
        "data",
        body=obj(
            view_type={
                "type": "string",
                "enum": ["KEYS_ONLY", "NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES"],
            }
        ),
    ),
    ("DELETE", "/v1/tables/{table}/stream"): Operation("data", ok=204, result=None),
    ("GET", "/v1/secrets"): Operation("data"),
    ("PUT", "/v1/secrets/{name}"): Operation(
        "data", body=obj("value", value=STRING), body_required=True
    ),
    ("GET", "/v1/secrets/{name}"): Operation("data"),
    ("DELETE", "/v1/secrets/{name}"): Operation("data", ok=204, result=None),
    ("POST", "/v1/queues"): Operation(
        "queues", ok=201, body=obj("name", name=NAME, **QUEUE_ATTRIBUTES), body_required=True
    ),
    ("GET", "/v1/queues"): Operation("queues", params=(Param("prefix", STRING),)),
    ("GET", Q): Operation("queues"),
    ("DELETE", Q): Operation("queues", ok=204, result=None),
    ("POST", Q + "/purge"): Operation("queues", ok=204, result=None),
    ("POST", Q + "/messages"): Operation(
        "queues",
        ok=201,
        body={"oneOf": [MESSAGE, obj("entries", entries=array(MESSAGE, maxItems=10))]},
        body_required=True,
    ),
    ("POST", Q + "/receive"): Operation(
        "queues",
        body=obj(
            max_messages=integer(1, 10),
            visibility_timeout_s={"type": "number"},
            wait_s={"type": "number", "minimum": 0, "maximum": 20},
        ),
    ),
    ("POST", Q + "/delete"): Operation(
        "queues", body=obj("receipt_handles", receipt_handles=array(STRING))
    ),
    ("POST", Q + "/visibility"): Operation(
        "queues",
        body=obj(
            "receipt_handle", "timeout_s", receipt_handle=STRING, timeout_s={"type": "number"}
        ),
    ),
    ("POST", "/v1/streams"): Operation(
        "streams",
        ok=201,
        body=obj("name", name=NAME, shards=integer(1, 64), retention_s={"type": "number"}),
        body_required=True,
    ),
    ("GET", "/v1/streams"): Operation("streams"),
    ("GET", S): Operation("streams"),
    ("DELETE", S): Operation("streams", ok=204, result=None),
    ("POST", S + "/records"): Operation(
        "streams",
        ok=201,
        body={
            "oneOf": [
                obj("partition_key", "data", partition_key=STRING, data=STRING),
                obj("records", records=array(obj(partition_key=STRING, data=STRING))),
            ]
        },
        body_required=True,
    ),
    ("GET", S + "/shards/{shard}/records"): Operation(
        "streams", params=(Param("after", STRING), Param("limit", integer(1, 10_000)))
    ),
    ("POST", M): Operation(
        "mappings",
        ok=201,
        body=obj(
            "function",
            "source",
            function=STRING,
            qualifier=STRING,
            source={"type": "string", "examples": ["queue:orders", "stream:clicks"]},
            **MAPPING_SETTINGS,
        ),
        body_required=True,
    ),
    ("GET", M): Operation("mappings", params=(Param("function", STRING),)),
    ("GET", M + "/{id}"): Operation("mappings"),
    ("PATCH", M + "/{id}"): Operation(
        "mappings", body=obj(function=STRING, qualifier=STRING, **MAPPING_SETTINGS)
    ),
    ("DELETE", M + "/{id}"): Operation("mappings", ok=204, result=None),
    ("POST", "/v1/schedules"): Operation(
        "schedules",
        ok=201,
        body=obj("name", "function", "expression", **SCHEDULE),
        body_required=True,
    ),
    ("GET", "/v1/schedules"): Operation("schedules"),
    ("GET", "/v1/schedules/{name}"): Operation("schedules"),
    ("PATCH", "/v1/schedules/{name}"): Operation("schedules", body=obj(**SCHEDULE)),
    ("DELETE", "/v1/schedules/{name}"): Operation("schedules", ok=204, result=None),
    ("POST", "/v1/keys"): Operation("keys", ok=201, body=obj(description=STRING)),
    ("GET", "/v1/keys"): Operation("keys"),
    ("DELETE", "/v1/keys/{key_id}"): Operation("keys", ok=204, result=None),
}
