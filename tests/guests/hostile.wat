;; ABI v1 hostile guest: one export per way a guest can misbehave.
(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "firebox" "fail" (func $fail (param i32 i32)))
  (import "firebox" "log" (func $log (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "something went wrong")   ;; 20 bytes
  (data (i32.const 200) "spam spam spam spam spam spam spam spam spam spam\n") ;; 50 bytes
  (global $heap (mut i32) (i32.const 4096))
  (global $calls (mut i32) (i32.const 0))
  (func (export "firebox_alloc") (param $len i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $len)))
    (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
      (then (drop (memory.grow
        (i32.add (i32.div_u (i32.sub (global.get $heap) (i32.mul (memory.size) (i32.const 65536))) (i32.const 65536)) (i32.const 1))))))
    (local.get $ptr))
  (func $empty (result i64) (i64.const 0))
  ;; Well-behaved: returns its input (to show a function is healthy after a breach).
  (func (export "handle") (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32)) (i64.extend_i32_u (local.get $len))))
  ;; Loops forever: ends by the epoch deadline (timeout) or by fuel.
  (func (export "spin") (param i32 i32) (result i64)
    (loop $l (br $l)) (unreachable))
  ;; Grows memory one page at a time until refused, then aborts like malloc failing.
  (func (export "grow") (param i32 i32) (result i64)
    (loop $l
      (if (i32.ne (memory.grow (i32.const 1)) (i32.const -1)) (then (br $l))))
    (unreachable))
  (func $recurse (param $n i32) (result i32)
    (i32.add (call $recurse (i32.add (local.get $n) (i32.const 1))) (i32.const 1)))
  (func (export "recurse") (param i32 i32) (result i64)
    (drop (call $recurse (i32.const 0))) (call $empty))
  ;; Claims a 64 MiB output.
  (func (export "huge") (param i32 i32) (result i64)
    (i64.const 67108864))
  (func (export "trap") (param i32 i32) (result i64)
    (unreachable))
  (func (export "oob") (param i32 i32) (result i64)
    (drop (i32.load (i32.const 0x7ffffff0))) (call $empty))
  (func (export "fail") (param i32 i32) (result i64)
    (call $fail (i32.const 100) (i32.const 20)) (call $empty))
  ;; Blocks inside a host call (WASI sleep of 5 s): epochs cannot interrupt it.
  (func (export "sleep") (param i32 i32) (result i64)
    ;; subscription at 512 (8-aligned): userdata(8) tag(1)=clock, then at +16 the clock:
    ;; id(4)=1 (monotonic), timeout(8) at +24, precision(8) at +32, flags(2) at +40
    (i64.store (i32.const 512) (i64.const 0))
    (i32.store8 (i32.const 520) (i32.const 0))
    (i32.store (i32.const 528) (i32.const 1))
    (i64.store (i32.const 536) (i64.const 5000000000))
    (i64.store (i32.const 544) (i64.const 0))
    (i32.store16 (i32.const 552) (i32.const 0))
    (drop (call $poll (i32.const 512) (i32.const 640) (i32.const 1) (i32.const 720)))
    (call $empty))
  ;; Prints forever through WASI stdout.
  (func (export "print_forever") (param i32 i32) (result i64)
    (i32.store (i32.const 600) (i32.const 200))
    (i32.store (i32.const 604) (i32.const 50))
    (loop $l
      (drop (call $fd_write (i32.const 1) (i32.const 600) (i32.const 1) (i32.const 608)))
      (br $l))
    (call $empty))
  ;; Busy but finite: ~20M loop iterations (tens of ms), then returns its input.
  (func (export "busy") (param $ptr i32) (param $len i32) (result i64)
    (local $i i32)
    (loop $l
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 20000000))))
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32)) (i64.extend_i32_u (local.get $len))))
  ;; Counts calls in a global: 1 on a fresh instance, more if an instance is reused.
  (func (export "count") (param i32 i32) (result i64)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (i32.store (i32.const 700) (i32.add (i32.const 48) (global.get $calls)))
    (i64.or (i64.shl (i64.const 700) (i64.const 32)) (i64.const 1))))
