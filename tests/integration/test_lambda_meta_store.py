"""The Lambda API's store (policies, URLs, layers) on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from firebox.runtime.storage.lambda_meta import LAYER, POLICY, URL, LambdaMetaStore


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> LambdaMetaStore:
    if request.param == "sqlite":
        return LambdaMetaStore(sa.create_engine(f"sqlite:///{tmp_path / 'registry.db'}"))
    # The shared database may hold other tests' rows: this test's names are its own.
    return LambdaMetaStore(sa.create_engine(request.getfixturevalue("postgres_url")))


def test_documents_round_trip_and_go_with_their_function(store: LambdaMetaStore) -> None:
    f = f"fn-{uuid.uuid4().hex[:12]}"
    url_id = uuid.uuid4().hex
    assert store.put(POLICY, f, "", "a", {"Sid": "a"}, create=True) is not None
    assert store.put(POLICY, f, "", "a", {"Sid": "again"}, create=True) is None
    store.put(POLICY, f, "", "b", {"Sid": "b"})
    store.put(URL, f, "live", url_id, {"AuthType": "NONE"})
    store.put(LAYER, f, "1", "", {"Digest": "d"})  # a layer that shares the name
    assert [r.key for r in store.list(POLICY, f, "")] == ["a", "b"]
    assert store.get(POLICY, f, "", "a").document == {"Sid": "a"}  # type: ignore[union-attr]
    assert [r.function for r in store.list(URL, key=url_id)] == [f]
    first = store.get(POLICY, f, "", "b")
    again = store.put(POLICY, f, "", "b", {"Sid": "b2"})
    assert first is not None and again is not None and again.created_at == first.created_at
    assert store.delete(POLICY, f, "", "a") == 1 and store.delete(POLICY, f, "", "a") == 0
    store.delete_function(f)
    assert store.list(POLICY, f) == [] and store.list(URL, f) == []
    assert [r.qualifier for r in store.list(LAYER, f)] == ["1"]  # layers are not the function's
    LambdaMetaStore(store.engine)  # opening again keeps the table and its rows
    assert len(store.list(LAYER, f)) == 1
    store.delete(LAYER, f)
