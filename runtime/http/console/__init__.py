"""The web console at /console: one page and its static script and style, served from the
package (no build step, nothing from a CDN); it calls the native API with the key the
user signs in with (front-end layer).

The page holds no data: everything it shows comes from `/v1/...` with the user's key,
kept in the tab's sessionStorage. The responses carry a strict Content-Security-Policy
(scripts and styles from this origin only, no inline script), and the script writes
API data as text, never as HTML.
"""

from __future__ import annotations

from importlib import resources

from firebox.runtime.errors import FunctionNotFound
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

#: The console's files and their media types.
ASSETS = {
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _read(name: str) -> bytes:
    return resources.files(__package__).joinpath(name).read_bytes()


async def page(request: Request) -> Response:
    """GET /console: the console's single page (it signs in and routes by the URL's #)."""
    return Response(_read("console.html"), media_type="text/html; charset=utf-8", headers=HEADERS)


async def asset(request: Request) -> Response:
    """GET /console/{file}: the console's script or style sheet."""
    name = request.path_params["file"]
    if name not in ASSETS:
        raise FunctionNotFound(request.url.path, f"the console has no file {name!r}")
    return Response(_read(name), media_type=ASSETS[name], headers=HEADERS)


async def to_console(request: Request) -> Response:
    """GET /console/: the console (one canonical address)."""
    return RedirectResponse("/console", status_code=308)


def routes() -> list[Route]:
    """Return the console's routes."""
    return [
        Route("/console", page, methods=["GET"]),
        Route("/console/", to_console, methods=["GET"]),
        Route("/console/{file}", asset, methods=["GET"]),
    ]
