"""SigV4 verification against botocore's real signer: what verifies, what is rejected and why."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
import uvicorn
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSPreparedRequest, AWSRequest
from botocore.compat import HTTPHeaders
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from botocore.utils import percent_encode, percent_encode_sequence
from firebox.runtime.http.sigv4 import SignedRequest, SigV4Error, from_asgi, is_signed, verify
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.conftest import free_port

KEY = "AKIDFIREBOXEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SECRETS = {KEY: SECRET}
BASE = "http://127.0.0.1:9000"
FUNCTION = "/2015-03-31/functions/f"


def wire(url: str, headers: Any, method: str, body: bytes | str | None) -> SignedRequest:
    """What an ASGI server receives: the URL's raw path and query, a Host header, header
    names lowercased and values stripped of surrounding whitespace (as h11 does)."""
    parts = urlsplit(url)
    received = [("host", parts.netloc)]
    received += [(k.lower(), v.strip()) for k, v in headers.items()]
    if isinstance(body, str):
        body = body.encode()
    return SignedRequest(method, parts.path or "/", parts.query, received, body or b"")


def received(prepared: AWSPreparedRequest) -> SignedRequest:
    return wire(prepared.url, prepared.headers, prepared.method, prepared.body)


def sign(
    method: str = "GET",
    url: str = BASE + FUNCTION,
    *,
    body: bytes = b"",
    headers: Mapping[str, str] | HTTPHeaders | None = None,
    params: Any = None,
    key: str = KEY,
    secret: str = SECRET,
    token: str | None = None,
    service: str = "lambda",
    region: str = "us-east-1",
) -> SignedRequest:
    """Sign with botocore's SigV4Auth and return the request as the server would see it."""
    request = AWSRequest(method=method, url=url, data=body, headers=headers, params=params)
    SigV4Auth(Credentials(key, secret, token), service, region).add_auth(request)
    return received(request.prepare())


def presign(url: str = BASE + FUNCTION, expires: int = 60) -> SignedRequest:
    request = AWSRequest(method="GET", url=url)
    SigV4QueryAuth(Credentials(KEY, SECRET), "lambda", "us-east-1", expires=expires).add_auth(
        request
    )
    return received(request.prepare())


def rejected(request: SignedRequest, code: str, match: str, **options: Any) -> None:
    with pytest.raises(SigV4Error, match=match) as caught:
        verify(request, SECRETS.get, **options)
    assert caught.value.code == code


def with_header(request: SignedRequest, name: str, value: str) -> SignedRequest:
    headers = [(k, value if k == name else v) for k, v in request.headers]
    return SignedRequest(request.method, request.raw_path, request.raw_query, headers, request.body)


def authorization(request: SignedRequest) -> str:
    return str(next(v for k, v in request.headers if k == "authorization"))


# What verifies


@pytest.mark.parametrize(
    ("method", "body"),
    [("GET", b""), ("DELETE", b""), ("POST", b'{"key": "value"}'), ("PUT", b"x" * 70_000)],
)
def test_every_method_verifies_and_returns_the_key(method: str, body: bytes) -> None:
    assert verify(sign(method, body=body), SECRETS.get) == KEY


def test_empty_and_binary_bodies_verify() -> None:
    assert verify(sign("POST", body=b""), SECRETS.get) == KEY
    assert verify(sign("POST", body=bytes(range(256)) * 4), SECRETS.get) == KEY


QUERY = [
    ("Marker", "b"),
    ("Marker", "a"),
    ("Empty", ""),
    ("Space", "two words"),
    ("Unicode", "café ☃ 日本"),
    ("Reserved", "!*'();:@&=+$,/?#[]%"),
    ("Plus", "1+1=2"),
    ("Equals", "a=b=c"),
    ("Tilde-_.", "~-_."),
]


def test_queries_as_botocore_serializes_them_verify() -> None:
    # The rest-json serializer puts the query into the URL already percent-encoded.
    url = f"{BASE}{FUNCTION}?{percent_encode_sequence(QUERY)}"
    assert verify(sign(url=url), SECRETS.get) == KEY


def test_queries_given_as_params_verify() -> None:
    # With params= botocore signs %20 for a space but sends '+' (urlencode): the verifier
    # reads the query as Starlette does and re-encodes it to match.
    request = sign(params=QUERY)
    assert "Space=two+words" in request.raw_query
    assert verify(request, SECRETS.get) == KEY


@pytest.mark.parametrize("query", ["flag", "flag&x=1", "a=1&&b=2", "x=%2B&x=+", "k=v%3Dw&k="])
def test_unusual_raw_queries_verify(query: str) -> None:
    assert verify(sign(url=f"{BASE}{FUNCTION}?{query}"), SECRETS.get) == KEY


