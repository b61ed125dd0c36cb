"""Where artifacts are shared between nodes: the `BlobStore` interface and its SQL-table
backend (storage layer).

Each node keeps every artifact it uses on its own disk (`runtime/artifacts.py`); a blob
store is the copy the other nodes fetch from. With a one-node SQLite registry there is
none. `backends.open_blob_store` picks one; an S3-compatible store is a new class here
(or beside it) and one line there, without touching the registry.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import sqlalchemy as sa
from firebox.runtime.storage.schema import blobs


@runtime_checkable
class BlobStore(Protocol):
    """Content-addressed artifacts by their sha256 digest, shared by every node."""

    def put(self, digest: str, data: bytes) -> None:
        """Store `data` under `digest` (idempotent: the same digest is the same bytes)."""
        ...

    def get(self, digest: str) -> bytes | None:
        """Return the bytes stored under `digest`, or None."""
        ...

    def delete(self, digest: str) -> None:
        """Remove `digest` if stored."""
        ...


class SqlBlobStore:
    """Blobs in the registry database's `blobs` table (PostgreSQL when nodes share one)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def put(self, digest: str, data: bytes) -> None:
        """Store an artifact for the other nodes (idempotent)."""
        try:
            with self.engine.begin() as conn:
                found = conn.execute(sa.select(blobs.c.digest).where(blobs.c.digest == digest))
                if found.first() is None:
                    conn.execute(blobs.insert().values(digest=digest, data=data))
        except sa.exc.IntegrityError:
            pass  # another node stored the same content at the same moment: the same bytes

    def get(self, digest: str) -> bytes | None:
        """Return a shared artifact, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(blobs.c.data).where(blobs.c.digest == digest)).first()
        return bytes(row.data) if row is not None else None

    def delete(self, digest: str) -> None:
        """Remove a shared artifact."""
        with self.engine.begin() as conn:
            conn.execute(blobs.delete().where(blobs.c.digest == digest))
