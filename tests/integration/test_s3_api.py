"""The S3-compatible API driven by real boto3 against a real node: buckets, objects,
listings, conditions, copies, errors, presigned URLs and how S3 requests are told apart."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

boto3 = pytest.importorskip("boto3")
from botocore.auth import S3SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

from tests.conftest import Server  # noqa: E402

REGION = "us-east-1"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(tmp_path_factory.mktemp("s3") / "data")
    server.data_dir.mkdir(parents=True)
    server.start()
    yield server
    server.stop()


def s3_client(server: Server, **overrides: Any) -> Any:
    creds = server.credentials
    options: dict[str, Any] = {
        "endpoint_url": server.url,
        "region_name": REGION,
        "aws_access_key_id": creds.access_key_id,
        "aws_secret_access_key": creds.secret_access_key,
        "config": Config(retries={"total_max_attempts": 1}),
    }
    options.update(overrides)
    return boto3.client("s3", **options)


@pytest.fixture(scope="module")
def s3(node: Server) -> Any:
    return s3_client(node)


def code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def test_buckets_create_list_head_delete(s3: Any) -> None:
    s3.create_bucket(Bucket="alpha")
    s3.head_bucket(Bucket="alpha")
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert "alpha" in names
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket="alpha")
    assert code(exc) == "BucketAlreadyOwnedByYou"
    s3.put_object(Bucket="alpha", Key="k", Body=b"x")
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket="alpha")
    assert code(exc) == "BucketNotEmpty"
    s3.delete_object(Bucket="alpha", Key="k")
    s3.delete_bucket(Bucket="alpha")
    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket="alpha")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError) as exc:
        s3.list_objects_v2(Bucket="alpha")
    assert code(exc) == "NoSuchBucket"
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket="Bad_Name")
    assert code(exc) == "InvalidBucketName"


def test_put_get_head_with_metadata(s3: Any) -> None:
    s3.create_bucket(Bucket="objs")
    body = "café ☕".encode()
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    put = s3.put_object(
        Bucket="objs",
        Key="dir/caf é+%.txt",
        Body=body,
        ContentType="text/plain; charset=utf-8",
        ContentMD5=md5,
        Metadata={"owner": "ada", "n": "1"},
        CacheControl="max-age=60",
    )
    assert put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    got = s3.get_object(Bucket="objs", Key="dir/caf é+%.txt")
    assert got["Body"].read() == body
    assert got["ContentType"] == "text/plain; charset=utf-8"
    assert got["Metadata"] == {"owner": "ada", "n": "1"}
    assert got["CacheControl"] == "max-age=60"
    assert got["ETag"] == put["ETag"]
    head = s3.head_object(Bucket="objs", Key="dir/caf é+%.txt")
    assert head["ContentLength"] == len(body)
    assert head["Metadata"]["owner"] == "ada"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket="objs", Key="missing")
    assert code(exc) == "NoSuchKey"
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket="objs", Key="missing")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_bad_content_md5_is_refused(s3: Any) -> None:
    s3.create_bucket(Bucket="digests")
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket="digests", Key="k", Body=b"body", ContentMD5=wrong)
    assert code(exc) == "BadDigest"
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket="digests", Key="k")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_ranges_and_conditions(s3: Any) -> None:
    s3.create_bucket(Bucket="ranges")
    data = bytes(range(256)) * 4
    etag = s3.put_object(Bucket="ranges", Key="r", Body=data)["ETag"]
    part = s3.get_object(Bucket="ranges", Key="r", Range="bytes=10-19")
    assert part["Body"].read() == data[10:20]
    assert part["ContentRange"] == f"bytes 10-19/{len(data)}"
    assert s3.get_object(Bucket="ranges", Key="r", Range="bytes=-5")["Body"].read() == data[-5:]
    assert (
        s3.get_object(Bucket="ranges", Key="r", Range="bytes=1000-")["Body"].read() == data[1000:]
    )
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket="ranges", Key="r", Range="bytes=5000-")
    assert code(exc) == "InvalidRange"
    assert s3.get_object(Bucket="ranges", Key="r", IfMatch=etag)["Body"].read() == data
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket="ranges", Key="r", IfMatch='"nope"')
    assert code(exc) == "PreconditionFailed"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket="ranges", Key="r", IfNoneMatch=etag)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    later = datetime.now(UTC) + timedelta(hours=1)
    earlier = datetime.now(UTC) - timedelta(hours=1)
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket="ranges", Key="r", IfModifiedSince=later)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket="ranges", Key="r", IfUnmodifiedSince=earlier)
    assert code(exc) == "PreconditionFailed"
    assert s3.get_object(Bucket="ranges", Key="r", IfModifiedSince=earlier)["ContentLength"] == len(
        data
    )


def test_list_objects_v2_prefix_delimiter_pages(s3: Any) -> None:
    s3.create_bucket(Bucket="listing")
    keys = ["a.txt", "b/1", "b/2", "b/c/3", "c/1", "d", "e%20f g"]
    for key in keys:
        s3.put_object(Bucket="listing", Key=key, Body=key.encode())
    every = s3.list_objects_v2(Bucket="listing")
    assert [o["Key"] for o in every["Contents"]] == sorted(keys)
    assert every["KeyCount"] == len(keys)
    top = s3.list_objects_v2(Bucket="listing", Delimiter="/")
    assert [o["Key"] for o in top["Contents"]] == ["a.txt", "d", "e%20f g"]
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["b/", "c/"]
    inner = s3.list_objects_v2(Bucket="listing", Prefix="b/", Delimiter="/")
    assert [o["Key"] for o in inner["Contents"]] == ["b/1", "b/2"]
    assert [p["Prefix"] for p in inner["CommonPrefixes"]] == ["b/c/"]
    seen: list[str] = []
    kwargs: dict[str, Any] = {"Bucket": "listing", "MaxKeys": 2, "Delimiter": "/"}
    while True:
        page = s3.list_objects_v2(**kwargs)
        seen += [o["Key"] for o in page.get("Contents", [])]
        seen += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        if not page["IsTruncated"]:
            break
        kwargs["ContinuationToken"] = page["NextContinuationToken"]
    assert sorted(seen) == ["a.txt", "b/", "c/", "d", "e%20f g"]
    after = s3.list_objects_v2(Bucket="listing", StartAfter="c/1")
    assert [o["Key"] for o in after["Contents"]] == ["d", "e%20f g"]
    paginator = s3.get_paginator("list_objects_v2")
    pages = list(paginator.paginate(Bucket="listing", PaginationConfig={"PageSize": 3}))
    assert [o["Key"] for p in pages for o in p["Contents"]] == sorted(keys)
    v1 = s3.list_objects(Bucket="listing", Prefix="b/")
    assert [o["Key"] for o in v1["Contents"]] == ["b/1", "b/2", "b/c/3"]


def test_delete_objects_and_copy(s3: Any) -> None:
    s3.create_bucket(Bucket="copies")
    s3.put_object(Bucket="copies", Key="src", Body=b"source", Metadata={"m": "1"})
    s3.copy_object(Bucket="copies", Key="dst", CopySource={"Bucket": "copies", "Key": "src"})
    got = s3.get_object(Bucket="copies", Key="dst")
    assert got["Body"].read() == b"source"
    assert got["Metadata"] == {"m": "1"}
    s3.copy_object(
        Bucket="copies",
        Key="dst2",
        CopySource="copies/src",
        MetadataDirective="REPLACE",
        Metadata={"m": "2"},
        ContentType="text/x-new",
    )
    replaced = s3.head_object(Bucket="copies", Key="dst2")
    assert replaced["Metadata"] == {"m": "2"}
    assert replaced["ContentType"] == "text/x-new"
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket="copies", Key="x", CopySource="copies/absent")
    assert code(exc) == "NoSuchKey"
    deleted = s3.delete_objects(
        Bucket="copies", Delete={"Objects": [{"Key": "src"}, {"Key": "dst"}, {"Key": "never"}]}
    )
    assert sorted(d["Key"] for d in deleted["Deleted"]) == ["dst", "never", "src"]
    left = s3.list_objects_v2(Bucket="copies")
    assert [o["Key"] for o in left["Contents"]] == ["dst2"]


def test_presigned_get_and_put(node: Server, s3: Any) -> None:
    s3.create_bucket(Bucket="presign")
    put_url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": "presign", "Key": "up load"}, ExpiresIn=60
    )
    assert httpx.put(put_url, content=b"via url").status_code == 200
    get_url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": "presign", "Key": "up load"}, ExpiresIn=60
    )
    assert httpx.get(get_url).content == b"via url"
    v4 = s3_client(node, config=Config(signature_version="s3v4"))
    url4 = v4.generate_presigned_url(
        "get_object", Params={"Bucket": "presign", "Key": "up load"}, ExpiresIn=60
    )
    assert "X-Amz-Signature" in url4
    assert httpx.get(url4).content == b"via url"
    tampered = get_url.replace("up%20load", "other")
    answer = httpx.get(tampered)
    assert answer.status_code == 403
    assert b"<Code>SignatureDoesNotMatch</Code>" in answer.content
    expired = s3.generate_presigned_url(
        "get_object", Params={"Bucket": "presign", "Key": "up load"}, ExpiresIn=1
    )
    time.sleep(2.1)
    answer = httpx.get(expired)
    assert answer.status_code == 403
    assert b"<Code>AccessDenied</Code>" in answer.content


def test_wrong_secret_and_unknown_operation(node: Server, s3: Any) -> None:
    bad = s3_client(node, aws_secret_access_key="wrong-secret")
    with pytest.raises(ClientError) as exc:
        bad.list_buckets()
    assert code(exc) == "SignatureDoesNotMatch"
    unknown = s3_client(node, aws_access_key_id="AKIDUNKNOWN")
    with pytest.raises(ClientError) as exc:
        unknown.list_buckets()
    assert code(exc) == "InvalidAccessKeyId"
    s3.create_bucket(Bucket="ops")
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_tagging(Bucket="ops")
    assert code(exc) == "NotImplemented"
    assert "GetBucketTagging" in exc.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as exc:
        s3.put_object_acl(Bucket="ops", Key="k", ACL="private")
    assert "PutObjectAcl" in exc.value.response["Error"]["Message"]


def test_s3_requests_never_reach_triggers_or_break_other_apis(node: Server, s3: Any) -> None:
    # Buckets named like the native API's and the Lambda API's prefixes are S3's when the
    # request is signed for S3, and those APIs keep their paths for every other request.
    for bucket in ("metrics", "2015-03-31"):
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="functions", Body=b"an object")
        assert s3.get_object(Bucket=bucket, Key="functions")["Body"].read() == b"an object"
    assert node.http().get("/metrics").status_code == 200
    listed = node.http().get("/v1/functions")
    assert listed.status_code == 200
    lambda_ = boto3.client(
        "lambda",
        endpoint_url=node.url,
        region_name=REGION,
        aws_access_key_id=node.credentials.access_key_id,
        aws_secret_access_key=node.credentials.secret_access_key,
    )
    assert lambda_.list_functions()["Functions"] == []
    # The native API sees the objects the S3 API wrote (one store).
    native = node.http().get("/v1/buckets/metrics/objects")
    assert [o["key"] for o in native.json()["objects"]] == ["functions"]
    # An unsigned request to an S3 path is not S3's: a trigger route (none here), 404.
    assert httpx.get(node.url + "/metrics/functions").status_code == 404


def test_virtual_host_addressing(node: Server, s3: Any) -> None:
    s3.create_bucket(Bucket="vhost")
    s3.put_object(Bucket="vhost", Key="a/b.txt", Body=b"virtual")
    creds = node.credentials
    host = f"vhost.localhost:{node.port}"
    request = AWSRequest(
        method="GET",
        url=f"http://{host}/a/b.txt",
        headers={"x-amz-content-sha256": hashlib.sha256(b"").hexdigest()},
    )
    S3SigV4Auth(Credentials(creds.access_key_id, creds.secret_access_key), "s3", REGION).add_auth(
        request
    )
    headers = dict(request.headers.items())
    answer = httpx.get(node.url + "/a/b.txt", headers={**headers, "Host": host})
    assert answer.status_code == 200, answer.text
    assert answer.content == b"virtual"


def test_signed_body_must_match(node: Server, s3: Any) -> None:
    s3.create_bucket(Bucket="tamper")
    creds = node.credentials
    request = AWSRequest(
        method="PUT",
        url=f"{node.url}/tamper/k",
        data=b"signed body",
        headers={"x-amz-content-sha256": hashlib.sha256(b"signed body").hexdigest()},
    )
    S3SigV4Auth(Credentials(creds.access_key_id, creds.secret_access_key), "s3", REGION).add_auth(
        request
    )
    headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
    answer = httpx.put(request.url, headers=headers, content=b"swapped bod")
    assert answer.status_code == 400
    assert b"XAmzContentSHA256Mismatch" in answer.content
    with pytest.raises(ClientError):
        s3.head_object(Bucket="tamper", Key="k")
