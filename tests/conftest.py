"""Fixture factories shared by every test tier: data dirs, guests, real servers, clients."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import httpx
import pytest
import wasmtime
from firebox.runtime.credentials import Credentials, read_file
from firebox.sdk.client import Client

ROOT = Path(__file__).resolve().parent.parent
SESSION_CACHE = Path(tempfile.mkdtemp(prefix="firebox-test-compiled-"))
GUESTS = Path(__file__).resolve().parent / "guests"
EXAMPLES = ROOT / "examples"


def guest_wasm(name: str) -> bytes:
    """Return the wasm bytes of tests/guests/<name>.wat."""
    return bytes(wasmtime.wat2wasm((GUESTS / f"{name}.wat").read_text()))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A real `firebox serve` process (uvicorn) on a free port, with its own data dir."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *extra: str) -> Server:
        self.port = free_port()
        env = {
            **os.environ,
            "FIREBOX_WORKERS": "2",
            "FIREBOX_POOL_SLOTS": "64",
            "FIREBOX_MAX_MEMORY_MB": "512",
            # One compiled cache for every test node (its keys make sharing safe), so the
            # Python interpreter is compiled once per test session, not once per node.
            "FIREBOX_COMPILED_CACHE": str(SESSION_CACHE),
            # Only nodes that deploy Python functions prepare the interpreter (on demand).
            "FIREBOX_PREPARE_PYTHON": "0",
            **self.env,
        }
        env.pop("FIREBOX_ACCESS_KEY_ID", None)
        env.pop("FIREBOX_SECRET_ACCESS_KEY", None)
        self.log = open(self.data_dir.parent / f"server-{self.port}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "firebox.sdk.cli", "serve", "--port", str(self.port),
             "--data-dir", str(self.data_dir), *extra],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_text()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server did not become healthy: {self.log_text()}")

    def log_text(self) -> str:
        return (self.data_dir.parent / f"server-{self.port}.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    @property
    def credentials(self) -> Credentials:
        return read_file(self.data_dir / "credentials.json")

    def client(self, **kw: object) -> Client:
        return Client(self.url, self.credentials, **kw)  # type: ignore[arg-type]

    def http(self) -> httpx.Client:
        """A raw httpx client with admin credentials."""
        creds = self.credentials
        return httpx.Client(
            base_url=self.url,
            timeout=30,
            headers={"Authorization": f"Bearer {creds.access_key_id}:{creds.secret_access_key}"},
        )


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


class ServerFactory(Protocol):
    """Makes a `Server` with its own data dir (or the one given); the fixture stops them all."""

    def __call__(
        self, data_dir: Path | None = None, env: dict[str, str] | None = None
    ) -> Server: ...


@pytest.fixture
def server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    started: list[Server] = []

    class _Factory(Server):
        def __init__(self, data_dir: Path | None = None, env: dict[str, str] | None = None) -> None:
            super().__init__(data_dir or tmp_path_factory.mktemp("node") / "data", env)
            self.data_dir.mkdir(parents=True, exist_ok=True)
            started.append(self)

    yield _Factory
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server shared by a test module (starting one costs about a second)."""
    node = Server(tmp_path_factory.mktemp("node") / "data")
    node.data_dir.mkdir(parents=True)
    node.start()
    yield node
    node.stop()


# --- real services (PostgreSQL, Redis) --------------------------------------------------

POSTGRES_URL = os.environ.get(
    "FIREBOX_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("FIREBOX_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _service_missing(what: str, reason: str) -> None:
    """Skip with a clear reason, or fail when FIREBOX_REQUIRE_SERVICES=1 (CI)."""
    message = f"{what} is not reachable ({reason})"
    if os.environ.get("FIREBOX_REQUIRE_SERVICES") == "1":
        pytest.fail(message + " and FIREBOX_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(message + "; set FIREBOX_TEST_POSTGRES_URL / FIREBOX_TEST_REDIS_URL or start it")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A reachable PostgreSQL URL (SQLAlchemy form), or skip/fail as the environment demands."""
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(POSTGRES_URL)
        with engine.connect() as conn:
            conn.exec_driver_sql("select 1")
        engine.dispose()
    except Exception as exc:
        _service_missing("PostgreSQL", str(exc).splitlines()[0])
    return POSTGRES_URL


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A reachable Redis URL, or skip/fail as the environment demands."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as exc:
        _service_missing("Redis", str(exc).splitlines()[0])
    return REDIS_URL


@pytest.fixture
def pg_schema_url(postgres_url: str) -> Iterator[str]:
    """A PostgreSQL URL on a fresh schema of its own (dropped afterwards), so tests that
    share the `test` database never see each other's tables.

    Name it before `server_factory` in a test's arguments: fixtures are torn down in the
    reverse order, so the nodes stop before their schema is dropped (the other way round,
    a node still writing deadlocked with the DROP, found by CI).
    """
    import uuid

    import sqlalchemy as sa

    schema = f"fbx_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    yield f"{postgres_url}?options=-csearch_path%3D{schema}"
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    engine.dispose()
