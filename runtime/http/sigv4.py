"""AWS Signature Version 4 verification for requests signed by botocore, boto3 and the AWS CLI (HTTP front end layer).

The canonical request is rebuilt from what the server received, with botocore's own
`SigV4Auth` pieces (path normalization, query canonicalization, header trimming, string
to sign, key derivation), so a request verifies exactly when botocore would have produced
the same signature for it. Three places where the wire and the signer differ:

- The path: botocore signs the *percent-encoded* path it put in the URL, encoded once
  more (`caf%C3%A9` is signed as `caf%25C3%25A9`), after removing dot segments and empty
  segments. Only the raw path (ASGI `raw_path`) has the bytes it signed; the decoded
  `scope["path"]` loses the difference between `/` and `%2F`.
- The query: botocore signs the query text of the URL as-is (sorted, not re-encoded),
  while spec-following signers (and botocore given `params=`, which goes on the wire
  form-encoded) sign each name and value decoded and re-encoded. Both are tried; the
  second reads the query the way Starlette does (`+` is a space), so it never accepts a
  query that means something other than what was signed.
- The body: `x-amz-content-sha256` is what botocore signs when present, so it must also
  match the body received (unless it says `UNSIGNED-PAYLOAD`).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import SplitResult, parse_qsl

from botocore.auth import SIGV4_TIMESTAMP, UNSIGNED_PAYLOAD, S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials
from botocore.utils import percent_encode

ALGORITHM = "AWS4-HMAC-SHA256"
# AWS's own ceiling for X-Amz-Expires: seven days.
MAX_PRESIGN_EXPIRES = 7 * 24 * 3600

UNRECOGNIZED = "UnrecognizedClientException"
INVALID = "InvalidSignatureException"
INCOMPLETE = "IncompleteSignatureException"

_HEX64 = re.compile(r"[0-9a-f]{64}")
_AMZ_DATE = re.compile(r"\d{8}T\d{6}Z")
_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method."
)


class SigV4Error(Exception):
    """A request that is not validly signed; `code` is the Lambda error type to answer with."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class SignedRequest:
    """An HTTP request as the server received it: raw path and query, lowercase header names
    in arrival order (a repeated header appears once per occurrence), and the whole body."""

    method: str
    raw_path: str
    raw_query: str
    headers: list[tuple[str, str]]
    body: bytes


@dataclass(frozen=True)
class _Claim:
    """What the client says it signed, from the Authorization header or the query."""

    access_key: str
    scope_date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str
    timestamp: str
    expires: int | None
    query: str  # the raw query without X-Amz-Signature


def from_asgi(scope: Mapping[str, Any], body: bytes) -> SignedRequest:
    """Return the SignedRequest an ASGI HTTP `scope` and its full `body` describe.

    Header values are decoded as Latin-1, the encoding http.client sends them in; the path
    comes from `raw_path` (percent-encoded, as signed), falling back to `path` re-encoded
    by botocore's rules when the server does not provide it.
    """
    raw = scope.get("raw_path")
    if raw:
        path = bytes(raw).decode("utf-8", "replace")
    else:
        path = percent_encode(scope["path"], safe="/~")
    return SignedRequest(
        method=str(scope["method"]),
        raw_path=path,
        raw_query=bytes(scope.get("query_string", b"")).decode("utf-8", "replace"),
        headers=[(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]],
        body=body,
    )


def is_signed(request: SignedRequest) -> bool:
    """Return True when the request carries SigV4 auth (header or presigned query) at all."""
    auth = [v for k, v in request.headers if k == "authorization"]
    if any(v.strip().startswith(ALGORITHM) for v in auth):
        return True
    return any(p.partition("=")[0] == "X-Amz-Algorithm" for p in request.raw_query.split("&"))


