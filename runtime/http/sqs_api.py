"""The SQS-compatible API over firebox queues: AWS's JSON 1.0 protocol, as botocore speaks it (front-end layer).

boto3's `sqs` client (and the AWS CLI) pointed at the node works unchanged: requests are
`POST /` with `X-Amz-Target: AmazonSQS.<Operation>`, signed with SigV4 for service `sqs`
(checked in `auth.py`). Queue URLs are `<node>/<account>/<queue>`; queue ARNs are
`arn:aws:sqs:<region>:<account>:<queue>`, usable in RedrivePolicy. Errors come in SQS's
JSON shape (`__type` `com.amazonaws.sqs#<Code>`), so `except sqs.exceptions.QueueDoesNotExist`
catches them. Operations firebox does not implement answer `UnsupportedOperation` naming
the operation; an unknown target answers `UnknownOperationException`.

Message attributes are kept as text in the queue's `attributes` (what the native API and
Lambda's SQS event show); the data type of each attribute that is not `String` is kept in
the reserved attribute `AWS.Firebox.DataTypes` (SQS refuses user names starting `AWS.`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import struct
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from firebox.runtime import roles
from firebox.runtime.config import account_id, arn
from firebox.runtime.errors import (
    BadRequest,
    CapabilityDenied,
    FireboxError,
    Forbidden,
    FunctionNotFound,
    InvalidReceiptHandle,
    PayloadTooLarge,
    QueueAlreadyExists,
    QueueNotFound,
    Unauthorized,
)
from firebox.runtime.events.queue import (
    MAX_DELAY_S,
    MAX_RECEIVE_BATCH,
    MAX_RECEIVE_COUNT,
    MAX_VISIBILITY_TIMEOUT_S,
    MAX_WAIT_S,
    TYPES_ATTRIBUTE,
    Message,
    QueueAttributes,
    QueueBackend,
    SendEntry,
    check_public,
    is_internal,
    typed_attributes,
)
from firebox.runtime.grants import Grants
from firebox.runtime.http.codec import decode_json
from firebox.runtime.http.event_bodies import MAX_MESSAGE_BYTES, call_backend
from firebox.runtime.http.native import node_of
from starlette.requests import Request
from starlette.responses import Response

TARGET_PREFIX = "AmazonSQS."
CONTENT_TYPE = "application/x-amz-json-1.0"
# SQS: a retention of 60 s to 14 days; attribute names and batch entry ids.
MIN_RETENTION_S, MAX_RETENTION_S = 60, 14 * 24 * 3600
_ATTRIBUTE_NAME = re.compile(r"^(?!AWS\.|Amazon\.)(?!.*\.\.)[A-Za-z0-9_.-]{1,256}(?<!\.)$")
_ENTRY_ID = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
_DATA_TYPE = re.compile(r"^(String|Number|Binary)(\.[^\s]{1,250})?$")
# A long poll looks for messages this often (never holding a thread while it waits).
POLL_INTERVAL_S = 0.1

Handler = Callable[[Request, dict[str, Any]], Awaitable[dict[str, Any]]]


class SqsError(Exception):
    """An error in SQS's shape: a code botocore knows, a message, a status."""

    def __init__(self, code: str, message: str, status: int = 400, sender: bool = True) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.sender = sender


def is_sqs_request(headers: list[tuple[bytes, bytes]], method: str, path: str) -> bool:
    """Return True for a request of the SQS API: `POST /` with an `AmazonSQS.` target."""
    if method != "POST" or path != "/":
        return False
    target = next((v for k, v in headers if k == b"x-amz-target"), b"")
    return target.startswith(TARGET_PREFIX.encode())


def error_response(exc: Exception) -> Response:
    """Return `exc` (an SqsError, a FireboxError or a SigV4 refusal) in SQS's shape."""
    error = _as_sqs_error(exc)
    body = {"__type": f"com.amazonaws.sqs#{error.code}", "message": error.message}
    return Response(
        json.dumps(body),
        status_code=error.status,
        media_type=CONTENT_TYPE,
        headers={"x-amzn-RequestId": str(uuid.uuid4())},
    )


