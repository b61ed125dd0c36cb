"""Sample events in the exact shapes AWS services hand to Lambda: `firebox event TYPE` (SDK layer).

Each sample is the documented example of its service (AWS's account 123456789012, region
us-east-1), with the parts a test usually varies (body, method, path) taken from the
command line, so `firebox event sqs --body hi | firebox invoke NAME --data @-` exercises
a handler exactly as the service would call it.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

ACCOUNT = "123456789012"
REGION = "us-east-1"


def _now_ms() -> int:
    return int(time.time() * 1000)


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


def http(body: str | None, method: str, path: str) -> dict[str, Any]:
    """A function URL (and HTTP API, payload format 2.0) request: what HTTP triggers send."""
    now = _now_ms()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "parameter1=value1&parameter2=value",
        "cookies": ["cookie1=value1"],
        "headers": {
            "content-type": "application/json",
            "host": "abcdefghij.lambda-url.us-east-1.on.aws",
            "user-agent": "curl/8.5.0",
        },
        "queryStringParameters": {"parameter1": "value1", "parameter2": "value"},
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "abcdefghij",
            "domainName": "abcdefghij.lambda-url.us-east-1.on.aws",
            "domainPrefix": "abcdefghij",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.10",
                "userAgent": "curl/8.5.0",
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now / 1000)),
            "timeEpoch": now,
        },
        "isBase64Encoded": False,
    }
    if body is not None:
        event["body"] = body
    return event


def apigw_rest(body: str | None, method: str, path: str) -> dict[str, Any]:
    """An API Gateway REST API proxy request (payload format 1.0)."""
    now = _now_ms()
    headers = {"Accept": "*/*", "Content-Type": "application/json", "Host": "abcdefghij.execute-api.us-east-1.amazonaws.com", "User-Agent": "curl/8.5.0"}  # fmt: skip
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": {"foo": "bar"},
        "multiValueQueryStringParameters": {"foo": ["bar"]},
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "abcdefghij",
            "resourceId": "123456",
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "path": f"/prod{path}",
            "protocol": "HTTP/1.1",
            "requestId": str(uuid.uuid4()),
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now / 1000)),
            "requestTimeEpoch": now,
            "stage": "prod",
            "identity": {"sourceIp": "203.0.113.10", "userAgent": "curl/8.5.0"},
        },
        "body": body,
        "isBase64Encoded": False,
    }


def sqs(body: str | None, method: str, path: str) -> dict[str, Any]:
    """A batch of one SQS message, as an event source mapping delivers it."""
    text = "Hello from SQS!" if body is None else body
    now = str(_now_ms())
    return {
        "Records": [
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a",
                "body": text,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": now,
                    "SenderId": ACCOUNT,
                    "ApproximateFirstReceiveTimestamp": now,
                },
                "messageAttributes": {},
                "md5OfBody": hashlib.md5(text.encode()).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:my-queue",
                "awsRegion": REGION,
            }
        ]
    }


def sns(body: str | None, method: str, path: str) -> dict[str, Any]:
    """An SNS notification delivered to a subscribed function."""
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:my-topic"
    return {
        "Records": [
            {
                "EventVersion": "1.0",
                "EventSubscriptionArn": f"{topic}:{uuid.uuid4()}",
                "EventSource": "aws:sns",
                "Sns": {
                    "SignatureVersion": "1",
                    "Timestamp": _iso(_now_ms()),
                    "Signature": "EXAMPLE",
                    "SigningCertUrl": f"https://sns.{REGION}.amazonaws.com/SimpleNotificationService-EXAMPLE.pem",
                    "MessageId": str(uuid.uuid4()),
                    "Message": "Hello from SNS!" if body is None else body,
                    "MessageAttributes": {},
                    "Type": "Notification",
                    "UnsubscribeUrl": f"https://sns.{REGION}.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={topic}",
                    "TopicArn": topic,
                    "Subject": "example subject",
                },
            }
        ]
    }


def s3(body: str | None, method: str, path: str) -> dict[str, Any]:
    """An S3 ObjectCreated:Put notification (the object key is the --path, without '/')."""
    key = path.lstrip("/") or "test/key"
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": REGION,
                "eventTime": _iso(_now_ms()),
                "eventName": "ObjectCreated:Put",
                "userIdentity": {"principalId": "EXAMPLE"},
                "requestParameters": {"sourceIPAddress": "203.0.113.10"},
                "responseElements": {
                    "x-amz-request-id": "EXAMPLE123456789",
                    "x-amz-id-2": "EXAMPLE123/5678abcdefghijklambdaisawesome/mnopqrstuvwxyzABCDEFGH",
                },
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "testConfigRule",
                    "bucket": {
                        "name": "example-bucket",
                        "ownerIdentity": {"principalId": "EXAMPLE"},
                        "arn": "arn:aws:s3:::example-bucket",
                    },
                    "object": {
                        "key": key,
                        "size": 1024,
                        "eTag": "0123456789abcdef0123456789abcdef",
                        "sequencer": "0A1B2C3D4E5F678901",
                    },
                },
            }
        ]
    }


def schedule(body: str | None, method: str, path: str) -> dict[str, Any]:
    """An EventBridge "Scheduled Event" (what `firebox schedule` delivers)."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/my-schedule"],
        "detail": {},
    }


