"""The storage seams: backends picked from URLs, every store opened in one place, and
shared artifacts behind the BlobStore interface, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from firebox.runtime.artifacts import ArtifactStore
from firebox.runtime.config import NodeConfig
from firebox.runtime.engine import EngineSettings
from firebox.runtime.errors import InvalidArtifact
from firebox.runtime.prepare import Preparer
from firebox.runtime.storage.backends import open_blob_store, open_registry, registry_url
from firebox.runtime.storage.blobs import BlobStore, SqlBlobStore
from firebox.runtime.storage.queue_sqlite import SqliteQueueBackend
from firebox.runtime.storage.stores import open_stores
from firebox.runtime.storage.stream_sqlite import SqliteStreamBackend


class DictBlobStore:
    """A blob store the registry has never heard of: what an S3-compatible one would be."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def put(self, digest: str, data: bytes) -> None:
        self.data.setdefault(digest, data)

    def get(self, digest: str) -> bytes | None:
        return self.data.get(digest)

    def delete(self, digest: str) -> None:
        self.data.pop(digest, None)


def test_registry_url_defaults_to_sqlite_and_reads_postgres_as_psycopg(tmp_path: Path) -> None:
    assert registry_url(tmp_path) == f"sqlite:///{tmp_path / 'registry.db'}"
    assert registry_url(tmp_path, "postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert registry_url(tmp_path, "postgresql://u@h/db") == "postgresql+psycopg://u@h/db"


def test_a_one_node_registry_shares_no_blobs(tmp_path: Path) -> None:
    stores = open_stores(
        NodeConfig(data_dir=tmp_path, database_url=None, queue_url=None), sealing_secret="s"
    )
    try:
        assert stores.blobs is None
        assert isinstance(stores.queues, SqliteQueueBackend)
        assert isinstance(stores.streams, SqliteStreamBackend)
        assert (tmp_path / "registry.db").exists() and (tmp_path / "events.db").exists()
        # Every store is on the registry's one engine.
        engines = {stores.keys.engine, stores.schedules.engine, stores.event_configs.engine}
        assert engines == {stores.registry.engine}
    finally:
        stores.close()


def test_an_unknown_queue_scheme_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unsupported events backend URL scheme 'kafka'"):
        open_stores(
            NodeConfig(data_dir=tmp_path, database_url=None, queue_url="kafka://broker"),
            sealing_secret="s",
        )


def test_a_shared_registry_shares_blobs_in_its_table(pg_schema_url: str, tmp_path: Path) -> None:
    registry = open_registry(pg_schema_url, tmp_path)
    try:
        blobs = open_blob_store(registry)
        assert isinstance(blobs, SqlBlobStore) and isinstance(blobs, BlobStore)
        blobs.put("d1", b"bytes")
        blobs.put("d1", b"bytes")  # idempotent
        assert blobs.get("d1") == b"bytes" and blobs.get("nope") is None
        blobs.delete("d1")
        assert blobs.get("d1") is None
    finally:
        registry.close()


def test_the_preparer_shares_and_fetches_through_any_blob_store(tmp_path: Path) -> None:
    blobs = DictBlobStore()
    assert isinstance(blobs, BlobStore)
    first = ArtifactStore(tmp_path / "a")
    data = b"\0asm\x01\0\0\0"
    digest = first.put(data)
    Preparer(EngineSettings(), tmp_path / "a", first, blobs).share(digest)
    assert blobs.data == {digest: data} and digest == hashlib.sha256(data).hexdigest()

    second = ArtifactStore(tmp_path / "b")
    Preparer(EngineSettings(), tmp_path / "b", second, blobs).ensure_local(digest)
    assert second.get(digest) == data
    alone = Preparer(EngineSettings(), tmp_path / "c", ArtifactStore(tmp_path / "c"), None)
    with pytest.raises(InvalidArtifact, match="in no store this node can reach"):
        alone.ensure_local(digest)