# SigV4 refusals (named as Lambda names them) by the codes SQS answers with.
_SIGV4_CODES = {
    "UnrecognizedClientException": "InvalidClientTokenId",
    "InvalidSignatureException": "SignatureDoesNotMatch",
    "IncompleteSignatureException": "IncompleteSignature",
}


def _as_sqs_error(exc: Exception) -> SqsError:
    if isinstance(exc, SqsError):
        return exc
    code = getattr(exc, "code", None)
    message = getattr(exc, "message", None) or str(exc)
    if isinstance(exc, QueueNotFound):
        return SqsError("QueueDoesNotExist", "The specified queue does not exist.")
    if isinstance(exc, QueueAlreadyExists):
        return SqsError(
            "QueueNameExists",
            "A queue already exists with the same name and different attributes.",
        )
    if isinstance(exc, InvalidReceiptHandle):
        return SqsError("ReceiptHandleIsInvalid", message)
    if isinstance(exc, PayloadTooLarge):
        return SqsError("InvalidParameterValue", message)
    if isinstance(exc, Unauthorized):
        return SqsError("InvalidClientTokenId", message, 403)
    if isinstance(exc, Forbidden):
        return SqsError("AccessDenied", message, 403)
    if isinstance(exc, BadRequest):
        return SqsError("InvalidParameterValue", message)
    if isinstance(code, str) and not isinstance(exc, FireboxError):  # sigv4.SigV4Error
        return SqsError(_SIGV4_CODES.get(code, code), message, 403)
    raise exc


# --- request fields ------------------------------------------------------------------


def _text(data: dict[str, Any], key: str, required: bool = True) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise SqsError("MissingParameter", f"The request must contain the parameter {key}.")
        return None
    if not isinstance(value, str):
        raise SqsError("InvalidParameterValue", f"{key} must be a string.")
    return value


def _integer(data: dict[str, Any], key: str, low: int, high: int) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SqsError(
            "InvalidParameterValue",
            f"Value {value!r} for parameter {key} is invalid: {low}..{high}.",
        )
    return value


def _queue_name(data: dict[str, Any]) -> str:
    """The queue named by `QueueUrl` (its last path segment); internal queues are refused."""
    url = _text(data, "QueueUrl")
    assert url is not None
    name = url.rstrip("/").rpartition("/")[2]
    if not name:
        raise SqsError("InvalidAddress", f"The address {url} is not valid for this endpoint.")
    if is_internal(name):
        raise SqsError("QueueDoesNotExist", "The specified queue does not exist.")
    return name


def _queue_url(request: Request, name: str) -> str:
    return f"{str(request.base_url).rstrip('/')}/{account_id()}/{name}"


def _name_from_arn(value: str) -> str:
    parts = value.split(":")
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sqs" or not parts[5]:
        raise SqsError("InvalidParameterValue", f"Value {value} is not a valid queue ARN.")
    return parts[5]


# --- queue attributes ----------------------------------------------------------------

_SETTABLE = {
    "VisibilityTimeout",
    "MessageRetentionPeriod",
    "DelaySeconds",
    "RedrivePolicy",
    "MaximumMessageSize",
    "ReceiveMessageWaitTimeSeconds",
}


def _number_attribute(name: str, value: str, low: int, high: int) -> int:
    if not value.isdigit() or not low <= int(value) <= high:
        raise SqsError(
            "InvalidAttributeValue", f"Invalid value for the parameter {name}: {low}..{high}."
        )
    return int(value)


