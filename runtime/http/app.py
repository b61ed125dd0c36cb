"""The Starlette application: routes, authentication, the error table, node lifecycle (front-end layer)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from firebox.runtime.errors import (
    BadRequest,
    FireboxError,
    FunctionNotFound,
    MethodNotAllowed,
)
from firebox.runtime.http import (
    auth,
    buckets_api,
    changes_api,
    console,
    event_configs_api,
    lambda_routes,
    mappings_api,
    metrics,
    native,
    openapi,
    queues_api,
    schedules_api,
    secrets_api,
    sqs_api,
    streams_api,
    tables_api,
)
from firebox.runtime.http.auth import Authenticator, AuthMiddleware
from firebox.runtime.http.body_limits import BodyLimitMiddleware
from firebox.runtime.http.errors import error_response, unavailable, unreachable_types
from firebox.runtime.http.metrics import MetricsMiddleware
from firebox.runtime.http.s3_api import S3Middleware
from firebox.runtime.http.triggers import trigger
from firebox.runtime.metrics import NodeMetrics
from firebox.runtime.node import Node
from starlette._utils import get_route_path
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route, Router
from starlette.types import Receive, Scope, Send

log = logging.getLogger("firebox.http")

ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


async def firebox_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FireboxError)
    return error_response(exc, request.headers.get("accept"))


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error: FireboxError
    if exc.status_code == 404:
        error = FunctionNotFound(request.url.path, f"no route for {request.url.path}")
    elif exc.status_code == 405:
        error = MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}")
    else:
        error = BadRequest(str(exc.detail))
    return error_response(error, request.headers.get("accept"))


async def root(request: Request) -> Response:
    """POST /: the SQS API when the request names an `AmazonSQS.` target, else a trigger."""
    if sqs_api.is_sqs_request(request.scope["headers"], request.method, request.url.path):
        return await sqs_api.endpoint(request)
    return await trigger(request)


async def unexpected_error(request: Request, exc: Exception) -> Response:
    down = unavailable(exc)
    if down is not None:  # PostgreSQL or Redis unreachable: 503, retry later
        log.warning("%s %s: %s", request.method, request.url.path, down.message)
        return error_response(down, request.headers.get("accept"))
    log.exception("unexpected error serving %s %s", request.method, request.url.path)
    return error_response(FireboxError(f"internal error: {type(exc).__name__}"))


def index_routes(router: Router) -> None:
    """Match a request only against the API routes that start with its first path
    segment (and the trigger catch-all, the router's last route), not against all ~200
    in order as Starlette does: a Lambda Invoke tried ~90 routes first (a fifth of the
    node's CPU per call), a trigger all of them.

    Only a full match is served this way; anything else (a 405's partial match, a
    redirect, a 404) goes through Starlette's own scan, so what a request gets is
    unchanged. Routes of other segments cannot match (each route's pattern starts with
    its literal first segment); nothing is indexed when some route starts with a
    parameter.
    """
    *api, catch_all = router.routes
    groups: dict[str, list[BaseRoute]] = {}
    for route in api:
        path = getattr(route, "path", None)
        if not isinstance(path, str) or not path.startswith("/"):
            return
        first = path.split("/", 2)[1]
        if "{" in first:
            return
        groups.setdefault(first, []).append(route)
    routed = router.middleware_stack

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            first = get_route_path(scope).split("/", 2)[1]
            candidates = groups.get(first) or ([catch_all] if first else [])
            for route in candidates:
                match, child = route.matches(scope)
                if match is Match.FULL:
                    scope.setdefault("router", router)
                    scope["route"] = route
                    scope.update(child)
                    await route.handle(scope, receive, send)
                    return
        await routed(scope, receive, send)

    router.middleware_stack = app


def create_app(node: Node, on_start: Callable[[Node], Awaitable[None]] | None = None) -> Starlette:
    """Return the ASGI app serving `node`; the node starts and stops with the app.

    `on_start` runs once the node is up (the CLI deploys the bundled examples there).
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await node.start()
        if on_start is not None:
            await on_start(node)
        try:
            yield
        finally:
            await node.stop()

    app = Starlette(
        routes=[
            *native.routes(),
            *metrics.routes(),
            *openapi.routes(),
            *console.routes(),
            *queues_api.routes(),
            *streams_api.routes(),
            *event_configs_api.routes(),
            *mappings_api.routes(),
            *schedules_api.routes(),
            *tables_api.routes(),
            *buckets_api.routes(),
            *changes_api.routes(),
            *secrets_api.routes(),
            *auth.routes(),
            *lambda_routes.routes(),
            Route("/", root, methods=["POST"]),
            Route("/{path:path}", trigger, methods=ALL_METHODS),
        ],
        exception_handlers={
            FireboxError: firebox_error,
            HTTPException: http_error,
            # Answered here, not by the catch-all: Starlette re-raises what reaches that
            # one, and the server then drops the client's keep-alive connection.
            **{cls: unexpected_error for cls in unreachable_types()},
            Exception: unexpected_error,
        },
        lifespan=lifespan,
    )
    index_routes(app.router)
    app.state.node = node
    app.state.authenticator = Authenticator(node)
    app.state.metrics = NodeMetrics(node)
    metrics.configure(app.state)
    app.add_middleware(AuthMiddleware, authenticator=app.state.authenticator)
    # A body is bounded before authentication reads it.
    app.add_middleware(BodyLimitMiddleware)
    # Requests signed for S3 are the S3 API's (runtime/http/s3_auth.py), whatever their
    # path; it bounds and streams their bodies itself.
    app.add_middleware(S3Middleware, authenticator=app.state.authenticator)
    # Outermost: every request is counted, refused ones included.
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    return app
