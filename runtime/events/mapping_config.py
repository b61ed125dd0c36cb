"""Event source mapping settings: parsing, validation and description (events layer).

The settings follow Lambda's CreateEventSourceMapping for SQS (queue) and Kinesis
(stream) sources, with Lambda's limits and defaults; every refusal is a BadRequest that
names the field.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from firebox.runtime.config import arn
from firebox.runtime.errors import BadRequest
from firebox.runtime.events.queue import check_public
from firebox.runtime.events.stream import MAX_READ_LIMIT
from firebox.runtime.grants import NAME_RE
from firebox.runtime.storage.changes import table_stream, table_stream_arn
from firebox.runtime.storage.mappings import MappingRecord

REPORT_FAILURES = "ReportBatchItemFailures"
TRIM_HORIZON, LATEST = "TRIM_HORIZON", "LATEST"
# Lambda's limits and defaults for SQS and Kinesis mappings.
DEFAULT_QUEUE_BATCH = 10
DEFAULT_STREAM_BATCH = 100
MAX_BATCH = MAX_READ_LIMIT
MAX_WINDOW_S = 300.0
DEFAULT_CONCURRENCY = 2
MAX_CONCURRENCY = 1000
MAX_RETRY_ATTEMPTS = 10_000
MAX_RECORD_AGE_S = 7 * 86400.0

_QUEUE_KEYS = {"batch_size", "maximum_batching_window_s", "maximum_concurrency",
               "function_response_types", "maximum_retry_attempts", "destination_on_failure"}  # fmt: skip
_STREAM_KEYS = {"batch_size", "maximum_batching_window_s", "starting_position",
                "function_response_types", "bisect_batch_on_function_error",
                "maximum_retry_attempts", "maximum_record_age_s", "destination_on_failure"}  # fmt: skip


def _number(data: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = data.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise BadRequest(f"{key} must be a number {low:g}..{high:g}, got {value!r}")
    return float(value)


def _integer(data: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = _number(data, key, default, low, high)
    if value != int(value) or isinstance(data.get(key), float):
        raise BadRequest(f"{key} must be an integer {low}..{high}, got {data.get(key)!r}")
    return int(value)


@dataclass(frozen=True)
class MappingConfig:
    """The validated batching, retry and failure settings of one mapping.

    Queue mappings: `maximum_retry_attempts` -1 leaves failed messages to the queue's
    redrive policy; n >= 0 sends a message that failed n + 1 deliveries to
    `destination_on_failure` and deletes it. Stream mappings: -1 retries forever.
    """

    batch_size: int
    maximum_batching_window_s: float = 0.0
    maximum_concurrency: int | None = None
    starting_position: str | None = None
    function_response_types: tuple[str, ...] = ()
    bisect_batch_on_function_error: bool | None = None
    maximum_retry_attempts: int = -1
    maximum_record_age_s: float | None = None
    destination_on_failure: str | None = None

    @property
    def report_failures(self) -> bool:
        """Whether the function reports partial batch failures."""
        return REPORT_FAILURES in self.function_response_types

    @classmethod
    def parse(cls, kind: str, data: dict[str, Any]) -> MappingConfig:
        """Validate settings for a `queue` or `stream` mapping; raises BadRequest naming the field."""
        allowed = _QUEUE_KEYS if kind == "queue" else _STREAM_KEYS
        unknown = sorted(k for k in set(data) - allowed if data[k] is not None)
        if unknown:
            raise BadRequest(
                f"unknown setting(s) for a {kind} mapping: {', '.join(unknown)};"
                f" allowed: {', '.join(sorted(allowed))}"
            )
        default_batch = DEFAULT_QUEUE_BATCH if kind == "queue" else DEFAULT_STREAM_BATCH
        types = data.get("function_response_types") or []
        if not isinstance(types, list | tuple) or any(t != REPORT_FAILURES for t in types):
            raise BadRequest(f'function_response_types must be ["{REPORT_FAILURES}"] or []')
        destination = data.get("destination_on_failure")
        if destination is not None and (
            not isinstance(destination, dict)
            or destination.get("type") != "queue"
            or not isinstance(destination.get("name"), str)
        ):
            raise BadRequest('destination_on_failure must be {"type": "queue", "name": "..."}')
        if destination is not None:
            check_public(destination["name"], "destination_on_failure queue")
        config = cls(
            batch_size=_integer(data, "batch_size", default_batch, 1, MAX_BATCH),
            maximum_batching_window_s=_number(data, "maximum_batching_window_s", 0, 0, MAX_WINDOW_S),
            function_response_types=tuple(dict.fromkeys(types)),
            maximum_retry_attempts=_integer(data, "maximum_retry_attempts", -1, -1, MAX_RETRY_ATTEMPTS),
            destination_on_failure=destination["name"] if destination else None,
        )  # fmt: skip
        if kind == "queue":
            concurrency = _integer(
                data, "maximum_concurrency", DEFAULT_CONCURRENCY, 2, MAX_CONCURRENCY
            )
            if config.destination_on_failure and config.maximum_retry_attempts < 0:
                raise BadRequest(
                    "destination_on_failure on a queue mapping needs maximum_retry_attempts >= 0"
                    " (or use the queue's own dead-letter queue)"
                )
            return cls(**{**asdict(config), "maximum_concurrency": concurrency})
        position = data.get("starting_position")
        if position not in (TRIM_HORIZON, LATEST):
            raise BadRequest(f"a stream mapping needs starting_position {TRIM_HORIZON} or {LATEST}")
        bisect = data.get("bisect_batch_on_function_error", False)
        if not isinstance(bisect, bool):
            raise BadRequest("bisect_batch_on_function_error must be true or false")
        age = _number(data, "maximum_record_age_s", -1, -1, MAX_RECORD_AGE_S)
        if -1 < age <= 0:
            raise BadRequest("maximum_record_age_s must be -1 (no limit) or positive")
        return cls(**{**asdict(config), "starting_position": position,
                      "bisect_batch_on_function_error": bisect, "maximum_record_age_s": age})  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """Return the stored/wire form (settings of the other source kind left out)."""
        out = {k: v for k, v in asdict(self).items() if v is not None}
        out["function_response_types"] = list(self.function_response_types)
        if self.destination_on_failure is not None:
            out["destination_on_failure"] = {"type": "queue", "name": self.destination_on_failure}
        return out


def parse_source(source: Any) -> tuple[str, str]:
    """Split `queue:NAME`, `stream:NAME` or `table:NAME` (a table's change stream) into
    (kind, name); raises BadRequest."""
    kind, _, name = str(source).partition(":")
    if kind not in ("queue", "stream", "table") or not name or not isinstance(source, str):
        raise BadRequest(
            f'source must be "queue:NAME", "stream:NAME" or "table:NAME", got {source!r}'
        )
    if kind in ("queue", "stream"):
        check_public(name, kind)
    elif not NAME_RE.match(name):
        raise BadRequest(f"bad table name {name[:80]!r}: 1-63 letters, digits, '_', '.', '-'")
    return kind, name


def source_arn(kind: str, name: str) -> str:
    """Return the Lambda-style ARN of a queue (SQS), stream (Kinesis) or table's stream
    (DynamoDB Streams)."""
    if kind == "queue":
        return arn("sqs", name)
    if kind == "table":
        return table_stream_arn(name)
    return arn("kinesis", f"stream/{name}")


def stream_of(kind: str, name: str) -> str:
    """Return the firebox stream a stream or table mapping reads."""
    return table_stream(name) if kind == "table" else name


def describe(record: MappingRecord) -> dict[str, Any]:
    """Return the public description of a mapping."""
    return {
        "id": record.id,
        "function": record.function,
        "qualifier": record.qualifier,
        "source": f"{record.source_kind}:{record.source}",
        "source_arn": source_arn(record.source_kind, record.source),
        **record.config,
        "enabled": record.enabled,
        "state": record.state,
        "state_reason": record.state_reason,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }
