"""The uvicorn server of a node: idle and header-read deadlines, header size and a
connection cap, from the FIREBOX_* settings (front-end layer).

uvicorn closes a kept-alive connection that sits idle (`timeout_keep_alive`) but has no
deadline for a request's headers: a client that opens a connection and sends half a
request line holds it forever. `HeaderDeadlineProtocol` closes any connection whose
request headers are not complete within `FIREBOX_HEADER_TIMEOUT_S` of its first byte
(or of its opening, or of the previous response).
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
import uvicorn
from firebox.runtime import config
from uvicorn.protocols.http.h11_impl import H11Protocol


class HeaderDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on reading each request's headers."""

    header_timeout_s: float = config.DEFAULT_HEADER_TIMEOUT_S

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._header_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm_header_deadline()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._arm_header_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_deadline()
        super().connection_lost(exc)

    def _waiting_for_headers(self) -> bool:
        return bool(self.conn.their_state is h11.IDLE)

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


def server_config(app: Any, host: str, port: int) -> uvicorn.Config:
    """Return the uvicorn configuration of a node serving `app` on `host:port`."""
    header_timeout = config.FIREBOX_HEADER_TIMEOUT_S.get()
    protocol = type(
        "NodeHttpProtocol", (HeaderDeadlineProtocol,), {"header_timeout_s": header_timeout}
    )
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        http=protocol,
        timeout_keep_alive=config.FIREBOX_KEEP_ALIVE_S.get(),  # type: ignore[arg-type]
        limit_concurrency=config.FIREBOX_MAX_CONNECTIONS.get(),
        h11_max_incomplete_event_size=config.FIREBOX_MAX_HEADER_BYTES.get(),
    )
