"""Host capabilities through a real node: Python functions using `requests` and
`urllib.request` against a real local HTTP server, refused hosts, a slow and a huge
upstream, and `firebox.kv` / `firebox.blobs` seeded and inspected through the SDK."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from firebox.runtime.errors import ItemNotFound, TimedOut
from firebox.sdk.client import Client

from tests.conftest import Server

pytestmark = pytest.mark.slow

BIG_BYTES = 50 * 1024 * 1024


class _Upstream(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path.startswith("/slow"):
            time.sleep(8)
        if self.path.startswith("/big"):
            self.send_response(200)
            self.send_header("Content-Length", str(BIG_BYTES))
            self.end_headers()
            chunk = b"x" * (1024 * 1024)
            try:
                for _ in range(BIG_BYTES // len(chunk)):
                    self.wfile.write(chunk)
            except OSError:
                pass  # the host hung up at its cap
            return
        body = f'{{"path": "{self.path}", "agent": "{self.headers.get("User-Agent", "")}"}}'
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _certificates(folder: Path) -> tuple[Path, Path, Path, Path, Path]:
    """Return (CA cert, server cert, server key, rogue cert, rogue key) PEM files: a
    private CA with a certificate for localhost, and a self-signed one it did not sign."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def cert(subject: str, key: Any, issuer: str, signer: Any, ca: bool) -> Any:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False
            )
        return builder.sign(signer, hashes.SHA256())

    def write(name: str, obj: Any) -> Path:
        path = folder / name
        if hasattr(obj, "private_bytes"):
            path.write_bytes(
                obj.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
        else:
            path.write_bytes(obj.public_bytes(serialization.Encoding.PEM))
        return path

    ca_key, server_key, rogue_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = cert("firebox test CA", ca_key, "firebox test CA", ca_key, True)
    server = cert("localhost", server_key, "firebox test CA", ca_key, False)
    rogue = cert("localhost", rogue_key, "localhost", rogue_key, False)
    return (
        write("ca.pem", ca), write("server.pem", server), write("server.key", server_key),
        write("rogue.pem", rogue), write("rogue.key", rogue_key),
    )  # fmt: skip


def _https_server(cert: Path, key: Path) -> http.server.ThreadingHTTPServer:
    import ssl

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    ca, cert, key, rogue_cert, rogue_key = _certificates(tmp_path_factory.mktemp("tls"))
    good, rogue = _https_server(cert, key), _https_server(rogue_cert, rogue_key)
    yield {
        "ca": str(ca),
        "good": f"https://localhost:{good.server_address[1]}",
        "rogue": f"https://localhost:{rogue.server_address[1]}",
    }
    for server in (good, rogue):
        server.shutdown()
        server.server_close()


HTTPX_APP = """
import httpx
import requests

def handler(event, context):
    out = {}
    for name, get in (("httpx", lambda u: httpx.Client(timeout=5).get(u)),
                      ("requests", lambda u: requests.get(u, timeout=5))):
        try:
            response = get(event["url"])
            out[name] = {"status": response.status_code, "json": response.json()}
        except Exception as exc:
            out[name] = {"error": type(exc).__name__, "message": str(exc)}
    return out
"""


REQUESTS_APP = """
import requests

def handler(event, context):
    response = requests.get(event["url"], params={"q": "1"}, timeout=5)
    return {"status": response.status_code, "json": response.json()}
"""

URLLIB_APP = """
import urllib.request

def handler(event, context):
    try:
        with urllib.request.urlopen(event["url"], timeout=event.get("timeout", 5)) as response:
            return {"status": response.status, "size": len(response.read())}
    except Exception as exc:
        reason = getattr(exc, "reason", exc)
        return {"error": type(reason).__name__, "message": str(reason)}
"""

RAISING_APP = """
import urllib.request

def handler(event, context):
    with urllib.request.urlopen(event["url"]) as response:
        return len(response.read())
"""

DATA_APP = """
import firebox

def handler(event, context):
    inventory = firebox.kv.table("inventory")
    media = firebox.blobs.bucket("media")
    seeded = inventory.get("seed")
    picture = media.get("in/picture.bin")
    inventory.put("written", {"by": context.function_name, "seen": seeded})
    media.put("out/report.txt", f"{len(picture)} bytes", content_type="text/plain")
    return {"seed": seeded, "picture": len(picture), "head": picture[:4].hex()}
"""

SECRET_APP = """
import firebox

def handler(event, context):
    try:
        value = firebox.secrets.get("API_TOKEN")
    except firebox.CapabilityDenied as exc:
        return {"denied": str(exc)}
    return {"length": len(value or ""), "suffix": (value or "")[-4:]}
"""

QUEUE_APP = """
import firebox

def handler(event, context):
    try:
        return {"id": firebox.queues.send(event["queue"], {"order": 7}, attributes={"kind": "order"})}
    except firebox.CapabilityDenied as exc:
        return {"denied": str(exc)}
"""

DENIED_APP = """
import firebox

def handler(event, context):
    try:
        firebox.kv.table("inventory").get("seed")
    except firebox.CapabilityDenied as exc:
        return {"denied": str(exc)}
    return "read"
"""


def _function(root: Path, name: str, source: str, capabilities: str, **extra: Any) -> Path:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "app.py").write_text(textwrap.dedent(source))
    lines = [f'name = "{name}"', 'runtime = "python3.14"', 'handler = "app.handler"']
    lines += [f"{key} = {value}" for key, value in extra.items()]
    (folder / "firebox.toml").write_text("\n".join(lines) + "\n[capabilities]\n" + capabilities)
    return folder