@pytest.mark.parametrize(
    "path",
    [
        "/2015-03-31/functions/caf%C3%A9/invocations",
        "/2015-03-31/functions/" + percent_encode("100%-natural/é"),
        "/2015-03-31/functions/" + percent_encode("a b(c)!*'"),
        "/2015-03-31/functions/%25literal%25",
        "/2015-03-31/functions/x/./y/../z",
        "//double//slashes/",
        "/~tilde",
        "/",
    ],
)
def test_encoded_and_unusual_paths_verify(path: str) -> None:
    assert verify(sign(url=BASE + path), SECRETS.get) == KEY


def test_unusual_headers_verify() -> None:
    headers = {
        "Content-Type": 'application/json; charset=utf-8; boundary="a b"',
        "X-Amz-Invocation-Type": "Event",
        "X-Amz-Client-Context": "eyJhIjogMX0=",
        "X-Custom": "  leading, trailing   and   inner  ",
        "X-Empty": "",
    }
    request = sign("POST", headers=headers, body=b"{}")
    assert verify(request, SECRETS.get) == KEY
    # Unstripped values (a server that keeps them) verify too: botocore trims all whitespace.
    assert verify(with_header(request, "x-custom", headers["X-Custom"]), SECRETS.get) == KEY


def test_repeated_headers_verify_joined_in_order() -> None:
    headers = HTTPHeaders()
    headers["X-Amz-Meta-Tag"] = "first"
    headers["X-Amz-Meta-Tag"] = " second "
    request = AWSRequest(method="GET", url=BASE + FUNCTION, headers=headers)
    SigV4Auth(Credentials(KEY, SECRET), "lambda", "us-east-1").add_auth(request)
    # prepare() would merge them; a client sending both lines looks like this:
    sent = wire(request.url, request.headers, "GET", b"")
    assert [v for k, v in sent.headers if k == "x-amz-meta-tag"] == ["first", "second"]
    assert verify(sent, SECRETS.get) == KEY
    swapped = [(k, {"first": "second", "second": "first"}.get(v, v)) for k, v in sent.headers]
    rejected(
        SignedRequest("GET", sent.raw_path, "", swapped, b""),
        "InvalidSignatureException",
        "does not match",
    )


