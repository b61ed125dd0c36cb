"""The wasm section rewriter and the snapshot image: LEB128, round trips, the zero-page scan."""

from __future__ import annotations

import pytest
import wasmtime
from firebox.compiler import wasm_sections as ws
from firebox.runtime.snapshot.image import SCAN_CHUNK, nonzero_runs, snapshot_module

MAIN = bytes(
    wasmtime.wat2wasm(
        """
    (module
      (global $sp (export "__stack_pointer") (mut i32) (i32.const 1024))
      (memory (export "memory") 1)
      (func (export "peek") (param i32) (result i32) local.get 0 i32.load8_u)
      (data (i32.const 100) "abc")
      (data (i32.const 60000) "xyz"))
    """
    )
)


@pytest.mark.parametrize("value", [0, 1, 63, 64, 127, 128, 300, 2**31 - 1, 2**32 - 1])
def test_unsigned_leb128_round_trips(value: int) -> None:
    assert ws.read_u32(ws.u32(value), 0) == (value, len(ws.u32(value)))


@pytest.mark.parametrize("value", [0, 1, -1, 63, 64, -64, -65, 2**31 - 1, -(2**31)])
def test_signed_leb128_round_trips(value: int) -> None:
    assert ws.read_s32(ws.s32(value), 0) == (value, len(ws.s32(value)))


def test_module_reads_its_memory_and_segments() -> None:
    assert ws.memories(MAIN) == [ws.MemoryType(0, 1, None)]
    assert ws.data_segments(MAIN) == [ws.DataSegment(100, b"abc"), ws.DataSegment(60000, b"xyz")]


def test_rewriting_with_the_same_contents_is_byte_identical() -> None:
    assert ws.with_memory_and_data(MAIN, 1, ws.data_segments(MAIN)) == MAIN


def test_passive_segments_are_refused() -> None:
    module = bytes(wasmtime.wat2wasm('(module (memory 1) (data "abc"))'))
    with pytest.raises(ws.WasmFormatError, match="passive"):
        ws.data_segments(module)


def test_zero_page_scan_finds_the_nonzero_runs() -> None:
    memory = bytearray(3 * ws.PAGE)
    memory[5] = 1  # first chunk
    memory[SCAN_CHUNK * 2] = 1  # a later chunk, with a zero chunk between
    memory[SCAN_CHUNK * 3 - 1] = 1  # the end of the same chunk run
    memory[-1] = 7  # the very last byte, after a whole zero page
    assert nonzero_runs(bytes(memory)) == [
        (0, SCAN_CHUNK),
        (2 * SCAN_CHUNK, 3 * SCAN_CHUNK),
        (3 * ws.PAGE - SCAN_CHUNK, 3 * ws.PAGE),
    ]
    assert nonzero_runs(bytes(ws.PAGE)) == []


def test_snapshot_module_starts_with_the_captured_memory() -> None:
    memory = bytearray(2 * ws.PAGE)
    memory[10] = 42
    memory[ws.PAGE + 7] = 9
    module_bytes = snapshot_module(MAIN, bytes(memory))
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    instance = wasmtime.Instance(store, wasmtime.Module(engine, module_bytes), [])
    mem = instance.exports(store)["memory"]
    assert isinstance(mem, wasmtime.Memory)
    assert mem.size(store) == 2
    peek = instance.exports(store)["peek"]
    assert isinstance(peek, wasmtime.Func)
    assert [peek(store, 10), peek(store, ws.PAGE + 7), peek(store, 100)] == [42, 9, 0]
    with pytest.raises(ValueError, match="whole 64 KiB pages"):
        snapshot_module(MAIN, b"\1" * 100)
