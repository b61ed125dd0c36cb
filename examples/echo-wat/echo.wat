;; ABI v1 JSON-transform guest: `handle` wraps its JSON input as {"wrapped": <input>, "by": "wat"}
;; and logs one line through the firebox host module.
(module
  (import "firebox" "log" (func $log (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "{\"wrapped\":")          ;; 11 bytes at 16
  (data (i32.const 32) ",\"by\":\"wat\"}")         ;; 12 bytes at 32
  (data (i32.const 64) "transform called")       ;; 16 bytes at 64
  (global $heap (mut i32) (i32.const 1024))
  (func $alloc (export "firebox_alloc") (param $len i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $len)))
    (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
      (then (drop (memory.grow
        (i32.add (i32.div_u (i32.sub (global.get $heap) (i32.mul (memory.size) (i32.const 65536))) (i32.const 65536)) (i32.const 1))))))
    (local.get $ptr))
  (func (export "handle") (param $ptr i32) (param $len i32) (result i64)
    (local $out i32) (local $total i32)
    (call $log (i32.const 64) (i32.const 16))
    (local.set $total (i32.add (local.get $len) (i32.const 23)))
    (local.set $out (call $alloc (local.get $total)))
    (memory.copy (local.get $out) (i32.const 16) (i32.const 11))
    (memory.copy (i32.add (local.get $out) (i32.const 11)) (local.get $ptr) (local.get $len))
    (memory.copy (i32.add (local.get $out) (i32.add (i32.const 11) (local.get $len))) (i32.const 32) (i32.const 12))
    (i64.or
      (i64.shl (i64.extend_i32_u (local.get $out)) (i64.const 32))
      (i64.extend_i32_u (local.get $total)))))
