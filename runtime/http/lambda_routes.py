"""Every route of the Lambda-compatible API, in the order they must be mounted (front-end
layer): the served operations, then the catch-all of the Lambda prefixes, so nothing
under them ever reaches a trigger route."""

from __future__ import annotations

from firebox.runtime.http import (
    lambda_api,
    lambda_events,
    lambda_layers,
    lambda_policy,
    lambda_settings,
    lambda_streaming,
    lambda_urls,
)
from starlette.routing import Route


def routes() -> list[Route]:
    """Return the Lambda API's routes (mount them before the trigger catch-all)."""
    return [
        *lambda_api.routes(),
        *lambda_settings.routes(),
        *lambda_events.routes(),
        *lambda_policy.routes(),
        *lambda_urls.routes(),
        *lambda_streaming.routes(),
        *lambda_layers.routes(),
        *lambda_api.fallback_routes(),
    ]
