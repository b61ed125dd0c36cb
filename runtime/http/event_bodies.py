"""Message and record bodies, number fields and backend calls of the event APIs (front-end layer).

Shared by the queue and stream APIs. Message and record bodies are bytes: msgpack
carries them as bin; JSON carries them as text in `body` / `data`, or base64 in
`body_base64` / `data_base64`.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

from firebox.runtime.errors import BadRequest
from starlette.requests import Request

MAX_MESSAGE_BYTES = 256 * 1024  # SQS's limit per message


def body_bytes(data: dict[str, Any], key: str) -> bytes:
    """Return `key` (bytes or text) or `key_base64` of a body; raises BadRequest."""
    value = data.get(key)
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    encoded = data.get(f"{key}_base64")
    if isinstance(encoded, str):
        try:
            return base64.b64decode(encoded, validate=True)
        except ValueError:
            raise BadRequest(f"`{key}_base64` is not valid base64") from None
    raise BadRequest(f"`{key}` (text or bytes) or `{key}_base64` is required")


def body_wire(data: bytes, request: Request, key: str) -> dict[str, Any]:
    """Return a body as the caller can read it: bytes for msgpack, text or base64 for JSON."""
    if "msgpack" in (request.headers.get("accept") or ""):
        return {key: data}
    try:
        return {key: data.decode()}
    except UnicodeDecodeError:
        return {f"{key}_base64": base64.b64encode(data).decode()}


def number_field(data: dict[str, Any], key: str, default: float | None = None) -> float | None:
    """Return `key` of a body as a float (`default` when absent); raises BadRequest."""
    value = data.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"`{key}` must be a number")
    try:
        return float(value)
    except OverflowError:
        raise BadRequest(f"`{key}` is out of range, got {value}") from None


async def call_backend(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a blocking queue or stream backend call on a thread and return its result;
    raises BadRequest for a limit the backend refused (ValueError)."""
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except ValueError as exc:  # the backends check SQS/Kinesis limits with ValueError
        raise BadRequest(str(exc)) from None
