"""The uvicorn server of a node: idle and header-read deadlines, header size and a
connection cap, from the FIREBOX_* settings (front-end layer).

uvicorn closes a kept-alive connection that sits idle (`timeout_keep_alive`) but has no
deadline for a request's headers: a client that opens a connection and sends half a
request line holds it forever. Both protocols here close any connection whose request
headers are not complete within `FIREBOX_HEADER_TIMEOUT_S` of its first byte (or of its
opening, or of the previous response).

The node serves with uvloop and httptools (uvicorn's own fast path, `uvicorn[standard]`)
when they are installed, as they are with firebox: `HttpToolsDeadlineProtocol`. It also
bounds the bytes of headers still incomplete (`FIREBOX_MAX_HEADER_BYTES`: llhttp has no
such limit of its own). Without them, uvicorn's h11 protocol with the same deadline
(`HeaderDeadlineProtocol`; h11 bounds the header size itself). Why: h11 was the largest
single item of the node's event loop (docs/snapshots.md, "The per-call path, cut").
"""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any

import h11
import uvicorn
from firebox.runtime import config
from uvicorn.protocols.http.h11_impl import H11Protocol

FAST = all(importlib.util.find_spec(name) for name in ("httptools", "uvloop"))


class _HeaderDeadline:
    """The header deadline both protocols share: armed while the connection waits for a
    request's headers (`_waiting_for_headers`), it closes the connection when it fires."""

    header_timeout_s: float = config.DEFAULT_HEADER_TIMEOUT_S
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    _header_timer: asyncio.TimerHandle | None

    def _waiting_for_headers(self) -> bool:
        raise NotImplementedError

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_deadline()
        super().connection_lost(exc)  # type: ignore[misc]  # the protocol's, next in the MRO

    def _arm_header_deadline(self) -> None:
        if not self._waiting_for_headers():
            self._cancel_header_deadline()
        elif self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._header_expired)

    def _cancel_header_deadline(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_expired(self) -> None:
        self._header_timer = None
        if self._waiting_for_headers() and not self.transport.is_closing():
            self.transport.close()


class HeaderDeadlineProtocol(_HeaderDeadline, H11Protocol):
    """uvicorn's h11 protocol with a deadline on reading each request's headers."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._header_timer = None
        super().connection_made(transport)
        self._arm_header_deadline()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._arm_header_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_header_deadline()

    def _waiting_for_headers(self) -> bool:
        return bool(self.conn.their_state is h11.IDLE)


def _httptools_protocol() -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol with the header deadline and a header size bound."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class HttpToolsDeadlineProtocol(_HeaderDeadline, HttpToolsProtocol):
        max_header_bytes: int = config.DEFAULT_MAX_HEADER_BYTES

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            # Requests whose headers were parsed, responses finished: equal while the
            # connection waits for (the rest of) a request's headers.
            self._parsed = self._answered = 0
            self._header_bytes = 0
            self._header_timer = None
            super().connection_made(transport)
            self._arm_header_deadline()

        def data_received(self, data: bytes) -> None:
            # A read is at most the loop's buffer (256 KiB), so what the parser holds of
            # unfinished headers stays within the bound plus one read.
            waiting = self._waiting_for_headers()
            if waiting:
                self._header_bytes += len(data)
            super().data_received(data)
            over = waiting and self._header_bytes > self.max_header_bytes
            if over and self._waiting_for_headers() and not self.transport.is_closing():
                self._refuse_headers()

        def on_headers_complete(self) -> None:
            self._parsed += 1
            self._header_bytes = 0
            self._cancel_header_deadline()
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            self._answered += 1
            super().on_response_complete()
            self._arm_header_deadline()

        def _waiting_for_headers(self) -> bool:
            return self._parsed == self._answered

        def _refuse_headers(self) -> None:
            message = b"Request headers too large."
            self.transport.write(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                b"content-type: text/plain; charset=utf-8\r\n"
                b"content-length: " + str(len(message)).encode() + b"\r\n"
                b"connection: close\r\n\r\n" + message
            )
            self.transport.close()

    return HttpToolsDeadlineProtocol


def server_config(app: Any, host: str, port: int) -> uvicorn.Config:
    """Return the uvicorn configuration of a node serving `app` on `host:port`."""
    settings: dict[str, Any] = {"header_timeout_s": config.FIREBOX_HEADER_TIMEOUT_S.get()}
    if FAST:
        base: type[asyncio.Protocol] = _httptools_protocol()
        settings["max_header_bytes"] = config.FIREBOX_MAX_HEADER_BYTES.get()
    else:
        base = HeaderDeadlineProtocol
    protocol = type("NodeHttpProtocol", (base,), settings)
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        http=protocol,
        loop="uvloop" if FAST else "asyncio",
        timeout_keep_alive=config.FIREBOX_KEEP_ALIVE_S.get(),  # type: ignore[arg-type]
        limit_concurrency=config.FIREBOX_MAX_CONNECTIONS.get(),
        h11_max_incomplete_event_size=config.FIREBOX_MAX_HEADER_BYTES.get(),
    )