def verify(
    request: SignedRequest,
    lookup_secret: Callable[[str], str | None],
    *,
    region: str | None = None,
    service: str = "lambda",
    now: datetime | None = None,
    max_skew: timedelta = timedelta(minutes=5),
    payload_hash: str | None = None,
) -> str:
    """Check the request's SigV4 signature and return the access key id that signed it.

    `lookup_secret` maps an access key id to its secret, or None for an unknown key.
    `region` None accepts any region in the credential scope; a naive `now` is UTC. Raises SigV4Error with code
    UnrecognizedClientException (no auth, unknown key), IncompleteSignatureException
    (malformed auth) or InvalidSignatureException (wrong signature, scope, date or body).

    `payload_hash` given (the S3 API, which streams bodies) is the payload hash signed, taken
    as-is: the caller checks the body against it while reading. Service `s3` signs its path
    as sent, without botocore's normalization and second encoding.
    """
    headers: dict[str, list[str]] = {}
    for name, value in request.headers:
        headers.setdefault(name.lower(), []).append(value)
    claim = _claim(request, headers)
    if claim.service != service:
        raise SigV4Error(INVALID, f"Credential should be scoped to correct service: '{service}'.")
    if region is not None and claim.region != region:
        raise SigV4Error(
            INVALID, f"Credential should be scoped to a valid region, not '{claim.region}'."
        )
    if claim.scope_date != claim.timestamp[:8]:
        raise SigV4Error(
            INVALID,
            f"Credential should be scoped to a valid date: {claim.scope_date} is not the "
            f"date of the request's timestamp {claim.timestamp}.",
        )
    now = now or datetime.now(UTC)
    _check_time(claim, now if now.tzinfo else now.replace(tzinfo=UTC), max_skew)
    if "host" not in claim.signed_headers:
        raise SigV4Error(INVALID, "The host header must be among the signed headers.")
    if "x-amz-security-token" in headers and "x-amz-security-token" not in claim.signed_headers:
        raise SigV4Error(INVALID, "The x-amz-security-token header must be signed.")
    secret = lookup_secret(claim.access_key)
    if secret is None:
        raise SigV4Error(UNRECOGNIZED, "The security token included in the request is invalid.")

    signer_class = S3SigV4Auth if service == "s3" else SigV4Auth
    signer = signer_class(Credentials(claim.access_key, secret), claim.service, claim.region)
    signed = HTTPHeaders()  # keeps repeated headers; canonical_headers joins them with ","
    for name in claim.signed_headers:
        if name not in headers:
            raise SigV4Error(INVALID, f"The signed header '{name}' is not in the request.")
        for value in headers[name]:
            signed[name] = value
    fixed = [
        signer.canonical_headers(signed) + "\n",
        signer.signed_headers(signed),
        payload_hash if payload_hash is not None else _payload_hash(request, headers),
    ]
    path = signer._normalize_url_path(request.raw_path)
    # string_to_sign and signature read the timestamp from a request's context, as in add_auth.
    context = AWSRequest()
    context.context["timestamp"] = claim.timestamp
    key = _signing_key(secret, claim.scope_date, claim.region, claim.service)
    for query in _canonical_queries(signer, claim.query):
        canonical = "\n".join([request.method.upper(), path, query, *fixed])
        string_to_sign = signer.string_to_sign(context, canonical)
        expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
        if hmac.compare_digest(expected, claim.signature):
            return claim.access_key
    raise SigV4Error(INVALID, _MISMATCH)


@functools.lru_cache(maxsize=1024)
def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """SigV4's signing key (botocore's `SigV4Auth.signature` derives it in four HMACs on
    every request); the same for a key's requests of one day, region and service."""
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _claim(request: SignedRequest, headers: dict[str, list[str]]) -> _Claim:
    pairs = [p.partition("=") for p in request.raw_query.split("&")] if request.raw_query else []
    presigned = any(k == "X-Amz-Algorithm" for k, _, _ in pairs)
    authorization = headers.get("authorization")
    if authorization and presigned:
        raise SigV4Error(INCOMPLETE, "Use either the Authorization header or a presigned query.")
    if presigned:
        return _query_claim(request, pairs)
    if not authorization:
        raise SigV4Error(UNRECOGNIZED, "Missing Authentication Token: sign the request with SigV4.")
    if len(authorization) > 1:
        raise SigV4Error(INCOMPLETE, "The request has more than one Authorization header.")
    algorithm, _, rest = authorization[0].strip().partition(" ")
    if algorithm != ALGORITHM:
        raise SigV4Error(INCOMPLETE, f"Authorization must be {ALGORITHM}, not '{algorithm}'.")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or key in fields or key not in ("Credential", "SignedHeaders", "Signature"):
            raise SigV4Error(INCOMPLETE, f"Authorization header has a malformed part: '{part}'.")
        fields[key] = value
    if len(fields) != 3:
        raise SigV4Error(
            INCOMPLETE, "Authorization header requires Credential, SignedHeaders and Signature."
        )
    if "x-amz-date" in headers:
        timestamp = headers["x-amz-date"][0].strip()
    elif "date" in headers:
        # botocore signs with Date instead of X-Amz-Date when the caller set Date.
        try:
            when = parsedate_to_datetime(headers["date"][0])
        except (TypeError, ValueError):
            raise SigV4Error(INCOMPLETE, "The Date header is not an HTTP date.") from None
        timestamp = when.astimezone(UTC).strftime(SIGV4_TIMESTAMP)
    else:
        raise SigV4Error(INCOMPLETE, "The request needs an X-Amz-Date or a Date header.")
    return _make_claim(
        fields["Credential"],
        fields["SignedHeaders"],
        fields["Signature"],
        timestamp,
        None,
        request.raw_query,
    )


def _query_claim(request: SignedRequest, pairs: list[tuple[str, str, str]]) -> _Claim:
    params: dict[str, list[str]] = {}
    for key, value in parse_qsl(request.raw_query, keep_blank_values=True):
        params.setdefault(key, []).append(value)
    names = ["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires"]
    names += ["X-Amz-SignedHeaders", "X-Amz-Signature"]
    for name in names:
        if len(params.get(name, [])) != 1:
            raise SigV4Error(INCOMPLETE, f"A presigned request needs exactly one {name}.")
    if params["X-Amz-Algorithm"][0] != ALGORITHM:
        raise SigV4Error(INCOMPLETE, f"X-Amz-Algorithm must be {ALGORITHM}.")
    expires = params["X-Amz-Expires"][0]
    if not expires.isdigit() or not 0 < int(expires) <= MAX_PRESIGN_EXPIRES:
        raise SigV4Error(
            INCOMPLETE, f"X-Amz-Expires must be between 1 and {MAX_PRESIGN_EXPIRES} seconds."
        )
    # botocore appends X-Amz-Signature after signing, so the signed query lacks it.
    query = "&".join(k + s + v for k, s, v in pairs if k != "X-Amz-Signature")
    return _make_claim(
        params["X-Amz-Credential"][0],
        params["X-Amz-SignedHeaders"][0],
        params["X-Amz-Signature"][0],
        params["X-Amz-Date"][0].strip(),
        int(expires),
        query,
    )


