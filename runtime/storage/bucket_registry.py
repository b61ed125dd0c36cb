"""The S3 API's explicit buckets: a table of created buckets beside the implicit ones
functions make by writing (storage layer).

Functions and the native API create a bucket by putting its first object (`buckets.py`);
the S3 API also has CreateBucket and DeleteBucket, so a bucket can exist empty. A bucket
exists when it is in this table or holds an object; DeleteBucket refuses one that holds
objects, as S3 does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import sqlalchemy as sa
from firebox.runtime.storage.buckets import BucketStore, objects
from firebox.runtime.storage.data_meta import data_metadata

registered = sa.Table(
    "fb_s3_buckets",
    data_metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("created_at", sa.Float, nullable=False),
)

# A hostile caller cannot fill the database with empty buckets (S3's default quota is 10000).
MAX_BUCKETS = 10_000


@dataclass(frozen=True)
class Bucket:
    """A bucket's name and creation time (its first object's time for an implicit one)."""

    name: str
    created_at: float


class BucketRegistry:
    """Created buckets (SQL rows) and implicit ones (any bucket holding an object)."""

    def __init__(self, engine: sa.Engine, store: BucketStore) -> None:
        self.engine = engine
        self.store = store
        data_metadata.create_all(engine, tables=[registered], checkfirst=True)

    def create(self, name: str) -> bool:
        """Register bucket `name`; return False when it already existed. Raises
        OverflowError past MAX_BUCKETS."""
        if self.exists(name):
            return False
        try:
            with self.engine.begin() as conn:
                count = conn.execute(sa.select(sa.func.count()).select_from(registered)).scalar()
                if int(count or 0) >= MAX_BUCKETS:
                    raise OverflowError(f"at most {MAX_BUCKETS} buckets")
                conn.execute(registered.insert().values(name=name, created_at=time.time()))
        except sa.exc.IntegrityError:
            return False
        return True

    def exists(self, name: str) -> bool:
        """Return True when bucket `name` was created or holds an object."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(registered.c.name).where(registered.c.name == name))
            if row.first() is not None:
                return True
            return not self._empty(conn, name)

    def is_empty(self, name: str) -> bool:
        """Return True when bucket `name` holds no object."""
        with self.engine.connect() as conn:
            return self._empty(conn, name)

    def delete(self, name: str) -> None:
        """Forget a created bucket (the caller checked it is empty)."""
        with self.engine.begin() as conn:
            conn.execute(registered.delete().where(registered.c.name == name))

    def all(self) -> list[Bucket]:
        """Return every bucket, created or implicit, by name."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(registered)).fetchall()
            found = {row.name: Bucket(row.name, float(row.created_at)) for row in rows}
            implicit = conn.execute(
                sa.select(objects.c.bucket, sa.func.min(objects.c.updated_at)).group_by(
                    objects.c.bucket
                )
            ).fetchall()
        for name, first in implicit:
            found.setdefault(name, Bucket(name, float(first)))
        return [found[name] for name in sorted(found)]

    @staticmethod
    def _empty(conn: sa.Connection, name: str) -> bool:
        row = conn.execute(sa.select(objects.c.key).where(objects.c.bucket == name).limit(1))
        return row.first() is None
