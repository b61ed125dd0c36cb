"""Every use of wasmtime-py's private API and raw ctypes layer on the serving path (guest layer).

wasmtime-py 50 leaves a few things out of its public API that firebox needs: the
pooling allocator, an unchecked call (~1-2 us instead of ~21 us), a Store's identity
and data from inside a host function, and bulk copies in and out of linear memory.
They go through `wasmtime._ffi` and ctypes here, so a wasmtime upgrade is checked
against this one module.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any

import wasmtime
from firebox.runtime.config import MiB
from firebox.runtime.engine import EngineSettings
from wasmtime import _ffi as ffi
from wasmtime.component._enter import enter_wasm

# What wasmtime-py accepts as a store (its own `Storelike` alias is not in its type hints).
_Storelike = wasmtime.Store | wasmtime.Caller | wasmtime.StoreContext


def pooling_allocator(config: wasmtime.Config, settings: EngineSettings) -> None:
    """Switch `config` to the pooling instance allocator, sized by `settings`."""
    pc = ffi.wasmtime_pooling_allocation_config_new()
    slots = settings.pool_slots
    ffi.wasmtime_pooling_allocation_config_total_memories_set(pc, slots)
    ffi.wasmtime_pooling_allocation_config_total_tables_set(pc, slots)
    ffi.wasmtime_pooling_allocation_config_total_stacks_set(pc, slots)
    # A componentize-py instance holds ~14 core instances: with `slots * 4` a worker ran out
    # at ~290 ready Python instances while memory slots were left (measured in bench/scale).
    ffi.wasmtime_pooling_allocation_config_total_core_instances_set(pc, slots * 16)
    ffi.wasmtime_pooling_allocation_config_total_component_instances_set(pc, slots)
    ffi.wasmtime_pooling_allocation_config_max_memory_size_set(pc, settings.max_memory_mb * MiB)
    # componentize-py components hold several core instances, memories and tables.
    ffi.wasmtime_pooling_allocation_config_max_core_instances_per_component_set(pc, 64)
    ffi.wasmtime_pooling_allocation_config_max_memories_per_component_set(pc, 8)
    ffi.wasmtime_pooling_allocation_config_max_tables_per_component_set(pc, 16)
    ffi.wasmtime_pooling_allocation_config_max_tables_per_module_set(pc, 4)
    ffi.wasmtime_pooling_allocation_config_table_elements_set(pc, 100_000)
    ffi.wasmtime_pooling_allocation_config_max_core_instance_size_set(pc, 4 * MiB)
    ffi.wasmtime_pooling_allocation_config_max_component_instance_size_set(pc, 4 * MiB)
    ffi.wasmtime_pooling_allocation_strategy_set(config.ptr(), pc)
    ffi.wasmtime_pooling_allocation_config_delete(pc)


def winch_strategy(config: wasmtime.Config) -> None:
    """Compile with Winch, wasmtime's baseline compiler (the `strategy` setter refuses it)."""
    ffi.wasmtime_config_strategy_set(config.ptr(), ctypes.c_uint8(2))


class RawCall:
    """An unchecked call of an i32-argument export: ~1-2 us instead of ~30 us per call.

    wasmtime-py's `Func.__call__` converts every value through `Val` and re-reads the
    function type each time; the ABI's signatures are fixed and checked once by
    `check_abi`, so the raw `wasmtime_func_call_unchecked` with a preallocated buffer
    is safe here. Host functions of ours never raise, so there is no pending Python
    exception to pick up (wasmtime-py's LAST_EXCEPTION) after a trap.
    """

    def __init__(self, store: wasmtime.Store, func: wasmtime.Func, slots: int) -> None:
        self._store = store  # keeps the context alive
        self._func = func
        self._ctx = store._context()
        self._ref = ctypes.byref(func._func)
        self._buf = (ffi.wasmtime_val_raw * slots)()
        self._slots = slots

    def i32(self, *args: int) -> int:
        """Call with i32 arguments; return the first result as an i32."""
        self._call(args)
        return int(self._buf[0].i32)

    def i64(self, *args: int) -> int:
        """Call with i32 arguments; return the first result as an i64."""
        self._call(args)
        return int(self._buf[0].i64)

    def _call(self, args: tuple[int, ...]) -> None:
        buf = self._buf
        for index, value in enumerate(args):
            buf[index].i32 = value
        trap = ctypes.POINTER(ffi.wasm_trap_t)()
        error = ffi.wasmtime_func_call_unchecked(
            self._ctx, self._ref, buf, self._slots, ctypes.byref(trap)
        )
        if error:
            raise wasmtime.WasmtimeError._from_ptr(error)
        if trap:
            raise wasmtime.Trap._from_ptr(trap)


