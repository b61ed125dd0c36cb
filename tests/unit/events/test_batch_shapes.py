"""The Lambda-shaped data of mapping batches: SQS and Kinesis events, ReportBatchItemFailures
answers, and the records sent for items given up on."""

from __future__ import annotations

import json
import uuid

from firebox.runtime.events.batch_shapes import (
    failed_items,
    iso,
    kinesis_event,
    kinesis_failure_record,
    sqs_event,
    sqs_failure_attributes,
)
from firebox.runtime.events.queue import TYPES_ATTRIBUTE, Message
from firebox.runtime.events.stream import Record
from firebox.runtime.storage.mappings import MappingRecord


def test_event_shapes_are_lambdas() -> None:
    message = Message("m-1", b"hello", "rh-1", 2, 1700000000.5, {"k": "v"})
    sqs = sqs_event("orders", [message])["Records"][0]
    assert sqs["messageId"] == "m-1" and sqs["receiptHandle"] == "rh-1" and sqs["body"] == "hello"
    assert sqs["attributes"]["ApproximateReceiveCount"] == "2"
    assert sqs["attributes"]["SentTimestamp"] == "1700000000500"
    assert sqs["messageAttributes"]["k"]["stringValue"] == "v"
    assert sqs["md5OfBody"] == "5d41402abc4b2a76b9719d911017c592"
    assert sqs["eventSource"] == "aws:sqs"
    assert sqs["eventSourceARN"] == "arn:aws:sqs:us-east-1:000000000000:orders"
    record = Record("49-7", "user-1", b"\x00\x01", 1700000000.25)
    kinesis = kinesis_event("clicks", "shardId-000000000001", [record])["Records"][0]
    assert kinesis["kinesis"] == {
        "kinesisSchemaVersion": "1.0",
        "partitionKey": "user-1",
        "sequenceNumber": "49-7",
        "data": "AAE=",
        "approximateArrivalTimestamp": 1700000000.25,
    }
    assert kinesis["eventID"] == "shardId-000000000001:49-7"
    assert kinesis["eventName"] == "aws:kinesis:record" and kinesis["eventVersion"] == "1.0"
    assert kinesis["eventSourceARN"] == "arn:aws:kinesis:us-east-1:000000000000:stream/clicks"
    # ReportBatchItemFailures responses, read as Lambda reads them.
    assert failed_items(b"", ["a"]) == set() and failed_items(b"null", ["a"]) == set()
    assert failed_items(b'{"batchItemFailures": []}', ["a"]) == set()
    assert failed_items(b'{"batchItemFailures": [{"itemIdentifier": "a"}]}', ["a"]) == {"a"}
    assert failed_items(b'{"batchItemFailures": [{"itemIdentifier": "z"}]}', ["a"]) is None
    assert failed_items(b'{"batchItemFailures": [{"itemIdentifier": ""}]}', ["a"]) is None
    assert failed_items(b"not json", ["a"]) is None


def test_report_batch_item_failures_of_other_shapes_fail_the_whole_batch() -> None:
    assert failed_items(b'{"batchItemFailures": "a"}', ["a"]) is None
    assert failed_items(b'{"batchItemFailures": ["a"]}', ["a"]) is None
    assert failed_items(b'{"batchItemFailures": [{"itemIdentifier": null}]}', ["a"]) is None
    assert failed_items(b'{"batchItemFailures": [{"id": "a"}]}', ["a"]) is None
    assert failed_items(b"\xff\xfe", ["a"]) is None
    # Named twice is failed once; whitespace alone is no answer.
    twice = b'{"batchItemFailures": [{"itemIdentifier": "b"}, {"itemIdentifier": "b"}]}'
    assert failed_items(twice, ["a", "b"]) == {"b"}
    assert failed_items(b"  \n", ["a"]) == set()


def test_sqs_events_keep_batch_order_and_survive_binary_bodies() -> None:
    batch = [
        Message("m-1", b"first", "rh-1", 1, 1.0),
        Message("m-2", b"\xff\x00ok", "rh-2", 3, 2.0),
    ]
    event = sqs_event("orders", batch)
    assert [r["messageId"] for r in event["Records"]] == ["m-1", "m-2"]
    assert event["Records"][1]["body"] == "\ufffd\x00ok"
    assert event["Records"][1]["md5OfBody"] == "7eadef5738d910ed810d8b57bb301548"
    assert event["Records"][0]["messageAttributes"] == {}
    assert sqs_event("orders", []) == {"Records": []}


