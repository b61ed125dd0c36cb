"""Authentication of the APIs (SigV4 or bearer keys) and the /v1/keys admin API (front-end layer).

Every request to the native API (`/v1/...`) and to the Lambda-compatible API (the dated
prefixes botocore uses) must carry either

- a SigV4 signature (`Authorization: AWS4-HMAC-SHA256 ...` or a presigned query), scoped
  to the node's region and to service `lambda` (Lambda paths), `sqs` (the SQS API,
  `POST /` with an `AmazonSQS.` target) or `firebox` (`/v1`), made
  with a live access key; or
- `Authorization: Bearer KEY_ID:SECRET` with a live access key.

Live keys are the bootstrap admin key (always valid) and the keys the admin issued
through `/v1/keys` that are not revoked. Only the admin key may manage keys.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, unquote

from firebox.runtime import roles
from firebox.runtime.credentials import verify_bearer
from firebox.runtime.errors import (
    AccessDenied,
    BadRequest,
    CapabilityDenied,
    FireboxError,
    Forbidden,
    FunctionNotFound,
    PayloadTooLarge,
    Unauthorized,
)
from firebox.runtime.http import reserved, sigv4, sqs_api
from firebox.runtime.http.body_limits import body_cap
from firebox.runtime.http.errors import error_response
from firebox.runtime.http.lambda_errors import lambda_error_response
from firebox.runtime.http.native import read_object, reply
from firebox.runtime.node import Node
from firebox.runtime.storage.keys import KEY_ID_PREFIX, KeyStore
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The scope key under which the authenticated access key id is passed to the app.
SCOPE_KEY = "firebox.access_key_id"
# The APIs execution-role credentials may call (each checks the version's grant).
ROLE_SERVICES = frozenset({"sqs"})


def is_lambda_path(path: str) -> bool:
    """Return True for a path of the Lambda-compatible API (botocore's dated prefixes)."""
    return reserved.is_lambda_path(path)


class Authenticator:
    """Looks up access keys: the admin key from memory, issued keys from the registry."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.keys = node.stores.keys

    @property
    def admin_key_id(self) -> str:
        """The bootstrap admin key's id."""
        return self.node.credentials.access_key_id

    def secret(self, key_id: str) -> str | None:
        """Return the secret of a live key, or None for an unknown or revoked one."""
        admin = self.node.credentials
        if key_id == admin.access_key_id:
            return admin.secret_access_key
        return self.keys.secret(key_id)

    def bearer(self, header: str | None) -> str:
        """Check a bearer header; return the key id. Raises Unauthorized or Forbidden."""
        key_id = (header or "").partition(" ")[2].partition(":")[0].strip()
        secret = self.secret(key_id) if key_id else None
        return verify_bearer(header, {key_id: secret} if secret is not None else {})

    def names_a_key(self, header: str | None) -> bool:
        """Return True when an Authorization header is a bearer naming a firebox key
        (live, issued or the admin's), whatever its secret: never forwarded to a guest."""
        scheme, _, token = (header or "").strip().partition(" ")
        key_id = token.partition(":")[0].strip()
        if scheme.lower() != "bearer" or not key_id:
            return False
        return (
            key_id == self.admin_key_id
            or key_id.startswith(KEY_ID_PREFIX)
            or self.secret(key_id) is not None
        )

    def role_aware(
        self, token: str | None, found: list[roles.RoleIdentity]
    ) -> Callable[[str], str | None]:
        """Return the secret lookup SigV4 verification calls: issued keys by id, and
        execution-role keys from their session `token` (whose identity goes in `found`).
        Role errors raise sigv4.SigV4Error."""

        def lookup(key_id: str) -> str | None:
            if not roles.is_role_key(key_id):
                return self.secret(key_id)
            try:
                identity, secret = roles.verify(self.node.role_key, key_id, token)
            except roles.RoleError as exc:
                raise sigv4.SigV4Error(sigv4.UNRECOGNIZED, str(exc)) from None
            found.append(identity)
            return secret

        return lookup

    def signed(
        self, request: sigv4.SignedRequest, service: str
    ) -> tuple[str, roles.RoleIdentity | None]:
        """Check a SigV4-signed request; return the key id, and the function version it
        speaks for when it was signed with execution-role credentials. Raises
        sigv4.SigV4Error."""
        found: list[roles.RoleIdentity] = []
        lookup = self.role_aware(session_token(request), found)
        key_id = sigv4.verify(request, lookup, region=self.node.config.region, service=service)
        return key_id, (found[0] if found else None)


#: The Lambda API's invoke paths (sync, async, streaming): the one call of that API a
#: function's execution role may make, on the functions its grant names.
INVOKE_PATH = re.compile(
    r"^/(?:2015-03-31/functions/([^/]+)/invocations"
    r"|2021-11-15/functions/([^/]+)/response-streaming-invocations"
    r"|2014-11-13/functions/([^/]+)/invoke-async/?)$"
)


def _invoked(scope: Scope) -> tuple[str, str | None] | None:
    """Return the (function, qualifier) an invoke request names, or None for another path."""
    if scope["method"] != "POST":
        return None
    match = INVOKE_PATH.match(scope["path"])
    if match is None:
        return None
    target = unquote(next(g for g in match.groups() if g))
    query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
    qualifier = query.get("Qualifier") or None
    if target.startswith("arn:"):  # arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]
        parts = target.split(":")
        target = parts[6] if len(parts) > 6 else ""
        qualifier = qualifier or (parts[7] if len(parts) > 7 else None)
    elif ":" in target:  # NAME:QUALIFIER or ACCOUNT:function:NAME
        parts = target.split(":")
        if len(parts) >= 3 and parts[1] == "function":
            target, qualifier = parts[2], qualifier or (parts[3] if len(parts) > 3 else None)
        else:
            target, qualifier = parts[0], qualifier or parts[1]
    return target, qualifier


def _check_invoke(scope: Scope, role: roles.RoleIdentity) -> None:
    """Refuse an invoke the role's function was not granted (AccessDenied)."""
    invoked = _invoked(scope)
    assert invoked is not None
    node = scope["app"].state.node
    try:
        grants = node.catalog.version(role.function, role.version).spec.grants
    except FunctionNotFound:
        raise AccessDenied(f"function {role.function}:{role.version} no longer exists") from None
    try:
        grants.function(*invoked)
    except CapabilityDenied as exc:
        raise AccessDenied(exc.message) from None


def session_token(request: sigv4.SignedRequest) -> str | None:
    """Return the session token a signed request carries (header or presigned query)."""
    for name, value in request.headers:
        if name == "x-amz-security-token":
            return value
    for pair in request.raw_query.split("&"):
        name, _, value = pair.partition("=")
        if name == "X-Amz-Security-Token":
            return unquote(value)
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """Return a `receive` that gives the app the already-read body, then defers to the server."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _read_all(scope: Scope, receive: Receive, limit: int) -> bytes:
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise PayloadTooLarge("Request body", int(value), limit)
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BadRequest("the client disconnected before sending the whole body")
        body += message.get("body", b"")
        if len(body) > limit:
            raise PayloadTooLarge("Request body", len(body), limit)
        if not message.get("more_body", False):
            return bytes(body)


class AuthMiddleware:
    """Requires a live access key (SigV4 or bearer) on /v1/*, the Lambda API paths and SQS calls.

    /healthz and trigger routes decide for themselves. A SigV4 request's body is read
    here (the signature covers it) and replayed to the app.
    """

    def __init__(self, app: ASGIApp, authenticator: Authenticator) -> None:
        self.app = app
        self.auth = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        lambda_api = is_lambda_path(path)
        sqs = sqs_api.is_sqs_request(scope["headers"], scope["method"], path)
        if not lambda_api and not sqs and not path.startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        try:
            unsigned = sigv4.from_asgi(scope, b"")
            if sigv4.is_signed(unsigned):
                # At most the route's cap (BodyLimitMiddleware, in front, enforces it too).
                body = await _read_all(scope, receive, body_cap(scope["method"], path))
                receive = _replay(body, receive)
                signed = sigv4.from_asgi(scope, body)
                service = "sqs" if sqs else "lambda" if lambda_api else "firebox"
                key_id, role = self.auth.signed(signed, service)
                if role is not None:
                    if service == "lambda" and _invoked(scope) is not None:
                        _check_invoke(scope, role)  # Invoke is a role's, when granted
                    elif service not in ROLE_SERVICES:
                        raise AccessDenied(
                            f"execution-role credentials of {role.function} may call only"
                            f" {', '.join(sorted(ROLE_SERVICES))} APIs, not this one"
                        )
                    scope[roles.SCOPE_KEY] = role
            else:
                header = next((v for k, v in scope["headers"] if k == b"authorization"), None)
                key_id = self.auth.bearer(header.decode("latin-1") if header else None)
        except (FireboxError, sigv4.SigV4Error) as exc:
            response = sqs_api.error_response(exc) if sqs else _refusal(exc, lambda_api, scope)
            await response(scope, receive, send)
            return
        scope[SCOPE_KEY] = key_id
        await self.app(scope, receive, send)


def _refusal(exc: Exception, lambda_api: bool, scope: Scope) -> Response:
    if lambda_api:
        return lambda_error_response(exc)
    error: FireboxError
    if isinstance(exc, sigv4.SigV4Error):
        cls = Unauthorized if exc.code == sigv4.UNRECOGNIZED else Forbidden
        error = cls(f"{exc.code}: {exc.message}")
    else:
        assert isinstance(exc, FireboxError)
        error = exc
    accept = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"accept"), None)
    return error_response(error, accept)


# --- the key-management API (/v1/keys), admin only -----------------------------------


def _admin_only(request: Request) -> KeyStore:
    auth = _authenticator(request)
    if request.scope.get(SCOPE_KEY) != auth.admin_key_id:
        raise Forbidden("only the admin key may manage access keys")
    return auth.keys


def _authenticator(request: Request) -> Authenticator:
    # The middleware's instance, so a revocation here clears the cache it reads.
    found: Authenticator = request.app.state.authenticator
    return found


async def create_key(request: Request) -> Response:
    """POST /v1/keys: {description?}; returns the new key with its secret (shown once)."""
    keys = _admin_only(request)
    data = await read_object(request)
    description = data.get("description", "")
    if not isinstance(description, str):
        raise BadRequest("`description` must be a string")
    return reply(request, keys.create(description).to_dict(), status=201)


async def list_keys(request: Request) -> Response:
    """GET /v1/keys: the admin key and every issued key (no secrets)."""
    keys = _admin_only(request)
    admin: dict[str, Any] = {
        "access_key_id": _authenticator(request).admin_key_id,
        "description": "bootstrap admin key",
        "created_at": None,
        "revoked_at": None,
        "admin": True,
    }
    issued = [{**k.to_dict(), "admin": False} for k in keys.list()]
    return reply(request, {"keys": [admin, *issued]})


async def revoke_key(request: Request) -> Response:
    """DELETE /v1/keys/{key_id}: revoke an issued key (the admin key cannot be revoked)."""
    keys = _admin_only(request)
    key_id = request.path_params["key_id"]
    if key_id == _authenticator(request).admin_key_id:
        raise BadRequest(
            "the bootstrap admin key cannot be revoked; change FIREBOX_ACCESS_KEY_ID /"
            " FIREBOX_SECRET_ACCESS_KEY (or credentials.json) and restart instead"
        )
    keys.revoke(key_id)
    return Response(status_code=204)


def routes() -> list[Route]:
    """Return the key-management routes."""
    return [
        Route("/v1/keys", create_key, methods=["POST"]),
        Route("/v1/keys", list_keys, methods=["GET"]),
        Route("/v1/keys/{key_id}", revoke_key, methods=["DELETE"]),
    ]
