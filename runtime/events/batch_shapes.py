"""The Lambda-shaped data of a mapping's batches (events layer).

The SQS and Kinesis events a function receives, how its ReportBatchItemFailures answer
is read, and the records sent for items given up on.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from firebox.runtime.config import account_id, arn, region
from firebox.runtime.events.mapping_config import source_arn
from firebox.runtime.events.queue import Message, typed_attributes
from firebox.runtime.events.stream import Record
from firebox.runtime.storage.changes import decode_record
from firebox.runtime.storage.mappings import MappingRecord


def iso(ts: float) -> str:
    """Return a Unix time as Lambda's ISO 8601 timestamp (UTC, milliseconds)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _event_attribute(data_type: str, value: str) -> dict[str, Any]:
    """One of Lambda's SQS `messageAttributes` (binary values stay base64, as Lambda's are)."""
    kind = "binaryValue" if data_type.startswith("Binary") else "stringValue"
    return {kind: value, "stringListValues": [], "binaryListValues": [], "dataType": data_type}


def sqs_event(queue: str, messages: Sequence[Message]) -> dict[str, Any]:
    """Return Lambda's SQS event for a batch of messages."""
    now_ms = str(int(time.time() * 1000))
    return {"Records": [{
        "messageId": m.id,
        "receiptHandle": m.receipt_handle,
        "body": m.body.decode("utf-8", "replace"),
        "attributes": {"ApproximateReceiveCount": str(m.receive_count),
                       "SentTimestamp": str(int(m.sent_at * 1000)),
                       "SenderId": account_id(), "ApproximateFirstReceiveTimestamp": now_ms},
        "messageAttributes": {k: _event_attribute(t, v)
                              for k, (t, v) in typed_attributes(m.attributes).items()},
        "md5OfBody": hashlib.md5(m.body).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": source_arn("queue", queue),
        "awsRegion": region(),
    } for m in messages]}  # fmt: skip


def kinesis_event(stream: str, shard: str, records: Sequence[Record]) -> dict[str, Any]:
    """Return Lambda's Kinesis event for a batch of one shard's records."""
    return {"Records": [{
        "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": r.partition_key,
                    "sequenceNumber": r.sequence_number,
                    "data": base64.b64encode(r.data).decode(),
                    "approximateArrivalTimestamp": r.arrival_ts},
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard}:{r.sequence_number}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": arn("iam", "role/firebox-event-source-mapping"),
        "awsRegion": region(),
        "eventSourceARN": source_arn("stream", stream),
    } for r in records]}  # fmt: skip


def dynamodb_event(table: str, shard: str, records: Sequence[Record]) -> dict[str, Any]:
    """Return Lambda's DynamoDB Streams event for a batch of a table's change records (the
    stream's sequence numbers fill `SequenceNumber` and `eventID`)."""
    out = []
    for r in records:
        record = decode_record(r.data)
        record["eventID"] = hashlib.md5(f"{shard}:{r.sequence_number}".encode()).hexdigest()
        record["dynamodb"] = {**record["dynamodb"], "SequenceNumber": r.sequence_number}
        out.append(record)
    return {"Records": out}


def failed_items(output: bytes, known: Sequence[str]) -> set[str] | None:
    """Return the item identifiers a ReportBatchItemFailures response names as failed.

    As Lambda: no response, a null or empty list mean all succeeded; a response that is
    not JSON, or names an empty or unknown identifier, fails the whole batch (None).
    """
    try:
        data = json.loads(output) if output.strip() else None
    except (ValueError, UnicodeDecodeError):
        return None
    items = data.get("batchItemFailures") if isinstance(data, dict) else None
    if not items:
        return set()
    if not isinstance(items, list):
        return None
    failed = set()
    for item in items:
        ident = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(ident, str) or ident not in known:
            return None
        failed.add(ident)
    return failed


def kinesis_failure_record(
    mapping: MappingRecord,
    shard: str,
    records: Sequence[Record],
    attempts: int,
    condition: str,
    error_code: str | None,
    version: str | None,
    now: float,
) -> dict[str, Any]:
    """Return Lambda's on-failure record for stream (or table stream) records given up on (`condition` is
    RetryAttemptsExhausted or RecordAgeExceeded; no error code means Unhandled)."""
    return {
        "requestContext": {"requestId": str(uuid.uuid4()),
                           "functionArn": arn("lambda", f"function:{mapping.function}:{mapping.qualifier}"),
                           "condition": condition, "approximateInvokeCount": attempts},
        "responseContext": {"statusCode": 200, "executedVersion": version or mapping.qualifier,
                            "functionError": error_code if error_code is not None else "Unhandled"},
        "version": "1.0",
        "timestamp": iso(now),
        ("DDBStreamBatchInfo" if mapping.source_kind == "table" else "KinesisBatchInfo"): {
            "shardId": shard, "startSequenceNumber": records[0].sequence_number,
            "endSequenceNumber": records[-1].sequence_number,
            "approximateArrivalOfFirstRecord": iso(records[0].arrival_ts),
            "approximateArrivalOfLastRecord": iso(records[-1].arrival_ts),
            "batchSize": len(records), "streamArn": source_arn(mapping.source_kind, mapping.source)},
    }  # fmt: skip


def sqs_failure_attributes(
    mapping_id: str, queue: str, message: Message, error_code: str | None
) -> dict[str, str]:
    """Return the attributes of a queue message sent to the failure destination after it
    used up its retries: its own, plus where it came from and why (no error code means
    the function reported it as a failed batch item)."""
    return {**message.attributes, "FireboxSourceQueue": queue, "FireboxMessageId": message.id,
            "FireboxMappingId": mapping_id, "FireboxCondition": "RetryAttemptsExhausted",
            "FireboxErrorCode": error_code if error_code is not None else "BatchItemFailure",
            "ApproximateReceiveCount": str(message.receive_count)}  # fmt: skip
