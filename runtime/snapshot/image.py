"""A captured linear memory as a core module: module 0 with the memory as its data (engine layer).

The per-version snapshot module is the interpreter's module 0 with two sections
rewritten: the memory's minimum becomes the captured size, and the data section holds
the captured memory's non-zero pages, one active segment per run of them. Everything
else (globals, table, the forwarding functions) is byte for byte module 0, so the split
component links it exactly as it links module 0. It has almost no code: compiling it
costs what laying out its memory image costs (~0.1-0.3 s for 32-48 MiB), and wasmtime
maps that image copy-on-write into every instance.
"""

from __future__ import annotations

from firebox.compiler.wasm_sections import PAGE, DataSegment, with_memory_and_data

#: Granularity of the zero-page scan: the host page, so skipped runs stay unmapped zeros.
SCAN_CHUNK = 4096
_ZERO_CHUNK = bytes(SCAN_CHUNK)
_ZERO_PAGE = bytes(PAGE)


def nonzero_runs(memory: bytes) -> list[tuple[int, int]]:
    """Return the [start, end) runs of `memory` that are not all zero, at SCAN_CHUNK grain.

    Whole 64 KiB pages are tested first (one C-level compare each, `bytes.startswith` at
    an offset copies nothing), then 4 KiB chunks inside the pages that are not zero.
    """
    runs: list[tuple[int, int]] = []
    start = -1
    size = len(memory)
    for page in range(0, size, PAGE):
        if memory.startswith(_ZERO_PAGE, page) and page + PAGE <= size:
            if start >= 0:
                runs.append((start, page))
                start = -1
            continue
        for chunk in range(page, min(page + PAGE, size), SCAN_CHUNK):
            if memory.startswith(_ZERO_CHUNK, chunk) and chunk + SCAN_CHUNK <= size:
                if start >= 0:
                    runs.append((start, chunk))
                    start = -1
            elif start < 0:
                start = chunk
    if start >= 0:
        runs.append((start, size))
    return runs


def snapshot_module(main_module: bytes, memory: bytes) -> bytes:
    """Return module 0 rewritten to start with `memory` as its linear memory.

    `memory` is a whole captured memory (a multiple of 64 KiB). Raises ValueError when it
    is not page-sized, and WasmFormatError when module 0 is not the expected shape.
    """
    if len(memory) % PAGE:
        raise ValueError(f"a linear memory is whole 64 KiB pages, not {len(memory)} bytes")
    view = memoryview(memory)
    segments = [DataSegment(start, view[start:end]) for start, end in nonzero_runs(memory)]
    return with_memory_and_data(main_module, len(memory) // PAGE, segments)