def store_key(store: wasmtime.Store | wasmtime.StoreContext) -> int | None:
    """Return an identity of the Store behind `store` that host functions can look up."""
    return ctypes.cast(store._context(), ctypes.c_void_p).value


def store_data(caller: wasmtime.Caller) -> Any:
    """Return the data object of the Store a core host function was called from."""
    # Caller has no data() of its own in wasmtime-py 50, but Store.data only needs a
    # store context, which a Caller provides.
    return wasmtime.Store.data(caller)  # type: ignore[arg-type]


def _base(memory: wasmtime.Memory, store: _Storelike) -> int:
    # memory_may_move is off in the engine, but re-read anyway: it is one ctypes call.
    return ctypes.addressof(memory.data_ptr(store).contents)


def read_memory(memory: wasmtime.Memory, store: _Storelike, ptr: int, length: int) -> bytes | None:
    """Return `length` bytes of linear memory at `ptr`, or None if they lie outside it.

    One `string_at` on the base pointer: ~3x faster than `Memory.read` for 1 MiB.
    """
    if ptr < 0 or length < 0 or ptr + length > memory.data_len(store):
        return None
    return ctypes.string_at(_base(memory, store) + ptr, length)


def write_memory(memory: wasmtime.Memory, store: _Storelike, ptr: int, data: bytes) -> None:
    """Copy `data` into linear memory at `ptr` (the caller checked that it fits)."""
    ctypes.memmove(_base(memory, store) + ptr, data, len(data))


#: A core host function that may end its call with a trap: it gets the Caller and the
#: i32 arguments and returns its i32 result and the trap code to raise (or None).
TrappingHostFn = Callable[[wasmtime.Caller, tuple[int, ...]], tuple[int, wasmtime.TrapCode | None]]

# Raw callbacks must outlive every Linker they are defined in: made once per function.
_trapping: dict[TrappingHostFn, Any] = {}


def _finalize(_env: Any) -> None:
    return None


_no_finalizer = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(_finalize)


def define_trapping_func(
    linker: wasmtime.Linker, module: str, name: str, nparams: int, fn: TrappingHostFn
) -> None:
    """Define `module.name(i32 x nparams) -> i32` on a core Linker, backed by `fn`.

    Unlike wasmtime-py's own host functions, `fn` can trap (with a trap code, e.g.
    INTERRUPT for a deadline) without raising: wasmtime-py turns a raised exception into
    a trap through a process-global that another thread can steal. `fn` must not raise;
    if it does, the call returns `EINVAL` (28).
    """
    callback = _trapping.get(fn)
    if callback is None:

        def call(_env: Any, caller_ptr: Any, args: Any, _count: int) -> int:
            caller = wasmtime.Caller(caller_ptr)
            try:
                values = tuple(int(args[i].i32) & 0xFFFFFFFF for i in range(nparams))
                result, trap = fn(caller, values)
                args[0].i32 = result
                if trap is None:
                    return 0
                pointer = ffi.wasmtime_trap_new_code(trap.value)
                return int(ctypes.cast(pointer, ctypes.c_void_p).value or 0)
            except BaseException:
                args[0].i32 = 28
                return 0
            finally:
                caller._invalidate()

        callback = _trapping[fn] = ffi.wasmtime_func_unchecked_callback_t(call)
    i32 = wasmtime.ValType.i32()
    ty = wasmtime.FuncType([i32] * nparams, [i32])
    module_bytes, name_bytes = module.encode(), name.encode()
    error = ffi.wasmtime_linker_define_func_unchecked(
        linker.ptr(),
        ctypes.create_string_buffer(module_bytes), len(module_bytes),
        ctypes.create_string_buffer(name_bytes), len(name_bytes),
        ty.ptr(), callback, None, _no_finalizer,
    )  # fmt: skip
    if error:
        raise wasmtime.WasmtimeError._from_ptr(error)


