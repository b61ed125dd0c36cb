"""The function registry: what is deployed, on SQLite by default (storage layer).

One SQLAlchemy Core code path serves every backend the URL names (SQLite in the data
dir by default; PostgreSQL for many nodes comes with the functions-lifecycle work).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

SCHEMA_VERSION = 1

metadata = sa.MetaData()

functions = sa.Table(
    "functions",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("bundle_digest", sa.String(64), nullable=True),
    sa.Column("config", sa.Text, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False, default=1),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

schema = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, nullable=False),
)


@dataclass(frozen=True)
class FunctionRecord:
    """A deployed function as the registry stores it."""

    name: str
    kind: str
    digest: str
    bundle_digest: str | None
    config: dict[str, Any]
    revision: int
    created_at: float
    updated_at: float


def registry_url(data_dir: Path, url: str | None = None) -> str:
    """Return the registry URL: the given one, or SQLite in the data dir."""
    return url or f"sqlite:///{data_dir / 'registry.db'}"


class Registry:
    """Functions by name, on any SQLAlchemy-supported database."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url, future=True)
        if url.startswith("sqlite"):
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA journal_mode=WAL")
        metadata.create_all(self.engine)
        with self.engine.begin() as conn:
            if conn.execute(sa.select(schema.c.version)).first() is None:
                conn.execute(schema.insert().values(version=SCHEMA_VERSION))

    def put(
        self, name: str, kind: str, digest: str, config: dict[str, Any], bundle_digest: str | None
    ) -> FunctionRecord:
        """Create or replace a function; returns the stored record (revision bumped)."""
        now = time.time()
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(functions.c.revision, functions.c.created_at).where(
                    functions.c.name == name
                )
            ).first()
            values = {
                "kind": kind,
                "digest": digest,
                "bundle_digest": bundle_digest,
                "config": json.dumps(config, sort_keys=True),
                "updated_at": now,
            }
            if row is None:
                conn.execute(
                    functions.insert().values(name=name, revision=1, created_at=now, **values)
                )
            else:
                conn.execute(
                    functions.update()
                    .where(functions.c.name == name)
                    .values(revision=row.revision + 1, **values)
                )
        record = self.get(name)
        assert record is not None
        return record

    def get(self, name: str) -> FunctionRecord | None:
        """Return the function named `name`, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(functions).where(functions.c.name == name)).first()
        return _record(row) if row is not None else None

    def list(self) -> list[FunctionRecord]:
        """Return every function, by name."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(functions).order_by(functions.c.name)).all()
        return [_record(r) for r in rows]

    def delete(self, name: str) -> bool:
        """Delete a function; return False if it did not exist."""
        with self.engine.begin() as conn:
            result = conn.execute(functions.delete().where(functions.c.name == name))
        return bool(result.rowcount)

    def digests_in_use(self) -> set[str]:
        """Return every artifact digest some function still references."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(functions.c.digest, functions.c.bundle_digest)).all()
        return {d for row in rows for d in row if d}

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()


def _record(row: Any) -> FunctionRecord:
    return FunctionRecord(
        name=row.name,
        kind=row.kind,
        digest=row.digest,
        bundle_digest=row.bundle_digest,
        config=json.loads(row.config),
        revision=row.revision,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