def _apply_attributes(current: QueueAttributes, given: Any) -> QueueAttributes:
    """Return `current` changed by SQS attributes; raises InvalidAttributeName/Value."""
    if given is None:
        return current
    if not isinstance(given, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in given.items()
    ):
        raise SqsError("InvalidParameterValue", "Attributes must map names to strings.")
    unknown = sorted(set(given) - _SETTABLE)
    if unknown:
        raise SqsError(
            "InvalidAttributeName",
            f"Unknown or unsupported attribute {unknown[0]} (firebox queues support"
            f" {', '.join(sorted(_SETTABLE))}; FIFO queues, encryption and policies are not"
            " implemented).",
        )
    attrs = current
    if "VisibilityTimeout" in given:
        seconds = _number_attribute(
            "VisibilityTimeout", given["VisibilityTimeout"], 0, int(MAX_VISIBILITY_TIMEOUT_S)
        )
        attrs = replace(attrs, visibility_timeout_s=float(seconds))
    if "MessageRetentionPeriod" in given:
        seconds = _number_attribute(
            "MessageRetentionPeriod",
            given["MessageRetentionPeriod"],
            MIN_RETENTION_S,
            MAX_RETENTION_S,
        )
        attrs = replace(attrs, retention_s=float(seconds))
    if "DelaySeconds" in given:
        seconds = _number_attribute("DelaySeconds", given["DelaySeconds"], 0, int(MAX_DELAY_S))
        attrs = replace(attrs, delay_s=float(seconds))
    if "MaximumMessageSize" in given:  # firebox's limit is SQS's maximum; only that is accepted
        _number_attribute(
            "MaximumMessageSize", given["MaximumMessageSize"], MAX_MESSAGE_BYTES, MAX_MESSAGE_BYTES
        )
    if "ReceiveMessageWaitTimeSeconds" in given:  # only short polling by default
        _number_attribute(
            "ReceiveMessageWaitTimeSeconds", given["ReceiveMessageWaitTimeSeconds"], 0, 0
        )
    if "RedrivePolicy" in given:
        attrs = _redrive(attrs, given["RedrivePolicy"])
    return attrs


def _redrive(attrs: QueueAttributes, text: str) -> QueueAttributes:
    if text == "":
        return replace(attrs, dead_letter_queue=None, max_receive_count=None)
    try:
        policy = decode_json(text)
    except BadRequest as exc:
        raise SqsError("InvalidAttributeValue", f"RedrivePolicy is not valid JSON: {exc}") from None
    if not isinstance(policy, dict) or not isinstance(policy.get("deadLetterTargetArn"), str):
        raise SqsError(
            "InvalidAttributeValue", "RedrivePolicy needs deadLetterTargetArn and maxReceiveCount."
        )
    count = policy.get("maxReceiveCount")
    if isinstance(count, str) and count.isdigit():
        count = int(count)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_RECEIVE_COUNT:
        raise SqsError("InvalidAttributeValue", f"maxReceiveCount must be 1..{MAX_RECEIVE_COUNT}.")
    target = _name_from_arn(policy["deadLetterTargetArn"])
    try:
        check_public(target, "dead-letter queue")
    except Forbidden as exc:
        raise SqsError("InvalidAttributeValue", exc.message) from None
    return replace(attrs, dead_letter_queue=target, max_receive_count=count)


async def _attributes_of(queues: QueueBackend, name: str, wanted: list[str]) -> dict[str, str]:
    attrs = await call_backend(queues.get_attributes, name)
    stats = await call_backend(queues.stats, name)
    every: dict[str, str] = {
        "QueueArn": arn("sqs", name),
        "ApproximateNumberOfMessages": str(stats.depth),
        "ApproximateNumberOfMessagesNotVisible": str(stats.in_flight),
        "ApproximateNumberOfMessagesDelayed": str(stats.delayed),
        "VisibilityTimeout": str(round(attrs.visibility_timeout_s)),
        "MessageRetentionPeriod": str(round(attrs.retention_s)),
        "DelaySeconds": str(round(attrs.delay_s)),
        "MaximumMessageSize": str(MAX_MESSAGE_BYTES),
        "ReceiveMessageWaitTimeSeconds": "0",
    }
    if attrs.dead_letter_queue is not None:
        every["RedrivePolicy"] = json.dumps(
            {
                "deadLetterTargetArn": arn("sqs", attrs.dead_letter_queue),
                "maxReceiveCount": attrs.max_receive_count,
            }
        )
    if "All" in wanted:
        return every
    return {k: v for k, v in every.items() if k in wanted}


