"""The node's listening socket: accepted connections get TCP_NODELAY from asyncio."""

from __future__ import annotations

import asyncio.base_events
import socket

from firebox.sdk.cli_serve import bind


def test_accepted_connections_get_tcp_nodelay() -> None:
    # asyncio sets TCP_NODELAY only when the socket's proto is IPPROTO_TCP; without it a
    # response written in two parts waited ~40 ms for the client's delayed ACK.
    listener = bind("127.0.0.1", 0)
    client = socket.create_connection(listener.getsockname())
    conn, _ = listener.accept()
    try:
        set_nodelay = getattr(asyncio.base_events, "_set_nodelay")  # noqa: B009 - private
        set_nodelay(conn)  # what every asyncio socket transport does
        assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        for sock in (conn, client, listener):
            sock.close()
