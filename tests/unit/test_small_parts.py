"""Log capture bounds, wire codecs, artifact sniffing, the error table, credentials."""

from __future__ import annotations

from pathlib import Path

import msgpack
import pytest
from firebox.runtime.artifacts import artifact_kind
from firebox.runtime.credentials import load_or_create, verify_bearer
from firebox.runtime.errors import (
    BadRequest,
    FireboxError,
    Forbidden,
    HandlerError,
    InvalidArtifact,
    Throttled,
    TimedOut,
    Unauthorized,
    error_from_dict,
)
from firebox.runtime.host.log import LogBuffer
from firebox.runtime.http.codec import decode, encode, json_to_msgpack
from firebox.runtime.http.errors import STATUS, status_of
from firebox.runtime.wire import pack, unpack


def test_log_buffer_truncates_once_with_a_marker() -> None:
    log = LogBuffer(limit=10)
    log.write("12345")
    log.write("67890abc")
    log.write("more")
    assert log.text().startswith("1234567890")
    assert log.text().count("log truncated") == 1
    assert log.truncated


def test_log_buffer_counts_bytes_not_characters() -> None:
    log = LogBuffer(limit=4)
    log.write("ééé")  # 6 bytes
    assert log.text().startswith("éé")
    assert log.truncated


@pytest.mark.parametrize(
    ("data", "kind"),
    [(b"\0asm\x01\0\0\0", "module"), (b"\0asm\x0d\0\x01\0", "component")],
)
def test_artifact_kind(data: bytes, kind: str) -> None:
    assert artifact_kind(data) == kind


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"", "only 0 bytes"), (b"PK\x03\x04zipzip", "bad magic"), (b"(module)  ", "WAT text"),
     (b"\0asm\x02\0\0\0", "unsupported")],
)  # fmt: skip
def test_artifact_kind_refuses_non_wasm(data: bytes, message: str) -> None:
    with pytest.raises(InvalidArtifact, match=message):
        artifact_kind(data)


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


def test_wire_frames_round_trip() -> None:
    frame = pack({"op": "invoke", "payload": b"\x00\x01"})
    assert unpack(frame[4:]) == {"op": "invoke", "payload": b"\x00\x01"}


def test_every_error_type_has_a_4xx_or_5xx_status_and_survives_the_wire() -> None:
    for cls in STATUS:
        assert 400 <= STATUS[cls] < 600
    assert status_of(Throttled("f", 2)) == 429
    assert status_of(TimedOut(1.0)) == 504
    err = error_from_dict(HandlerError({"errorMessage": "boom", "errorType": "KeyError"}).to_dict())
    assert isinstance(err, HandlerError) and err.payload["errorType"] == "KeyError"
    assert type(error_from_dict({"type": "Nope", "message": "m"})) is FireboxError


def test_credentials_generated_once_and_verified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FIREBOX_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("FIREBOX_SECRET_ACCESS_KEY", raising=False)
    creds, generated = load_or_create(tmp_path)
    assert generated
    assert (tmp_path / "credentials.json").stat().st_mode & 0o777 == 0o600
    again, generated_again = load_or_create(tmp_path)
    assert again == creds and not generated_again
    known = {creds.access_key_id: creds.secret_access_key}
    assert verify_bearer(f"Bearer {creds.access_key_id}:{creds.secret_access_key}", known)
    with pytest.raises(Unauthorized):
        verify_bearer(None, known)
    with pytest.raises(Unauthorized):
        verify_bearer("Bearer OTHER:x", known)
    with pytest.raises(Forbidden):
        verify_bearer(f"Bearer {creds.access_key_id}:wrong", known)
    monkeypatch.setenv("FIREBOX_ACCESS_KEY_ID", "AKID")
    monkeypatch.setenv("FIREBOX_SECRET_ACCESS_KEY", "sekrit")
    assert load_or_create(tmp_path)[0].access_key_id == "AKID"
