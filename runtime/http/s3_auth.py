"""Which requests belong to the S3 API, who signed them, and their bodies read against
what was signed (front-end layer).

A request is an S3 request exactly when it is signed for S3: SigV4 with service `s3` in
its credential scope (the `Authorization` header or a presigned `X-Amz-Credential`), or a
SigV2 presigned query (`AWSAccessKeyId`, `Signature`, `Expires`: what `generate_presigned_url`
and `aws s3 presign` produce by default). Nothing else is, whatever its path, so an S3
request never reaches a user function and the native and Lambda APIs keep their paths.

The signature is checked before the body is read, against the payload hash the client
claims (`x-amz-content-sha256`); the body is then streamed, and its SHA-256 (plus any
Content-MD5 and `x-amz-checksum-*` the client sent) checked at its end, before anything
is stored. `UNSIGNED-PAYLOAD` is accepted only on presigned requests (a presigned PUT
URL lets its holder choose the body, as on S3).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import os
import tempfile
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import SplitResult, parse_qsl, unquote

from botocore.auth import HmacV1Auth
from botocore.credentials import Credentials
from firebox.runtime.http import sigv4
from firebox.runtime.http.s3_errors import S3Error
from starlette.types import Receive, Scope

UNSIGNED = "UNSIGNED-PAYLOAD"
_V2_PARAMS = ("AWSAccessKeyId", "Signature", "Expires")
_FLUSH_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Caller:
    """Who signed an S3 request and what payload hash the signature covers."""

    key_id: str
    payload: str  # a SHA-256 in hex, or UNSIGNED-PAYLOAD
    presigned: bool
    #: The function version it speaks for, when signed with execution-role credentials.
    role: Any = None


def _header(scope: Scope, name: bytes) -> str | None:
    return next((v.decode("latin-1") for k, v in scope["headers"] if k == name), None)


def _query(scope: Scope) -> list[tuple[str, str]]:
    raw = bytes(scope.get("query_string", b"")).decode("utf-8", "replace")
    return parse_qsl(raw, keep_blank_values=True)


def signed_service(scope: Scope) -> str | None:
    """Return the service a SigV4 request is scoped to (None when it is not SigV4-signed)."""
    auth = _header(scope, b"authorization")
    if auth is not None and auth.lstrip().startswith(sigv4.ALGORITHM):
        credential = auth.partition("Credential=")[2].partition(",")[0]
        parts = credential.strip().split("/")
        return parts[3] if len(parts) == 5 else None
    raw = bytes(scope.get("query_string", b""))
    if b"X-Amz-Credential=" not in raw:
        return None
    credential = next((v for k, v in _query(scope) if k == "X-Amz-Credential"), "")
    parts = credential.split("/")
    return parts[3] if len(parts) == 5 else None


def _is_v2_presigned(scope: Scope) -> bool:
    raw = bytes(scope.get("query_string", b""))
    if b"Signature=" not in raw or b"AWSAccessKeyId=" not in raw:
        return False
    names = {k for k, _ in _query(scope)}
    return all(name in names for name in _V2_PARAMS)


def is_s3_request(scope: Scope) -> bool:
    """Return True for a request of the S3 API (signed for S3, SigV4 or SigV2 presigned)."""
    return signed_service(scope) == "s3" or _is_v2_presigned(scope)


def verify(scope: Scope, secret_of: Any, region: str) -> Caller:
    """Check an S3 request's signature (not yet its body); return the Caller.

    `secret_of` maps an access key id to its secret (None when unknown). Raises
    sigv4.SigV4Error or S3Error.
    """
    if _is_v2_presigned(scope) and signed_service(scope) is None:
        return _verify_v2(scope, secret_of)
    request = sigv4.from_asgi(scope, b"")
    presigned = _header(scope, b"authorization") is None
    claimed = _header(scope, b"x-amz-content-sha256")
    if claimed is None:
        if not presigned:
            raise S3Error(
                "InvalidRequest", "Missing required header for this request: x-amz-content-sha256"
            )
        claimed = UNSIGNED
    claimed = claimed.strip()
    if claimed.startswith("STREAMING-"):
        raise S3Error(
            "NotImplemented",
            f"firebox's S3 API does not take aws-chunked bodies ({claimed}); over plain HTTP"
            " botocore and the AWS CLI sign the whole payload instead.",
            501,
        )
    if claimed != UNSIGNED and not sigv4._HEX64.fullmatch(claimed):
        raise S3Error("InvalidArgument", f"x-amz-content-sha256 must be a SHA-256, not {claimed!r}")
    key_id = sigv4.verify(request, secret_of, region=region, service="s3", payload_hash=claimed)
    return Caller(key_id, claimed, presigned)


def _verify_v2(scope: Scope, secret_of: Any) -> Caller:
    params: dict[str, str] = {}
    for name, value in _query(scope):
        if name in params and name in _V2_PARAMS:
            raise S3Error("InvalidArgument", f"{name} is given more than once.")
        params.setdefault(name, value)
    expires = params["Expires"]
    if not expires.isdigit():
        raise S3Error("InvalidArgument", "Expires must be a number of seconds since the epoch.")
    now = int(time.time())
    if int(expires) < now:
        raise S3Error("AccessDenied", "Request has expired", 403)
    if int(expires) > now + sigv4.MAX_PRESIGN_EXPIRES:
        raise S3Error("AuthorizationQueryParametersError", "Expires is more than 7 days ahead.")
    key_id = params["AWSAccessKeyId"]
    secret = secret_of(key_id)
    if secret is None:
        raise S3Error(
            "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist.", 403
        )
    signer = HmacV1Auth(Credentials(key_id, secret))
    method = str(scope["method"]).upper()
    amz = {k.lower(): v for k, v in params.items() if k.lower().startswith("x-amz-")}
    for name, value in scope["headers"]:
        lower = name.decode("latin-1").lower()
        if lower.startswith("x-amz-"):
            amz.setdefault(lower, value.decode("latin-1").strip())
    custom = "".join(f"{k}:{amz[k]}\n" for k in sorted(amz))
    md5 = _header(scope, b"content-md5") or ""
    ctype = _header(scope, b"content-type") or ""
    raw_path = bytes(scope.get("raw_path") or scope["path"].encode()).decode("utf-8", "replace")
    query = bytes(scope.get("query_string", b"")).decode("utf-8", "replace")
    for path in dict.fromkeys([raw_path, unquote(raw_path)]):
        resource = signer.canonical_resource(SplitResult("", "", path, query, ""))
        text = f"{method}\n{md5.strip()}\n{ctype.strip()}\n{expires}\n{custom}{resource}"
        expected = base64.b64encode(
            hmac.new(secret.encode(), text.encode("utf-8"), hashlib.sha1).digest()
        ).decode()
        if hmac.compare_digest(expected, params["Signature"]):
            return Caller(key_id, UNSIGNED, True)
    raise S3Error(
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided.",
        403,
    )


# --- bodies -------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """A body streamed to a file: where, its size, SHA-256 and MD5 (hex)."""

    path: Path
    size: int
    sha256: str
    md5: str


class _Checks:
    """The digests a body is checked against at its end."""

    _CHECKSUMS: Mapping[str, str] = {"crc32": "crc32", "sha1": "sha1", "sha256": "sha256"}

    def __init__(self, scope: Scope, caller: Caller) -> None:
        self.caller = caller
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sha1 = hashlib.sha1(usedforsecurity=False)
        self.crc32 = 0
        self.size = 0
        self.content_md5 = _header(scope, b"content-md5")
        self.checksums = {
            algorithm: value
            for algorithm in self._CHECKSUMS
            if (value := _header(scope, f"x-amz-checksum-{algorithm}".encode())) is not None
        }
        length = _header(scope, b"content-length")
        self.length = int(length) if length is not None and length.isdigit() else None
        if self.content_md5 is not None:
            try:
                if len(base64.b64decode(self.content_md5, validate=True)) != 16:
                    raise ValueError
            except (binascii.Error, ValueError):
                raise S3Error(
                    "InvalidDigest", "The Content-MD5 you specified was invalid."
                ) from None

    def update(self, chunk: bytes) -> None:
        if chunk and self.caller.payload == UNSIGNED and not self.caller.presigned:
            raise S3Error(
                "InvalidRequest",
                "UNSIGNED-PAYLOAD is accepted only on presigned requests: sign the body.",
            )
        self.size += len(chunk)
        self.sha256.update(chunk)
        self.md5.update(chunk)
        if "sha1" in self.checksums:
            self.sha1.update(chunk)
        if "crc32" in self.checksums:
            self.crc32 = zlib.crc32(chunk, self.crc32)

    def finish(self) -> None:
        if self.length is not None and self.size != self.length:
            raise S3Error(
                "IncompleteBody",
                "You did not provide the number of bytes specified by the Content-Length.",
            )
        if self.caller.payload != UNSIGNED and self.sha256.hexdigest() != self.caller.payload:
            raise S3Error(
                "XAmzContentSHA256Mismatch",
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            )
        if self.content_md5 is not None and (
            base64.b64decode(self.content_md5) != self.md5.digest()
        ):
            raise S3Error(
                "BadDigest", "The Content-MD5 you specified did not match what we received."
            )
        computed = {
            "crc32": self.crc32.to_bytes(4, "big"),
            "sha1": self.sha1.digest(),
            "sha256": self.sha256.digest(),
        }
        for algorithm, value in self.checksums.items():
            if value.strip() != base64.b64encode(computed[algorithm]).decode():
                raise S3Error(
                    "BadDigest",
                    f"The {algorithm.upper()} you specified did not match the calculated checksum.",
                )


async def _chunks(scope: Scope, receive: Receive, limit: int) -> Any:
    length = _header(scope, b"content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise _too_large(int(length), limit)
    received = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise S3Error("IncompleteBody", "The client disconnected before the whole body.")
        chunk = message.get("body", b"")
        received += len(chunk)
        if received > limit:
            raise _too_large(received, limit)
        yield chunk
        if not message.get("more_body", False):
            return


def _too_large(size: int, limit: int) -> S3Error:
    return S3Error(
        "EntityTooLarge",
        f"Your proposed upload ({size} bytes) exceeds the maximum allowed size ({limit} bytes).",
    )


async def read_bytes(scope: Scope, receive: Receive, caller: Caller, limit: int) -> bytes:
    """Return the whole (small) body, checked against the signature; raises S3Error."""
    checks = _Checks(scope, caller)
    body = bytearray()
    async for chunk in _chunks(scope, receive, limit):
        checks.update(chunk)
        body += chunk
    checks.finish()
    return bytes(body)


async def read_to_file(
    scope: Scope, receive: Receive, caller: Caller, limit: int, folder: Path
) -> Received:
    """Stream the body to a new file in `folder`, checked against the signature, and
    return it; the file is removed when a check fails. Raises S3Error."""
    checks = _Checks(scope, caller)
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=folder, prefix="body-")
    path = Path(name)
    out: BinaryIO = os.fdopen(fd, "wb")
    pending: list[bytes] = []
    waiting = 0

    def flush(chunks: list[bytes]) -> None:
        for chunk in chunks:
            checks.update(chunk)
            out.write(chunk)

    try:
        async for chunk in _chunks(scope, receive, limit):
            pending.append(chunk)
            waiting += len(chunk)
            if waiting >= _FLUSH_BYTES:
                batch, pending, waiting = pending, [], 0
                await asyncio.to_thread(flush, batch)
        await asyncio.to_thread(flush, pending)
        out.close()
        checks.finish()
    except BaseException:
        out.close()
        path.unlink(missing_ok=True)
        raise
    return Received(path, checks.size, checks.sha256.hexdigest(), checks.md5.hexdigest())
