"""PostgreSQL unreachable: the APIs answer 503 with Retry-After (never a 500), /healthz
says so, and the node recovers when the database is back."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import Server, ServerFactory, free_port, guest_wasm


class Proxy:
    """A TCP forwarder to a real service that can be cut (connections dropped, new ones
    refused) and restored, to play the service going away."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = free_port()
        self.conns: list[socket.socket] = []
        self.listener: socket.socket | None = None
        self.lock = threading.Lock()
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        with self.lock:
            self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self.lock:
                if listener is not self.listener:  # cut meanwhile
                    client.close()
                    upstream.close()
                    return
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        assert self.listener is not None
        with self.lock:
            self.listener.close()
            self.listener = None
            conns, self.conns = self.conns, []
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()


@pytest.fixture
def proxied(postgres_url: str, server_factory: ServerFactory) -> Iterator[tuple[Server, Proxy]]:
    parts = urlsplit(postgres_url)
    proxy = Proxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    netloc = parts.netloc.replace(f"{parts.hostname}:{parts.port}", f"127.0.0.1:{proxy.port}")
    url = parts._replace(netloc=netloc).geturl()
    node = server_factory(env={"FIREBOX_DATABASE_URL": url}).start()
    yield node, proxy
    if proxy.listener is not None:
        proxy.cut()


def test_an_unreachable_database_is_503_with_retry_after(proxied: tuple[Server, Proxy]) -> None:
    node, proxy = proxied
    name = f"outage-{uuid.uuid4().hex[:8]}"  # the registry is shared with other tests
    with node.client() as client:
        client.deploy({"name": name}, guest_wasm("echo"))
    with node.http() as http:
        listed = http.get("/v1/functions")
        assert listed.status_code == 200
        for leftover in listed.json()["functions"]:  # of an earlier run that failed
            if leftover["name"].startswith("outage-") and leftover["name"] != name:
                http.delete(f"/v1/functions/{leftover['name']}")
        proxy.cut()
        response = http.get("/v1/functions")
        deadline = time.monotonic() + 5
        while response.status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.1)  # a read the node could still answer from its catalog
            response = http.get("/v1/functions")
        assert response.status_code == 503, response.text
        assert response.headers["Retry-After"] == "1"
        error = response.json()["error"]
        assert error["type"] == "ServiceUnavailable"
        assert "unreachable" in error["message"]
        # (Reads may be answered from the node's catalog; publishing writes the registry.)
        lam = http.post(f"/2015-03-31/functions/{name}/versions", json={})
        assert lam.status_code == 503, lam.text
        assert lam.headers["x-amzn-ErrorType"] == "ServiceException"
        assert lam.headers["Retry-After"] == "1"
        health = httpx.get(node.url + "/healthz", timeout=10)
        assert health.status_code == 503
        assert health.json()["status"] == "degraded" and health.json()["registry"] != "ok"
        # Back: the node answers again without a restart.
        proxy.restore()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if http.get("/v1/functions").status_code == 200:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the node did not recover")
        assert httpx.get(node.url + "/healthz", timeout=10).json()["registry"] == "ok"
        assert http.delete(f"/v1/functions/{name}").status_code == 204
