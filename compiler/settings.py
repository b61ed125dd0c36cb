"""The compiler's FIREBOX_* settings: the interpreter cache and the bundle size limits (compiler layer).

They use the node's `Setting` (one parser, one error naming the variable and its type),
so `firebox deploy` and the node read them alike. docs/configuration.md lists them.
"""

from __future__ import annotations

from pathlib import Path

from firebox.runtime.config import integer, optional_text

#: Lambda's limits for a zip deployment package: 50 MB zipped, 250 MB unzipped.
DEFAULT_MAX_BUNDLE_BYTES = 50 * 1024 * 1024
DEFAULT_MAX_UNZIPPED_BYTES = 250 * 1024 * 1024

FIREBOX_INTERPRETER_CACHE = optional_text("FIREBOX_INTERPRETER_CACHE")
FIREBOX_MAX_BUNDLE_BYTES = integer("FIREBOX_MAX_BUNDLE_BYTES", DEFAULT_MAX_BUNDLE_BYTES)
FIREBOX_MAX_UNZIPPED_BYTES = integer("FIREBOX_MAX_UNZIPPED_BYTES", DEFAULT_MAX_UNZIPPED_BYTES)

SETTINGS = (FIREBOX_INTERPRETER_CACHE, FIREBOX_MAX_BUNDLE_BYTES, FIREBOX_MAX_UNZIPPED_BYTES)


def interpreter_cache_dir() -> Path:
    """Return `FIREBOX_INTERPRETER_CACHE`, else `~/.cache/firebox/interpreter`."""
    chosen = FIREBOX_INTERPRETER_CACHE.get()
    return Path(chosen) if chosen else Path.home() / ".cache" / "firebox" / "interpreter"
