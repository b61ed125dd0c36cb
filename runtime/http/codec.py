"""JSON and msgpack bodies, chosen by Content-Type and Accept (front-end layer).

The one place request bodies are decoded: whatever the bytes, the result is a value or a
BadRequest (never a 500): malformed text, integers over Python's digit limit, nesting
deeper than `MAX_DEPTH`, lone surrogates in strings, and msgpack ext types, timestamps or non-string keys are refused.
"""

from __future__ import annotations

import json
from typing import Any

import msgpack
from firebox.runtime.errors import BadRequest

JSON = "application/json"
MSGPACK = "application/msgpack"
MSGPACK_TYPES = ("application/msgpack", "application/x-msgpack", "application/vnd.msgpack")
# Deeper than this is refused (Python's own recursion limit is about 1000).
MAX_DEPTH = 256


def is_msgpack(content_type: str | None) -> bool:
    """Return True if a Content-Type or Accept header asks for msgpack."""
    return bool(content_type) and any(t in content_type for t in MSGPACK_TYPES)  # type: ignore[operator]


def _check_text(text: str) -> None:
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            raise BadRequest(
                f"strings must be valid Unicode; {text[:40]!r} has a lone surrogate"
            ) from None


def _check_plain(value: Any, allow_bytes: bool) -> None:
    """Raise BadRequest unless `value` is JSON's data model (and bytes, when allowed)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise BadRequest(f"the body is nested deeper than {MAX_DEPTH} levels")
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise BadRequest(f"map keys must be strings, got {type(key).__name__}")
                _check_text(key)
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, bytes) and not allow_bytes:
            raise BadRequest("bin values cannot be part of a JSON event")
        elif not isinstance(item, str | int | float | bool | bytes) and item is not None:
            raise BadRequest(f"msgpack {type(item).__name__} values are not accepted")


def decode(body: bytes, content_type: str | None) -> Any:
    """Decode a request body as msgpack or JSON; raises BadRequest naming the problem."""
    if is_msgpack(content_type):
        try:
            value = msgpack.unpackb(body, raw=False)
        except Exception as exc:
            raise BadRequest(f"malformed msgpack body: {exc}") from None
        _check_plain(value, allow_bytes=True)
        return value
    return decode_json(body)


def decode_json(body: bytes | str) -> Any:
    """Decode JSON text; raises BadRequest for malformed text, huge integers, deep nesting."""
    try:
        value = json.loads(body)
    except RecursionError:
        raise BadRequest(f"malformed JSON body: nested deeper than {MAX_DEPTH} levels") from None
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError, int digit limit
        raise BadRequest(f"malformed JSON body: {exc}") from None
    _check_plain(value, allow_bytes=False)
    return value


def msgpack_to_json(body: bytes) -> bytes:
    """Re-encode a msgpack event as JSON (what a guest reads); BadRequest if it has no JSON form."""
    value = decode(body, MSGPACK)
    _check_plain(value, allow_bytes=False)
    try:
        return json.dumps(value).encode()
    except (ValueError, RecursionError) as exc:  # NaN is fine; a lone surrogate is not
        raise BadRequest(f"the event has no JSON form: {exc}") from None


def encode(value: Any, accept: str | None) -> tuple[bytes, str]:
    """Encode `value` as msgpack if `accept` asks for it, else JSON; return (body, media type)."""
    if is_msgpack(accept):
        return bytes(msgpack.packb(value, use_bin_type=True)), MSGPACK
    return json.dumps(value).encode(), JSON


def json_to_msgpack(data: bytes) -> bytes:
    """Re-encode a guest's JSON output as msgpack (non-JSON output becomes a msgpack bin)."""
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError):
        value = data
    return bytes(msgpack.packb(value, use_bin_type=True))
