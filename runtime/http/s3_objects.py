"""The S3 API's object operations: PutObject, GetObject (ranges, conditions), HeadObject,
DeleteObject, DeleteObjects and CopyObject (front-end layer).

Bodies stream to a file and into the content store (`s3_auth.read_to_file`,
`BucketStore.put_file`); reads stream from it in chunks, so an object up to
FIREBOX_S3_MAX_OBJECT_BYTES is never held in memory on the file content store.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote

from firebox.runtime.errors import BadRequest
from firebox.runtime.http.data_stores import run
from firebox.runtime.http.s3_api import S3Request
from firebox.runtime.http.s3_auth import read_bytes, read_to_file
from firebox.runtime.http.s3_buckets import require_bucket
from firebox.runtime.http.s3_errors import S3Error, no_such_key
from firebox.runtime.http.s3_xml import Value, http_time, iso_time, parse, xml_response
from firebox.runtime.storage.buckets import ObjectInfo, check_object_key
from firebox.runtime.storage.object_meta import ObjectMeta
from starlette.responses import Response, StreamingResponse

# Headers kept with an object and answered on reads, besides its Content-Type.
STORED_HEADERS = (
    "cache-control", "content-disposition", "content-encoding", "content-language", "expires",
)  # fmt: skip
# S3: user metadata (names and values of x-amz-meta-*) is at most 2 KB.
MAX_METADATA_BYTES = 2048
MAX_DELETE_KEYS = 1000
MAX_DELETE_BODY = 2 * 1024 * 1024
_CHUNK = 1024 * 1024
_RANGE = re.compile(r"^bytes=(\d{0,19})-(\d{0,19})$")
_OVERRIDES = {
    "response-content-type": "content-type",
    "response-content-language": "content-language",
    "response-expires": "expires",
    "response-cache-control": "cache-control",
    "response-content-disposition": "content-disposition",
    "response-content-encoding": "content-encoding",
}


def _key(s3: S3Request) -> str:
    try:
        return check_object_key(s3.key)
    except BadRequest:
        raise S3Error("KeyTooLongError", "Your key is too long", 400, s3.key[:80]) from None


def stored_headers(s3: S3Request) -> dict[str, str]:
    """Return the headers of a write kept with the object: user metadata and STORED_HEADERS."""
    kept: dict[str, str] = {}
    for name, value in s3.headers.items():
        if name.startswith("x-amz-meta-") or name in STORED_HEADERS:
            kept[name] = value
    size = sum(len(k) + len(v) for k, v in kept.items() if k.startswith("x-amz-meta-"))
    if size > MAX_METADATA_BYTES:
        raise S3Error(
            "MetadataTooLarge",
            f"Your metadata headers exceed the maximum allowed metadata size ({size} bytes).",
        )
    return kept


def store_file(
    s3: S3Request,
    key: str,
    path: Path,
    digest: str,
    etag: str,
    content_type: str | None,
    headers: dict[str, str],
    event: str = "ObjectCreated:Put",
) -> ObjectInfo:
    """Store the file `path` (sha256 `digest`) as `key` with its S3 ETag and headers;
    `event` names the creation for the bucket's notifications.

    The metadata goes first: it is valid only for the content it names, and a function
    the object's event wakes then finds its ETag and headers already there."""
    s3.stores.meta.put(s3.bucket, key, digest, ObjectMeta(etag, headers))
    return s3.stores.objects.put_file(
        s3.bucket, key, path, digest, content_type, event=event, etag=etag
    )


async def put_object(s3: S3Request) -> Response:
    """PutObject: the body streamed to the store; answers its ETag (the MD5)."""
    await require_bucket(s3)
    key = _key(s3)
    headers = stored_headers(s3)
    body = await read_to_file(
        s3.scope, s3.receive, s3.caller, s3.max_object_bytes, s3.stores.incoming
    )
    try:
        await run(
            store_file,
            s3, key, body.path, body.sha256, body.md5, s3.headers.get("content-type"), headers,
        )  # fmt: skip
    finally:
        body.path.unlink(missing_ok=True)
    return Response(status_code=200, headers={"ETag": f'"{body.md5}"'})


def _describe(s3: S3Request, key: str) -> tuple[ObjectInfo, ObjectMeta]:
    info = s3.stores.objects.head(s3.bucket, key)
    if info is None:
        raise no_such_key(key)
    meta = s3.stores.meta.get(s3.bucket, key, info.etag)
    return info, meta or ObjectMeta(info.etag, {})