def _vendor(folder: Path, *requirements: str) -> None:
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--target", str(folder), "--platform", "manylinux2014_x86_64", "--python-version",
        "3.12", "--implementation", "cp", "--only-binary=:all:", *requirements,
    ]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.skip(f"PyPI not reachable for {requirements}: {proc.stderr[-300:]}")


@pytest.fixture(scope="module")
def node(
    tmp_path_factory: pytest.TempPathFactory, upstream: str, tls: dict[str, str]
) -> Iterator[Server]:
    env = {"FIREBOX_PREPARE_PYTHON": "1", "FIREBOX_HTTP_CA_BUNDLE": tls["ca"]}
    server = Server(tmp_path_factory.mktemp("caps") / "data", env=env)
    server.data_dir.mkdir(parents=True)
    server.start()
    src = tmp_path_factory.mktemp("src")
    port = upstream.rsplit(":", 1)[1]
    granted = f'http = ["{upstream}"]\n'
    with server.client() as client:
        folder = _function(src, "net-requests", REQUESTS_APP, granted)
        _vendor(folder, "requests")
        client.deploy_path(folder)
        tls_granted = f'http = ["{upstream}", "{tls["good"]}", "{tls["rogue"]}"]\n'
        folder = _function(src, "net-httpx", HTTPX_APP, tls_granted, timeout=30, memory=256)
        _vendor(folder, "requests", "httpx")
        client.deploy_path(folder)
        client.deploy_path(_function(src, "net-urllib", URLLIB_APP, granted, timeout=2))
        client.deploy_path(_function(src, "net-raising", RAISING_APP, granted, timeout=10))
        # Any host on the upstream's port, by wildcard: private addresses stay refused.
        client.deploy_path(_function(src, "net-wild", URLLIB_APP, f'http = ["http://*:{port}"]\n'))
        data = 'tables = { inventory = "readwrite" }\nbuckets = { media = "readwrite" }\n'
        client.deploy_path(_function(src, "data-fn", DATA_APP, data))
        client.deploy_path(
            _function(src, "data-denied", DENIED_APP, 'tables = { other = "read" }\n')
        )
        client.deploy_path(_function(src, "secret-reader", SECRET_APP, 'secrets = ["API_TOKEN"]\n'))
        client.deploy_path(_function(src, "secret-other", SECRET_APP, 'secrets = ["OTHER"]\n'))
        client.deploy_path(_function(src, "queue-sender", QUEUE_APP, 'queues = ["outbox"]\n'))
    yield server
    server.stop()


@pytest.fixture
def client(node: Server) -> Iterator[Client]:
    with node.client() as c:
        yield c


def test_requests_reaches_a_granted_host(client: Client, upstream: str) -> None:
    result = client.invoke("net-requests", {"url": upstream + "/items"})
    assert result.ok, result.error
    assert result.payload["status"] == 200
    assert result.payload["json"]["path"] == "/items?q=1"
    assert result.payload["json"]["agent"].startswith("python-requests/")


def test_urllib_reaches_a_granted_host(client: Client, upstream: str) -> None:
    result = client.invoke("net-urllib", {"url": upstream + "/hello"})
    assert result.payload["status"] == 200, result.payload
    assert result.payload["size"] > len('{"path": "/hello"}')


