"""JSON and msgpack bodies, chosen by Content-Type and Accept (front-end layer)."""

from __future__ import annotations

import json
from typing import Any

import msgpack
from firebox.runtime.errors import BadRequest

JSON = "application/json"
MSGPACK = "application/msgpack"
MSGPACK_TYPES = ("application/msgpack", "application/x-msgpack", "application/vnd.msgpack")


def is_msgpack(content_type: str | None) -> bool:
    """Return True if a Content-Type or Accept header asks for msgpack."""
    return bool(content_type) and any(t in content_type for t in MSGPACK_TYPES)  # type: ignore[operator]


def decode(body: bytes, content_type: str | None) -> Any:
    """Decode a request body as msgpack or JSON; raises BadRequest naming the problem."""
    if is_msgpack(content_type):
        try:
            return msgpack.unpackb(body, raw=False)
        except Exception as exc:
            raise BadRequest(f"malformed msgpack body: {exc}") from None
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"malformed JSON body: {exc}") from None


def encode(value: Any, accept: str | None) -> tuple[bytes, str]:
    """Encode `value` as msgpack if `accept` asks for it, else JSON; return (body, media type)."""
    if is_msgpack(accept):
        return bytes(msgpack.packb(value, use_bin_type=True)), MSGPACK
    return json.dumps(value).encode(), JSON


def json_to_msgpack(data: bytes) -> bytes:
    """Re-encode a guest's JSON output as msgpack (non-JSON output becomes a msgpack bin)."""
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        value = data
    return bytes(msgpack.packb(value, use_bin_type=True))
