"""Linear memories the host allocates, so a capture can read a component's memory (engine layer).

A component never exports its core memories, so the only way for the host to see module
0's memory is to be the one that allocates it: wasmtime's host memory creator
(`wasmtime_config_host_memory_creator_set`, raw ctypes layer only). Each memory is an
anonymous `PROT_NONE` reservation made readable and writable as it grows, so it never
moves. Wasmtime calls the creator on the thread that instantiates, which is how a memory
is attributed to the capture that made it.

Traps measured in the feasibility study: the creator needs `memory_init_cow = False`
(with copy-on-write on, wasmtime panics: "memory_image is Some only for mmap-based
memories") and applies to the on-demand allocator only.

This module is its own concept (an allocator of linear memories, with its mmap calls and
the callbacks wasmtime makes into it), so its raw-layer use (`wasmtime._ffi`'s memory
creator types and `wasmtime_config_host_memory_creator_set`) stays here rather than in
`firebox.runtime.guest.wasmtime_raw`, which holds the serving path's raw calls; a
wasmtime upgrade is checked against both.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import wasmtime
from wasmtime import _ffi as ffi

_PROT_NONE = 0
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [
    ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long,
]  # fmt: skip
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_MAP_NORESERVE = 0x4000
_MAP_FIXED = 0x10
_MAP_FAILED = ctypes.c_void_p(-1).value
PAGE_4K = 4096


class MemoryImage:
    """A linear memory's initial contents in a file, mapped copy-on-write into memories.

    The file (exactly `size` bytes, sparse where the memory is zero) is mapped read-only
    once more, shared, so that `reset` can copy pages back from it.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        self.size = os.fstat(self.fd).st_size
        if self.size == 0 or self.size % PAGE_4K:
            os.close(self.fd)
            raise ValueError(f"a memory image is whole pages, not {self.size} bytes")
        address = _libc.mmap(None, self.size, mmap.PROT_READ, mmap.MAP_SHARED, self.fd, 0)
        if address in (None, _MAP_FAILED):
            os.close(self.fd)
            raise OSError(ctypes.get_errno(), f"mmap of the memory image {path} failed")
        self.address: int = address
        self._closed = False
        self._lock = threading.Lock()

    def close(self) -> None:
        """Unmap the image and close its file; memories mapped from it keep their pages."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        _libc.munmap(self.address, self.size)
        os.close(self.fd)

    def __del__(self) -> None:
        with suppress(Exception):
            self.close()


# /proc/self/pagemap: one 64-bit entry per page; in its top byte, bit 7 = present,
# bit 6 = swapped, bit 5 = a file page (or shared anonymous). A page of a private file
# mapping that was written is no longer a file page: present and not file, or swapped.
_DIRTY = bytes(1 if (b & 0xA0) == 0x80 or b & 0x40 else 0 for b in range(256))
_RUNS = re.compile(b"\x01+")
_pagemap: int | None = None
_pagemap_lock = threading.Lock()


def _pagemap_fd() -> int | None:
    global _pagemap
    with _pagemap_lock:
        if _pagemap is None:
            try:
                _pagemap = os.open("/proc/self/pagemap", os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                _pagemap = -1
        return _pagemap if _pagemap >= 0 else None


def pagemap_available() -> bool:
    """Whether this process can read its own page map (Linux with /proc)."""
    return _pagemap_fd() is not None


class _ScanArg(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in (
        "size", "flags", "start", "end", "walk_end", "vec", "vec_len", "max_pages",
        "category_inverted", "category_mask", "category_anyof_mask", "return_mask",
    )]  # fmt: skip


class _Region(ctypes.Structure):
    _fields_ = [
        ("start", ctypes.c_uint64),
        ("end", ctypes.c_uint64),
        ("categories", ctypes.c_uint64),
    ]


# linux/fs.h: PAGEMAP_SCAN = _IOWR('f', 16, struct pm_scan_arg) (Linux 6.7); categories.
_PAGEMAP_SCAN = (3 << 30) | (ctypes.sizeof(_ScanArg) << 16) | (ord("f") << 8) | 16
_PAGE_IS_FILE = 1 << 2
_PAGE_IS_PRESENT = 1 << 3
_PAGE_IS_SWAPPED = 1 << 4
_SCAN_REGIONS = 512
_libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
_scan_ok = True
_scan_local = threading.local()


def _written_runs_scan(fd: int, base: int, size: int) -> list[tuple[int, int]] | None:
    """The [start, end) address runs of written pages, by the PAGEMAP_SCAN ioctl (the kernel
    filters: present or swapped, and not a file page); None where the ioctl is missing."""
    global _scan_ok
    if not _scan_ok:
        return None
    regions = getattr(_scan_local, "regions", None)
    if regions is None:
        regions = _scan_local.regions = (_Region * _SCAN_REGIONS)()
        # The same array as flat u64s: starts and ends come out by one C-level slice each.
        _scan_local.flat = (ctypes.c_uint64 * (3 * _SCAN_REGIONS)).from_buffer(regions)
    flat = _scan_local.flat
    arg = _ScanArg()
    arg.size = ctypes.sizeof(_ScanArg)
    arg.vec = ctypes.addressof(regions)
    arg.vec_len = _SCAN_REGIONS
    arg.category_inverted = _PAGE_IS_FILE
    arg.category_mask = _PAGE_IS_FILE
    arg.category_anyof_mask = _PAGE_IS_PRESENT | _PAGE_IS_SWAPPED
    arg.return_mask = _PAGE_IS_FILE | _PAGE_IS_PRESENT | _PAGE_IS_SWAPPED
    runs: list[tuple[int, int]] = []
    start, end = base, base + size
    while start < end:
        arg.start, arg.end, arg.walk_end = start, end, 0
        found = _libc.ioctl(fd, _PAGEMAP_SCAN, ctypes.byref(arg))
        if found < 0:
            _scan_ok = False
            return None
        runs.extend(zip(flat[0 : 3 * found : 3], flat[1 : 3 * found : 3], strict=True))
        if arg.walk_end <= start:
            return None
        start = arg.walk_end
    return runs


def _written_runs_read(fd: int, base: int, size: int) -> list[tuple[int, int]] | None:
    """The same runs from the page map's entries (one 8-byte entry per page)."""
    pages = size // PAGE_4K
    try:
        raw = os.pread(fd, pages * 8, (base // PAGE_4K) * 8)
    except OSError:
        return None
    if len(raw) != pages * 8:
        return None
    return [
        (base + run.start() * PAGE_4K, base + run.end() * PAGE_4K)
        for run in _RUNS.finditer(raw[7::8].translate(_DIRTY))
    ]


def reset_memory(memory: HostMemory, image: MemoryImage) -> int | None:
    """Put `memory` (mapped from `image`) back to the image's contents; return the pages copied.

    Only the pages written since the mapping was made are private copies (the others are
    still the image's own pages): the kernel's page map names them (the PAGEMAP_SCAN
    ioctl, else /proc/self/pagemap's entries), and only those are copied back from the
    image. They stay resident, so the next call does not fault on them again. Returns
    None (nothing changed) when the memory grew past the image (its size is visible to
    the guest and cannot shrink) or the page map cannot be read.
    """
    fd = _pagemap_fd()
    if fd is None or memory.size != image.size or memory.image is not image:
        return None
    runs = _written_runs_scan(fd, memory.base, memory.size)
    if runs is None:
        runs = _written_runs_read(fd, memory.base, memory.size)
    if runs is None:
        return None
    copied = 0
    delta = image.address - memory.base
    for start, end in runs:
        ctypes.memmove(start, start + delta, end - start)
        copied += end - start
    return copied // PAGE_4K


@dataclass
class HostMemory:
    """One linear memory wasmtime asked for: its base address, size and reservation."""

    base: int
    size: int
    maximum: int
    reserved: int
    #: The image the memory was mapped from (None: it started as zeros).
    image: MemoryImage | None = None

    def read(self) -> bytes:
        """Return a copy of the memory's current contents (`size` bytes)."""
        return ctypes.string_at(self.base, self.size)


def _error(message: str) -> int:
    error = ffi.wasmtime_error_new(ctypes.create_string_buffer(message.encode()))
    return ctypes.cast(error, ctypes.c_void_p).value or 0


class HostMemoryCreator:
    """Allocates every linear memory of an Engine; records them per creating thread."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._local = threading.local()
        self._memories: dict[int, HostMemory] = {}
        self._lock = threading.Lock()
        self._next = 1
        # Keep the ctypes callbacks alive as long as the engine can call them.
        self._new = ffi.wasmtime_new_memory_callback_t(self._new_memory)
        self._get = ffi.wasmtime_memory_get_callback_t(self._get_memory)
        self._grow = ffi.wasmtime_memory_grow_callback_t(self._grow_memory)
        self._finalize = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(self._finalize_memory)
        self._noop = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(lambda env: None)
        struct: Any = ffi.wasmtime_memory_creator_t()
        struct.env = None
        struct.new_memory = self._new
        struct.finalizer = self._noop
        self.struct = struct

    def install(self, config: wasmtime.Config) -> None:
        """Make `config`'s engine allocate its memories here (sets memory_init_cow off)."""
        config.memory_init_cow = False
        ffi.wasmtime_config_host_memory_creator_set(config.ptr(), ctypes.byref(self.struct))

    def record(self) -> list[HostMemory]:
        """Start recording the memories created on this thread; return the list they go to."""
        created: list[HostMemory] = []
        self._local.created = created
        return created

    def stop_recording(self) -> None:
        """Stop recording on this thread."""
        self._local.created = None

    @contextmanager
    def mapping(self, image: MemoryImage) -> Iterator[list[HostMemory]]:
        """Map `image` into the memories this thread creates meanwhile; yield them."""
        created = self.record()
        self._local.image = image
        try:
            yield created
        finally:
            self._local.image = None
            self.stop_recording()

    # -- callbacks (run by wasmtime, must not raise) --------------------------------

    def _new_memory(
        self,
        env: int | None,
        ty: object,
        minimum: int,
        maximum: int,
        reserved: int,
        guard: int,
        ret: ctypes._Pointer[ffi.wasmtime_linear_memory_t],
    ) -> int:
        try:
            limit = min(maximum, self.max_bytes) if maximum else self.max_bytes
            if minimum > limit:
                return _error(f"memory minimum {minimum} exceeds the capture limit {limit}")
            span = max(reserved, limit) + guard
            flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _MAP_NORESERVE
            base = _libc.mmap(None, span, _PROT_NONE, flags, -1, 0)
            if base in (None, _MAP_FAILED):
                return _error(f"mmap of {span} bytes failed (errno {ctypes.get_errno()})")
            rw = mmap.PROT_READ | mmap.PROT_WRITE
            if minimum and _libc.mprotect(base, minimum, rw) != 0:
                _libc.munmap(base, span)
                return _error("mprotect failed")
            image: MemoryImage | None = getattr(self._local, "image", None)
            if image is not None and image.size <= minimum:
                got = _libc.mmap(base, image.size, rw, mmap.MAP_PRIVATE | _MAP_FIXED, image.fd, 0)
                if got != base:
                    _libc.munmap(base, span)
                    return _error(f"mapping the memory image failed (errno {ctypes.get_errno()})")
            else:
                image = None
            memory = HostMemory(base, minimum, limit, span, image)
            with self._lock:
                key = self._next
                self._next += 1
                self._memories[key] = memory
            created = getattr(self._local, "created", None)
            if created is not None:
                created.append(memory)
            out: Any = ret.contents
            out.env = key
            out.get_memory = self._get
            out.grow_memory = self._grow
            out.finalizer = self._finalize
            return 0
        except Exception as exc:  # a Python exception cannot cross into wasmtime
            return _error(f"host memory creator failed: {exc}")

    def _get_memory(
        self,
        env: int | None,
        size: ctypes._Pointer[ctypes.c_size_t],
        maximum: ctypes._Pointer[ctypes.c_size_t],
    ) -> int:
        memory = self._memories[env or 0]
        size[0] = memory.size
        maximum[0] = memory.maximum
        return memory.base

    def _grow_memory(self, env: int | None, new_size: int) -> int:
        try:
            memory = self._memories[env or 0]
            if new_size > memory.maximum:
                return _error("memory would grow past its maximum")
            if new_size > memory.size:
                rw = mmap.PROT_READ | mmap.PROT_WRITE
                if _libc.mprotect(memory.base, new_size, rw) != 0:
                    return _error("mprotect failed")
                memory.size = new_size
            return 0
        except Exception as exc:
            return _error(f"host memory grow failed: {exc}")

    def _finalize_memory(self, env: int | None) -> None:
        try:
            with self._lock:
                memory = self._memories.pop(env or 0, None)
            if memory is not None:
                _libc.munmap(memory.base, memory.reserved)
        except Exception:
            pass
