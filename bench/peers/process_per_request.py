"""The container-style peer: a server that starts `python handler.py` per request (bench peer).

Run as `python -m uvicorn bench.peers.process_per_request:app --host 127.0.0.1 --port P
--log-level warning`. `POST /echo` runs `[sys.executable, handler.py]` with the request
body on stdin and answers its stdout: every invocation pays an interpreter start, as a
Lambda cold start (or a CGI server) does, without the VM boot. The subprocess is awaited
with asyncio, so concurrent requests run concurrent processes.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

HANDLER = Path(__file__).resolve().with_name("handler.py")
TIMEOUT_S = 30.0


async def echo(request: Request) -> Response:
    """Run the handler in a new process with the body on stdin; answer its stdout."""
    body = await request.body()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HANDLER),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(body), TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return Response("handler timed out", status_code=504)
    if proc.returncode != 0:
        return Response(err[-2000:], status_code=502, media_type="text/plain")
    return Response(out, media_type="application/json")


async def healthz(request: Request) -> Response:
    """Answer 200 once the server is up."""
    return Response("ok")


app = Starlette(
    routes=[Route("/echo", echo, methods=["POST"]), Route("/healthz", healthz, methods=["GET"])]
)
