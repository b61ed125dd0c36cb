/* ABI v1 echo guest in C, the startup ladder's C rung: `handle` returns its input.
 * Built by the bench with `clang --target=wasm32-wasi -O2 -nostartfiles -Wl,--no-entry`
 * (Debian clang + lld + wasi-libc). */
#include <stdint.h>

static unsigned char heap[1 << 16];
static uint32_t top = 0;

/* Bump allocator over a static heap; wraps around (one call's input at a time). */
__attribute__((export_name("firebox_alloc"))) uint32_t firebox_alloc(uint32_t len) {
  uint32_t need = (len + 7u) & ~7u;
  if (top + need > sizeof heap) top = 0;
  uint32_t ptr = (uint32_t)(uintptr_t)(heap + top);
  top += need;
  return ptr;
}

__attribute__((export_name("handle"))) uint64_t handle(uint32_t ptr, uint32_t len) {
  return ((uint64_t)ptr << 32) | len;
}
