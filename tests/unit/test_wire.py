"""The supervisor <-> worker frames (unit)."""

from __future__ import annotations

from firebox.runtime.wire import pack, unpack


def test_wire_frames_round_trip() -> None:
    frame = pack({"op": "invoke", "payload": b"\x00\x01"})
    assert unpack(frame[4:]) == {"op": "invoke", "payload": b"\x00\x01"}
