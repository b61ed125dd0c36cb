;; ABI v1 guest whose `handle` fails with an 8 MiB message (`firebox.fail`): the error that
;; leaves the worker must be clipped, not an 8 MiB response.
(module
  (import "firebox" "fail" (func $fail (param i32 i32)))
  (memory (export "memory") 160)
  (func (export "firebox_alloc") (param $len i32) (result i32) (i32.const 65536))
  (func (export "handle") (param $ptr i32) (param $len i32) (result i64)
    (memory.fill (i32.const 1048576) (i32.const 0x61) (i32.const 8388608))
    (call $fail (i32.const 1048576) (i32.const 8388608))
    (i64.const 0)))
