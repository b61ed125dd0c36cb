"""The paths kept for firebox's own APIs (never routed to a user function) and the
credentials a caller sends firebox (never forwarded to one) (front-end layer).

The Lambda-compatible API's prefixes are the dated first segments of every `requestUri`
in botocore's Lambda service model, read once at import (the constant below when that
model cannot be loaded); any other dated first segment is treated as one too, so a
botocore upgrade that adds a prefix never reaches a user route.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# The prefixes of botocore's Lambda model when this was written (the fallback).
KNOWN_LAMBDA_PREFIXES = (
    "2014-11-13", "2015-03-31", "2016-08-19", "2017-03-31", "2017-10-31", "2018-10-31",
    "2019-09-25", "2019-09-30", "2020-04-22", "2020-06-30", "2021-07-20", "2021-10-31",
    "2021-11-15", "2022-07-20", "2024-08-31", "2025-11-30", "2025-12-01", "2026-07-09",
)  # fmt: skip
# The native API, the health check, the metrics endpoint, the web console and the
# function URLs the node serves (`/lambda-url/{url-id}/...`, runtime/http/lambda_urls.py).
NATIVE_PREFIXES = ("v1", "healthz", "metrics", "console", "lambda-url")
DATED = re.compile(r"^\d{4}-\d\d-\d\d$")
# Headers that carry a SigV4 signature or session token: never forwarded to a guest.
SIGV4_HEADERS = frozenset(
    {"x-amz-date", "x-amz-security-token", "x-amz-content-sha256", "x-amz-credential"}
)
# Query parameters of a presigned SigV4 request.
SIGV4_QUERY = frozenset(
    {
        "x-amz-algorithm", "x-amz-credential", "x-amz-date", "x-amz-expires",
        "x-amz-signedheaders", "x-amz-signature", "x-amz-security-token",
    }
)  # fmt: skip


def _model_prefixes() -> tuple[str, ...]:
    try:
        from botocore.loaders import Loader

        model = Loader().load_service_model("lambda", "service-2")
        uris = (op["http"]["requestUri"] for op in model["operations"].values())
        found = {uri.split("/")[1].split("?")[0] for uri in uris}
    except Exception:  # no botocore, or a model in another shape: the constant
        return KNOWN_LAMBDA_PREFIXES
    return tuple(sorted(found | set(KNOWN_LAMBDA_PREFIXES)))


#: Every dated prefix of the Lambda-compatible API.
LAMBDA_PREFIXES = _model_prefixes()


def first_segment(path: str) -> str:
    """Return the first segment of a path (`/2018-10-31/layers` -> `2018-10-31`)."""
    return path.lstrip("/").partition("/")[0]


def is_lambda_path(path: str) -> bool:
    """Return True for a path of the Lambda-compatible API (a dated first segment)."""
    segment = first_segment(path)
    return segment in LAMBDA_PREFIXES or bool(DATED.match(segment))


def is_reserved(path: str) -> bool:
    """Return True for a path that belongs to firebox's own APIs, whatever routes exist."""
    return first_segment(path) in NATIVE_PREFIXES or is_lambda_path(path)


def is_sigv4_authorization(value: str) -> bool:
    """Return True for a SigV4 `Authorization` header."""
    return value.lstrip().upper().startswith("AWS4-")


def forwarded_headers(
    headers: Iterable[tuple[str, str]], is_firebox_bearer: bool
) -> list[tuple[str, str]]:
    """Return the headers a guest may see: SigV4 headers dropped, and `Authorization`
    dropped when it is SigV4 or (`is_firebox_bearer`) a firebox access key."""
    kept = []
    for key, value in headers:
        name = key.lower()
        if name in SIGV4_HEADERS:
            continue
        if name == "authorization" and (is_firebox_bearer or is_sigv4_authorization(value)):
            continue
        kept.append((key, value))
    return kept


def forwarded_query(items: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Return the query parameters a guest may see (a presigned request's dropped)."""
    return [(k, v) for k, v in items if k.lower() not in SIGV4_QUERY]
