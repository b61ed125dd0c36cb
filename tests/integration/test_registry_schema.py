"""The registry schema upgrades in place and keeps existing data, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from firebox.runtime.storage.registry import Registry
from firebox.runtime.storage.schema import SCHEMA_VERSION

# The registry as the first release wrote it (schema version 1).
V1_DDL = [
    "CREATE TABLE functions (name VARCHAR(64) PRIMARY KEY, kind VARCHAR(16) NOT NULL,"
    " digest VARCHAR(64) NOT NULL, bundle_digest VARCHAR(64), config TEXT NOT NULL,"
    " revision INTEGER NOT NULL, created_at FLOAT NOT NULL, updated_at FLOAT NOT NULL)",
    "CREATE TABLE schema_version (version INTEGER NOT NULL)",
    "INSERT INTO schema_version (version) VALUES (1)",
]


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    return str(request.getfixturevalue("pg_schema_url"))


def test_v1_registry_is_upgraded_with_its_data(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for statement in V1_DDL:
            conn.exec_driver_sql(statement)
        conn.execute(
            sa.text("INSERT INTO functions VALUES ('old', 'module', :d, NULL, :c, 3, 1.0, 2.0)"),
            {"d": "ab" * 32, "c": json.dumps({"name": "old", "memory": 64})},
        )
    engine.dispose()

    registry = Registry(url)
    assert registry.upgraded_from == 1
    old = registry.get("old")
    assert (old.revision, old.config["memory"], old.tags) == (3, 64, {})
    assert registry.publish("old").version == "1"  # the new tables work on upgraded data
    registry.put_alias("old", "live", "1", create=True)
    registry.close()

    again = Registry(url)  # opening an up-to-date registry changes nothing
    assert again.upgraded_from == SCHEMA_VERSION == 3
    assert again.alias("old", "live") is not None
    again.close()
