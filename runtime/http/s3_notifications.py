"""The S3 API's PutBucketNotificationConfiguration and GetBucketNotificationConfiguration
over firebox's bucket notifications (front-end layer).

Lambda function targets (`CloudFunctionConfiguration`, a function ARN of this node) and
SQS queue targets (`QueueConfiguration`, a queue ARN of this node), with their event
types and `prefix`/`suffix` key filters, become the bucket's notifications
(runtime/storage/changes.py), the same the native API's
`/v1/buckets/{bucket}/notifications` serves. SNS topics and EventBridge are refused with
S3's InvalidArgument. As S3 does, every destination must exist (unless the request says
`x-amz-skip-destination-validation: true`).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from firebox.runtime.config import arn
from firebox.runtime.errors import BadRequest, FireboxError
from firebox.runtime.http.changes_api import check_targets
from firebox.runtime.http.data_stores import run
from firebox.runtime.http.native import node_of
from firebox.runtime.http.s3_api import S3Request
from firebox.runtime.http.s3_auth import read_bytes
from firebox.runtime.http.s3_buckets import require_bucket
from firebox.runtime.http.s3_errors import S3Error
from firebox.runtime.http.s3_xml import Value, parse, xml_response
from firebox.runtime.storage.changes import BucketTarget, parse_bucket_targets
from firebox.runtime.storage.data import DataStores
from starlette.responses import Response

MAX_BODY = 256 * 1024
_FUNCTION_ARN = re.compile(r"^function:([A-Za-z0-9_-]{1,64})(?::([A-Za-z0-9_$-]{1,128}))?$")


def _invalid(message: str) -> S3Error:
    return S3Error("InvalidArgument", message, 400)


def _resource(value: str, service: str, what: str) -> str:
    prefix = arn(service, "")
    if not value.startswith(prefix):
        raise _invalid(f"{what} {value!r} is not a {service} ARN of this node ({prefix}...)")
    return value[len(prefix) :]


def _filters(entry: ET.Element) -> dict[str, str]:
    out: dict[str, str] = {}
    for rule in entry.findall("Filter/S3Key/FilterRule"):
        name = (rule.findtext("Name") or "").strip().lower()
        if name not in ("prefix", "suffix") or name in out:
            raise _invalid("a filter takes one FilterRule named prefix and one named suffix")
        out[name] = rule.findtext("Value") or ""
    return out


def _entries(root: ET.Element) -> dict[str, list[dict[str, Any]]]:
    for refused in ("TopicConfiguration", "EventBridgeConfiguration"):
        if root.find(refused) is not None:
            raise _invalid(f"firebox notifies functions and queues only, not {refused}")
    functions, queues = [], []
    for entry in root.findall("CloudFunctionConfiguration"):
        resource = _resource(entry.findtext("CloudFunction") or "", "lambda", "CloudFunction")
        match = _FUNCTION_ARN.match(resource)
        if match is None:
            raise _invalid(f"CloudFunction {resource!r} is not a function ARN")
        name = match.group(1) + (f":{match.group(2)}" if match.group(2) else "")
        functions.append({"id": entry.findtext("Id") or None, "function": name,
                          "events": [e.text or "" for e in entry.findall("Event")],
                          **_filters(entry)})  # fmt: skip
    for entry in root.findall("QueueConfiguration"):
        queue = _resource(entry.findtext("Queue") or "", "sqs", "Queue")
        queues.append({"id": entry.findtext("Id") or None, "queue": queue,
                       "events": [e.text or "" for e in entry.findall("Event")],
                       **_filters(entry)})  # fmt: skip
    return {"functions": functions, "queues": queues}


async def put_notification(s3: S3Request) -> Response:
    """PutBucketNotificationConfiguration: replace the bucket's notifications."""
    await require_bucket(s3)
    root = parse(await read_bytes(s3.scope, s3.receive, s3.caller, MAX_BODY))
    if root.tag != "NotificationConfiguration":
        raise S3Error("MalformedXML", "The XML you provided was not well-formed.")
    try:
        targets = parse_bucket_targets(_entries(root))
    except BadRequest as exc:
        raise _invalid(exc.message) from None
    if s3.headers.get("x-amz-skip-destination-validation", "").lower() != "true":
        try:
            await run(check_targets, node_of(s3.request), targets)
        except FireboxError as exc:
            raise _invalid(
                f"Unable to validate the following destination configurations: {exc.message}"
            ) from None
    await run(_data(s3).changes.put_bucket, s3.bucket, targets)
    return Response(status_code=200)


def _data(s3: S3Request) -> DataStores:
    return node_of(s3.request).data()


def _entry(target: BucketTarget) -> list[tuple[str, Value | None]]:
    where: tuple[str, Value | None]
    if target.type == "function":
        where = ("CloudFunction", arn("lambda", f"function:{target.target}"))
    else:
        where = ("Queue", arn("sqs", target.target))
    rules: list[tuple[str, Value | None]] = [
        ("FilterRule", [("Name", name), ("Value", value)])
        for name, value in (("prefix", target.prefix), ("suffix", target.suffix))
        if value
    ]
    return [
        ("Id", target.id),
        where,
        *[("Event", event) for event in target.events],
        ("Filter", [("S3Key", rules)] if rules else None),
    ]


async def get_notification(s3: S3Request) -> Response:
    """GetBucketNotificationConfiguration: the bucket's notifications."""
    await require_bucket(s3)
    targets = await run(_data(s3).changes.bucket, s3.bucket)
    children: list[tuple[str, Value | None]] = [
        ("CloudFunctionConfiguration" if t.type == "function" else "QueueConfiguration", _entry(t))
        for t in targets
    ]
    return xml_response("NotificationConfiguration", children)


__all__ = ["get_notification", "put_notification"]
