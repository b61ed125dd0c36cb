"""Outbound HTTP for unchanged code: a socket that carries each HTTP/1.1 request to the
host's `http.request` operation (guest side).

The guest has no network. Like pyodide-http, this makes the usual clients work anyway,
but one level lower so that one patch serves them all: `socket.socket` (for TCP) and
`socket.getaddrinfo` are replaced, so `http.client`, `urllib.request`, `urllib3`,
`requests` and `httpx`'s sync client open a `HostSocket`; what they write is parsed
back into one request when they start reading, the host sends it (the function's
grant, TLS, the deadline and the size cap are enforced there) and the answer is served
back as an HTTP/1.1 response with `Connection: close`. A TLS "handshake" on such a
socket (the `ssl` stand-in's `wrap_socket`) only marks it https: the host does TLS and
verifies the certificate. Async clients (asyncio streams, aiohttp, httpx.AsyncClient)
are not covered yet.
"""

from __future__ import annotations

# isort: off
import firebox_guest_ssl  # noqa: F401 - the `ssl` stand-in, whose wrap_socket is patched below
# isort: on

import base64
import select as _select_module
import socket as _socket_module
import sys
from typing import Any

from firebox_guest_capability import HostCallFailed, call

_OriginalSocket = _socket_module.socket
_original_getaddrinfo = _socket_module.getaddrinfo

#: Most bytes of one request (headers and body) a HostSocket buffers.
MAX_REQUEST_BYTES = 8 * 1024 * 1024 + 64 * 1024
_STREAM = getattr(_socket_module, "SOCK_STREAM", 1)
_INET = (getattr(_socket_module, "AF_INET", 2), getattr(_socket_module, "AF_INET6", 10), -1)


