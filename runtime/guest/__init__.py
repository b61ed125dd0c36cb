"""Guests: compiled functions and their live instances, core modules and components (guest layer).

`protocol` is the interface the pools use; `core` (ABI v1 modules) and `component`
(Python on the shared interpreter) implement it; `loading` turns a spec into a program;
`traps` maps wasmtime failures to typed errors; `store` applies limits to a Store;
`engine` builds the process's Engine; `wasmtime_raw` holds every private wasmtime call.
"""
