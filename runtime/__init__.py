"""firebox.runtime: the server side (engine, limits, artifacts, pools, workers, HTTP front end)."""

from __future__ import annotations

__version__ = "0.1.0"
