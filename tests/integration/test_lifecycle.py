"""Functions as a product over a real server, on each registry backend (SQLite, PostgreSQL):
versions, aliases and weights, configuration, concurrency, logs, usage, restarts."""

from __future__ import annotations

import concurrent.futures
import json
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from firebox.runtime.errors import (
    BadRequest,
    FunctionNotFound,
    InvalidManifest,
    MemoryLimitExceeded,
    Throttled,
)
from firebox.sdk.client import Client

from tests.conftest import Server, ServerFactory, guest_wasm

pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """None (SQLite in the data dir) or a PostgreSQL URL: the same tests run on both."""
    return None if request.param == "sqlite" else str(request.getfixturevalue("pg_schema_url"))


@pytest.fixture
def node(server_factory: ServerFactory, database_url: str | None) -> Server:
    env = {"FIREBOX_DATABASE_URL": database_url} if database_url else {}
    return server_factory(env=env).start()


def invoke_raw(server: Server, name: str, event: object, **params: str) -> httpx.Response:
    with server.http() as http:
        return http.post(f"/v1/functions/{name}/invoke", content=json.dumps(event), params=params)


def test_full_lifecycle(node: Server) -> None:
    with node.client() as client:
        client.deploy({"name": "svc", "memory": 16}, guest_wasm("hostile"))
        assert client.invoke("svc", {"v": 0}).payload == {"v": 0}
        v1 = client.publish("svc", "first")
        assert v1.version == "1"
        assert client.publish("svc").version == "1"  # unchanged $LATEST: no duplicate version

        # Configuration changes take effect on the next invocation, never on version 1.
        client.update_config("svc", memory=32, description="bigger")
        grown = client.invoke("svc", {}, export="grow")
        assert isinstance(grown.error, MemoryLimitExceeded) and "32 MiB" in grown.error.message
        old = client.invoke("svc", {}, qualifier="1", export="grow")
        assert isinstance(old.error, MemoryLimitExceeded) and "16 MiB" in old.error.message
        assert old.version == "1"

        # New code, a second version, an alias and traffic shifting.
        client.update_code("svc", guest_wasm("transform"))
        v2 = client.publish("svc", "transform")
        assert v2.version == "2"
        assert [v.version for v in client.versions("svc")] == ["$LATEST", "1", "2"]
        client.create_alias("svc", "live", "1")
        live = client.invoke("svc:live", {"x": 1})
        assert live.version == "1" and live.payload == {"x": 1}
        assert client.invoke("svc", {"x": 1}, qualifier="2").payload == {
            "wrapped": {"x": 1},
            "by": "wat",
        }

        client.update_alias("svc", "live", routing={"2": 0.1})
        with node.http() as http:
            seen = Counter(
                http.post("/v1/functions/svc:live/invoke", content=b"{}").headers[
                    "x-firebox-executed-version"
                ]
                for _ in range(1000)
            )
        assert set(seen) == {"1", "2"}
        assert 0.07 <= seen["2"] / 1000 <= 0.13, seen

        # Roll forward, then back, by moving the alias.
        client.update_alias("svc", "live", version="2", routing={})
        assert client.invoke("svc:live", {}).version == "2"
        client.update_alias("svc", "live", version="1")
        assert client.invoke("svc:live", {}).version == "1"
        assert [a.name for a in client.aliases("svc")] == ["live"]

        # Bad input: clear 4xx.
        with pytest.raises(InvalidManifest, match="memory"):
            client.update_config("svc", memory=-1)
        with pytest.raises(InvalidManifest, match="timeout"):
            client.update_config("svc", timeout=100_000)
        with pytest.raises(InvalidManifest, match="cannot update"):
            client.update_config("svc", colour="blue")
        with pytest.raises(FunctionNotFound):
            client.create_alias("svc", "next", "9")
        with pytest.raises(BadRequest):
            client.create_alias("svc", "bad", "1", routing={"2": 1.5})
        with pytest.raises(FunctionNotFound):
            client.invoke("svc:nope", {})

        # Delete removes everything; the artifacts nobody uses go too.
        client.delete("svc")
        with pytest.raises(FunctionNotFound):
            client.get("svc")
        with pytest.raises(FunctionNotFound):
            client.invoke("svc:live", {})
    assert not list((node.data_dir / "artifacts").glob("*/*"))