# --- message attributes --------------------------------------------------------------


def _message_attributes(given: Any) -> dict[str, str]:
    """SQS's typed MessageAttributes as firebox's text attributes (types kept aside)."""
    if given is None:
        return {}
    if not isinstance(given, dict) or len(given) > 10:
        raise SqsError(
            "InvalidParameterValue", "MessageAttributes must be a map of at most 10 entries."
        )
    out: dict[str, str] = {}
    types: dict[str, str] = {}
    for name, value in given.items():
        if not isinstance(name, str) or not _ATTRIBUTE_NAME.match(name):
            raise SqsError("InvalidParameterValue", f"Message attribute name '{name}' is invalid.")
        if not isinstance(value, dict) or not isinstance(value.get("DataType"), str):
            raise SqsError(
                "InvalidParameterValue", f"Message attribute '{name}' must have a DataType."
            )
        data_type = value["DataType"]
        if not _DATA_TYPE.match(data_type):
            raise SqsError(
                "InvalidParameterValue",
                f"Message attribute '{name}' has an invalid type '{data_type}'.",
            )
        if data_type.startswith("Binary"):
            raw = value.get("BinaryValue")
            if not isinstance(raw, str):
                raise SqsError(
                    "InvalidParameterValue", f"Message attribute '{name}' needs a BinaryValue."
                )
            out[name] = raw  # base64, as the JSON protocol carries it
        else:
            text = value.get("StringValue")
            if not isinstance(text, str):
                raise SqsError(
                    "InvalidParameterValue", f"Message attribute '{name}' needs a StringValue."
                )
            out[name] = text
        if data_type != "String":
            types[name] = data_type
    if types:
        out[TYPES_ATTRIBUTE] = json.dumps(types, sort_keys=True)
    return out


def _attributes_md5(typed: dict[str, tuple[str, str]]) -> str:
    """SQS's MD5OfMessageAttributes: names sorted, each length-prefixed with a type byte."""
    digest = hashlib.md5()

    def put(data: bytes) -> None:
        digest.update(struct.pack(">I", len(data)) + data)

    for name in sorted(typed):
        data_type, value = typed[name]
        put(name.encode())
        put(data_type.encode())
        if data_type.startswith("Binary"):
            digest.update(b"\x02")
            put(base64.b64decode(value))
        else:
            digest.update(b"\x01")
            put(value.encode())
    return digest.hexdigest()


def _wire_attribute(data_type: str, value: str) -> dict[str, str]:
    if data_type.startswith("Binary"):
        return {"DataType": data_type, "BinaryValue": value}
    return {"DataType": data_type, "StringValue": value}


def _selected(typed: dict[str, tuple[str, str]], names: Any) -> dict[str, tuple[str, str]]:
    if not isinstance(names, list) or not names:
        return {}
    if "All" in names or ".*" in names:
        return typed
    prefixes = [n[:-2] for n in names if isinstance(n, str) and n.endswith(".*")]
    return {k: v for k, v in typed.items() if k in names or any(k.startswith(p) for p in prefixes)}


# --- entries -------------------------------------------------------------------------


def _send_entry(data: dict[str, Any]) -> SendEntry:
    body = _text(data, "MessageBody")
    assert body is not None
    if body == "":
        raise SqsError("MissingParameter", "The request must contain the parameter MessageBody.")
    raw = body.encode()
    attributes = _message_attributes(data.get("MessageAttributes"))
    size = len(raw) + sum(len(k) + len(v) for k, v in attributes.items())
    if size > MAX_MESSAGE_BYTES:
        raise SqsError(
            "InvalidParameterValue",
            f"One or more parameters are invalid. Reason: Message must be shorter than {MAX_MESSAGE_BYTES} bytes.",
        )
    delay = _integer(data, "DelaySeconds", 0, int(MAX_DELAY_S))
    dedup = _text(data, "MessageDeduplicationId", required=False)
    if dedup is not None and not 1 <= len(dedup) <= 128:
        raise SqsError(
            "InvalidParameterValue", "MessageDeduplicationId must be 1 to 128 characters."
        )
    if data.get("MessageGroupId") is not None:
        raise SqsError(
            "InvalidParameterValue",
            "MessageGroupId is for FIFO queues, which firebox does not implement.",
        )
    return SendEntry(
        body=raw,
        attributes=attributes or None,
        delay_s=None if delay is None else float(delay),
        dedup_id=dedup,
    )


