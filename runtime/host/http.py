"""Outbound HTTP for granted functions: one request to an allow-listed origin, sent by the
host with TLS verified, bounded in time and size, never to a private address unless
the grant names the host (host layer).

The guest's socket layer (compiler/guest/firebox_guest_http.py) turns what
`http.client`, `urllib.request`, `urllib3`, `requests` and `httpx` write into one
`http.request` operation; the host resolves the name itself, checks every address it
resolved (SSRF: loopback, private, link-local, reserved ranges need a rule naming the
host exactly), connects to the checked address (so a second resolution cannot move it),
and reads at most FIREBOX_HTTP_MAX_RESPONSE_BYTES before the invocation's deadline.
Redirects are not followed here: the guest's client follows them, each hop checked.
"""

from __future__ import annotations

import base64
import binascii
import concurrent.futures
import ipaddress
import socket
import ssl
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
from firebox.runtime import config
from firebox.runtime.errors import BadRequest, CapabilityDenied, HostCallFailed
from firebox.runtime.grants import DEFAULT_PORTS, HostRule
from firebox.runtime.host import aws
from firebox.runtime.host.api import HostState
from firebox.runtime.host.capabilities import Operation, count, grants_of, remaining_s

#: Headers the host sets itself (or that describe one hop, not the request).
HOP_HEADERS = {
    "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
    "upgrade", "host", "content-length",
}  # fmt: skip
MAX_HEADERS = 100
MAX_HEADER_BYTES = 64 * 1024
MAX_URL_CHARS = 8192
METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
#: DNS resolution runs on these threads so that a slow resolver cannot outlast the deadline.
_resolver = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="firebox-dns")

_client_lock = threading.Lock()
_client: httpx.Client | None = None


def client() -> httpx.Client:
    """Return this process's HTTP client (TLS verified against the system's CAs or
    FIREBOX_HTTP_CA_BUNDLE; no proxies from the environment)."""
    global _client
    with _client_lock:
        if _client is None:
            bundle = config.FIREBOX_HTTP_CA_BUNDLE.get()
            _client = httpx.Client(
                verify=ssl.create_default_context(cafile=bundle) if bundle else True,
                trust_env=False,
                follow_redirects=False,
                limits=httpx.Limits(max_connections=256, max_keepalive_connections=32),
            )
        return _client


def address_allowed(address: str, rule: HostRule) -> bool:
    """Return True when `address` may be reached under `rule`: any public address, and a
    private, loopback, link-local or reserved one only when the rule names the host."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    public = ip.is_global and not ip.is_multicast
    return public or rule.exact


def resolve(host: str, port: int, timeout_s: float) -> list[str]:
    """Return the addresses `host` resolves to (an IP literal is its own); raises
    HostCallFailed when it does not resolve within `timeout_s`."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    future = _resolver.submit(socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM)
    try:
        infos = future.result(timeout=max(0.01, timeout_s))
    except concurrent.futures.TimeoutError:
        raise HostCallFailed(f"resolving {host} took longer than {timeout_s:.2f} s") from None
    except OSError as exc:
        raise HostCallFailed(f"cannot resolve {host}: {exc}") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _headers(raw: Any) -> list[tuple[str, str]]:
    if not isinstance(raw, list) or len(raw) > MAX_HEADERS:
        raise BadRequest(f"`headers` must be a list of at most {MAX_HEADERS} [name, value] pairs")
    headers: list[tuple[str, str]] = []
    size = 0
    for pair in raw:
        if not (
            isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair)
        ):
            raise BadRequest("each header must be a [name, value] pair of strings")
        name, value = pair
        size += len(name) + len(value)
        if name.lower() not in HOP_HEADERS:
            headers.append((name, value))
    if size > MAX_HEADER_BYTES:
        raise BadRequest(f"request headers may be at most {MAX_HEADER_BYTES} bytes")
    return headers


