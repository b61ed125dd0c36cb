;; ABI v1 guest whose `firebox_init` sleeps 5 s in a host call (WASI poll_oneoff): a slow
;; but legitimate initialization (under a timeout above 5 s), e.g. for provisioned pools.
(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "firebox_alloc") (param $len i32) (result i32) (i32.const 4096))
  (func (export "firebox_init")
    ;; one clock subscription at 512: userdata(8), tag(1)=clock, id(4)=monotonic at +16,
    ;; timeout(8) at +24, precision(8) at +32, flags(2) at +40
    (i64.store (i32.const 512) (i64.const 0))
    (i32.store8 (i32.const 520) (i32.const 0))
    (i32.store (i32.const 528) (i32.const 1))
    (i64.store (i32.const 536) (i64.const 5000000000))
    (i64.store (i32.const 544) (i64.const 0))
    (i32.store16 (i32.const 552) (i32.const 0))
    (drop (call $poll (i32.const 512) (i32.const 640) (i32.const 1) (i32.const 720))))
  (func (export "handle") (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32)) (i64.extend_i32_u (local.get $len)))))