# Component calls with their shapes known: wasmtime-py's `component.Func.__call__`
# re-reads the function's type and each record field's, option payload's and result
# case's type on every call and lowers values through several layers of Python (about
# 0.3-0.5 ms for `handle`, more than the interpreter's own work for a small handler).
# The firebox world's exports are fixed (compiler/wit/firebox.wit); these lower and lift
# exactly those shapes through the C API, and wasmtime still type-checks every value
# against the function's real type (a mismatch is a WasmtimeError, never a bad call).

#: A parameter: ("string", str), ("option-string", str | None), ("u32"|"u64", int) or
#: ("record", [(field name, kind, value), ...]).
ComponentParam = tuple[str, Any]

_KINDS = {
    "string": ffi.WASMTIME_COMPONENT_STRING,
    "option-string": ffi.WASMTIME_COMPONENT_OPTION,
    "u32": ffi.WASMTIME_COMPONENT_U32,
    "u64": ffi.WASMTIME_COMPONENT_U64,
    "record": ffi.WASMTIME_COMPONENT_RECORD,
}
_NAMES: dict[str, bytes] = {}


def _byte_vec(vec: Any, data: bytes) -> None:
    ffi.wasm_byte_vec_new_uninitialized(ctypes.byref(vec), len(data))
    if data:
        ctypes.memmove(vec.data, data, len(data))


def _lower(val: Any, kind: str, value: Any) -> None:
    """Write `value` of WIT shape `kind` into the wasmtime_component_val_t `val`."""
    val.kind = _KINDS[kind]
    if kind == "string":
        _byte_vec(val.of.string, value.encode("utf-8"))
    elif kind == "option-string":
        if value is None:
            val.of.option = None
        else:
            inner = ffi.wasmtime_component_val_t()
            _lower(inner, "string", value)
            val.of.option = ffi.wasmtime_component_val_new(ctypes.byref(inner))
    elif kind == "u32":
        val.of.u32 = value
    elif kind == "u64":
        val.of.u64 = value
    else:
        fields = value
        raw = ffi.wasmtime_component_valrecord_t()
        ffi.wasmtime_component_valrecord_new_uninit(ctypes.byref(raw), len(fields))
        done = 0
        try:
            for index, (name, field_kind, field_value) in enumerate(fields):
                entry = raw.data[index]
                _lower(entry.val, field_kind, field_value)
                done += 1
                encoded = _NAMES.get(name) or _NAMES.setdefault(name, name.encode())
                _byte_vec(entry.name, encoded)
        except BaseException:
            for index in range(done, len(fields)):  # make the rest safe to delete
                raw.data[index].val.kind = ffi.WASMTIME_COMPONENT_BOOL
                raw.data[index].val.of.boolean = False
                ffi.wasm_byte_vec_new_empty(ctypes.byref(raw.data[index].name))
            ffi.wasmtime_component_valrecord_delete(ctypes.byref(raw))
            raise
        val.of.record = raw


def call_component(
    func: Any, store: wasmtime.Store, params: list[ComponentParam]
) -> tuple[bool, str | None]:
    """Call a component export returning `result<string, string>` or `result<_, string>`;
    return (ok, its payload string or None).

    Raises wasmtime.WasmtimeError (a trap, or a value of the wrong shape), and what a host
    function of wasmtime-py raised, as `Func.__call__` does.
    """
    args = (ffi.wasmtime_component_val_t * max(1, len(params)))()
    lowered = 0
    result = ffi.wasmtime_component_val_t()
    try:
        for index, (kind, value) in enumerate(params):
            _lower(args[index], kind, value)
            lowered += 1
        context, ref = store._context(), ctypes.byref(func._func)
        enter_wasm(
            lambda: ffi.wasmtime_component_func_call(
                ref, context, args, len(params), ctypes.byref(result), 1
            )
        )
    finally:
        for index in range(lowered):
            ffi.wasmtime_component_val_delete(ctypes.byref(args[index]))
    try:
        if result.kind != ffi.WASMTIME_COMPONENT_RESULT.value:
            raise wasmtime.WasmtimeError(f"expected a result, got value kind {result.kind}")
        ok = bool(result.of.result.is_ok)
        payload = result.of.result.val
        if not payload:
            return ok, None
        if payload.contents.kind != ffi.WASMTIME_COMPONENT_STRING.value:
            raise wasmtime.WasmtimeError("expected a string payload")
        return ok, ffi.to_str(payload.contents.of.string)
    finally:
        ffi.wasmtime_component_val_delete(ctypes.byref(result))
