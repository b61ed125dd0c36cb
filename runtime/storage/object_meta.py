"""What the S3 API keeps about an object beyond the bucket store's row: its S3 ETag (an
MD5, or the multipart form) and the headers it was written with (user metadata,
Content-Encoding, Cache-Control...) (storage layer).

A row describes the content it was written with (its sha256): when a function or the
native API later replaces the object, the row no longer matches and is ignored, so an
object never shows another object's metadata.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import sqlalchemy as sa
from firebox.runtime.storage.data_meta import data_metadata

object_meta = sa.Table(
    "fb_s3_object_meta",
    data_metadata,
    sa.Column("bucket", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(1024), primary_key=True),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("etag", sa.String(64), nullable=False),
    sa.Column("headers", sa.Text, nullable=False),
)


@dataclass(frozen=True)
class ObjectMeta:
    """An object's S3 ETag (without quotes) and stored headers (lowercase names)."""

    etag: str
    headers: dict[str, str]


class ObjectMetaStore:
    """S3 ETags and headers by bucket and key, valid for the content they name."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        data_metadata.create_all(engine, tables=[object_meta], checkfirst=True)

    def put(self, bucket: str, key: str, digest: str, meta: ObjectMeta) -> None:
        """Record `meta` for `bucket/key` holding the content `digest`."""
        where = sa.and_(object_meta.c.bucket == bucket, object_meta.c.key == key)
        values = {"digest": digest, "etag": meta.etag, "headers": json.dumps(meta.headers)}
        for _ in range(3):
            try:
                with self.engine.begin() as conn:
                    conn.execute(object_meta.delete().where(where))
                    conn.execute(object_meta.insert().values(bucket=bucket, key=key, **values))
                return
            except sa.exc.IntegrityError:  # a racing writer: the last one wins
                continue

    def get(self, bucket: str, key: str, digest: str) -> ObjectMeta | None:
        """Return the metadata of `bucket/key` if it describes the content `digest`."""
        where = sa.and_(object_meta.c.bucket == bucket, object_meta.c.key == key)
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(object_meta).where(where)).first()
        if row is None or row.digest != digest:
            return None
        return ObjectMeta(row.etag, dict(json.loads(row.headers)))

    def delete(self, bucket: str, key: str) -> None:
        """Forget the metadata of `bucket/key`."""
        where = sa.and_(object_meta.c.bucket == bucket, object_meta.c.key == key)
        with self.engine.begin() as conn:
            conn.execute(object_meta.delete().where(where))
