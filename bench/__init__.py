"""firebox's benchmark harness: side-by-side cases, reported as medians, p99s and ratios (bench).

Run `python -m bench [CASE ...] [--quick] [--out DIR]`; see bench/README.md.
"""
