"""`firebox.blobs`: the blob buckets a function was granted (guest side).

    import firebox
    uploads = firebox.blobs.bucket("uploads")
    uploads.put("a/report.csv", b"...", content_type="text/csv")
    uploads.get("a/report.csv")              # bytes, or None
    uploads.get("a/report.csv", start=0, end=100)
    uploads.head("a/report.csv").size
    for info in uploads.iter(prefix="a/"):   # every page, in key order
        ...

One call moves at most the node's object size cap (6 MiB by default, Lambda's payload
limit); bytes cross the host boundary base64-encoded.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any, NamedTuple

from firebox_guest_capability import call


class ObjectInfo(NamedTuple):
    """An object's metadata: key, size, etag (sha256), content type, last write time."""

    key: str
    size: int
    etag: str
    content_type: str
    updated_at: float


def _info(data: Any) -> ObjectInfo | None:
    if data is None:
        return None
    return ObjectInfo(
        data["key"], int(data["size"]), data["etag"], data["content_type"], data["updated_at"]
    )


class Bucket:
    """A granted blob bucket (reads need `read`, writes `write`; `readwrite` both)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def put(self, key: str, data: bytes | str, content_type: str | None = None) -> ObjectInfo:
        """Store `data` (str is UTF-8 encoded) at `key` and return its metadata."""
        raw = data.encode() if isinstance(data, str) else bytes(data)
        reply = call(
            "blob.put", bucket=self.name, key=key, content_type=content_type,
            data=base64.b64encode(raw).decode(),
        )  # fmt: skip
        info = _info(reply["object"])
        assert info is not None
        return info

    def get(self, key: str, *, start: int | None = None, end: int | None = None) -> bytes | None:
        """Return the object's bytes (`[start, end)` if given), or None if there is none."""
        reply = call("blob.get", bucket=self.name, key=key, start=start, end=end)
        if reply["object"] is None:
            return None
        return base64.b64decode(reply["data"])

    def head(self, key: str) -> ObjectInfo | None:
        """Return the object's metadata, or None."""
        return _info(call("blob.head", bucket=self.name, key=key)["object"])

    def delete(self, key: str) -> bool:
        """Remove the object; return True if it was there."""
        return bool(call("blob.delete", bucket=self.name, key=key)["deleted"])

    def list(
        self, prefix: str = "", *, limit: int | None = None, cursor: str | None = None
    ) -> tuple[list[ObjectInfo], str | None]:
        """Return one page of objects under `prefix` in key order, and the next cursor."""
        reply = call("blob.list", bucket=self.name, prefix=prefix, limit=limit, cursor=cursor)
        found = [info for info in map(_info, reply["objects"]) if info is not None]
        return found, reply.get("cursor")

    def iter(self, prefix: str = "", *, page_size: int | None = None) -> Iterator[ObjectInfo]:
        """Yield every object under `prefix`, reading page after page."""
        cursor: str | None = None
        while True:
            found, cursor = self.list(prefix, limit=page_size, cursor=cursor)
            yield from found
            if cursor is None:
                return


def bucket(name: str) -> Bucket:
    """Return the granted bucket `name` (nothing is checked until the first call)."""
    return Bucket(name)
