"""GET /metrics: the node's Prometheus metrics, behind the native API's access keys unless
FIREBOX_METRICS_AUTH=0, and the middleware counting requests by route template (front-end layer)."""

from __future__ import annotations

import time

from firebox.runtime.config import FIREBOX_METRICS, FIREBOX_METRICS_AUTH
from firebox.runtime.errors import FunctionNotFound
from firebox.runtime.metrics import CONTENT_TYPE, NodeMetrics
from starlette.datastructures import State
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send


async def metrics(request: Request) -> Response:
    """GET /metrics: every metric family in the text exposition format (docs/metrics.md).

    Takes `Authorization: Bearer KEY_ID:SECRET` with a live key (401/403 otherwise), as
    Prometheus' `authorization` scrape setting sends it.
    """
    if not request.app.state.metrics_enabled:
        raise FunctionNotFound("/metrics", "metrics are off on this node (FIREBOX_METRICS=0)")
    if request.app.state.metrics_auth:
        request.app.state.authenticator.bearer(request.headers.get("authorization"))
    node_metrics: NodeMetrics = request.app.state.metrics
    return Response(await node_metrics.exposition(), media_type=CONTENT_TYPE)


def configure(state: State) -> None:
    """Read the metrics settings onto the app's state (once, when the app is made)."""
    state.metrics_enabled = FIREBOX_METRICS.get()
    state.metrics_auth = FIREBOX_METRICS_AUTH.get()


def routes() -> list[Route]:
    """Return the metrics route."""
    return [Route("/metrics", metrics, methods=["GET"])]


class MetricsMiddleware:
    """Counts every HTTP request by the template of the route that answered it."""

    def __init__(self, app: ASGIApp, metrics: NodeMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.metrics.observe_request(
                self.route_of(scope), scope["method"], status, time.monotonic() - started
            )

    def route_of(self, scope: Scope) -> str:
        """Return the template of the route that served `scope` (a trigger's own route)."""
        route = scope.get("route")
        if route is None and "app" in scope:  # refused before routing (401, 413): match now
            route = next(
                (r for r in scope["app"].router.routes if r.matches(scope)[0] != Match.NONE), None
            )
        template = getattr(route, "path", None)
        if not isinstance(template, str):
            return "unmatched"
        if template == "/{path:path}":  # the trigger fallback: the function's route, if any
            matches = self.metrics.node.match_route(scope["path"])
            return matches[0].trigger.route if matches else "unmatched"
        return template
