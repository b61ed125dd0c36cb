"""The HTTP body codec: JSON and msgpack (unit)."""

from __future__ import annotations

import msgpack
import pytest
from firebox.runtime.errors import (
    BadRequest,
)
from firebox.runtime.http.codec import decode, encode, json_to_msgpack


def test_codec_json_and_msgpack() -> None:
    assert decode(b'{"a":1}', "application/json") == {"a": 1}
    assert decode(msgpack.packb({"a": 1}), "application/msgpack") == {"a": 1}
    with pytest.raises(BadRequest, match="malformed JSON"):
        decode(b"{", None)
    with pytest.raises(BadRequest, match="malformed msgpack"):
        decode(b"\xc1", "application/x-msgpack")
    body, media = encode({"x": 1}, "application/msgpack")
    assert media == "application/msgpack" and msgpack.unpackb(body) == {"x": 1}
    assert msgpack.unpackb(json_to_msgpack(b"[1,2]")) == [1, 2]
    assert msgpack.unpackb(json_to_msgpack(b"\xff raw")) == b"\xff raw"
