"""Blob buckets for functions and the native API: objects by key with metadata, ranged
reads and prefix/paged listing (storage layer).

An object's metadata (size, etag, content type, its content's sha256) is a row in one
SQL table, beside the key-value tables (SQLite for one node, PostgreSQL for many); its
bytes are content-addressed in a `BlobStore` (the artifact seam's protocol): files
under the data dir for one node, a PostgreSQL `bytea` table for many, so every node
reads what any node wrote without a shared disk. Same bytes under two keys are stored
once. Buckets spring into being on their first put; a grant names them.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import sqlalchemy as sa
from firebox.runtime import config
from firebox.runtime.errors import BadRequest, ItemNotFound, PayloadTooLarge
from firebox.runtime.storage import changes
from firebox.runtime.storage.blobs import BlobStore
from firebox.runtime.storage.data_meta import data_metadata
from firebox.runtime.storage.kv import DEFAULT_PAGE, MAX_PAGE

objects = sa.Table(
    "fb_bucket_objects",
    data_metadata,
    sa.Column("bucket", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(1024), primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("digest", sa.String(64), nullable=False, index=True),
    sa.Column("content_type", sa.String(255), nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

contents = sa.Table(
    "fb_bucket_contents",
    data_metadata,
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
)

MAX_KEY_BYTES = 1024
DEFAULT_CONTENT_TYPE = "application/octet-stream"


@dataclass(frozen=True)
class ObjectInfo:
    """An object's metadata: key, size in bytes, etag (its sha256), content type, mtime."""

    key: str
    size: int
    etag: str
    content_type: str
    updated_at: float

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-able form."""
        return {
            "key": self.key,
            "size": self.size,
            "etag": self.etag,
            "content_type": self.content_type,
            "updated_at": self.updated_at,
        }


class FileContents:
    """A BlobStore in a folder: one file per sha256, written by atomic rename."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest

    def put(self, digest: str, data: bytes) -> None:
        """Store `data` under `digest` (idempotent)."""
        path = self._path(digest)
        if path.is_file():
            return
        path.parent.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def put_file(self, digest: str, source: Path) -> None:
        """Move the file `source` (whose sha256 is `digest`) into the store (idempotent)."""
        path = self._path(digest)
        if path.is_file():
            source.unlink(missing_ok=True)
            return
        path.parent.mkdir(exist_ok=True)
        os.replace(source, path)

    def open(self, digest: str) -> BinaryIO | None:
        """Return the content under `digest` opened for reading, or None."""
        try:
            return self._path(digest).open("rb")
        except FileNotFoundError:
            return None

    def get(self, digest: str) -> bytes | None:
        """Return the bytes under `digest`, or None."""
        try:
            return self._path(digest).read_bytes()
        except FileNotFoundError:
            return None

    def delete(self, digest: str) -> None:
        """Remove `digest` if stored."""
        self._path(digest).unlink(missing_ok=True)


class SqlContents:
    """A BlobStore in the shared database's `fb_bucket_contents` table (PostgreSQL bytea)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def put(self, digest: str, data: bytes) -> None:
        """Store `data` under `digest` (idempotent, also against a racing node)."""
        try:
            with self.engine.begin() as conn:
                found = conn.execute(
                    sa.select(contents.c.digest).where(contents.c.digest == digest)
                )
                if found.first() is None:
                    conn.execute(contents.insert().values(digest=digest, data=data))
        except sa.exc.IntegrityError:
            pass

    def get(self, digest: str) -> bytes | None:
        """Return the bytes under `digest`, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(contents.c.data).where(contents.c.digest == digest)
            ).first()
        return bytes(row.data) if row is not None else None

    def delete(self, digest: str) -> None:
        """Remove `digest` if stored."""
        with self.engine.begin() as conn:
            conn.execute(contents.delete().where(contents.c.digest == digest))


def check_object_key(key: Any) -> str:
    """Return `key` if it is a usable object key; raises BadRequest."""
    if not isinstance(key, str) or not key:
        raise BadRequest("an object key must be a non-empty string")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES or "\x00" in key:
        raise BadRequest(f"an object key must be at most {MAX_KEY_BYTES} bytes, without NUL")
    return key


