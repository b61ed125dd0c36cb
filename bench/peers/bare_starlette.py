"""The HTTP floor: a bare Starlette endpoint doing the echo-wat guest's work natively (bench peer).

Run as `python -m uvicorn bench.peers.bare_starlette:app --host 127.0.0.1 --port P
--log-level warning`: uvicorn's defaults, which are uvloop and httptools when installed
(they are with firebox, whose node serves on the same two). `POST /echo` parses
the JSON body and answers `{"wrapped": <body>, "by": "native"}`; there is no routing
table, no event, no worker hop and no guest, which is exactly what it measures.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


async def echo(request: Request) -> Response:
    """Wrap the request's JSON body as the echo-wat example does."""
    return JSONResponse({"wrapped": await request.json(), "by": "native"})


async def healthz(request: Request) -> Response:
    """Answer 200 once the server is up."""
    return Response("ok")


app = Starlette(
    routes=[Route("/echo", echo, methods=["POST"]), Route("/healthz", healthz, methods=["GET"])]
)
