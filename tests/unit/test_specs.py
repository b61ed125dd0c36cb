"""Unit tests of what crosses to workers (specs, requests, replies) and of admission."""

from __future__ import annotations

import contextlib
import dataclasses

import msgpack
import pytest
from firebox.runtime.admission import Admission, check_payload
from firebox.runtime.errors import PayloadTooLarge, Throttled, TimedOut
from firebox.runtime.limits import Limits
from firebox.runtime.specs import Deployed, FunctionSpec, InvokeReply, InvokeRequest

SPEC = FunctionSpec(
    name="f",
    version="3",
    kind="module",
    digest="d" * 64,
    handler="",
    export="handle",
    limits=Limits(memory_mb=64, timeout_s=2.5, max_request_bytes=10),
    environment={"A": "1"},
    provisioned=2,
    concurrency=1,
)


def through_msgpack(data: dict[str, object]) -> dict[str, object]:
    out: dict[str, object] = msgpack.unpackb(msgpack.packb(data, use_bin_type=True), raw=False)
    return out


def test_spec_wire_round_trip() -> None:
    assert FunctionSpec.from_wire(through_msgpack(SPEC.to_wire())) == SPEC
    assert SPEC.digests == ("d" * 64,)
    assert dataclasses.replace(SPEC, bundle_digest="b" * 64).digests == ("d" * 64, "b" * 64)


def test_request_carries_the_spec_only_when_asked() -> None:
    request = InvokeRequest(SPEC.key, "r1", b"\x00{}", "handle", SPEC.limits, "f", "3", SPEC)
    bare = through_msgpack(request.to_wire())
    assert "spec" not in bare and bare["op"] == "invoke" and bare["fn"] == SPEC.key
    assert InvokeRequest.from_wire(bare) == dataclasses.replace(request, spec=None)
    assert InvokeRequest.from_wire(through_msgpack(request.to_wire(with_spec=True))) == request


def test_reply_round_trip_and_typed_error() -> None:
    ok = InvokeReply(ok=True, output=b"out", log="hi\n", warm=True, fuel=7, memory_bytes=65536)
    assert InvokeReply.from_wire(through_msgpack(ok.to_wire())) == ok
    assert ok.failure() is None
    failed = InvokeReply(ok=False, error=TimedOut(2.5).to_dict(), log="x")
    error = InvokeReply.from_wire(through_msgpack(failed.to_wire())).failure()
    assert isinstance(error, TimedOut)


class FakeCatalog:
    def version(self, name: str, version: str) -> Deployed:
        return Deployed("f", SPEC.key, SPEC, {}, "$LATEST")


class FakeRecorder:
    def __init__(self) -> None:
        self.rejected: list[tuple[str, str, int]] = []

    def record_rejected(self, name: str, version: str, request_id: str, code: str,
                        message: str, *, memory_mb: int, request_bytes: int) -> None:  # fmt: skip
        self.rejected.append((code, version, memory_mb))


def test_admission_caps_concurrency_and_records_rejections() -> None:
    recorder = FakeRecorder()
    admission = Admission(FakeCatalog(), recorder)  # type: ignore[arg-type]
    fn = Deployed("f", SPEC.key, SPEC, {}, "3")
    with admission.admit(fn, b"{}", "r1"):
        assert admission.inflight["f"] == 1
        with pytest.raises(Throttled), admission.admit(fn, b"{}", "r2"):
            pass
    assert admission.inflight["f"] == 0
    with pytest.raises(PayloadTooLarge), admission.admit(fn, b"x" * 11, "r3"):
        pass
    assert recorder.rejected == [("Throttled", "3", 64), ("PayloadTooLarge", "3", 64)]
    check_payload(fn, 10)
    with pytest.raises(PayloadTooLarge):
        check_payload(fn, 11)


class WideCatalog:
    def version(self, name: str, version: str) -> Deployed:
        spec = dataclasses.replace(SPEC, name=name, concurrency=1000)
        return Deployed(name, spec.key, spec, {}, "$LATEST")


def test_admission_counts_real_slots_and_shares_them_when_contended() -> None:
    admission = Admission(WideCatalog(), FakeRecorder(), slots=8)  # type: ignore[arg-type]
    assert (admission.share, admission.reserve) == (6, 2)
    flood, other, light = (Deployed(n, n, SPEC, {}, "1") for n in ("flood", "other", "light"))
    assert admission.cap("flood") == 6  # its concurrency is 1000: the node has 8 slots
    with contextlib.ExitStack() as held:
        for i in range(5):
            held.enter_context(admission.admit(flood, b"{}", f"f{i}"))
        with admission.admit(flood, b"{}", "f5"):
            with pytest.raises(Throttled, match="concurrency limit of 6"):
                held.enter_context(admission.admit(flood, b"{}", "f6"))
            held.enter_context(admission.admit(other, b"{}", "o0"))
            held.enter_context(admission.admit(other, b"{}", "o1"))
            with pytest.raises(Throttled, match="execution slots are taken"):
                held.enter_context(admission.admit(light, b"{}", "l0"))
        # One slot freed while contended: the flood (over its fair part) cannot take it
        # back; the light function (under its part) can.
        with pytest.raises(Throttled, match="fair part"):
            held.enter_context(admission.admit(flood, b"{}", "f7"))
        held.enter_context(admission.admit(light, b"{}", "l1"))
        assert admission.running == 8
    assert admission.running == 0
