"""The S3 API's bucket operations: Create/Head/Delete/ListBuckets, GetBucketLocation and
GetBucketVersioning, and the object listings ListObjectsV2 and ListObjects (front-end layer).
"""

from __future__ import annotations

import base64
import binascii
import re

from firebox.runtime.http.data_stores import run
from firebox.runtime.http.native import node_of
from firebox.runtime.http.s3_api import S3Request
from firebox.runtime.http.s3_auth import read_bytes
from firebox.runtime.http.s3_errors import S3Error, no_such_bucket
from firebox.runtime.http.s3_xml import Value, encode_key, iso_time, xml_response
from firebox.runtime.storage.buckets import ObjectInfo
from firebox.runtime.storage.kv import MAX_PAGE
from starlette.responses import Response

# S3's rules for a new bucket's name (firebox's own NAME_RE is wider, for implicit buckets).
BUCKET_RULE = re.compile(r"^(?!\d+\.\d+\.\d+\.\d+$)(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
MAX_KEYS = 1000
# Past every key that starts with a common prefix (UTF-8's largest code point).
_PAST = "\U0010ffff"
OWNER: list[tuple[str, Value | None]] = [("ID", "firebox"), ("DisplayName", "firebox")]


async def require_bucket(s3: S3Request) -> None:
    """Raise NoSuchBucket unless the request's bucket exists."""
    if not await run(s3.stores.buckets.exists, s3.bucket):
        raise no_such_bucket(s3.bucket)


async def list_buckets(s3: S3Request) -> Response:
    """ListBuckets: every bucket, created or holding objects."""
    found = await run(s3.stores.buckets.all)
    entries: list[tuple[str, Value | None]] = [
        ("Bucket", [("Name", b.name), ("CreationDate", iso_time(b.created_at))]) for b in found
    ]
    return xml_response("ListAllMyBucketsResult", [("Owner", OWNER), ("Buckets", entries)])


async def create_bucket(s3: S3Request) -> Response:
    """CreateBucket: 200 with its Location; BucketAlreadyOwnedByYou when it exists."""
    await read_bytes(s3.scope, s3.receive, s3.caller, 64 * 1024)  # the optional location config
    if not BUCKET_RULE.match(s3.bucket):
        raise S3Error("InvalidBucketName", "The specified bucket is not valid.", 400, s3.bucket)
    try:
        created = await run(s3.stores.buckets.create, s3.bucket)
    except OverflowError as exc:
        raise S3Error(
            "TooManyBuckets", f"You have attempted to create more buckets than allowed: {exc}."
        ) from None
    if not created:
        raise S3Error(
            "BucketAlreadyOwnedByYou",
            "Your previous request to create the named bucket succeeded and you already own it.",
            409,
            s3.bucket,
        )
    return Response(status_code=200, headers={"Location": f"/{s3.bucket}"})


async def head_bucket(s3: S3Request) -> Response:
    """HeadBucket: 200, or 404 when the bucket does not exist."""
    await require_bucket(s3)
    region = node_of(s3.request).config.region
    return Response(status_code=200, headers={"x-amz-bucket-region": region})


async def delete_bucket(s3: S3Request) -> Response:
    """DeleteBucket: 204; BucketNotEmpty while it holds objects."""
    await require_bucket(s3)
    if not await run(s3.stores.buckets.is_empty, s3.bucket):
        raise S3Error(
            "BucketNotEmpty", "The bucket you tried to delete is not empty", 409, s3.bucket
        )
    await run(s3.stores.buckets.delete, s3.bucket)
    return Response(status_code=204)


async def get_bucket_location(s3: S3Request) -> Response:
    """GetBucketLocation: the node's region (empty for us-east-1, as S3 answers)."""
    await require_bucket(s3)
    region = node_of(s3.request).config.region
    return (
        xml_response("LocationConstraint", [])
        if region == "us-east-1"
        else Response(
            f'<?xml version="1.0" encoding="UTF-8"?>\n<LocationConstraint xmlns='
            f'"http://s3.amazonaws.com/doc/2006-03-01/">{region}</LocationConstraint>'.encode(),
            media_type="application/xml",
        )
    )


async def get_bucket_versioning(s3: S3Request) -> Response:
    """GetBucketVersioning: never enabled (firebox keeps one version of each key)."""
    await require_bucket(s3)
    return xml_response("VersioningConfiguration", [])


def _max_keys(s3: S3Request) -> int:
    raw = s3.query.get("max-keys", str(MAX_KEYS))
    if not raw.isdigit() or len(raw) > 9:
        raise S3Error("InvalidArgument", "max-keys must be a non-negative integer.")
    return min(int(raw), MAX_KEYS)


def _walk(
    s3: S3Request, prefix: str, delimiter: str, after: str, max_keys: int
) -> tuple[list[ObjectInfo], list[str], bool, str]:
    """List up to `max_keys` objects and common prefixes after `after`; return them, whether
    more follow, and the position to continue from."""
    store = s3.stores.objects
    contents: list[ObjectInfo] = []
    prefixes: list[str] = []
    cursor = after
    while len(contents) + len(prefixes) < max_keys:
        page, more = store.list_objects(s3.bucket, prefix, limit=MAX_PAGE, cursor=cursor or None)
        skipped = False
        for info in page:
            if len(contents) + len(prefixes) >= max_keys:
                break
            rest = info.key[len(prefix) :]
            cut = rest.find(delimiter) if delimiter else -1
            if cut >= 0:
                common = prefix + rest[: cut + len(delimiter)]
                prefixes.append(common)
                cursor = common + _PAST
                skipped = True
                break
            contents.append(info)
            cursor = info.key
        if len(contents) + len(prefixes) >= max_keys:
            break
        if not skipped and more is None:
            return contents, prefixes, False, cursor
    following, _ = store.list_objects(s3.bucket, prefix, limit=1, cursor=cursor or None)
    return contents, prefixes, bool(following), cursor


def _entries(
    contents: list[ObjectInfo], prefixes: list[str], s3: S3Request, url: bool
) -> list[tuple[str, Value | None]]:
    out: list[tuple[str, Value | None]] = []
    for info in contents:
        meta = s3.stores.meta.get(s3.bucket, info.key, info.etag)
        etag = meta.etag if meta is not None else info.etag
        out.append(
            (
                "Contents",
                [
                    ("Key", encode_key(info.key, url)),
                    ("LastModified", iso_time(info.updated_at)),
                    ("ETag", f'"{etag}"'),
                    ("Size", info.size),
                    ("StorageClass", "STANDARD"),
                ],
            )
        )
    out += [("CommonPrefixes", [("Prefix", encode_key(p, url))]) for p in prefixes]
    return out


def _encoding(s3: S3Request) -> bool:
    kind = s3.query.get("encoding-type")
    if kind not in (None, "url"):
        raise S3Error("InvalidArgument", "Invalid Encoding Method specified in Request")
    return kind == "url"


async def list_objects_v2(s3: S3Request) -> Response:
    """ListObjectsV2: prefix, delimiter, max-keys, continuation-token, start-after."""
    await require_bucket(s3)
    prefix, delimiter = s3.query.get("prefix", ""), s3.query.get("delimiter", "")
    url = _encoding(s3)
    token = s3.query.get("continuation-token")
    after = s3.query.get("start-after", "")
    if token is not None:
        try:
            after = base64.urlsafe_b64decode(token.encode()).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise S3Error(
                "InvalidArgument", "The continuation token provided is incorrect"
            ) from None
    max_keys = _max_keys(s3)

    def listing() -> list[tuple[str, Value | None]]:
        contents, prefixes, truncated, cursor = _walk(s3, prefix, delimiter, after, max_keys)
        following = base64.urlsafe_b64encode(cursor.encode()).decode() if truncated else None
        return [
            ("Name", s3.bucket),
            ("Prefix", encode_key(prefix, url)),
            ("Delimiter", encode_key(delimiter, url) if delimiter else None),
            ("MaxKeys", max_keys),
            ("EncodingType", "url" if url else None),
            ("KeyCount", len(contents) + len(prefixes)),
            ("ContinuationToken", token),
            ("NextContinuationToken", following),
            (
                "StartAfter",
                encode_key(s3.query["start-after"], url) if "start-after" in s3.query else None,
            ),
            ("IsTruncated", truncated),
            *_entries(contents, prefixes, s3, url),
        ]

    return xml_response("ListBucketResult", await run(listing))


async def list_objects(s3: S3Request) -> Response:
    """ListObjects (v1): prefix, delimiter, max-keys, marker."""
    await require_bucket(s3)
    prefix, delimiter = s3.query.get("prefix", ""), s3.query.get("delimiter", "")
    url = _encoding(s3)
    marker = s3.query.get("marker", "")
    max_keys = _max_keys(s3)
    # A NextMarker that is a common prefix continues past every key under it.
    after = marker + _PAST if delimiter and marker.endswith(delimiter) else marker

    def listing() -> list[tuple[str, Value | None]]:
        contents, prefixes, truncated, _ = _walk(s3, prefix, delimiter, after, max_keys)
        last = max([c.key for c in contents] + prefixes, default="")
        return [
            ("Name", s3.bucket),
            ("Prefix", encode_key(prefix, url)),
            ("Marker", encode_key(marker, url)),
            ("NextMarker", encode_key(last, url) if truncated and delimiter else None),
            ("MaxKeys", max_keys),
            ("Delimiter", encode_key(delimiter, url) if delimiter else None),
            ("EncodingType", "url" if url else None),
            ("IsTruncated", truncated),
            *_entries(contents, prefixes, s3, url),
        ]

    return xml_response("ListBucketResult", await run(listing))
