"""The HTTP body codec: JSON and msgpack (unit)."""

from __future__ import annotations

import msgpack
import pytest
from firebox.runtime.errors import (
    BadRequest,
)
from firebox.runtime.http.codec import MSGPACK, decode, encode, json_to_msgpack, msgpack_to_json


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


@pytest.mark.parametrize(
    ("body", "content_type", "says"),
    [
        (b'{"a": 1' + b"0" * 5000 + b"}", None, "malformed JSON"),
        (b"[" * 100_000 + b"]" * 100_000, None, "deeper"),
        (b"[" * 300 + b"]" * 300, None, "deeper"),
        (b'"\\udcff"', None, "surrogate"),
        (b'{"\\ud800": 1}', None, "surrogate"),
        (msgpack.packb(msgpack.ExtType(5, b"x")), MSGPACK, "ExtType"),
        (msgpack.packb(msgpack.Timestamp(1, 0)), MSGPACK, "Timestamp"),
        (msgpack.packb({b"k": 1}, use_bin_type=True), MSGPACK, "keys must be strings"),
        (b"\x91" * 100_000 + b"\xc0", MSGPACK, "msgpack"),
    ],
)
def test_decode_refuses_what_has_no_plain_form(
    body: bytes, content_type: str | None, says: str
) -> None:
    with pytest.raises(BadRequest, match=says):
        decode(body, content_type)


def test_msgpack_events_become_json_or_a_bad_request() -> None:
    assert msgpack_to_json(msgpack.packb({"a": [1, "x", None]})) == b'{"a": [1, "x", null]}'
    assert decode(msgpack.packb({"code": b"\x00"}, use_bin_type=True), MSGPACK) == {"code": b"\x00"}
    with pytest.raises(BadRequest, match="bin"):
        msgpack_to_json(msgpack.packb({"a": b"\x00"}, use_bin_type=True))