def _parse(buffer: bytes) -> tuple[str, str, list[list[str]], bytes, int] | None:
    """Return (method, target, headers, body, bytes used) of the first complete request
    in `buffer`, or None while it is incomplete."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = buffer[:end].decode("latin-1").split("\r\n")
    try:
        method, target, _version = lines[0].split(" ", 2)
    except ValueError:
        raise HostCallFailed(f"not an HTTP request: {lines[0][:100]!r}") from None
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append([name.strip(), value.strip()])
    fields = {name.lower(): value for name, value in headers}
    start = end + 4
    if "chunked" in fields.get("transfer-encoding", "").lower():
        body = bytearray()
        at = start
        while True:
            line_end = buffer.find(b"\r\n", at)
            if line_end < 0:
                return None
            size = int(buffer[at:line_end].split(b";")[0].strip() or b"0", 16)
            at = line_end + 2
            if size == 0:
                trailer = buffer.find(b"\r\n", at)
                if trailer < 0:
                    return None
                return method, target, headers, bytes(body), trailer + 2
            if len(buffer) < at + size + 2:
                return None
            body += buffer[at : at + size]
            at += size + 2
    length = int(fields.get("content-length") or 0)
    if len(buffer) < start + length:
        return None
    return method, target, headers, buffer[start : start + length], start + length


def _response(reply: dict[str, Any], method: str) -> bytes:
    body = base64.b64decode(reply.get("body") or "")
    status = int(reply["status"])
    head = [f"HTTP/1.1 {status} {reply.get('reason') or ''}".rstrip()]
    for name, value in reply.get("headers") or []:
        if method == "HEAD" and name.lower() == "content-length":
            continue
        head.append(f"{name}: {value}")
    if method != "HEAD" and status not in (204, 304) and status >= 200:
        head.append(f"Content-Length: {len(body)}")
    head.append("Connection: close")
    payload = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1", "replace")
    return payload + (b"" if method == "HEAD" else body)


class HostSocket(_OriginalSocket):  # type: ignore[misc, valid-type]
    """A TCP socket whose bytes go to the host's HTTP API, one request at a time."""

    def __new__(cls, family: int = -1, type: int = -1, proto: int = -1, fileno: Any = None) -> Any:
        if fileno is not None or family not in _INET or (type != -1 and type & 0xF != _STREAM):
            return _OriginalSocket(family, type, proto, fileno)
        return super().__new__(cls, family, type, proto)

    def __init__(
        self, family: int = -1, type: int = -1, proto: int = -1, fileno: Any = None
    ) -> None:
        # No descriptor is opened (the sandbox has none to give): state lives here.
        self._io_refs = 0
        self._closed = False
        self._address: tuple[str, int] | None = None
        self._tls_host: str | None = None
        self._timeout: float | None = _socket_module.getdefaulttimeout()
        self._out = bytearray()
        self._in = b""
        self._in_at = 0
        self._eof = False

    # --- what clients call ----------------------------------------------------------

    def connect(self, address: Any) -> None:
        self._address = (str(address[0]), int(address[1]))

    def connect_ex(self, address: Any) -> int:
        self.connect(address)
        return 0

    def settimeout(self, value: float | None) -> None:
        self._timeout = value

    def gettimeout(self) -> float | None:
        return self._timeout

    def setblocking(self, flag: bool) -> None:
        self._timeout = None if flag else 0.0

    def setsockopt(self, *args: Any) -> None:
        return None

    def getsockopt(self, *args: Any) -> int:
        return 0

    def getpeername(self) -> tuple[str, int]:
        return self._address or ("0.0.0.0", 0)

    def getsockname(self) -> tuple[str, int]:
        return ("0.0.0.0", 0)

    def bind(self, address: Any) -> None:
        return None

    def shutdown(self, how: int) -> None:
        self._eof = True

    def send(self, data: Any, flags: int = 0) -> int:
        if len(self._out) + len(data) > MAX_REQUEST_BYTES:
            raise HostCallFailed(f"an outbound request may be at most {MAX_REQUEST_BYTES} bytes")
        self._out += data
        return len(data)

    def sendall(self, data: Any, flags: int = 0) -> None:
        self.send(data)

    def recv(self, size: int, flags: int = 0) -> bytes:
        self._fill()
        chunk = self._in[self._in_at : self._in_at + size]
        self._in_at += len(chunk)
        return chunk

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        view = memoryview(buffer).cast("B")
        chunk = self.recv(nbytes or len(view))
        view[: len(chunk)] = chunk
        return len(chunk)

    def close(self) -> None:
        self._eof = True
        self._out.clear()
        self._in = b""
        self._in_at = 0
        super().close()

    # --- what TLS clients ask of a wrapped socket ---------------------------------

    def start_tls(self, server_hostname: str | None) -> HostSocket:
        """Mark this socket https (the host does the TLS) and return it."""
        self._tls_host = server_hostname or (self._address[0] if self._address else "")
        return self

    def getpeercert(self, binary_form: bool = False) -> Any:
        if binary_form:
            return b""
        host = self._tls_host or ""
        return {"subject": ((("commonName", host),),), "subjectAltName": (("DNS", host),)}

    def version(self) -> str:
        return "TLSv1.3"

    def cipher(self) -> tuple[str, str, int]:
        return ("TLS_AES_128_GCM_SHA256", "TLSv1.3", 128)

    def selected_alpn_protocol(self) -> str:
        return "http/1.1"

    def do_handshake(self, *args: Any) -> None:
        return None

    def pending(self) -> int:
        return len(self._in) - self._in_at

    # --- the exchange -------------------------------------------------------------

    def _fill(self) -> None:
        if self._in_at < len(self._in) or self._eof or not self._out:
            return
        parsed = _parse(bytes(self._out))
        if parsed is None:
            raise HostCallFailed("the client waited for a response to an incomplete request")
        method, target, headers, body, used = parsed
        del self._out[:used]
        host, port = self._address or ("", 0)
        scheme = "https" if self._tls_host is not None else "http"
        if target.startswith(("http://", "https://")):
            url = target
        else:
            authority = f"[{host}]" if ":" in host else host
            url = f"{scheme}://{authority}:{port}{target}"
        reply = call(
            "http.request", method=method, url=url, headers=headers,
            body=base64.b64encode(body).decode(), timeout=self._timeout,
        )  # fmt: skip
        self._in = _response(reply, method.upper())
        self._in_at = 0


def _getaddrinfo(
    host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
) -> list[Any]:
    # Names are resolved (and checked) by the host: hand the name itself back.
    if isinstance(host, bytes):
        host = host.decode("idna")
    number = int(port) if port not in (None, "") and str(port).isdigit() else 0
    if isinstance(port, str) and not port.isdigit():
        number = {"http": 80, "https": 443}.get(port, 0)
    inet = getattr(_socket_module, "AF_INET", 2)
    return [(inet, _STREAM, 6, "", (host or "localhost", number))]


