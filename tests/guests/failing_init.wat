;; ABI v1 guest whose `firebox_init` traps: every instantiation fails, so its deploy is
;; refused and must leave no pool refilling behind.
(module
  (memory (export "memory") 1)
  (func (export "firebox_alloc") (param $len i32) (result i32) (i32.const 4096))
  (func (export "firebox_init") (unreachable))
  (func (export "handle") (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32)) (i64.extend_i32_u (local.get $len)))))