class BucketStore:
    """Every function's buckets: metadata rows in SQL, content in a BlobStore."""

    def __init__(self, engine: sa.Engine, content: BlobStore) -> None:
        self.engine = engine
        self.content = content
        data_metadata.create_all(
            engine, tables=[objects, contents, *changes.TABLES], checkfirst=True
        )

    def put(
        self,
        bucket: str,
        key: str,
        data: bytes,
        content_type: str | None = None,
        *,
        event: str = "ObjectCreated:Put",
        etag: str | None = None,
    ) -> ObjectInfo:
        """Store `data` as `bucket/key` (replacing any object there); return its metadata.

        The bucket's notifications matching `event` get a record (with `etag`, the
        content's sha256 by default) committed with the object (runtime/storage/changes.py).
        Raises PayloadTooLarge past FIREBOX_BLOB_MAX_OBJECT_BYTES, BadRequest for a bad key.
        """
        check_object_key(key)
        limit = config.FIREBOX_BLOB_MAX_OBJECT_BYTES.get()
        if len(data) > limit:
            raise PayloadTooLarge("an object", len(data), limit)
        content_type = (content_type or DEFAULT_CONTENT_TYPE)[:255]
        digest = hashlib.sha256(data).hexdigest()
        self.content.put(digest, data)  # before the row: a reader never sees a dangling row
        now = time.time()
        where = sa.and_(objects.c.bucket == bucket, objects.c.key == key)
        values = {"size": len(data), "digest": digest, "content_type": content_type}
        for _ in range(3):
            try:
                with self.engine.begin() as conn:
                    old = conn.execute(sa.select(objects.c.digest).where(where)).first()
                    if old is None:
                        conn.execute(
                            objects.insert().values(
                                bucket=bucket, key=key, updated_at=now, **values
                            )
                        )
                    else:
                        conn.execute(objects.update().where(where).values(updated_at=now, **values))
                    changes.capture_object(conn, bucket, key, event, now, len(data), etag or digest)
                break
            except sa.exc.IntegrityError:
                continue
        if old is not None and old.digest != digest:
            self._release(old.digest)
        return ObjectInfo(key, len(data), digest, content_type, now)

    def head(self, bucket: str, key: str) -> ObjectInfo | None:
        """Return an object's metadata, or None."""
        check_object_key(key)
        where = sa.and_(objects.c.bucket == bucket, objects.c.key == key)
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(objects).where(where)).first()
        return _info(row) if row is not None else None

    def get(
        self, bucket: str, key: str, start: int | None = None, end: int | None = None
    ) -> tuple[ObjectInfo, bytes]:
        """Return an object's metadata and bytes `[start, end)` (the whole object by default).

        Raises ItemNotFound when there is no such object, BadRequest for a bad range.
        """
        info = self.head(bucket, key)
        if info is None:
            raise ItemNotFound(f"no object {key!r} in bucket {bucket!r}")
        data = self.content.get(info.etag)
        if data is None:  # deleted between the two reads
            raise ItemNotFound(f"no object {key!r} in bucket {bucket!r}")
        if start is None and end is None:
            return info, data
        first = 0 if start is None else start
        last = info.size if end is None else min(end, info.size)
        if first < 0 or first > last or (first >= info.size and info.size > 0):
            raise BadRequest(f"range {start}-{end} is outside the object's {info.size} bytes")
        return info, data[first:last]

    def put_file(
        self,
        bucket: str,
        key: str,
        source: Path,
        digest: str,
        content_type: str | None = None,
        *,
        event: str = "ObjectCreated:Put",
        etag: str | None = None,
    ) -> ObjectInfo:
        """Store the file `source` (sha256 `digest`) as `bucket/key`, moving it into a file
        content store (read into memory for the database one); return its metadata.

        The streaming path of the S3 API: the caller bounds the size. Raises BadRequest for
        a bad key.
        """
        check_object_key(key)
        size = source.stat().st_size
        content_type = (content_type or DEFAULT_CONTENT_TYPE)[:255]
        if isinstance(self.content, FileContents):
            self.content.put_file(digest, source)
        else:
            self.content.put(digest, source.read_bytes())
            source.unlink(missing_ok=True)
        now = time.time()
        where = sa.and_(objects.c.bucket == bucket, objects.c.key == key)
        values = {"size": size, "digest": digest, "content_type": content_type}
        old = None
        for _ in range(3):
            try:
                with self.engine.begin() as conn:
                    old = conn.execute(sa.select(objects.c.digest).where(where)).first()
                    conn.execute(objects.delete().where(where))
                    conn.execute(
                        objects.insert().values(bucket=bucket, key=key, updated_at=now, **values)
                    )
                    changes.capture_object(conn, bucket, key, event, now, size, etag or digest)
                break
            except sa.exc.IntegrityError:
                continue
        if old is not None and old.digest != digest:
            self._release(old.digest)
        return ObjectInfo(key, size, digest, content_type, now)

    def open_content(self, info: ObjectInfo) -> BinaryIO | None:
        """Return the content of the object `info` describes opened for reading (a file for
        the file content store), or None when it is gone."""
        if isinstance(self.content, FileContents):
            return self.content.open(info.etag)
        data = self.content.get(info.etag)
        return io.BytesIO(data) if data is not None else None

    def delete(self, bucket: str, key: str) -> bool:
        """Remove `bucket/key`; return True if it existed."""
        check_object_key(key)
        where = sa.and_(objects.c.bucket == bucket, objects.c.key == key)
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(objects.c.digest).where(where)).first()
            conn.execute(objects.delete().where(where))
            if row is not None:
                changes.capture_object(conn, bucket, key, "ObjectRemoved:Delete", time.time())
        if row is not None:
            self._release(row.digest)
        return row is not None

    def list_objects(
        self, bucket: str, prefix: str = "", *, limit: int | None = None, cursor: str | None = None
    ) -> tuple[list[ObjectInfo], str | None]:
        """Return objects whose key starts with `prefix`, in key order, and the cursor of
        the next page (None at the end)."""
        size = DEFAULT_PAGE if limit is None else limit
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_PAGE:
            raise BadRequest(f"`limit` must be an integer from 1 to {MAX_PAGE}")
        if not isinstance(prefix, str) or (cursor is not None and not isinstance(cursor, str)):
            raise BadRequest("`prefix` and `cursor` must be strings")
        query = sa.select(objects).where(objects.c.bucket == bucket)
        if prefix:
            query = query.where(sa.func.substr(objects.c.key, 1, len(prefix)) == prefix)
        if cursor:
            query = query.where(objects.c.key > cursor)
        query = query.order_by(objects.c.key).limit(size + 1)
        with self.engine.connect() as conn:
            rows = conn.execute(query).fetchall()
        found = [_info(row) for row in rows[:size]]
        return found, (found[-1].key if len(rows) > size else None)

    def buckets(self) -> list[dict[str, Any]]:
        """Return every bucket that holds objects, with its object count and bytes."""
        query = (
            sa.select(objects.c.bucket, sa.func.count(), sa.func.sum(objects.c.size))
            .group_by(objects.c.bucket)
            .order_by(objects.c.bucket)
        )
        with self.engine.connect() as conn:
            return [
                {"name": row[0], "objects": int(row[1]), "bytes": int(row[2] or 0)}
                for row in conn.execute(query)
            ]

    def _release(self, digest: str) -> None:
        # Content is shared by every key holding the same bytes: drop it with the last one.
        with self.engine.connect() as conn:
            used = conn.execute(
                sa.select(objects.c.key).where(objects.c.digest == digest).limit(1)
            ).first()
        if used is None:
            self.content.delete(digest)


def _info(row: Any) -> ObjectInfo:
    return ObjectInfo(
        key=row.key,
        size=int(row.size),
        etag=row.digest,
        content_type=row.content_type,
        updated_at=float(row.updated_at),
    )