def _wrap_socket(original: Any) -> Any:
    def wrap_socket(self: Any, sock: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(sock, HostSocket):
            return sock.start_tls(kwargs.get("server_hostname"))
        return original(self, sock, *args, **kwargs)

    return wrap_socket


def _ready(sock: HostSocket) -> bool:
    """Whether a read on `sock` would return at once (an answer buffered, or the end)."""
    return sock.pending() > 0 or sock._eof


def _wrap_select(original: Any) -> Any:
    """`select.select` that also takes HostSockets (no descriptor): writable at once,
    readable once their answer is buffered. urllib3 (and botocore's `Expect:
    100-continue` wait before an S3 upload) select on a socket before they read it."""

    def select(rlist: Any, wlist: Any, xlist: Any, timeout: Any = None) -> Any:
        rlist, wlist, xlist = list(rlist), list(wlist), list(xlist)
        hosted = [s for s in rlist + wlist if isinstance(s, HostSocket)]
        if not hosted:
            return original(rlist, wlist, xlist, timeout)
        readable = [s for s in rlist if isinstance(s, HostSocket) and _ready(s)]
        writable = [s for s in wlist if isinstance(s, HostSocket)]
        rest_r = [s for s in rlist if not isinstance(s, HostSocket)]
        rest_w = [s for s in wlist if not isinstance(s, HostSocket)]
        if rest_r or rest_w or xlist:
            wait = 0 if (readable or writable) else timeout
            more_r, more_w, more_x = original(rest_r, rest_w, xlist, wait)
            return readable + list(more_r), writable + list(more_w), list(more_x)
        return readable, writable, []

    select._firebox = True  # type: ignore[attr-defined]
    return select


class _Poll:
    """`select.poll()` that also registers HostSockets (see `_wrap_select`)."""

    def __init__(self, original: Any) -> None:
        self._real = original() if original is not None else None
        self._hosted: dict[int, tuple[HostSocket, int]] = {}
        self._real_count = 0

    def register(self, fd: Any, eventmask: int = 7) -> None:
        if isinstance(fd, HostSocket):
            self._hosted[id(fd)] = (fd, eventmask)
            return
        if self._real is None:
            raise OSError("poll is not available")
        self._real.register(fd, eventmask)
        self._real_count += 1

    def modify(self, fd: Any, eventmask: int) -> None:
        if isinstance(fd, HostSocket):
            self._hosted[id(fd)] = (fd, eventmask)
        elif self._real is not None:
            self._real.modify(fd, eventmask)

    def unregister(self, fd: Any) -> None:
        if isinstance(fd, HostSocket):
            self._hosted.pop(id(fd), None)
        elif self._real is not None:
            self._real.unregister(fd)
            self._real_count -= 1

    def poll(self, timeout: Any = None) -> list[tuple[int, int]]:
        pollin = getattr(_select_module, "POLLIN", 1)
        pollout = getattr(_select_module, "POLLOUT", 4)
        events = []
        for sock, mask in self._hosted.values():
            ready = (mask & pollout) | (mask & pollin if _ready(sock) else 0)
            if ready:
                events.append((-1, ready))
        if self._real is not None and self._real_count:
            events += list(self._real.poll(0 if events else timeout))
        return events


def install() -> None:
    """Route TCP sockets through the host (idempotent)."""
    if _socket_module.socket is HostSocket:
        return
    if not getattr(_select_module.select, "_firebox", False):
        _select_module.select = _wrap_select(_select_module.select)
        original_poll = getattr(_select_module, "poll", None)
        _select_module.poll = lambda: _Poll(original_poll)  # type: ignore[attr-defined]
    _socket_module.socket = HostSocket  # type: ignore[misc]
    _socket_module.getaddrinfo = _getaddrinfo  # type: ignore[assignment]
    ssl = sys.modules.get("ssl")
    context = getattr(ssl, "SSLContext", None)
    if context is not None and not getattr(context.wrap_socket, "_firebox", False):
        patched = _wrap_socket(context.wrap_socket)
        patched._firebox = True  # type: ignore[attr-defined]
        context.wrap_socket = patched


install()
