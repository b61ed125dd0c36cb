"""Post-init snapshots on real servers: state, isolation, uniqueness, SnapStart hooks, restarts,
a second node on the same registry, and new snapshots for new code or environment."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from firebox.sdk.client import Client

from tests.conftest import ServerFactory

pytestmark = pytest.mark.slow

STATEFUL = """
import os, random, uuid
from snapshot_restore_py import register_after_restore, register_before_snapshot

print("module init ran")
TABLE = {str(i): i * i for i in range(5000)}
CALLS = []
HOOKS = []

@register_before_snapshot
def before():
    print("before-snapshot hook ran")
    HOOKS.append("before")

@register_after_restore
def after():
    HOOKS.append("after")

def handler(event, context):
    CALLS.append(event)
    return {
        "table": len(TABLE),
        "calls": len(CALLS),
        "hooks": HOOKS,
        "random": random.random(),
        "uuid": str(uuid.uuid4()),
        "env": os.environ.get("COLOUR", ""),
    }
"""


def write(root: Path, name: str, source: str, env: dict[str, str] | None = None) -> Path:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "app.py").write_text(textwrap.dedent(source))
    lines = [f'name = "{name}"', 'runtime = "python3.14"', 'handler = "app.handler"']
    if env:
        lines.append("[environment]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in env.items()]
    (folder / "firebox.toml").write_text("\n".join(lines) + "\n")
    return folder


def snapshots(client: Client) -> dict[str, int]:
    stats: dict[str, int] = client.node()["snapshots"]
    return stats


def invoke(client: Client, name: str, event: Any = 1) -> dict[str, Any]:
    payload: dict[str, Any] = client.invoke(name, event).payload
    return payload


def test_snapshot_state_isolation_uniqueness_and_hooks(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    node = server_factory(env={"FIREBOX_PREPARE_PYTHON": "1", "FIREBOX_SNAPSHOTS": "1"}).start()
    with node.client(timeout=600) as client:
        client.deploy_path(write(tmp_path, "snap-state", STATEFUL))
        assert snapshots(client)["captured"] == 1
        results = [invoke(client, "snap-state", i) for i in range(6)]
        for result in results:
            assert result["table"] == 5000  # module-level state, in every invocation
            assert result["calls"] == 1  # what a handler appends never reaches the next
            # before-snapshot ran once (at deploy), after-restore once in this instance
            assert result["hooks"] == ["before", "after"]
        assert len({r["random"] for r in results}) == len(results)
        assert len({r["uuid"] for r in results}) == len(results)
        # Instances are reset in place between invocations (snapshot/reset.py), not remade.
        pools = [p for w in client.node()["workers"] for p in w["pools"].values()]
        assert sum(p["recycled"] for p in pools) >= 3, pools
        log = node.log_text()
        assert "module init ran" not in log or log.count("module init ran") <= 1


def test_snapshot_survives_restart_and_serves_a_second_node(
    pg_schema_url: str, server_factory: ServerFactory, tmp_path: Path
) -> None:
    shared = {
        "FIREBOX_DATABASE_URL": pg_schema_url,
        "FIREBOX_REGISTRY_POLL_S": "0.2",
        "FIREBOX_SNAPSHOTS": "1",
    }
    first = server_factory(env={**shared, "FIREBOX_PREPARE_PYTHON": "1"}).start()
    with first.client(timeout=600) as client:
        client.deploy_path(write(tmp_path, "snap-shared", STATEFUL))
        assert snapshots(client)["captured"] == 1
        assert invoke(client, "snap-shared")["table"] == 5000
    # A restart reads the snapshot from its data dir: no new capture.
    first.stop()
    first.start()
    with first.client(timeout=600) as client:
        assert invoke(client, "snap-shared")["calls"] == 1
        stats = snapshots(client)
        assert stats["captured"] == 0 and stats["local"] >= 1, stats
    # A second node on the same registry fetches it through the blob store.
    second = server_factory(env=shared).start()
    with second.client(timeout=600) as client:
        result = invoke(client, "snap-shared")
        assert result["table"] == 5000 and result["hooks"] == ["before", "after"]
        stats = snapshots(client)
        assert stats["captured"] == 0 and stats["fetched"] >= 1, stats


def test_new_code_or_environment_makes_a_new_snapshot(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    node = server_factory(env={"FIREBOX_PREPARE_PYTHON": "1", "FIREBOX_SNAPSHOTS": "1"}).start()
    with node.client(timeout=600) as client:
        client.deploy_path(write(tmp_path, "snap-change", STATEFUL, env={"COLOUR": "red"}))
        assert invoke(client, "snap-change")["env"] == "red"
        client.update_config("snap-change", environment={"COLOUR": "blue"})
        assert invoke(client, "snap-change")["env"] == "blue"
        assert snapshots(client)["captured"] == 2
        client.deploy_path(write(tmp_path, "snap-change", STATEFUL.replace("5000", "7")))
        assert invoke(client, "snap-change")["table"] == 7
        assert snapshots(client)["captured"] == 3
        # Publishing makes a snapshot of its own (the version is part of what init sees).
        client.publish("snap-change")
        assert snapshots(client)["captured"] == 4