def test_hosts_not_granted_the_node_itself_and_private_ranges_are_refused(
    client: Client, node: Server, upstream: str
) -> None:
    port = upstream.rsplit(":", 1)[1]
    for url in [f"http://localhost:{port}/", node.url + "/healthz", "https://example.com/"]:
        out = client.invoke("net-urllib", {"url": url}).payload
        assert out["error"] == "CapabilityDenied", out
        assert "no http capability for" in out["message"] and "[capabilities]" in out["message"]
    # Granted by wildcard, yet loopback and private addresses are refused.
    for url in [f"http://127.0.0.1:{port}/", f"http://10.0.0.1:{port}/"]:
        out = client.invoke("net-wild", {"url": url}).payload
        assert out["error"] == "CapabilityDenied", out
        assert "private or local address" in out["message"]


def test_a_slow_upstream_ends_in_timed_out_on_time_and_the_node_keeps_serving(
    client: Client, upstream: str
) -> None:
    started = time.monotonic()
    result = client.invoke("net-urllib", {"url": upstream + "/slow", "timeout": 30})
    elapsed = time.monotonic() - started
    assert isinstance(result.error, TimedOut), result
    assert elapsed < 2 + 2.5, elapsed  # the function's 2 s timeout, not the upstream's 8 s
    again = client.invoke("net-urllib", {"url": upstream + "/hello"})
    assert again.payload["status"] == 200


def test_a_huge_upstream_body_is_cut_at_the_cap(client: Client, upstream: str) -> None:
    result = client.invoke("net-raising", {"url": upstream + "/big"})
    assert result.error is not None
    assert "larger than the 6291456-byte cap" in result.error.message, result.error.message


def test_tables_and_buckets_seeded_by_the_sdk_are_read_and_written_by_a_function(
    client: Client,
) -> None:
    client.tables.put("inventory", "seed", {"count": 3})
    picture = bytes(range(256)) * 10
    client.buckets.put("media", "in/picture.bin", picture, "image/x-test")
    result = client.invoke("data-fn", {})
    assert result.ok, result.error
    assert result.payload == {"seed": {"count": 3}, "picture": 2560, "head": "00010203"}
    written = client.tables.get("inventory", "written")
    assert written["value"] == {"by": "data-fn", "seen": {"count": 3}}
    assert client.buckets.get("media", "out/report.txt") == b"2560 bytes"
    assert client.buckets.get("media", "in/picture.bin", start=1, end=3) == b"\x01\x02"
    assert client.buckets.head("media", "out/report.txt")["content_type"] == "text/plain"
    page = client.buckets.objects("media", "in/")
    assert [o["key"] for o in page["objects"]] == ["in/picture.bin"]
    keys = [i["key"] for i in client.tables.query("inventory")["items"]]
    assert keys == ["seed", "written"]
    client.tables.delete("inventory", "written")
    with pytest.raises(ItemNotFound):
        client.tables.get("inventory", "written")


def test_a_function_without_the_grant_is_refused(client: Client) -> None:
    result = client.invoke("data-denied", {})
    assert "table capability for inventory (read)" in result.payload["denied"]


def test_grants_follow_the_configuration_and_published_versions_keep_theirs(
    client: Client,
) -> None:
    client.tables.put("inventory", "seed", {"count": 1})
    version = client.publish("data-denied").version
    client.update_config("data-denied", capabilities={"tables": {"inventory": "read"}})
    assert client.invoke("data-denied", {}).payload == "read"
    frozen = client.invoke("data-denied", {}, qualifier=version).payload
    assert "table capability for inventory (read)" in frozen["denied"]


