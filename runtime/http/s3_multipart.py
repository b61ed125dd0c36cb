"""The S3 API's multipart uploads: Create, UploadPart, Complete, Abort, ListParts and
ListMultipartUploads (front-end layer).

Each part streams to a file (`s3_auth.read_to_file`); completion assembles the chosen
parts into one file and stores it like a PutObject, with S3's multipart ETag. This is
what boto3's `upload_file` and `aws s3 cp` use for files over 8 MB.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from firebox.runtime.http.data_stores import run
from firebox.runtime.http.s3_api import S3Request
from firebox.runtime.http.s3_auth import read_bytes, read_to_file
from firebox.runtime.http.s3_buckets import OWNER, require_bucket
from firebox.runtime.http.s3_errors import S3Error
from firebox.runtime.http.s3_objects import _key, store_file, stored_headers
from firebox.runtime.http.s3_xml import Value, iso_time, parse, xml_response
from firebox.runtime.storage.multipart import MAX_PART_NUMBER, PartsRejected, Upload
from starlette.responses import Response

_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
# A completion lists at most 10000 parts of about 100 bytes of XML each.
MAX_COMPLETE_BODY = 2 * 1024 * 1024
MAX_LIST = 1000


async def _upload(s3: S3Request) -> Upload:
    upload_id = s3.query.get("uploadId", "")
    found: Upload | None = None
    if _UPLOAD_ID.match(upload_id):
        found = await run(s3.stores.multipart.get, upload_id)
    if found is None or found.bucket != s3.bucket or found.key != s3.key:
        raise S3Error(
            "NoSuchUpload",
            "The specified upload does not exist. The upload ID may be invalid, or the upload"
            " may have been aborted or completed.",
            404,
            upload_id[:64],
        )
    return found


async def create_upload(s3: S3Request) -> Response:
    """CreateMultipartUpload: a new upload id for the request's key."""
    await require_bucket(s3)
    key = _key(s3)
    headers = stored_headers(s3)
    if "content-type" in s3.headers:
        headers["content-type"] = s3.headers["content-type"]
    await read_bytes(s3.scope, s3.receive, s3.caller, 0)
    try:
        upload = await run(s3.stores.multipart.create, s3.bucket, key, headers)
    except OverflowError as exc:
        raise S3Error("SlowDown", f"Too many open multipart uploads: {exc}.", 503) from None
    return xml_response(
        "InitiateMultipartUploadResult",
        [("Bucket", s3.bucket), ("Key", key), ("UploadId", upload.upload_id)],
    )


async def upload_part(s3: S3Request) -> Response:
    """UploadPart: a part (1-10000) streamed to a file; answers its ETag (the MD5)."""
    upload = await _upload(s3)
    raw = s3.query.get("partNumber", "")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PART_NUMBER:
        raise S3Error(
            "InvalidArgument", f"Part number must be an integer between 1 and {MAX_PART_NUMBER}."
        )
    body = await read_to_file(
        s3.scope, s3.receive, s3.caller, s3.max_object_bytes, s3.stores.incoming
    )
    try:
        await run(s3.stores.multipart.put_part, upload.upload_id, int(raw), body.path, body.md5)
    finally:
        body.path.unlink(missing_ok=True)
    return Response(status_code=200, headers={"ETag": f'"{body.md5}"'})


