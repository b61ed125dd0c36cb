"""firebox.compiler: handler source to Wasm artifacts, one backend per toolchain."""