def test_concurrency_provisioned_logs_usage_and_restart(node: Server) -> None:
    with node.client() as client:
        client.deploy({"name": "capped", "concurrency": 3, "provisioned": 1}, guest_wasm("hostile"))
        client.set_provisioned("capped", 3)
        deadline = time.monotonic() + 10
        while client.provisioned("capped")["$LATEST"]["ready"] < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.provisioned("capped")["$LATEST"] == {
            "requested": 3,
            "ready": 3,
            "version": "$LATEST",
        }

    # Reserved concurrency: a burst gets 429s and no errors.
    def call(i: int) -> int:
        return invoke_raw(node, "capped", {"i": i}, export="busy").status_code

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        statuses = list(pool.map(call, range(24)))
    assert set(statuses) <= {200, 429} and statuses.count(429) > 0, statuses

    with node.client() as client:
        fail = client.invoke("capped", {}, export="trap")
        ok = client.invoke("capped", {"hello": 1})
        time.sleep(0.5)  # telemetry is written in batches every 0.2 s
        logs = client.logs("capped", limit=1000)
        by_request = {entry.request_id: entry.text for entry in logs}
        assert (
            "START RequestId" in by_request[ok.request_id]
            and "REPORT RequestId" in by_request[ok.request_id]
        )
        assert "Billed Duration" in by_request[ok.request_id]
        assert "GuestTrap" in by_request[fail.request_id]
        assert sum("Throttled" in t for t in by_request.values()) == statuses.count(429)
        assert [e.request_id for e in client.logs("capped", request_id=ok.request_id)] == [
            ok.request_id
        ]
        usage = client.usage("capped", since=time.time() - 3600)["functions"]["capped"]
        assert usage["throttles"] == statuses.count(429)
        assert usage["invocations"] == statuses.count(200) + 2
        assert usage["errors"] == 1
        assert (
            usage["gb_seconds"] > 0
            and usage["duration_ms"]["p99"] >= usage["duration_ms"]["p50"] > 0
        )
        client.publish("capped")
        client.create_alias("capped", "prod", "1")

    node.stop()
    node.start()
    with node.client() as client:
        assert client.get("capped").config["concurrency"] == 3
        assert [v.version for v in client.versions("capped")] == ["$LATEST", "1"]
        assert client.get_alias("capped", "prod").version == "1"
        assert ok.request_id in {e.request_id for e in client.logs("capped", limit=1000)}
        assert client.usage("capped")["functions"]["capped"]["throttles"] == statuses.count(429)
        assert client.invoke("capped:prod", {"again": 1}).payload == {"again": 1}


def test_environment_reaches_only_its_function(node: Server, tmp_path: Path) -> None:
    source = "import os\n\ndef handler(event, context):\n    return {k: os.environ.get(k) for k in ('ONLY_A', 'ONLY_B')}\n"
    with node.client() as client:
        for name, env in (("env-a", {"ONLY_A": "a"}), ("env-b", {"ONLY_B": "b"})):
            folder = tmp_path / name
            folder.mkdir()
            (folder / "app.py").write_text(source)
            (folder / "firebox.toml").write_text(
                f'name = "{name}"\nruntime = "python3.14"\n[environment]\n'
                + "".join(f'{k} = "{v}"\n' for k, v in env.items())
            )
            client.deploy_path(folder)
        assert client.invoke("env-a").payload == {"ONLY_A": "a", "ONLY_B": None}
        assert client.invoke("env-b").payload == {"ONLY_A": None, "ONLY_B": "b"}
        client.update_config("env-a", environment={"ONLY_A": "changed"})
        assert client.invoke("env-a").payload == {"ONLY_A": "changed", "ONLY_B": None}


def test_two_nodes_share_one_postgres_registry(
    pg_schema_url: str, server_factory: ServerFactory
) -> None:
    env = {"FIREBOX_DATABASE_URL": pg_schema_url, "FIREBOX_REGISTRY_POLL_S": "0.2"}
    first = server_factory(env=env).start()
    second = server_factory(
        env={**env, "FIREBOX_ACCESS_KEY_ID": "", "FIREBOX_SECRET_ACCESS_KEY": ""}
    ).start()
    with first.client() as a, Client(second.url, second.credentials) as b:
        a.deploy(
            {"name": "shared", "triggers": [{"route": "/shared", "methods": ["POST"]}]},
            guest_wasm("echo"),
        )
        assert b.invoke("shared", {"from": "b"}).payload == {"from": "b"}
        b.deploy({"name": "other"}, guest_wasm("transform"))
        assert a.invoke("other", {"from": "a"}).payload == {"wrapped": {"from": "a"}, "by": "wat"}
        b.update_code("shared", guest_wasm("transform"))
        deadline = time.monotonic() + 10
        while a.invoke("shared", {"n": 1}).payload != {"wrapped": {"n": 1}, "by": "wat"}:
            assert time.monotonic() < deadline, "the first node never saw the second node's update"
            time.sleep(0.1)
        # The HTTP trigger deployed through the first node is served by the second.
        deadline = time.monotonic() + 10
        while httpx.post(second.url + "/shared", content=b"{}").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)


def test_throttled_error_type_over_the_sdk(node: Server) -> None:
    with node.client() as client:
        client.deploy({"name": "one-at-a-time", "concurrency": 1}, guest_wasm("hostile"))

        def call(_: int) -> str:
            try:
                with node.client() as c:
                    return "ok" if c.invoke("one-at-a-time", {}, export="busy").ok else "error"
            except Throttled:
                return "throttled"

        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            outcomes = Counter(pool.map(call, range(12)))
        assert outcomes["throttled"] > 0 and outcomes["error"] == 0, outcomes
