"""Key-value tables and blob buckets on their one-node backend (SQLite and files)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from firebox.runtime.errors import BadRequest, ConditionFailed, ItemNotFound, PayloadTooLarge
from firebox.runtime.storage.data import DataStores, open_data_stores


@pytest.fixture
def data(tmp_path: Path) -> Iterator[DataStores]:
    stores = open_data_stores(None, tmp_path)
    yield stores
    stores.close()


def test_kv_put_get_conditions_and_versions(data: DataStores) -> None:
    kv = data.kv
    assert kv.get("t", "k") is None
    first = kv.put("t", "k", {"a": 1})
    assert first.version == 1 and kv.get("t", "k").value == {"a": 1}  # type: ignore[union-attr]
    with pytest.raises(ConditionFailed, match="already exists"):
        kv.put("t", "k", 2, if_absent=True)
    with pytest.raises(ConditionFailed, match="at version 1, not 5"):
        kv.put("t", "k", 2, if_version=5)
    assert kv.put("t", "k", 2, if_version=1).version == 2
    assert kv.get("other", "k") is None  # tables are separate
    with pytest.raises(ConditionFailed):
        kv.delete("t", "k", if_version=1)
    assert kv.delete("t", "k", if_version=2) is True
    assert kv.delete("t", "k") is False


def test_kv_ttl_hides_and_purges_expired_items(data: DataStores) -> None:
    kv = data.kv
    kv.put("t", "short", 1, ttl_s=0.05)
    kv.put("t", "long", 1, ttl_s=3600)
    import time

    time.sleep(0.1)
    assert kv.get("t", "short") is None
    assert [i.key for i in kv.query("t").items] == ["long"]
    assert kv.put("t", "short", 2, if_absent=True).version == 1  # expired counts as absent
    with pytest.raises(BadRequest, match="ttl"):
        kv.put("t", "x", 1, ttl_s=-1)


def test_kv_prefix_query_pages_in_key_order(data: DataStores) -> None:
    kv = data.kv
    for i in range(25):
        kv.put("t", f"user#{i:03}", i)
    kv.put("t", "zzz", 0)
    keys: list[str] = []
    cursor = None
    while True:
        page = kv.query("t", "user#", limit=10, cursor=cursor)
        keys += [item.key for item in page.items]
        cursor = page.cursor
        if cursor is None:
            break
    assert keys == [f"user#{i:03}" for i in range(25)]
    assert len(kv.query("t", limit=1000).items) == 26
    assert kv.tables() == [{"name": "t", "items": 26}]
    with pytest.raises(BadRequest, match="limit"):
        kv.query("t", limit=1001)


def test_kv_refuses_bad_keys_and_huge_values(data: DataStores) -> None:
    with pytest.raises(BadRequest):
        data.kv.put("t", "", 1)
    with pytest.raises(BadRequest):
        data.kv.put("t", "k" * 2000, 1)
    with pytest.raises(BadRequest, match="JSON"):
        data.kv.put("t", "k", {1, 2})
    with pytest.raises(PayloadTooLarge):
        data.kv.put("t", "k", "x" * 500_000)


def test_buckets_put_get_ranges_list_and_delete(data: DataStores) -> None:
    b = data.buckets
    info = b.put("m", "a/1", b"0123456789", "text/plain")
    assert info.size == 10 and info.content_type == "text/plain"
    assert b.get("m", "a/1", 2, 5)[1] == b"234"
    assert b.get("m", "a/1")[1] == b"0123456789"
    b.put("m", "a/2", b"0123456789")  # same bytes, stored once
    b.put("m", "b/1", b"x")
    found, cursor = b.list_objects("m", "a/", limit=1)
    assert [o.key for o in found] == ["a/1"] and cursor == "a/1"
    found, cursor = b.list_objects("m", "a/", limit=1, cursor=cursor)
    assert [o.key for o in found] == ["a/2"] and cursor is None
    assert b.delete("m", "a/1") is True
    assert b.get("m", "a/2")[1] == b"0123456789"  # the shared content survived
    assert b.delete("m", "a/2") is True and b.delete("m", "a/2") is False
    with pytest.raises(ItemNotFound):
        b.get("m", "a/2")
    with pytest.raises(BadRequest, match="range"):
        b.get("m", "b/1", 5, 9)
    assert b.buckets() == [{"name": "m", "objects": 1, "bytes": 1}]


def test_buckets_refuse_objects_past_the_cap(
    data: DataStores, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FIREBOX_BLOB_MAX_OBJECT_BYTES", "100")
    with pytest.raises(PayloadTooLarge, match="an object of 101 bytes"):
        data.buckets.put("m", "k", b"x" * 101)


def test_secrets_are_encrypted_at_rest_and_need_the_same_key(
    data: DataStores, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlalchemy as sa
    from cryptography.fernet import Fernet
    from firebox.runtime.errors import HostCallFailed, InvalidSetting
    from firebox.runtime.storage.secrets import SecretStore, load_key

    info = data.secrets.put("API_TOKEN", "s3cr3t-value")
    assert info.version == 1 and data.secrets.get("API_TOKEN") == "s3cr3t-value"
    assert data.secrets.put("API_TOKEN", "rotated").version == 2
    assert data.secrets.get("API_TOKEN") == "rotated"
    with data.engine.connect() as conn:
        raw = b"".join(
            bytes(r[0]) for r in conn.execute(sa.text("SELECT ciphertext FROM fb_secrets"))
        )
    assert b"rotated" not in raw and b"s3cr3t" not in raw
    assert (tmp_path / "secrets.key").stat().st_mode & 0o777 == 0o600
    assert [s.name for s in data.secrets.list_all()] == ["API_TOKEN"]
    other = SecretStore(data.engine, Fernet.generate_key())
    with pytest.raises(HostCallFailed, match="FIREBOX_SECRETS_KEY"):
        other.get("API_TOKEN")
    monkeypatch.setenv("FIREBOX_SECRETS_KEY", "not-a-key")
    with pytest.raises(InvalidSetting, match="FIREBOX_SECRETS_KEY"):
        load_key(tmp_path)
    assert data.secrets.delete("API_TOKEN") and data.secrets.get("API_TOKEN") is None
