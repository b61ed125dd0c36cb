"""Data at rest is the node's own: a private data dir, private files, sealed key secrets."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from firebox.runtime.credentials import Credentials
from firebox.runtime.errors import Unauthorized
from firebox.sdk.client import Client

from tests.conftest import ServerFactory, guest_wasm


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """Start nodes with the common 022 umask (files 0644 unless firebox says otherwise)."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def everything_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if not p.is_symlink()]


def test_data_dir_and_files_are_private_and_secrets_sealed(
    server_factory: ServerFactory, loose_umask: None
) -> None:
    node = server_factory().start()
    with node.client() as admin:
        admin.deploy({"name": "echo"}, guest_wasm("echo"))
        admin.invoke("echo", {"hi": 1})
        key = admin.create_key("robot")
    assert key.secret_access_key
    creds = Credentials(key.access_key_id, key.secret_access_key)
    with Client(node.url, creds) as robot:
        assert isinstance(robot.list(), list)
    node.stop()  # WAL checkpointed or not, every byte on disk is checked

    data = node.data_dir
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    loose = [
        f"{p.relative_to(data)} {oct(stat.S_IMODE(p.stat().st_mode))}"
        for p in everything_under(data)
        if stat.S_IMODE(p.stat().st_mode) & 0o077
    ]
    assert loose == [], loose
    secret = key.secret_access_key.encode()
    holding = [p.name for p in everything_under(data) if p.is_file() and secret in p.read_bytes()]
    assert holding == [], f"the issued secret is readable in {holding}"

    # The sealed secret still works after a restart (sealed under the node's admin secret).
    node.start()
    with Client(node.url, creds) as robot:
        assert isinstance(robot.list(), list)


def test_an_existing_open_data_dir_is_closed_on_start(
    server_factory: ServerFactory, tmp_path: Path, loose_umask: None
) -> None:
    data = tmp_path / "old-data"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    stale = data / "notes.txt"
    stale.write_text("left by an older firebox")
    os.chmod(stale, 0o644)
    server_factory(data_dir=data).start()
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE(stale.stat().st_mode) == 0o600


@pytest.mark.services
def test_nodes_sharing_a_registry_need_the_same_sealing_secret(
    pg_schema_url: str, server_factory: ServerFactory
) -> None:
    shared = {"FIREBOX_DATABASE_URL": pg_schema_url, "FIREBOX_REGISTRY_POLL_S": "0.2"}
    sealing = {**shared, "FIREBOX_KEY_ENCRYPTION_KEY": "one sealing secret for the cluster"}
    first = server_factory(env=sealing).start()
    second = server_factory(env=sealing).start()  # another admin key, the same sealing secret
    other = server_factory(env=shared).start()  # seals with its own admin secret
    with first.client() as admin:
        key = admin.create_key("cluster robot")
    creds = Credentials(key.access_key_id, key.secret_access_key or "")
    with Client(second.url, creds) as robot:
        assert isinstance(robot.list(), list)
    with Client(other.url, creds) as robot, pytest.raises(Unauthorized):
        robot.list()
    assert "sealed under another sealing secret" in other.log_text()
