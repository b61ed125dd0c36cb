"""The log host API (runtime/host/log.py): the per-call budget and core-module lines."""

from __future__ import annotations

from firebox.runtime.host import HOST_APIS
from firebox.runtime.host.api import HostState
from firebox.runtime.host.log import API, LogBuffer, write_log


class Memory:
    """A guest memory over bytes."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, ptr: int, length: int) -> bytes | None:
        return self.data[ptr : ptr + length] if ptr + length <= len(self.data) else None


def test_the_budget_truncates_then_drops() -> None:
    sink = LogBuffer(1000)
    state = HostState(sink, log_budget=8)
    write_log(state, "hello ")
    write_log(state, "world")
    write_log(state, "more")
    assert sink.text() == "hello wo" and state.log_budget == 0


def test_without_a_budget_the_buffer_bounds_itself() -> None:
    sink = LogBuffer(5)
    write_log(HostState(sink), "1234567")
    assert sink.text().startswith("12345") and sink.truncated


def test_core_log_reads_guest_memory_and_ends_the_line() -> None:
    sink = LogBuffer(100)
    state = HostState(sink)
    log = API.core["log"]
    log.call(state, Memory(b"xxhi\xffthere"), 2, 3)
    log.call(state, Memory(b"ok\n"), 0, 3)
    log.call(state, Memory(b"short"), 3, 10)  # out of bounds: ignored
    assert sink.text() == "hi\ufffd\nok\n"
    assert (log.params, log.results) == (("i32", "i32"), ())


def test_components_get_log_and_the_clock_from_the_host_interface() -> None:
    assert API in HOST_APIS
    assert API.wit_instance == "firebox:function/host@1.0.0"
    assert set(API.component) == {"log", "monotonic-ms"}
    sink = LogBuffer(100)
    API.component["log"](HostState(sink, log_budget=100), "info", "line\n")
    assert sink.text() == "line\n"
    assert isinstance(API.component["monotonic-ms"](HostState()), int)


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