def _make_claim(
    credential: str,
    signed_headers: str,
    signature: str,
    timestamp: str,
    expires: int | None,
    query: str,
) -> _Claim:
    parts = credential.split("/")
    if len(parts) != 5 or not all(parts) or parts[4] != "aws4_request":
        raise SigV4Error(
            INCOMPLETE,
            f"Credential must be <key>/<date>/<region>/<service>/aws4_request, not '{credential}'.",
        )
    names = tuple(signed_headers.lower().split(";"))
    if not all(names):
        raise SigV4Error(INCOMPLETE, f"SignedHeaders is malformed: '{signed_headers}'.")
    if not _HEX64.fullmatch(signature):
        raise SigV4Error(INCOMPLETE, "Signature must be 64 lowercase hex digits.")
    if not _AMZ_DATE.fullmatch(timestamp):
        raise SigV4Error(INCOMPLETE, f"X-Amz-Date must look like 20261127T120000Z: '{timestamp}'.")
    return _Claim(
        parts[0], parts[1], parts[2], parts[3], names, signature, timestamp, expires, query
    )


def _parse_timestamp(text: str) -> datetime:
    """Parse an `X-Amz-Date` (`20261203T061500Z`); raises ValueError. `strptime` is a
    tenth of a signature check's time, and this runs on every signed request."""
    if len(text) != 16 or text[8] != "T" or text[15] != "Z" or not text[:8].isdigit():
        raise ValueError(text)
    clock = text[9:15]
    if not clock.isdigit() or not text.isascii():
        raise ValueError(text)
    return datetime(
        int(text[0:4]), int(text[4:6]), int(text[6:8]),
        int(clock[0:2]), int(clock[2:4]), int(clock[4:6]), tzinfo=UTC,
    )  # fmt: skip


def _check_time(claim: _Claim, now: datetime, max_skew: timedelta) -> None:
    try:
        signed_at = _parse_timestamp(claim.timestamp)
    except ValueError:
        raise SigV4Error(INCOMPLETE, f"X-Amz-Date is not a date: '{claim.timestamp}'.") from None
    if signed_at > now + max_skew:
        stamp = now.astimezone(UTC).strftime(SIGV4_TIMESTAMP)
        raise SigV4Error(
            INVALID,
            f"Signature not yet current: {claim.timestamp} is later than {stamp} + {max_skew}.",
        )
    if claim.expires is not None:
        if now > signed_at + timedelta(seconds=claim.expires):
            stamp = now.astimezone(UTC).strftime(SIGV4_TIMESTAMP)
            raise SigV4Error(
                INVALID,
                f"Request has expired: signed {claim.timestamp} for "
                f"{claim.expires} s, now {stamp}.",
            )
    elif signed_at < now - max_skew:
        stamp = now.astimezone(UTC).strftime(SIGV4_TIMESTAMP)
        raise SigV4Error(
            INVALID, f"Signature expired: {claim.timestamp} is earlier than {stamp} - {max_skew}."
        )


def _payload_hash(request: SignedRequest, headers: dict[str, list[str]]) -> str:
    actual = hashlib.sha256(request.body).hexdigest()
    claimed = headers.get("x-amz-content-sha256")
    if claimed is None:
        return actual
    value = claimed[0].strip()
    if value == UNSIGNED_PAYLOAD:
        # An unsigned payload would let anyone on the path swap the body of a signed request.
        if request.body:
            raise SigV4Error(
                INVALID,
                "UNSIGNED-PAYLOAD is accepted only for requests without a body: sign the"
                " body (x-amz-content-sha256 set to its SHA-256).",
            )
        return value
    if not _HEX64.fullmatch(value):
        raise SigV4Error(INVALID, f"Unsupported x-amz-content-sha256 '{value}' (chunked signing).")
    if value != actual:
        raise SigV4Error(INVALID, "The x-amz-content-sha256 header does not match the body.")
    return value


def _canonical_queries(signer: Any, raw_query: str) -> list[str]:
    # As botocore signs a query already in the URL: the raw text, pairs sorted.
    exact = str(signer._canonical_query_string_url(SplitResult("", "", "", raw_query, "")))
    # As the spec (and botocore given params=) signs it: decoded, then re-encoded.
    decoded = parse_qsl(raw_query, keep_blank_values=True)
    spec = str(signer._canonical_query_string_params(decoded))
    return [exact] if spec == exact else [exact, spec]
