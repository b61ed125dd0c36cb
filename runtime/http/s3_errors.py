"""S3's error shape: an `<Error>` XML document with a code botocore maps to its exceptions
(front-end layer).

Every refusal of the S3 API answers in this shape, so `except s3.exceptions.NoSuchKey`
and `ClientError.response["Error"]["Code"]` work as against AWS. Firebox errors raised by
the stores below map to the nearest S3 code; anything unexpected is `InternalError`.
"""

from __future__ import annotations

import uuid
from xml.sax.saxutils import escape

from firebox.runtime.errors import BadRequest, FireboxError, ItemNotFound, PayloadTooLarge
from firebox.runtime.http.errors import unavailable
from firebox.runtime.http.sigv4 import INCOMPLETE, UNRECOGNIZED, SigV4Error
from starlette.responses import Response

XML_TYPE = "application/xml"


class S3Error(Exception):
    """A refusal in S3's terms: its code, message, HTTP status and the resource it names."""

    def __init__(self, code: str, message: str, status: int = 400, resource: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.resource = resource


def no_such_bucket(bucket: str) -> S3Error:
    """Return the NoSuchBucket error for `bucket`."""
    return S3Error("NoSuchBucket", "The specified bucket does not exist", 404, bucket)


def no_such_key(key: str) -> S3Error:
    """Return the NoSuchKey error for `key`."""
    return S3Error("NoSuchKey", "The specified key does not exist.", 404, key)


def not_implemented(operation: str) -> S3Error:
    """Return the NotImplemented error naming the S3 `operation` firebox does not serve."""
    return S3Error(
        "NotImplemented",
        f"firebox's S3 API does not implement {operation}; see docs/s3-api.md.",
        501,
    )


def as_s3_error(exc: BaseException) -> S3Error:
    """Return `exc` (an S3Error, a SigV4 refusal, a firebox error) as an S3Error."""
    if isinstance(exc, S3Error):
        return exc
    if isinstance(exc, SigV4Error):
        if exc.code == UNRECOGNIZED:
            return S3Error("InvalidAccessKeyId", exc.message, 403)
        if exc.code == INCOMPLETE:
            return S3Error("AuthorizationQueryParametersError", exc.message, 400)
        if exc.message.startswith(("Request has expired", "Signature expired")):
            return S3Error("AccessDenied", exc.message, 403)
        return S3Error("SignatureDoesNotMatch", exc.message, 403)
    if isinstance(exc, PayloadTooLarge):
        return S3Error("EntityTooLarge", str(exc), 400)
    if isinstance(exc, ItemNotFound):
        return S3Error("NoSuchKey", str(exc), 404)
    if isinstance(exc, BadRequest):
        return S3Error("InvalidArgument", str(exc), 400)
    down = unavailable(exc) if isinstance(exc, Exception) else None
    if down is not None:
        return S3Error("ServiceUnavailable", down.message, 503)
    if isinstance(exc, FireboxError):
        return S3Error("InternalError", str(exc), 500)
    return S3Error("InternalError", f"internal error: {type(exc).__name__}", 500)


def error_response(exc: BaseException, method: str = "GET") -> Response:
    """Return `exc` as S3's XML error response (headers only for HEAD, as S3 answers)."""
    error = as_s3_error(exc)
    request_id = uuid.uuid4().hex.upper()[:16]
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error>'
        f"<Code>{escape(error.code)}</Code><Message>{escape(error.message)}</Message>"
        f"<Resource>{escape(error.resource)}</Resource><RequestId>{request_id}</RequestId>"
        "</Error>"
    ).encode()
    headers = {"x-amz-request-id": request_id, "Content-Type": XML_TYPE}
    if method == "HEAD":
        return Response(status_code=error.status, headers=headers)
    return Response(body, status_code=error.status, headers=headers)