def _cli(
    node: Server, *args: str, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "FIREBOX_ENDPOINT": node.url, "FIREBOX_DATA_DIR": str(node.data_dir)}
    env.pop("FIREBOX_ACCESS_KEY_ID", None)
    env.pop("FIREBOX_SECRET_ACCESS_KEY", None)
    out = subprocess.run(
        [sys.executable, "-m", "firebox.sdk.cli", *args],
        env=env, input=stdin, capture_output=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out


def test_the_cli_seeds_and_inspects_tables_and_buckets(node: Server, tmp_path: Path) -> None:
    _cli(node, "tables", "put", "cli-table", "k1", '{"n": 1}')
    _cli(node, "tables", "put", "cli-table", "k2", "plain-word", "--ttl", "60")
    assert json.loads(_cli(node, "tables", "get", "cli-table", "k1").stdout) == {"n": 1}
    page = json.loads(_cli(node, "--json", "tables", "query", "cli-table", "k").stdout)
    assert [(i["key"], i["value"]) for i in page["items"]] == [
        ("k1", {"n": 1}),
        ("k2", "plain-word"),
    ]
    _cli(node, "buckets", "put", "cli-bucket", "dir/data.bin", "-", stdin=b"\x00\x01binary")
    assert _cli(node, "buckets", "get", "cli-bucket", "dir/data.bin").stdout == b"\x00\x01binary"
    target = tmp_path / "copy.bin"
    _cli(node, "buckets", "get", "cli-bucket", "dir/data.bin", str(target))
    assert target.read_bytes() == b"\x00\x01binary"
    listed = json.loads(_cli(node, "--json", "buckets", "objects", "cli-bucket", "dir/").stdout)
    assert [o["key"] for o in listed["objects"]] == ["dir/data.bin"]
    _cli(node, "buckets", "rm", "cli-bucket", "dir/data.bin")
    _cli(node, "tables", "rm", "cli-table", "k1")
    assert b"cli-table  1 items" in _cli(node, "tables", "ls").stdout


SECRET = "tok-9f8e7d6c5b4a-wxyz"


def test_a_secret_is_read_by_the_granted_function_only_and_never_shown(
    client: Client, node: Server
) -> None:
    info = client.secrets.set("API_TOKEN", SECRET)
    assert SECRET not in json.dumps(info)
    result = client.invoke("secret-reader", {}, tail=True)
    assert result.payload == {"length": len(SECRET), "suffix": "wxyz"}
    denied = client.invoke("secret-other", {}).payload
    assert "secret capability for API_TOKEN" in denied["denied"]
    # Rotated without a redeploy: the next read sees the new value.
    client.secrets.set("API_TOKEN", SECRET + "-2")
    assert client.invoke("secret-reader", {}).payload["suffix"] == "yz-2"
    listed = client.secrets.list()
    assert [s["name"] for s in listed] == ["API_TOKEN"] and listed[0]["version"] == 2
    assert SECRET not in json.dumps(listed) + json.dumps(client.secrets.info("API_TOKEN"))
    logs = client.logs("secret-reader")
    assert logs and all(SECRET not in entry.text for entry in logs)
    assert SECRET not in node.log_text()
    for path in node.data_dir.glob("data.db*"):  # encrypted at rest (the WAL too)
        assert SECRET.encode() not in path.read_bytes()


def test_a_function_sends_to_a_granted_queue_only(client: Client) -> None:
    client.queues.create("outbox")
    client.queues.create("elsewhere")
    sent = client.invoke("queue-sender", {"queue": "outbox"}).payload
    assert "id" in sent, sent
    messages = client.queues.receive("outbox", 10, None, 5)
    assert [json.loads(m.body) for m in messages] == [{"order": 7}]
    assert messages[0].id == sent["id"] and messages[0].attributes == {"kind": "order"}
    denied = client.invoke("queue-sender", {"queue": "elsewhere"}).payload
    assert "queue capability for elsewhere" in denied["denied"]
    internal = client.invoke("queue-sender", {"queue": "firebox-async"})
    said = internal.error.message if internal.error is not None else json.dumps(internal.payload)
    assert "internal to the node" in said


def test_httpx_and_requests_over_https_verified_by_the_host(
    client: Client, upstream: str, tls: dict[str, str]
) -> None:
    plain = client.invoke("net-httpx", {"url": upstream + "/plain"}).payload
    assert plain["httpx"]["json"]["path"] == "/plain", plain
    assert plain["httpx"]["json"]["agent"].startswith("python-httpx/")
    answer = client.invoke("net-httpx", {"url": tls["good"] + "/secure"})
    good = answer.payload
    assert answer.error is None, answer.error
    for name in ("httpx", "requests"):
        assert good is not None and good[name]["status"] == 200, good
        assert good[name]["json"]["path"] == "/secure"
    # A certificate the host does not trust: refused by the host, whatever the guest's
    # `ssl` settings say.
    rogue = client.invoke("net-httpx", {"url": tls["rogue"] + "/"}).payload
    for name in ("httpx", "requests"):
        assert "error" in rogue[name], rogue
        assert "CERTIFICATE_VERIFY_FAILED" in rogue[name]["message"] or "certificate" in (
            rogue[name]["message"].lower()
        ), rogue