def _sent(entry: SendEntry, message_id: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "MessageId": message_id,
        "MD5OfMessageBody": hashlib.md5(entry.body).hexdigest(),
    }
    if entry.attributes:
        out["MD5OfMessageAttributes"] = _attributes_md5(typed_attributes(entry.attributes))
    return out


def _batch_entries(data: dict[str, Any]) -> list[dict[str, Any]]:
    entries = data.get("Entries")
    if not isinstance(entries, list) or not entries:
        raise SqsError("EmptyBatchRequest", "There should be at least one entry in the request.")
    if len(entries) > 10:
        raise SqsError(
            "TooManyEntriesInBatchRequest",
            f"Maximum number of entries per request are 10. You have sent {len(entries)}.",
        )
    ids = []
    for entry in entries:
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("Id"), str)
            or not _ENTRY_ID.match(entry["Id"])
        ):
            raise SqsError(
                "InvalidBatchEntryId",
                "A batch entry id can only contain alphanumeric characters, hyphens and underscores (1-80).",
            )
        ids.append(entry["Id"])
    if len(set(ids)) != len(ids):
        raise SqsError(
            "BatchEntryIdsNotDistinct", "Two or more batch entries in the request have the same Id."
        )
    return entries


def _failed(entry_id: str, exc: Exception) -> dict[str, Any]:
    error = _as_sqs_error(exc)
    return {
        "Id": entry_id,
        "SenderFault": error.sender,
        "Code": error.code,
        "Message": error.message,
    }


# --- operations ----------------------------------------------------------------------


async def create_queue(request: Request, data: dict[str, Any]) -> dict[str, Any]:
    name = _text(data, "QueueName")
    assert name is not None
    if name.endswith(".fifo") or data.get("Attributes", {}).get("FifoQueue") == "true":
        raise SqsError("InvalidParameterValue", "FIFO queues are not implemented by firebox.")
    if data.get("tags"):
        raise SqsError(
            "UnsupportedOperation",
            "Queue tags are not implemented by firebox; create the queue without tags.",
        )
    try:
        check_public(name)
    except Forbidden as exc:
        raise SqsError("InvalidParameterValue", exc.message) from None
    attrs = _apply_attributes(QueueAttributes(), data.get("Attributes"))
    await call_backend(node_of(request).queues.create_queue, name, attrs)
    return {"QueueUrl": _queue_url(request, name)}


async def get_queue_url(request: Request, data: dict[str, Any]) -> dict[str, Any]:
    name = _text(data, "QueueName")
    assert name is not None
    if is_internal(name):
        raise QueueNotFound(name)
    await call_backend(node_of(request).queues.get_attributes, name)
    return {"QueueUrl": _queue_url(request, name)}


async def list_queues(request: Request, data: dict[str, Any]) -> dict[str, Any]:
    prefix = _text(data, "QueueNamePrefix", required=False) or ""
    limit = _integer(data, "MaxResults", 1, 1000)
    after = _text(data, "NextToken", required=False)
    names = [
        n
        for n in await call_backend(node_of(request).queues.list_queues, prefix)
        if not is_internal(n)
    ]
    role = request.scope.get(roles.SCOPE_KEY)
    if role is not None:  # a function sees the queues it was granted
        granted = set(_grants_of(request, role).queues)
        names = [n for n in names if n in granted]
    if after is not None:
        names = [n for n in names if n > after]
    out: dict[str, Any] = {}
    if limit is not None and len(names) > limit:
        names = names[:limit]
        out["NextToken"] = names[-1]
    if names:  # SQS leaves the key out when nothing matches (boto3 code checks .get)
        out["QueueUrls"] = [_queue_url(request, n) for n in names]
    return out