def test_content_sha256_header_and_unsigned_payload() -> None:
    body = b"\x00\xffbinary"
    digest = hashlib.sha256(body).hexdigest()
    request = sign("POST", body=body, headers={"X-Amz-Content-SHA256": digest})
    assert verify(request, SECRETS.get) == KEY
    # An unsigned payload would let a body be swapped under a valid signature: refused
    # whenever there is a body, accepted for a request without one.
    unsigned = sign("POST", body=body, headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    rejected(unsigned, "InvalidSignatureException", "UNSIGNED-PAYLOAD")
    tampered = SignedRequest(unsigned.method, unsigned.raw_path, "", unsigned.headers, b"other")
    rejected(tampered, "InvalidSignatureException", "UNSIGNED-PAYLOAD")
    empty = sign("GET", headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    assert verify(empty, SECRETS.get) == KEY


def test_date_header_instead_of_x_amz_date() -> None:
    request = sign(headers={"Date": "Thu, 01 Jan 1970 00:00:00 GMT"})
    assert not any(k == "x-amz-date" for k, _ in request.headers)
    assert verify(request, SECRETS.get) == KEY


def test_session_token_is_signed_and_accepted() -> None:
    request = sign(token="opaque-session-token")
    assert "x-amz-security-token" in authorization(request)
    assert verify(request, SECRETS.get) == KEY


def test_any_region_unless_one_is_required() -> None:
    request = sign(region="eu-west-1")
    assert verify(request, SECRETS.get) == KEY
    assert verify(request, SECRETS.get, region="eu-west-1") == KEY


def test_presigned_url_verifies() -> None:
    request = presign(f"{BASE}{FUNCTION}?Qualifier=v%201&Marker=%E2%98%83")
    assert "X-Amz-Signature=" in request.raw_query
    assert is_signed(request)
    assert verify(request, SECRETS.get) == KEY


def test_from_asgi_keeps_the_raw_path_and_header_order() -> None:
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/functions/a/b",
        "raw_path": b"/functions/a%2Fb",
        "query_string": b"x=%20",
        "headers": [(b"host", b"h"), (b"x-a", b"1"), (b"X-A", b"caf\xe9")],
    }
    request = from_asgi(scope, b"body")
    assert request == SignedRequest(
        "GET", "/functions/a%2Fb", "x=%20", [("host", "h"), ("x-a", "1"), ("x-a", "café")], b"body"
    )
    without_raw = from_asgi({**scope, "raw_path": None, "path": "/functions/café"}, b"")
    assert without_raw.raw_path == "/functions/caf%C3%A9"


# What is rejected


def test_missing_auth_and_unknown_key_are_unrecognized() -> None:
    bare = SignedRequest("GET", FUNCTION, "", [("host", "h")], b"")
    assert not is_signed(bare)
    rejected(bare, "UnrecognizedClientException", "Missing Authentication Token")
    rejected(sign(key="AKIDUNKNOWN"), "UnrecognizedClientException", "security token")


def test_wrong_secret() -> None:
    rejected(sign(secret="not-the-secret"), "InvalidSignatureException", "does not match")


def tampered(request: SignedRequest, **changes: Any) -> SignedRequest:
    fields = {
        "method": request.method,
        "raw_path": request.raw_path,
        "raw_query": request.raw_query,
        "headers": request.headers,
        "body": request.body,
        **changes,
    }
    return SignedRequest(**fields)


@pytest.mark.parametrize(
    "changes",
    [
        {"body": b'{"amount": 1000}'},
        {"method": "PUT"},
        {"raw_path": "/2015-03-31/functions/g"},
        {"raw_path": "/2015-03-31/functions/a/b"},  # signed as a%2Fb
        {"raw_query": "Qualifier=2&Marker=x"},
        {"raw_query": "Qualifier=1&Marker=x&Extra=1"},
        {"raw_query": "Qualifier=1"},
        {"raw_query": "Qualifier=1&Marker=x+"},  # a space Starlette would see
    ],
)
def test_tampered_request_is_rejected(changes: dict[str, Any]) -> None:
    request = sign("POST", BASE + "/2015-03-31/functions/a%2Fb?Qualifier=1&Marker=x", body=b"{}")
    assert verify(request, SECRETS.get) == KEY
    rejected(tampered(request, **changes), "InvalidSignatureException", "does not match")


def test_tampered_signed_header_or_body_hash_is_rejected() -> None:
    request = sign(headers={"X-Amz-Invocation-Type": "Event"})
    changed = with_header(request, "x-amz-invocation-type", "RequestResponse")
    rejected(changed, "InvalidSignatureException", "does not match")
    body = b"payload"
    hashed = sign(
        "POST", body=body, headers={"X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()}
    )
    rejected(
        tampered(hashed, body=b"PAYLOAD"), "InvalidSignatureException", "does not match the body"
    )
    dropped = tampered(
        request, headers=[h for h in request.headers if h[0] != "x-amz-invocation-type"]
    )
    rejected(dropped, "InvalidSignatureException", "'x-amz-invocation-type' is not in the request")


def test_stale_and_future_dates_are_rejected() -> None:
    request = sign()
    now = datetime.now(UTC)
    rejected(
        request, "InvalidSignatureException", "Signature expired", now=now + timedelta(minutes=6)
    )
    rejected(
        request, "InvalidSignatureException", "not yet current", now=now - timedelta(minutes=6)
    )
    assert verify(request, SECRETS.get, now=now + timedelta(minutes=4)) == KEY
    assert verify(request, SECRETS.get, now=now.replace(tzinfo=None)) == KEY  # naive is UTC


def test_wrong_service_region_and_scope_date_are_rejected() -> None:
    rejected(sign(service="execute-api"), "InvalidSignatureException", "correct service: 'lambda'")
    rejected(
        sign(region="us-west-2"), "InvalidSignatureException", "not 'us-west-2'", region="us-east-1"
    )
    request = sign()
    today = datetime.now(UTC).strftime("%Y%m%d")
    moved = authorization(request).replace(f"/{today}/", "/20200101/")
    rejected(
        with_header(request, "authorization", moved), "InvalidSignatureException", "valid date"
    )


def test_host_must_be_signed() -> None:
    request = sign()
    unsigned_host = authorization(request).replace("SignedHeaders=host;", "SignedHeaders=")
    rejected(
        with_header(request, "authorization", unsigned_host), "InvalidSignatureException", "host"
    )


def test_unsigned_session_token_is_rejected() -> None:
    request = sign()
    added = tampered(request, headers=[*request.headers, ("x-amz-security-token", "t")])
    rejected(added, "InvalidSignatureException", "x-amz-security-token header must be signed")


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("Bearer abc", "must be AWS4-HMAC-SHA256"),
        ("AWS4-HMAC-SHA256", "malformed part"),
        ("AWS4-HMAC-SHA256 Credential=AKID/20261127/us-east-1/lambda/aws4_request", "requires"),
        (
            "AWS4-HMAC-SHA256 Credential=AKID/us-east-1/lambda/aws4_request, SignedHeaders=host, "
            "Signature=" + "0" * 64,
            "Credential must be",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=AKID/20261127/us-east-1/lambda/aws4_request, "
            "SignedHeaders=host;;x-amz-date, Signature=" + "0" * 64,
            "SignedHeaders is malformed",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=AKID/20261127/us-east-1/lambda/aws4_request, "
            "SignedHeaders=host, Signature=XYZ",
            "64 lowercase hex",
        ),
        ("AWS4-HMAC-SHA256 Credential=A/B, Credential=C", "malformed part"),
    ],
)
def test_malformed_authorization_is_incomplete(value: str, match: str) -> None:
    request = with_header(sign(), "authorization", value)
    rejected(request, "IncompleteSignatureException", match)


