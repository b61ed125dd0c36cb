"""Event source mapping settings: defaults, validation errors naming the field, the stored
form, sources and their ARNs, the public description."""

from __future__ import annotations

from typing import Any

import pytest
from firebox.runtime.errors import BadRequest
from firebox.runtime.events.mapping_config import (
    MappingConfig,
    describe,
    parse_source,
    source_arn,
)
from firebox.runtime.storage.mappings import MappingRecord

STREAM = {"starting_position": "TRIM_HORIZON"}


def test_queue_defaults_are_lambdas() -> None:
    config = MappingConfig.parse("queue", {})
    assert config.batch_size == 10 and config.maximum_concurrency == 2
    assert config.maximum_retry_attempts == -1 and not config.report_failures
    assert config.to_dict() == {
        "batch_size": 10,
        "maximum_batching_window_s": 0.0,
        "maximum_concurrency": 2,
        "function_response_types": [],
        "maximum_retry_attempts": -1,
    }


def test_stream_defaults_are_lambdas() -> None:
    config = MappingConfig.parse("stream", {"starting_position": "LATEST"})
    assert config.to_dict() == {
        "batch_size": 100,
        "maximum_batching_window_s": 0.0,
        "starting_position": "LATEST",
        "function_response_types": [],
        "bisect_batch_on_function_error": False,
        "maximum_retry_attempts": -1,
        "maximum_record_age_s": -1.0,
    }
    assert config.maximum_concurrency is None


def test_settings_round_trip_through_the_stored_form() -> None:
    data: dict[str, Any] = {
        "batch_size": 50,
        "maximum_batching_window_s": 2.5,
        "starting_position": "TRIM_HORIZON",
        "function_response_types": ["ReportBatchItemFailures", "ReportBatchItemFailures"],
        "bisect_batch_on_function_error": True,
        "maximum_retry_attempts": 3,
        "maximum_record_age_s": 60,
        "destination_on_failure": {"type": "queue", "name": "dlq"},
    }
    config = MappingConfig.parse("stream", data)
    assert config.report_failures and config.function_response_types == ("ReportBatchItemFailures",)
    assert config.destination_on_failure == "dlq" and config.maximum_record_age_s == 60.0
    stored = config.to_dict()
    assert stored["destination_on_failure"] == {"type": "queue", "name": "dlq"}
    assert MappingConfig.parse("stream", stored) == config


def test_unset_settings_of_the_other_kind_are_not_unknown() -> None:
    config = MappingConfig.parse("queue", {"starting_position": None, "batch_size": None})
    assert config.batch_size == 10


def test_a_queue_mapping_with_retries_may_name_a_failure_destination() -> None:
    config = MappingConfig.parse(
        "queue",
        {"maximum_retry_attempts": 0, "destination_on_failure": {"type": "queue", "name": "d"}},
    )
    assert config.destination_on_failure == "d" and config.maximum_retry_attempts == 0