async def delete_queue(request: Request, data: dict[str, Any]) -> dict[str, Any]:
    await call_backend(node_of(request).queues.delete_queue, _queue_name(data))
    return {}


async def purge_queue(request: Request, data: dict[str, Any]) -> dict[str, Any]:
    await call_backend(node_of(request).queues.purge, _queue_name(data))
    return {}


async def get_queue_attributes(request: Request, data: dict[str, Any]) -> dict[str, Any]:
    wanted = data.get("AttributeNames") or ["All"]
    if not isinstance(wanted, list) or not all(isinstance(n, str) for n in wanted):
        raise SqsError("InvalidParameterValue", "AttributeNames must be a list of names.")
    found = await _attributes_of(node_of(request).queues, _queue_name(data), wanted)
    return {"Attributes": found} if found else {}


async def set_queue_attributes(request: Request, data: dict[str, Any]) -> dict[str, Any]:
    queues = node_of(request).queues
    name = _queue_name(data)
    if data.get("Attributes") is None:
        raise SqsError("MissingParameter", "The request must contain the parameter Attributes.")
    current = await call_backend(queues.get_attributes, name)
    changed = _apply_attributes(current, data["Attributes"])
    if changed.dead_letter_queue == name:
        raise SqsError("InvalidParameterValue", "A queue cannot be its own dead-letter queue.")
    await call_backend(queues.set_attributes, name, changed)
    return {}


async def send_message(request: Request, data: dict[str, Any]) -> dict[str, Any]:
    name = _queue_name(data)
    entry = _send_entry(data)
    [message_id] = await call_backend(node_of(request).queues.send_batch, name, [entry])
    return _sent(entry, message_id)


async def send_message_batch(request: Request, data: dict[str, Any]) -> dict[str, Any]:
    name = _queue_name(data)
    entries = _batch_entries(data)
    good: list[tuple[str, SendEntry]] = []
    failed = []
    for raw in entries:
        try:
            good.append((raw["Id"], _send_entry(raw)))
        except SqsError as exc:
            failed.append(_failed(raw["Id"], exc))
    total = sum(len(e.body) for _, e in good)
    if total > MAX_MESSAGE_BYTES:
        raise SqsError(
            "BatchRequestTooLong",
            f"Batch requests cannot be longer than {MAX_MESSAGE_BYTES} bytes.",
        )
    ids = (
        await call_backend(node_of(request).queues.send_batch, name, [e for _, e in good])
        if good
        else []
    )
    successful = [
        {"Id": entry_id, **_sent(entry, mid)}
        for (entry_id, entry), mid in zip(good, ids, strict=True)
    ]
    return {"Successful": successful, "Failed": failed}


def _received(message: Message, data: dict[str, Any]) -> dict[str, Any]:
    body = message.body.decode("utf-8", "replace")
    out: dict[str, Any] = {
        "MessageId": message.id,
        "ReceiptHandle": message.receipt_handle,
        "MD5OfBody": hashlib.md5(body.encode()).hexdigest(),
        "Body": body,
    }
    system = [*(data.get("AttributeNames") or []), *(data.get("MessageSystemAttributeNames") or [])]
    if system:
        every = {
            "SenderId": account_id(),
            "SentTimestamp": str(int(message.sent_at * 1000)),
            "ApproximateReceiveCount": str(message.receive_count),
            "ApproximateFirstReceiveTimestamp": str(int(time.time() * 1000)),
        }
        out["Attributes"] = (
            every if "All" in system else {k: v for k, v in every.items() if k in system}
        )
    typed = _selected(typed_attributes(message.attributes), data.get("MessageAttributeNames"))
    if typed:
        out["MessageAttributes"] = {k: _wire_attribute(t, v) for k, (t, v) in typed.items()}
        out["MD5OfMessageAttributes"] = _attributes_md5(typed)
    return out