async def complete_upload(s3: S3Request) -> Response:
    """CompleteMultipartUpload: the listed parts, in order, become the object."""
    upload = await _upload(s3)
    root = parse(await read_bytes(s3.scope, s3.receive, s3.caller, MAX_COMPLETE_BODY))
    chosen: list[tuple[int, str]] = []
    for part in root.findall("Part"):
        number = (part.findtext("PartNumber") or "").strip()
        if not number.isdigit():
            raise S3Error("MalformedXML", "Every Part needs a PartNumber.")
        chosen.append((int(number), (part.findtext("ETag") or "").strip()))
    if root.tag != "CompleteMultipartUpload" or len(chosen) > MAX_PART_NUMBER:
        raise S3Error("MalformedXML", "The XML you provided was not well-formed.")
    headers = dict(upload.headers)
    content_type = headers.pop("content-type", None)

    def complete() -> str:
        fd, name = tempfile.mkstemp(dir=s3.stores.incoming, prefix="complete-")
        path = Path(name)
        try:
            with open(fd, "wb"):
                pass
            built = s3.stores.multipart.assemble(upload.upload_id, chosen, path)
            if built.size > s3.max_object_bytes:
                raise S3Error(
                    "EntityTooLarge",
                    f"The object would be {built.size} bytes, past the limit of"
                    f" {s3.max_object_bytes} bytes.",
                )
            store_file(
                s3, upload.key, path, built.digest, built.etag, content_type, headers,
                "ObjectCreated:CompleteMultipartUpload",
            )  # fmt: skip
        except PartsRejected as exc:
            raise S3Error(exc.code, exc.message) from None
        finally:
            path.unlink(missing_ok=True)
        s3.stores.multipart.finish(upload.upload_id)
        return built.etag

    etag = await run(complete)
    return xml_response(
        "CompleteMultipartUploadResult",
        [
            ("Location", f"/{s3.bucket}/{upload.key}"),
            ("Bucket", s3.bucket),
            ("Key", upload.key),
            ("ETag", f'"{etag}"'),
        ],
    )


async def abort_upload(s3: S3Request) -> Response:
    """AbortMultipartUpload: the upload and its parts are gone; 204."""
    upload = await _upload(s3)
    await run(s3.stores.multipart.finish, upload.upload_id)
    return Response(status_code=204)


def _int_param(s3: S3Request, name: str, default: int) -> int:
    raw = s3.query.get(name, str(default))
    if not raw.isdigit() or len(raw) > 9:
        raise S3Error("InvalidArgument", f"{name} must be a non-negative integer.")
    return int(raw)


async def list_parts(s3: S3Request) -> Response:
    """ListParts: the upload's parts after part-number-marker, at most max-parts."""
    upload = await _upload(s3)
    marker = _int_param(s3, "part-number-marker", 0)
    limit = min(_int_param(s3, "max-parts", MAX_LIST), MAX_LIST)
    found = await run(s3.stores.multipart.parts, upload.upload_id, marker, limit + 1)
    truncated = len(found) > limit
    found = found[:limit]
    entries: list[tuple[str, Value | None]] = [
        (
            "Part",
            [
                ("PartNumber", p.number),
                ("LastModified", iso_time(p.updated_at)),
                ("ETag", f'"{p.md5}"'),
                ("Size", p.size),
            ],
        )
        for p in found
    ]
    return xml_response(
        "ListPartsResult",
        [
            ("Bucket", s3.bucket),
            ("Key", upload.key),
            ("UploadId", upload.upload_id),
            ("PartNumberMarker", marker),
            ("NextPartNumberMarker", found[-1].number if found else marker),
            ("MaxParts", limit),
            ("IsTruncated", truncated),
            ("Initiator", OWNER),
            ("Owner", OWNER),
            ("StorageClass", "STANDARD"),
            *entries,
        ],
    )


async def list_uploads(s3: S3Request) -> Response:
    """ListMultipartUploads: the bucket's open uploads (first 1000, by key)."""
    await require_bucket(s3)
    found = await run(s3.stores.multipart.open_uploads, s3.bucket, MAX_LIST)
    entries: list[tuple[str, Value | None]] = [
        (
            "Upload",
            [
                ("Key", u.key),
                ("UploadId", u.upload_id),
                ("Initiator", OWNER),
                ("Owner", OWNER),
                ("StorageClass", "STANDARD"),
                ("Initiated", iso_time(u.created_at)),
            ],
        )
        for u in found
    ]
    return xml_response(
        "ListMultipartUploadsResult",
        [("Bucket", s3.bucket), ("MaxUploads", MAX_LIST), ("IsTruncated", False), *entries],
    )