def _since(value: str) -> float | None:
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


def _matches(header: str, etag: str) -> bool:
    wanted = [tag.strip().removeprefix("W/").strip('"') for tag in header.split(",")]
    return "*" in wanted or etag in wanted


def check_conditions(s3: S3Request, info: ObjectInfo, etag: str, prefix: str = "") -> int:
    """Return 200, 304 (not modified) or raise PreconditionFailed for the request's
    conditional headers (`prefix` "x-amz-copy-source-" for CopyObject's)."""
    headers = s3.headers
    modified = int(info.updated_at)
    if (value := headers.get(prefix + "if-match")) is not None:
        if not _matches(value, etag):
            raise _precondition(prefix + "If-Match")
    elif (value := headers.get(prefix + "if-unmodified-since")) is not None:
        when = _since(value)
        if when is not None and modified > when:
            raise _precondition(prefix + "If-Unmodified-Since")
    if (value := headers.get(prefix + "if-none-match")) is not None:
        if _matches(value, etag):
            if prefix:
                raise _precondition(prefix + "If-None-Match")
            return 304
    elif (value := headers.get(prefix + "if-modified-since")) is not None:
        when = _since(value)
        if when is not None and modified <= when:
            if prefix:
                raise _precondition(prefix + "If-Modified-Since")
            return 304
    return 200


def _precondition(condition: str) -> S3Error:
    return S3Error(
        "PreconditionFailed",
        f"At least one of the pre-conditions you specified did not hold ({condition}).",
        412,
    )


def _range(value: str | None, size: int) -> tuple[int, int] | None:
    """Return the [first, last] bytes a Range asks for (None: the whole object, as S3 treats
    a Range it cannot parse); raises InvalidRange when it starts past the end."""
    match = _RANGE.match(value.strip()) if value else None
    if match is None or not (match.group(1) or match.group(2)):
        return None
    if match.group(1):
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) else max(first, size - 1)
        if last < first:
            return None
    else:
        first, last = max(0, size - int(match.group(2))), size - 1
        if int(match.group(2)) == 0:
            first = size
    if first >= size:
        raise S3Error(
            "InvalidRange", "The requested range is not satisfiable", 416, f"bytes */{size}"
        )
    return first, min(last, size - 1)


def _object_headers(info: ObjectInfo, meta: ObjectMeta, s3: S3Request) -> dict[str, str]:
    headers = {
        "etag": f'"{meta.etag}"',
        "last-modified": http_time(info.updated_at),
        "content-type": info.content_type,
        "accept-ranges": "bytes",
        **meta.headers,
    }
    for param, name in _OVERRIDES.items():
        if param in s3.query:
            headers[name] = s3.query[param]
    if "-" in meta.etag:
        headers["x-amz-mp-parts-count"] = meta.etag.rpartition("-")[2]
    return headers