async def receive_message(request: Request, data: dict[str, Any]) -> dict[str, Any]:
    queues = node_of(request).queues
    name = _queue_name(data)
    count = _integer(data, "MaxNumberOfMessages", 1, MAX_RECEIVE_BATCH) or 1
    visibility = _integer(data, "VisibilityTimeout", 0, int(MAX_VISIBILITY_TIMEOUT_S))
    wait = _integer(data, "WaitTimeSeconds", 0, int(MAX_WAIT_S)) or 0
    deadline = time.monotonic() + wait
    while True:  # a long poll sleeps on the loop between looks: no thread waits for it
        messages = await call_backend(
            queues.receive, name, count, None if visibility is None else float(visibility), 0.0
        )
        if messages or time.monotonic() >= deadline or await request.is_disconnected():
            break
        await asyncio.sleep(min(POLL_INTERVAL_S, max(0.0, deadline - time.monotonic())))
    return {"Messages": [_received(m, data) for m in messages]} if messages else {}


async def delete_message(request: Request, data: dict[str, Any]) -> dict[str, Any]:
    handle = _text(data, "ReceiptHandle")
    # SQS answers success for a stale handle (the message was redelivered or is gone).
    await call_backend(node_of(request).queues.delete, _queue_name(data), handle)
    return {}


async def delete_message_batch(request: Request, data: dict[str, Any]) -> dict[str, Any]:
    queues = node_of(request).queues
    name = _queue_name(data)
    successful, failed = [], []
    for entry in _batch_entries(data):
        try:
            handle = _text(entry, "ReceiptHandle")
            await call_backend(queues.delete, name, handle)
            successful.append({"Id": entry["Id"]})
        except (SqsError, FireboxError) as exc:
            failed.append(_failed(entry["Id"], exc))
    return {"Successful": successful, "Failed": failed}


async def _change_one(queues: QueueBackend, name: str, data: dict[str, Any]) -> None:
    handle = _text(data, "ReceiptHandle")
    timeout = _integer(data, "VisibilityTimeout", 0, int(MAX_VISIBILITY_TIMEOUT_S))
    if timeout is None:
        raise SqsError(
            "MissingParameter", "The request must contain the parameter VisibilityTimeout."
        )
    if not await call_backend(queues.change_visibility, name, handle, float(timeout)):
        raise SqsError("MessageNotInflight", "The message referred to is not in flight.")


async def change_message_visibility(request: Request, data: dict[str, Any]) -> dict[str, Any]:
    await _change_one(node_of(request).queues, _queue_name(data), data)
    return {}


async def change_message_visibility_batch(request: Request, data: dict[str, Any]) -> dict[str, Any]:
    queues = node_of(request).queues
    name = _queue_name(data)
    successful, failed = [], []
    for entry in _batch_entries(data):
        try:
            await _change_one(queues, name, entry)
            successful.append({"Id": entry["Id"]})
        except (SqsError, FireboxError) as exc:
            failed.append(_failed(entry["Id"], exc))
    return {"Successful": successful, "Failed": failed}


async def list_dead_letter_source_queues(request: Request, data: dict[str, Any]) -> dict[str, Any]:
    queues = node_of(request).queues
    target = _queue_name(data)
    await call_backend(queues.get_attributes, target)
    sources = []
    for name in await call_backend(queues.list_queues, ""):
        if is_internal(name):
            continue
        try:
            attrs = await call_backend(queues.get_attributes, name)
        except QueueNotFound:
            continue
        if attrs.dead_letter_queue == target:
            sources.append(_queue_url(request, name))
    return {"queueUrls": sources}