def dynamodb(body: str | None, method: str, path: str) -> dict[str, Any]:
    """A DynamoDB stream batch: one INSERT with its new image."""
    message = "New item!" if body is None else body
    return {
        "Records": [
            {
                "eventID": "c4ca4238a0b923820dcc509a6f75849b",
                "eventName": "INSERT",
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": REGION,
                "dynamodb": {
                    "ApproximateCreationDateTime": int(time.time()),
                    "Keys": {"Id": {"N": "101"}},
                    "NewImage": {"Message": {"S": message}, "Id": {"N": "101"}},
                    "SequenceNumber": "4421584500000000017450439091",
                    "SizeBytes": 26,
                    "StreamViewType": "NEW_AND_OLD_IMAGES",
                },
                "eventSourceARN": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/ExampleTable/stream/2024-01-01T00:00:00.000",
            }
        ]
    }


def kinesis(body: str | None, method: str, path: str) -> dict[str, Any]:
    """A Kinesis batch of one record (its data base64-encoded, as Lambda delivers it)."""
    data = ("Hello from Kinesis!" if body is None else body).encode()
    sequence = "49590338271490256608559692538361571095921575989136588898"
    return {
        "Records": [
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": "1",
                    "sequenceNumber": sequence,
                    "data": base64.b64encode(data).decode(),
                    "approximateArrivalTimestamp": round(time.time(), 3),
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"shardId-000000000000:{sequence}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": f"arn:aws:iam::{ACCOUNT}:role/lambda-role",
                "awsRegion": REGION,
                "eventSourceARN": f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/my-stream",
            }
        ]
    }


SAMPLES: dict[str, Callable[[str | None, str, str], dict[str, Any]]] = {
    "http": http,
    "apigw-rest": apigw_rest,
    "sqs": sqs,
    "sns": sns,
    "s3": s3,
    "schedule": schedule,
    "dynamodb": dynamodb,
    "kinesis": kinesis,
}


def cmd_event(args: argparse.Namespace) -> int:
    """Print a sample event as JSON on stdout."""
    print(json.dumps(SAMPLES[args.type](args.body, args.method, args.path), indent=2))
    return 0


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add `firebox event` to the `firebox` parser."""
    kinds = "\n".join(
        f"  {name:11} {(fn.__doc__ or '').splitlines()[0]}" for name, fn in SAMPLES.items()
    )
    p = sub.add_parser(
        "event",
        parents=[common],
        help="print a sample event (http, apigw-rest, sqs, sns, s3, schedule, dynamodb, kinesis)",
        description="Print a sample event in the exact shape the AWS service hands to Lambda.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"types:\n{kinds}\n\nexamples:\n"
        "  firebox event sqs --body '{\"job\": 1}' | firebox invoke worker --data @-\n"
        "  firebox event http --method GET --path /todos/1 > get-todo.json\n"
        "  firebox invoke http-api-python --data @get-todo.json",
    )
    p.add_argument("type", choices=list(SAMPLES), help="which service's event")
    p.add_argument("--body", help="the message body / record data (default: a greeting)")
    p.add_argument("--method", default="POST", help="HTTP method (http, apigw-rest; default POST)")
    p.add_argument("--path", default="/", help="request path (http, apigw-rest) or object key (s3)")
    p.set_defaults(fn=cmd_event)
