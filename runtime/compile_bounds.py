"""How much compiling a core module may cost, checked before it is compiled (service layer).

Cranelift compiles about 5,000 small functions a second on one core here, and the node
compiles a deployed module before it can refuse it: a 2 MB module of 200,000 empty
functions held the deploy path for 30 s and grew the process by 1.2 GB. So the module's
defined functions are counted from its section headers first (no wasmtime, a few
microseconds), and past `MAX_MODULE_FUNCTIONS` the deploy is refused with a 400 naming
the limit. A module that does not parse is left to wasmtime, which names its error.
"""

from __future__ import annotations

from firebox.runtime.errors import InvalidArtifact

#: The most functions a deployed core module may define (about 4 s of compile here).
MAX_MODULE_FUNCTIONS = 20_000

_MAGIC = b"\0asm"
_FUNCTION_SECTION = 3


def _leb(data: bytes, pos: int) -> tuple[int, int]:
    """Return an unsigned LEB128 at `pos` and the position after it; raises IndexError."""
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 35:
            raise IndexError("LEB128 too long")


def defined_functions(code: bytes) -> int | None:
    """Return how many functions a core module defines, or None if it does not parse."""
    if code[:4] != _MAGIC or len(code) < 8:
        return None
    pos, total = 8, 0
    try:
        while pos < len(code):
            section = code[pos]
            size, pos = _leb(code, pos + 1)
            if section == _FUNCTION_SECTION:
                count, _ = _leb(code, pos)
                total += count
            pos += size
    except IndexError:
        return None
    return total


def check_compile_cost(code: bytes) -> None:
    """Refuse a core module that defines more than `MAX_MODULE_FUNCTIONS` functions."""
    count = defined_functions(code)
    if count is not None and count > MAX_MODULE_FUNCTIONS:
        raise InvalidArtifact(
            f"the module defines {count} functions; firebox compiles at most"
            f" {MAX_MODULE_FUNCTIONS} per module (split it, or strip unused code)"
        )