OPERATIONS: dict[str, Handler] = {
    "CreateQueue": create_queue,
    "GetQueueUrl": get_queue_url,
    "ListQueues": list_queues,
    "DeleteQueue": delete_queue,
    "PurgeQueue": purge_queue,
    "GetQueueAttributes": get_queue_attributes,
    "SetQueueAttributes": set_queue_attributes,
    "SendMessage": send_message,
    "SendMessageBatch": send_message_batch,
    "ReceiveMessage": receive_message,
    "DeleteMessage": delete_message,
    "DeleteMessageBatch": delete_message_batch,
    "ChangeMessageVisibility": change_message_visibility,
    "ChangeMessageVisibilityBatch": change_message_visibility_batch,
    "ListDeadLetterSourceQueues": list_dead_letter_source_queues,
}

# Operations of SQS's model firebox does not implement, and why (refused with that reason).
UNSUPPORTED: dict[str, str] = {
    "AddPermission": "queue policies are not implemented; access is by firebox access keys",
    "RemovePermission": "queue policies are not implemented; access is by firebox access keys",
    "TagQueue": "queue tags are not implemented",
    "UntagQueue": "queue tags are not implemented",
    "ListQueueTags": "queue tags are not implemented",
    "StartMessageMoveTask": "message move tasks are not implemented; receive from the dead-letter queue and send again",
    "CancelMessageMoveTask": "message move tasks are not implemented",
    "ListMessageMoveTasks": "message move tasks are not implemented",
}


# What execution-role credentials may do: use the queues their version was granted
# (send, receive, delete, change visibility, read attributes), never manage queues.
ROLE_OPERATIONS = frozenset({
    "GetQueueUrl", "GetQueueAttributes", "SendMessage", "SendMessageBatch", "ReceiveMessage",
    "DeleteMessage", "DeleteMessageBatch", "ChangeMessageVisibility",
    "ChangeMessageVisibilityBatch", "ListQueues",
})  # fmt: skip


def _check_role(request: Request, operation: str, data: dict[str, Any]) -> None:
    """Refuse what a function's execution role was not granted (AccessDenied)."""
    role = request.scope.get(roles.SCOPE_KEY)
    if role is None:
        return
    if operation not in ROLE_OPERATIONS:
        raise SqsError(
            "AccessDenied",
            f"the execution role of function {role.function} may not call {operation}:"
            " functions use the queues they were granted, they do not manage queues",
            403,
        )
    if operation == "ListQueues":
        return  # filtered to the granted queues in list_queues
    name = _text(data, "QueueName") if operation == "GetQueueUrl" else _queue_name(data)
    assert name is not None
    try:
        _grants_of(request, role).queue(name)
    except CapabilityDenied as exc:
        raise SqsError("AccessDenied", exc.message, 403) from None


def _grants_of(request: Request, role: roles.RoleIdentity) -> Grants:
    try:
        return node_of(request).catalog.version(role.function, role.version).spec.grants
    except FunctionNotFound:
        raise SqsError(
            "AccessDenied", f"function {role.function}:{role.version} no longer exists", 403
        ) from None


async def endpoint(request: Request) -> Response:
    """POST / with `X-Amz-Target: AmazonSQS.<Operation>`: one SQS operation."""
    operation = request.headers.get("x-amz-target", "")[len(TARGET_PREFIX) :]
    try:
        handler = OPERATIONS.get(operation)
        if handler is None:
            if operation in UNSUPPORTED:
                raise SqsError(
                    "UnsupportedOperation",
                    f"{operation} is not supported by firebox: {UNSUPPORTED[operation]}.",
                )
            raise SqsError(
                "UnknownOperationException", f"Unknown operation {operation or '(none)'}."
            )
        body = await request.body()
        data = decode_json(body) if body.strip() else {}
        if not isinstance(data, dict):
            raise SqsError("SerializationException", "The request body must be a JSON object.")
        _check_role(request, operation, data)
        result = await handler(request, data)
    except (SqsError, FireboxError) as exc:
        return error_response(exc)
    return Response(
        json.dumps(result),
        media_type=CONTENT_TYPE,
        headers={"x-amzn-RequestId": str(uuid.uuid4())},
    )