def test_missing_or_malformed_date_is_incomplete() -> None:
    request = sign()
    no_date = tampered(request, headers=[h for h in request.headers if h[0] != "x-amz-date"])
    rejected(no_date, "IncompleteSignatureException", "X-Amz-Date or a Date header")
    rejected(
        with_header(request, "x-amz-date", "2026-11-27T10:00:00Z"),
        "IncompleteSignatureException",
        "X-Amz-Date must look like",
    )


def test_presigned_url_rejections() -> None:
    request = presign(f"{BASE}{FUNCTION}?Qualifier=1", expires=60)
    now = datetime.now(UTC)
    rejected(request, "InvalidSignatureException", "expired", now=now + timedelta(seconds=90))
    rejected(
        request, "InvalidSignatureException", "not yet current", now=now - timedelta(minutes=6)
    )
    changed = tampered(request, raw_query=request.raw_query.replace("Qualifier=1", "Qualifier=2"))
    rejected(changed, "InvalidSignatureException", "does not match")
    longer = tampered(request, raw_query=request.raw_query.replace("Expires=60", "Expires=600"))
    rejected(longer, "InvalidSignatureException", "does not match")
    both = tampered(request, headers=[*request.headers, ("authorization", "AWS4-HMAC-SHA256 x")])
    rejected(both, "IncompleteSignatureException", "either")
    forever = tampered(
        request, raw_query=request.raw_query.replace("Expires=60", "Expires=9999999")
    )
    rejected(forever, "IncompleteSignatureException", "X-Amz-Expires must be")


# A real client over a real server


async def lambda_endpoint(request: Request) -> Response:
    try:
        key = verify(
            from_asgi(request.scope, await request.body()), SECRETS.get, region="us-east-1"
        )
    except SigV4Error as error:
        return JSONResponse(
            {"__type": error.code, "message": error.message},
            status_code=403,
            headers={"x-amzn-ErrorType": error.code},
        )
    path = request.url.path.removeprefix("/2015-03-31/functions").strip("/")
    if not path:
        return JSONResponse({"Functions": [], "NextMarker": request.query_params["Marker"]})
    if path.endswith("/invocations"):
        version = request.query_params.get("Qualifier", "$LATEST")
        return Response(await request.body(), headers={"X-Amz-Executed-Version": version})
    arn = f"arn:aws:lambda:us-east-1:000000000000:function:{path}"
    return JSONResponse(
        {"Configuration": {"FunctionName": path, "FunctionArn": arn, "Description": key}}
    )


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    app = Starlette(routes=[Route("/{rest:path}", lambda_endpoint, methods=["GET", "POST"])])
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def lambda_client(endpoint: str, key: str = KEY, secret: str = SECRET) -> Any:
    return boto3.client(
        "lambda",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=10),
    )


def test_boto3_requests_verify_over_a_real_server(endpoint: str) -> None:
    client = lambda_client(endpoint)
    config = client.get_function(FunctionName="café-x")["Configuration"]
    assert config["FunctionName"] == "café-x"
    assert config["Description"] == KEY
    marker = "a b+c/=é&x?%"
    assert client.list_functions(Marker=marker, MaxItems=5)["NextMarker"] == marker
    payload = b'{"binary": "\\u0000"}'
    reply = client.invoke(FunctionName="100%/é", Qualifier="v 1+é", Payload=payload)
    assert reply["ExecutedVersion"] == "v 1+é"
    assert reply["Payload"].read() == payload


def test_boto3_wrong_secret_and_unknown_key_are_rejected(endpoint: str) -> None:
    with pytest.raises(ClientError) as caught:
        lambda_client(endpoint, secret="wrong").get_function(FunctionName="café-x")
    error = caught.value.response
    assert error["Error"]["Code"] == "InvalidSignatureException"
    assert "does not match" in error["Error"]["Message"]
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 403
    with pytest.raises(ClientError) as caught:
        lambda_client(endpoint, key="AKIDUNKNOWN").get_function(FunctionName="f")
    assert caught.value.response["Error"]["Code"] == "UnrecognizedClientException"
