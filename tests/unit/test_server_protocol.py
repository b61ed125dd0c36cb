"""The node's HTTP protocol: httptools with the header deadline and size bound, h11 as the
fallback, both driven here over a real socket pair through uvicorn's own machinery."""

from __future__ import annotations

import asyncio
import socket

import pytest
from firebox.runtime import config as settings
from firebox.runtime.http import server
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route


async def _ok(request: object) -> PlainTextResponse:
    return PlainTextResponse("ok")


APP = Starlette(routes=[Route("/", _ok)])


def test_the_node_serves_with_httptools_and_uvloop_when_installed() -> None:
    pytest.importorskip("httptools")
    pytest.importorskip("uvloop")
    assert server.FAST
    config = server.server_config(APP, "127.0.0.1", 0)
    assert config.loop == "uvloop"
    protocol = config.http
    assert isinstance(protocol, type)
    assert protocol.__dict__["max_header_bytes"] == settings.FIREBOX_MAX_HEADER_BYTES.get()
    assert "HttpToolsProtocol" in [base.__name__ for base in protocol.__mro__]


async def _exchange(protocol_class: type, payloads: list[bytes], wait_s: float = 0.3) -> bytes:
    """Feed `payloads` to one connection served by `protocol_class`; return what came back."""
    import uvicorn
    from uvicorn.server import ServerState

    config = uvicorn.Config(APP, log_level="warning")
    config.load()
    state = ServerState()
    left, right = socket.socketpair()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_connection(
        lambda: protocol_class(config=config, server_state=state, app_state={}), sock=left
    )
    right.setblocking(False)
    for payload in payloads:
        await loop.sock_sendall(right, payload)
    await asyncio.sleep(wait_s)
    chunks = []
    while True:
        try:
            chunk = right.recv(65536)
        except BlockingIOError:
            break
        if not chunk:
            chunks.append(b"<closed>")
            break
        chunks.append(chunk)
    transport.close()
    right.close()
    return b"".join(chunks)


def _protocols() -> list[type]:
    found: list[type] = [server.HeaderDeadlineProtocol]
    if server.FAST:
        found.append(server._httptools_protocol())
    return found


@pytest.mark.parametrize("base", _protocols(), ids=lambda cls: cls.__name__)
def test_headers_not_finished_in_time_close_the_connection(base: type) -> None:
    slow = type("Slow", (base,), {"header_timeout_s": 0.1, "max_header_bytes": 4096})
    reply = asyncio.run(_exchange(slow, [b"GET / HTTP/1.1\r\nHost: x\r\n"]))
    assert reply == b"<closed>"


@pytest.mark.parametrize("base", _protocols(), ids=lambda cls: cls.__name__)
def test_a_request_in_time_is_served_and_kept_alive(base: type) -> None:
    quick = type("Quick", (base,), {"header_timeout_s": 5.0, "max_header_bytes": 4096})
    reply = asyncio.run(_exchange(quick, [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"] * 2))
    assert reply.count(b"HTTP/1.1 200") == 2 and not reply.endswith(b"<closed>"), reply


def test_httptools_headers_over_the_bound_are_a_431() -> None:
    if not server.FAST:
        pytest.skip("httptools or uvloop is not installed")
    small = type("Small", (server._httptools_protocol(),), {"max_header_bytes": 1024})
    reply = asyncio.run(_exchange(small, [b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 2048]))
    assert reply.startswith(b"HTTP/1.1 431") and reply.endswith(b"<closed>"), reply
    # A body larger than the bound after complete headers is not a header overflow.
    body = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4000\r\n\r\n" + b"b" * 4000
    reply = asyncio.run(_exchange(small, [body]))
    assert not reply.startswith(b"HTTP/1.1 431"), reply
