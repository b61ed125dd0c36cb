"""Multipart uploads of the S3 API: uploads and their parts in SQL, part bytes in files
under the node's data dir, assembled into one object on completion (storage layer).

A part is streamed to a file by the front end and moved here; completing an upload
concatenates the chosen parts into one file (never holding a part in memory) and
computes the object's sha256 and its S3 ETag, the MD5 of the parts' MD5s with `-<count>`.
Part files live on the node that received them: with several nodes, a client sends an
upload's parts to one node (or the nodes share the data dir).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from firebox.runtime.storage.data_meta import data_metadata

uploads = sa.Table(
    "fb_s3_uploads",
    data_metadata,
    sa.Column("upload_id", sa.String(64), primary_key=True),
    sa.Column("bucket", sa.String(64), nullable=False, index=True),
    sa.Column("key", sa.String(1024), nullable=False),
    sa.Column("headers", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

parts = sa.Table(
    "fb_s3_parts",
    data_metadata,
    sa.Column("upload_id", sa.String(64), primary_key=True),
    sa.Column("part_number", sa.Integer, primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("md5", sa.String(32), nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

# S3's own bounds: part numbers 1-10000, every part but the last at least 5 MiB.
MAX_PART_NUMBER = 10_000
MIN_PART_BYTES = 5 * 1024 * 1024
# Open uploads per node: each holds files on disk until completed or aborted.
MAX_UPLOADS = 1000
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Upload:
    """An open multipart upload: its id, target, headers for the object, start time."""

    upload_id: str
    bucket: str
    key: str
    headers: dict[str, str]
    created_at: float


@dataclass(frozen=True)
class Part:
    """An uploaded part: its number, size in bytes, MD5 (hex, the part's ETag), mtime."""

    number: int
    size: int
    md5: str
    updated_at: float


@dataclass(frozen=True)
class Assembled:
    """A completed upload's object: its file, size, sha256 and S3 ETag."""

    path: Path
    size: int
    digest: str
    etag: str


class PartsRejected(Exception):
    """The part list of a completion is wrong; `code` is S3's error code for it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class MultipartStore:
    """Open uploads and their parts: rows in SQL, part files under `root`."""

    def __init__(self, engine: sa.Engine, root: Path) -> None:
        self.engine = engine
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        data_metadata.create_all(engine, tables=[uploads, parts], checkfirst=True)

    def create(self, bucket: str, key: str, headers: dict[str, str]) -> Upload:
        """Start an upload of `bucket/key`; raises OverflowError past MAX_UPLOADS."""
        upload = Upload(secrets.token_hex(16), bucket, key, headers, time.time())
        with self.engine.begin() as conn:
            count = conn.execute(sa.select(sa.func.count()).select_from(uploads)).scalar()
            if int(count or 0) >= MAX_UPLOADS:
                raise OverflowError(f"at most {MAX_UPLOADS} open multipart uploads")
            conn.execute(
                uploads.insert().values(
                    upload_id=upload.upload_id,
                    bucket=bucket,
                    key=key,
                    headers=json.dumps(headers),
                    created_at=upload.created_at,
                )
            )
        (self.root / upload.upload_id).mkdir(exist_ok=True)
        return upload

    def get(self, upload_id: str) -> Upload | None:
        """Return the open upload `upload_id`, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(uploads).where(uploads.c.upload_id == upload_id)).first()
        if row is None:
            return None
        return Upload(row.upload_id, row.bucket, row.key, json.loads(row.headers), row.created_at)

    def open_uploads(self, bucket: str, limit: int) -> list[Upload]:
        """Return up to `limit` open uploads of `bucket`, by key then start time."""
        query = (
            sa.select(uploads)
            .where(uploads.c.bucket == bucket)
            .order_by(uploads.c.key, uploads.c.created_at)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).fetchall()
        return [
            Upload(r.upload_id, r.bucket, r.key, json.loads(r.headers), r.created_at) for r in rows
        ]

    def put_part(self, upload_id: str, number: int, source: Path, md5: str) -> Part:
        """Move the file `source` in as part `number` of `upload_id` (replacing any)."""
        size = source.stat().st_size
        folder = self.root / upload_id
        folder.mkdir(exist_ok=True)
        source.replace(folder / str(number))
        part = Part(number, size, md5, time.time())
        where = sa.and_(parts.c.upload_id == upload_id, parts.c.part_number == number)
        with self.engine.begin() as conn:
            conn.execute(parts.delete().where(where))
            conn.execute(
                parts.insert().values(
                    upload_id=upload_id,
                    part_number=number,
                    size=size,
                    md5=md5,
                    updated_at=part.updated_at,
                )
            )
        return part

    def parts(self, upload_id: str, after: int = 0, limit: int = MAX_PART_NUMBER) -> list[Part]:
        """Return the parts of `upload_id` numbered above `after`, in order, at most `limit`."""
        query = (
            sa.select(parts)
            .where(parts.c.upload_id == upload_id, parts.c.part_number > after)
            .order_by(parts.c.part_number)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).fetchall()
        return [Part(r.part_number, int(r.size), r.md5, float(r.updated_at)) for r in rows]

    def assemble(self, upload_id: str, chosen: list[tuple[int, str]], dest: Path) -> Assembled:
        """Concatenate the parts `chosen` (number, ETag without quotes) into `dest`.

        Raises PartsRejected (InvalidPartOrder, InvalidPart, EntityTooSmall).
        """
        if not chosen:
            raise PartsRejected("MalformedXML", "The XML you provided did not list any part.")
        numbers = [number for number, _ in chosen]
        if numbers != sorted(set(numbers)):
            raise PartsRejected("InvalidPartOrder", "The list of parts was not in ascending order.")
        stored = {part.number: part for part in self.parts(upload_id)}
        for index, (number, etag) in enumerate(chosen):
            part = stored.get(number)
            if part is None or part.md5 != etag.strip('"').lower():
                raise PartsRejected(
                    "InvalidPart",
                    f"Part {number} could not be found, or its ETag does not match.",
                )
            if index < len(chosen) - 1 and part.size < MIN_PART_BYTES:
                raise PartsRejected(
                    "EntityTooSmall",
                    f"Part {number} is {part.size} bytes: every part but the last must be"
                    f" at least {MIN_PART_BYTES} bytes.",
                )
        sha, md5s, size = hashlib.sha256(), hashlib.md5(), 0
        with dest.open("wb") as out:
            for number, _ in chosen:
                md5s.update(bytes.fromhex(stored[number].md5))
                with (self.root / upload_id / str(number)).open("rb") as part_file:
                    while chunk := part_file.read(_CHUNK):
                        sha.update(chunk)
                        out.write(chunk)
                        size += len(chunk)
        etag = f"{md5s.hexdigest()}-{len(chosen)}"
        return Assembled(dest, size, sha.hexdigest(), etag)

    def finish(self, upload_id: str) -> None:
        """Forget upload `upload_id` and remove its part files (complete or abort)."""
        with self.engine.begin() as conn:
            conn.execute(parts.delete().where(parts.c.upload_id == upload_id))
            conn.execute(uploads.delete().where(uploads.c.upload_id == upload_id))
        shutil.rmtree(self.root / upload_id, ignore_errors=True)