def test_iso_timestamps_are_utc_with_milliseconds() -> None:
    assert iso(0) == "1970-01-01T00:00:00.000Z"
    assert iso(1700000000.25) == "2023-11-14T22:13:20.250Z"


def test_the_kinesis_failure_record_names_the_batch_and_why() -> None:
    mapping = MappingRecord("m-1", "consumer", "live", "stream", "clicks")
    batch = [Record("49-1", "u", b"a", 1700000000.0), Record("49-9", "u", b"b", 1700000001.5)]
    record = kinesis_failure_record(
        mapping, "shardId-000000000000", batch, 3, "RetryAttemptsExhausted", "HandlerError", "2",
        now=1700000100.0,
    )  # fmt: skip
    context = record["requestContext"]
    uuid.UUID(context["requestId"])
    assert context["functionArn"] == "arn:aws:lambda:us-east-1:000000000000:function:consumer:live"
    assert context["condition"] == "RetryAttemptsExhausted"
    assert context["approximateInvokeCount"] == 3
    assert record["responseContext"] == {
        "statusCode": 200, "executedVersion": "2", "functionError": "HandlerError",
    }  # fmt: skip
    assert record["version"] == "1.0" and record["timestamp"] == "2023-11-14T22:15:00.000Z"
    assert record["KinesisBatchInfo"] == {
        "shardId": "shardId-000000000000",
        "startSequenceNumber": "49-1",
        "endSequenceNumber": "49-9",
        "approximateArrivalOfFirstRecord": "2023-11-14T22:13:20.000Z",
        "approximateArrivalOfLastRecord": "2023-11-14T22:13:21.500Z",
        "batchSize": 2,
        "streamArn": "arn:aws:kinesis:us-east-1:000000000000:stream/clicks",
    }
    json.dumps(record)  # what is sent to the destination queue


def test_a_kinesis_failure_record_without_an_error_is_unhandled() -> None:
    mapping = MappingRecord("m-1", "consumer", "$LATEST", "stream", "clicks")
    batch = [Record("7", "u", b"a", 1.0)]
    record = kinesis_failure_record(mapping, "s", batch, 0, "RecordAgeExceeded", None, None, 2.0)
    assert record["responseContext"]["functionError"] == "Unhandled"
    assert record["responseContext"]["executedVersion"] == "$LATEST"
    assert record["requestContext"]["condition"] == "RecordAgeExceeded"
    assert record["KinesisBatchInfo"]["startSequenceNumber"] == "7"
    assert record["KinesisBatchInfo"]["endSequenceNumber"] == "7"


def test_a_message_sent_to_the_failure_destination_says_where_it_came_from() -> None:
    message = Message("m-9", b"body", "rh", 4, 1.0, {"trace": "t-1"})
    assert sqs_failure_attributes("map-1", "orders", message, "Throttled") == {
        "trace": "t-1",
        "FireboxSourceQueue": "orders",
        "FireboxMessageId": "m-9",
        "FireboxMappingId": "map-1",
        "FireboxCondition": "RetryAttemptsExhausted",
        "FireboxErrorCode": "Throttled",
        "ApproximateReceiveCount": "4",
    }
    reported = sqs_failure_attributes("map-1", "orders", message, None)
    assert reported["FireboxErrorCode"] == "BatchItemFailure"


def test_sqs_events_keep_the_data_types_the_sqs_api_recorded() -> None:
    attributes = {
        "n": "12.5",
        "b": "AAH/",
        "s": "x",
        TYPES_ATTRIBUTE: '{"b": "Binary", "n": "Number"}',
    }
    message = Message("m-1", b"hello", "rh-1", 1, 1700000000.0, attributes)
    shown = sqs_event("orders", [message])["Records"][0]["messageAttributes"]
    assert set(shown) == {"n", "b", "s"}
    assert shown["n"]["dataType"] == "Number" and shown["n"]["stringValue"] == "12.5"
    assert shown["b"]["dataType"] == "Binary" and shown["b"]["binaryValue"] == "AAH/"
    assert "stringValue" not in shown["b"]
    assert shown["s"] == {
        "stringValue": "x",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
