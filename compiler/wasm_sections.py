"""The WebAssembly binary format at section level: read and rewrite sections (compiler layer).

Just enough of the format for the interpreter split and for snapshot modules: walk the
sections of a core module or a component, read a module's memory and data sections, and
write a module back with a new memory minimum and new data. Instructions are never
decoded here; `wasm-tools` does that where it is needed (interpreter_split.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

MAGIC = b"\0asm"
CORE_VERSION = b"\x01\x00\x00\x00"
COMPONENT_VERSION = b"\x0d\x00\x01\x00"
PAGE = 65536

# Core module section ids.
MEMORY_SECTION = 5
DATA_SECTION = 11
DATA_COUNT_SECTION = 12
# Component section id of an embedded core module.
COMPONENT_CORE_MODULE_SECTION = 1

_I32_CONST = 0x41
_END = 0x0B


class WasmFormatError(ValueError):
    """The bytes are not the WebAssembly binary this module expected."""


def read_u32(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Return (value, next position) of the unsigned LEB128 at `pos`."""
    result = shift = 0
    while True:
        if pos >= len(data):
            raise WasmFormatError("truncated LEB128 integer")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 35:
            raise WasmFormatError("LEB128 integer too long for u32")


def read_s32(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Return (value, next position) of the signed LEB128 at `pos`."""
    result = shift = 0
    while True:
        if pos >= len(data):
            raise WasmFormatError("truncated LEB128 integer")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            if byte & 0x40:
                result -= 1 << shift
            return result, pos
        if shift > 35:
            raise WasmFormatError("LEB128 integer too long for s32")


def u32(value: int) -> bytes:
    """Return the unsigned LEB128 encoding of `value`."""
    if value < 0:
        raise ValueError("u32 must not be negative")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def s32(value: int) -> bytes:
    """Return the signed LEB128 encoding of `value`."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if (value == 0 and not byte & 0x40) or (value == -1 and byte & 0x40):
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


@dataclass(frozen=True)
class Section:
    """One section: its id and where its payload lies in the binary."""

    id: int
    header: int  # the section's id byte
    start: int  # first byte of the payload
    end: int  # one past the payload


def sections(data: bytes, version: bytes = CORE_VERSION) -> Iterator[Section]:
    """Yield the top-level sections of a module (or, with COMPONENT_VERSION, a component).

    Raises WasmFormatError when the header is not the expected one or a section overruns.
    """
    if data[:4] != MAGIC or data[4:8] != version:
        kind = "component" if version == COMPONENT_VERSION else "core module"
        raise WasmFormatError(f"not a WebAssembly {kind} (header {data[:8].hex()})")
    pos = 8
    while pos < len(data):
        section_id = data[pos]
        size, start = read_u32(data, pos + 1)
        end = start + size
        if end > len(data):
            raise WasmFormatError(f"section {section_id} at {pos} overruns the binary")
        yield Section(section_id, pos, start, end)
        pos = end


def section_bytes(section_id: int, payload: bytes) -> bytes:
    """Return a whole section: id, size, payload."""
    return bytes([section_id]) + u32(len(payload)) + payload


@dataclass(frozen=True)
class MemoryType:
    """A linear memory's limits, in 64 KiB pages, and its flag byte."""

    flags: int
    minimum: int
    maximum: int | None


def memories(module: bytes) -> list[MemoryType]:
    """Return the memories a core module defines (imported memories are not listed)."""
    found: list[MemoryType] = []
    for section in sections(module):
        if section.id != MEMORY_SECTION:
            continue
        count, pos = read_u32(module, section.start)
        for _ in range(count):
            flags = module[pos]
            if flags & ~0x01:
                raise WasmFormatError(f"unsupported memory flags {flags:#x} (shared or 64-bit)")
            minimum, pos = read_u32(module, pos + 1)
            maximum = None
            if flags & 0x01:
                maximum, pos = read_u32(module, pos)
            found.append(MemoryType(flags, minimum, maximum))
    return found


@dataclass(frozen=True)
class DataSegment:
    """An active data segment of memory 0 at a constant offset."""

    offset: int
    data: bytes | memoryview  # a memoryview lets a big image be written without copies


def data_segments(module: bytes) -> list[DataSegment]:
    """Return a module's data segments; raises WasmFormatError on any that is not a plain
    active segment of memory 0 at an `i32.const` offset (passive ones could be used by
    `memory.init`, which a rewritten data section would break)."""
    view = memoryview(module)
    found: list[DataSegment] = []
    for section in sections(module):
        if section.id != DATA_SECTION:
            continue
        count, pos = read_u32(module, section.start)
        for index in range(count):
            kind, pos = read_u32(module, pos)
            if kind == 2:
                memory, pos = read_u32(module, pos)
                if memory != 0:
                    raise WasmFormatError(f"data segment {index} targets memory {memory}")
            elif kind != 0:
                raise WasmFormatError(f"data segment {index} is passive (kind {kind})")
            if module[pos] != _I32_CONST:
                raise WasmFormatError(f"data segment {index} has a non-constant offset")
            offset, pos = read_s32(module, pos + 1)
            if module[pos] != _END:
                raise WasmFormatError(f"data segment {index} has a non-constant offset")
            size, pos = read_u32(module, pos + 1)
            found.append(DataSegment(offset & 0xFFFFFFFF, bytes(view[pos : pos + size])))
            pos += size
    return found


def _memory_payload(memory: MemoryType) -> bytes:
    body = bytes([memory.flags]) + u32(memory.minimum)
    if memory.maximum is not None:
        body += u32(memory.maximum)
    return u32(1) + body


def _data_payload(segments: Sequence[DataSegment]) -> list[bytes | memoryview]:
    parts: list[bytes | memoryview] = [u32(len(segments))]
    for segment in segments:
        parts.append(b"\x00" + bytes([_I32_CONST]) + s32(_signed(segment.offset)) + bytes([_END]))
        parts.append(u32(len(segment.data)))
        parts.append(segment.data)
    return parts


def _signed(offset: int) -> int:
    return offset - (1 << 32) if offset >= 1 << 31 else offset


def with_memory_and_data(
    module: bytes, minimum_pages: int, segments: Sequence[DataSegment]
) -> bytes:
    """Return `module` with its one memory's minimum set and its data section replaced.

    Every other section is copied byte for byte (types, imports, globals, code and names
    stay as they are). Raises WasmFormatError unless the module defines exactly one
    memory whose maximum, if any, allows `minimum_pages`.
    """
    defined = memories(module)
    if len(defined) != 1:
        raise WasmFormatError(f"expected a module defining one memory, found {len(defined)}")
    memory = defined[0]
    if memory.maximum is not None and memory.maximum < minimum_pages:
        raise WasmFormatError(f"memory maximum {memory.maximum} < {minimum_pages} pages")
    new_memory = MemoryType(memory.flags, minimum_pages, memory.maximum)
    data_parts = _data_payload(segments)
    data_size = sum(len(part) for part in data_parts)
    out: list[bytes | memoryview] = [module[:8]]
    wrote_data = False
    for section in sections(module):
        if section.id == MEMORY_SECTION:
            out.append(section_bytes(MEMORY_SECTION, _memory_payload(new_memory)))
        elif section.id == DATA_COUNT_SECTION:
            out.append(section_bytes(DATA_COUNT_SECTION, u32(len(segments))))
        elif section.id == DATA_SECTION:
            out.append(bytes([DATA_SECTION]) + u32(data_size))
            out.extend(data_parts)
            wrote_data = True
        else:
            out.append(module[section.header : section.end])
    if not wrote_data:
        raise WasmFormatError("the module has no data section to replace")
    return b"".join(out)


def component_core_modules(component: bytes) -> list[Section]:
    """Return the top-level core modules embedded in a component, in index order."""
    return [
        section
        for section in sections(component, COMPONENT_VERSION)
        if section.id == COMPONENT_CORE_MODULE_SECTION
    ]