def _request(state: HostState, request: dict[str, Any]) -> dict[str, Any]:
    method = str(request.get("method") or "GET").upper()
    url = request.get("url")
    if method not in METHODS:
        raise BadRequest(f"method {method!r} is not supported")
    if not isinstance(url, str) or len(url) > MAX_URL_CHARS:
        raise BadRequest(f"`url` must be a string of at most {MAX_URL_CHARS} characters")
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower().rstrip(".")
    if scheme not in DEFAULT_PORTS or not host:
        raise BadRequest(f"cannot send a request to {url!r}: only http:// and https:// URLs")
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        raise BadRequest(f"bad port in {url!r}") from None
    if aws.claims(host):  # the role's credentials, the node's own AWS APIs
        if host == aws.CREDENTIALS_HOST:
            count(state, "aws.credentials")
            return aws.credentials(state, method, url)
        count(state, "aws.api")
    else:
        rule = grants_of(state).http_rule(scheme, host, port)
    try:
        body = base64.b64decode(request.get("body") or "", validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise BadRequest("`body` must be base64") from None
    limit_in = config.FIREBOX_HTTP_MAX_REQUEST_BYTES.get()
    if len(body) > limit_in:
        raise BadRequest(f"a request body may be at most {limit_in} bytes, got {len(body)}")
    headers = _headers(request.get("headers") or [])
    wanted = request.get("timeout")
    budget = min(config.FIREBOX_HTTP_TIMEOUT_S.get(), remaining_s(state))
    if isinstance(wanted, (int, float)) and not isinstance(wanted, bool) and wanted > 0:
        budget = min(budget, float(wanted))
    deadline = time.monotonic() + budget
    if aws.claims(host):
        headers.append(("Host", host if port == DEFAULT_PORTS[scheme] else f"{host}:{port}"))
        return _send(state, method, aws.forward_target(url), headers, body, deadline, {}, url)
    addresses = resolve(host, port, budget)
    allowed = [a for a in addresses if address_allowed(a, rule)]
    if not allowed:
        count(state, "denied.http")
        raise CapabilityDenied(
            "http",
            f"{host} (it resolves to {', '.join(addresses[:4])}, a private or local address)",
            f'http = ["{scheme}://{host}'
            + ("" if port == DEFAULT_PORTS[scheme] else f":{port}")
            + '"] naming the host exactly',
        )
    address = allowed[0]
    authority = f"[{address}]" if ":" in address else address
    target = parts._replace(netloc=f"{authority}:{port}").geturl()
    host_header = host if port == DEFAULT_PORTS[scheme] else f"{host}:{port}"
    headers.append(("Host", host_header))
    extensions = {"sni_hostname": host} if scheme == "https" else {}
    return _send(state, method, target, headers, body, deadline, extensions, url)


def _send(
    state: HostState,
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes,
    deadline: float,
    extensions: dict[str, Any],
    url: str,
) -> dict[str, Any]:
    cap = config.FIREBOX_HTTP_MAX_RESPONSE_BYTES.get()
    timeout = httpx.Timeout(max(0.01, deadline - time.monotonic()))
    http = client()
    request = http.build_request(
        method, target, headers=headers, content=body, timeout=timeout, extensions=extensions
    )
    state.calls["http.bytes_out"] = state.calls.get("http.bytes_out", 0) + len(body)
    try:
        response = http.send(request, stream=True)
        try:
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_raw(64 * 1024):
                size += len(chunk)
                if size > cap:
                    raise HostCallFailed(
                        f"the response from {url} is larger than the {cap}-byte cap"
                        " (FIREBOX_HTTP_MAX_RESPONSE_BYTES); it was cut off"
                    )
                if time.monotonic() > deadline:
                    raise HostCallFailed(f"the response from {url} did not arrive in time")
                chunks.append(chunk)
        finally:
            response.close()
    except httpx.TimeoutException:
        raise HostCallFailed(f"{method} {url} timed out (the invocation's deadline)") from None
    except httpx.HTTPError as exc:
        raise HostCallFailed(f"{method} {url} failed: {type(exc).__name__}: {exc}") from None
    state.calls["http.bytes_in"] = state.calls.get("http.bytes_in", 0) + size
    return {
        "status": response.status_code,
        "reason": response.reason_phrase,
        "headers": [
            [k, v] for k, v in response.headers.multi_items() if k.lower() not in HOP_HEADERS
        ],
        "body": base64.b64encode(b"".join(chunks)).decode(),
    }


OPERATIONS: dict[str, Operation] = {"http.request": _request}