@pytest.mark.parametrize(
    ("kind", "data", "message"),
    [
        ("queue", {"batch_size": 0}, "batch_size must be a number 1..10000, got 0"),
        ("queue", {"batch_size": 10_001}, "batch_size must be a number 1..10000"),
        ("queue", {"batch_size": 2.5}, "batch_size must be an integer 1..10000, got 2.5"),
        ("queue", {"batch_size": 5.0}, "batch_size must be an integer"),
        ("queue", {"batch_size": True}, "batch_size must be a number"),
        ("queue", {"batch_size": "10"}, "batch_size must be a number"),
        ("queue", {"maximum_concurrency": 1}, "maximum_concurrency must be a number 2..1000"),
        ("queue", {"maximum_batching_window_s": 301}, "maximum_batching_window_s must be a number 0..300"),
        ("queue", {"maximum_retry_attempts": -2}, "maximum_retry_attempts must be a number -1..10000"),
        ("queue", {"starting_position": "LATEST"}, "unknown setting(s) for a queue mapping: starting_position"),
        ("queue", {"destination_on_failure": {"type": "queue", "name": "q"}}, "maximum_retry_attempts >= 0"),
        ("queue", {"function_response_types": ["X"]}, "function_response_types must be"),
        ("queue", {"function_response_types": "ReportBatchItemFailures"}, "function_response_types"),
        ("queue", {"maximum_retry_attempts": 1, "destination_on_failure": "q"}, "destination_on_failure must be"),
        ("queue", {"maximum_retry_attempts": 1, "destination_on_failure": {"type": "function", "name": "f"}},
         "destination_on_failure must be"),
        ("stream", {}, "starting_position TRIM_HORIZON or LATEST"),
        ("stream", {"starting_position": "AT_TIMESTAMP"}, "starting_position"),
        ("stream", {**STREAM, "maximum_concurrency": 5}, "unknown setting(s) for a stream mapping: maximum_concurrency"),
        ("stream", {**STREAM, "bisect_batch_on_function_error": "yes"}, "must be true or false"),
        ("stream", {**STREAM, "maximum_record_age_s": 0}, "-1 (no limit) or positive"),
        ("stream", {**STREAM, "maximum_record_age_s": -0.5}, "-1 (no limit) or positive"),
        ("stream", {**STREAM, "maximum_record_age_s": 7 * 86400 + 1}, "maximum_record_age_s must be a number"),
    ],
)  # fmt: skip
def test_bad_settings_are_refused_naming_the_field(
    kind: str, data: dict[str, Any], message: str
) -> None:
    with pytest.raises(BadRequest) as caught:
        MappingConfig.parse(kind, data)
    assert message in caught.value.message


def test_unknown_settings_are_listed_with_the_allowed_ones() -> None:
    with pytest.raises(BadRequest) as caught:
        MappingConfig.parse("queue", {"batchsize": 5, "parallel": 2})
    assert caught.value.message.startswith(
        "unknown setting(s) for a queue mapping: batchsize, parallel; allowed: batch_size,"
    )


@pytest.mark.parametrize(
    ("source", "expected"),
    [("queue:orders", ("queue", "orders")), ("stream:clicks", ("stream", "clicks")),
     ("queue:a:b", ("queue", "a:b"))],
)  # fmt: skip
def test_sources_name_a_queue_or_a_stream(source: str, expected: tuple[str, str]) -> None:
    assert parse_source(source) == expected


@pytest.mark.parametrize("source", ["topic:t", "queue:", "orders", "", None, 7])
def test_other_sources_are_refused(source: Any) -> None:
    with pytest.raises(
        BadRequest, match='source must be "queue:NAME", "stream:NAME" or "table:NAME"'
    ):
        parse_source(source)


def test_sources_have_sqs_and_kinesis_arns() -> None:
    assert source_arn("queue", "orders") == "arn:aws:sqs:us-east-1:000000000000:orders"
    assert source_arn("stream", "clicks") == "arn:aws:kinesis:us-east-1:000000000000:stream/clicks"


def test_describe_shows_the_source_its_arn_the_settings_and_the_state() -> None:
    record = MappingRecord(
        "m-1", "consumer", "$LATEST", "queue", "orders",
        config=MappingConfig.parse("queue", {"batch_size": 5}).to_dict(),
        created_at=10.0, updated_at=20.0,
    )  # fmt: skip
    described = describe(record)
    assert described["source"] == "queue:orders"
    assert described["source_arn"] == "arn:aws:sqs:us-east-1:000000000000:orders"
    assert described["batch_size"] == 5 and described["maximum_concurrency"] == 2
    assert described["function"] == "consumer" and described["qualifier"] == "$LATEST"
    assert described["enabled"] is True and described["state"] == "Enabled"
    assert (described["created_at"], described["updated_at"]) == (10.0, 20.0)