async def _stream(handle: BinaryIO, first: int, length: int) -> AsyncIterator[bytes]:
    try:
        await asyncio.to_thread(handle.seek, first)
        left = length
        while left > 0:
            chunk = await asyncio.to_thread(handle.read, min(_CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk
    finally:
        handle.close()


async def get_object(s3: S3Request) -> Response:
    """GetObject: the bytes (206 for a Range), streamed; 304/412 for conditions."""
    return await _read(s3, body=True)


async def head_object(s3: S3Request) -> Response:
    """HeadObject: the object's headers."""
    return await _read(s3, body=False)


async def _read(s3: S3Request, body: bool) -> Response:
    await require_bucket(s3)
    key = _key(s3)
    info, meta = await run(_describe, s3, key)
    headers = _object_headers(info, meta, s3)
    if check_conditions(s3, info, meta.etag) == 304:
        return Response(status_code=304, headers={"etag": headers["etag"]})
    wanted = _range(s3.headers.get("range"), info.size)
    first, length, status = 0, info.size, 200
    if wanted is not None:
        first, length, status = wanted[0], wanted[1] - wanted[0] + 1, 206
        headers["content-range"] = f"bytes {wanted[0]}-{wanted[1]}/{info.size}"
    headers["content-length"] = str(length)
    if not body:
        return Response(status_code=status, headers=headers)
    handle = await run(s3.stores.objects.open_content, info)
    if handle is None:  # deleted between the two reads
        raise no_such_key(key)
    return StreamingResponse(_stream(handle, first, length), status_code=status, headers=headers)


async def delete_object(s3: S3Request) -> Response:
    """DeleteObject: 204 whether or not the key existed (as S3 answers)."""
    await require_bucket(s3)
    key = _key(s3)
    await run(_delete, s3, key)
    return Response(status_code=204)


def _delete(s3: S3Request, key: str) -> None:
    s3.stores.objects.delete(s3.bucket, key)
    s3.stores.meta.delete(s3.bucket, key)


async def delete_objects(s3: S3Request) -> Response:
    """DeleteObjects: up to 1000 keys from an XML body; answers Deleted (and Error) entries."""
    await require_bucket(s3)
    root = parse(await read_bytes(s3.scope, s3.receive, s3.caller, MAX_DELETE_BODY))
    if root.tag != "Delete":
        raise S3Error("MalformedXML", "The XML you provided was not well-formed.")
    quiet = (root.findtext("Quiet") or "").strip().lower() == "true"
    keys = [obj.findtext("Key") or "" for obj in root.findall("Object")]
    if not keys or len(keys) > MAX_DELETE_KEYS:
        raise S3Error("MalformedXML", f"DeleteObjects takes 1 to {MAX_DELETE_KEYS} keys.")

    def delete_all() -> list[tuple[str, Value | None]]:
        results: list[tuple[str, Value | None]] = []
        for key in keys:
            try:
                check_object_key(key)
            except BadRequest:
                results.append(
                    ("Error", [("Key", key[:1024]), ("Code", "InvalidArgument"),
                               ("Message", "a key must be 1-1024 bytes, without NUL")])
                )  # fmt: skip
                continue
            _delete(s3, key)
            if not quiet:
                results.append(("Deleted", [("Key", key)]))
        return results

    return xml_response("DeleteResult", await run(delete_all))


def _copy_source(s3: S3Request) -> tuple[str, str]:
    raw = unquote(s3.headers.get("x-amz-copy-source", "")).lstrip("/")
    source, _, version = raw.partition("?")
    if version and not version.startswith("versionId=null"):
        raise S3Error("NotImplemented", "firebox keeps one version of each key.", 501)
    bucket, _, key = source.partition("/")
    if not bucket or not key:
        raise S3Error("InvalidArgument", "Copy Source must mention the source bucket and key")
    return bucket, key


async def copy_object(s3: S3Request) -> Response:
    """CopyObject: the source's bytes under the request's key (metadata COPY or REPLACE)."""
    await require_bucket(s3)
    key = _key(s3)
    src_bucket, src_key = _copy_source(s3)
    directive = s3.headers.get("x-amz-metadata-directive", "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise S3Error("InvalidArgument", "Unknown metadata directive.")
    if (src_bucket, src_key) == (s3.bucket, key) and directive == "COPY":
        raise S3Error(
            "InvalidRequest",
            "This copy request is illegal because it is trying to copy an object to itself"
            " without changing the object's metadata.",
        )
    if not await run(s3.stores.buckets.exists, src_bucket):
        raise S3Error("NoSuchBucket", "The specified bucket does not exist", 404, src_bucket)
    source = S3Request(
        s3.scope, s3.receive, s3.request, s3.caller, s3.stores, src_bucket, src_key, {}
    )
    info, meta = await run(_describe, source, src_key)
    check_conditions(s3, info, meta.etag, prefix="x-amz-copy-source-")
    if directive == "REPLACE":
        headers, ctype = stored_headers(s3), s3.headers.get("content-type")
    else:
        headers, ctype = meta.headers, info.content_type
    await read_bytes(s3.scope, s3.receive, s3.caller, 0)

    def copy() -> ObjectInfo:
        handle = s3.stores.objects.open_content(info)
        if handle is None:
            raise no_such_key(src_key)
        fd, name = tempfile.mkstemp(dir=s3.stores.incoming, prefix="copy-")
        path = Path(name)
        try:
            with handle, open(fd, "wb") as out:
                shutil.copyfileobj(handle, out, _CHUNK)
            return store_file(
                s3, key, path, info.etag, meta.etag, ctype, headers, "ObjectCreated:Copy"
            )
        finally:
            path.unlink(missing_ok=True)

    copied = await run(copy)
    return xml_response(
        "CopyObjectResult",
        [("LastModified", iso_time(copied.updated_at)), ("ETag", f'"{meta.etag}"')],
    )
