"""How the `firebox` command shows a function's failure: type, message, where, what to do (SDK layer)."""

from __future__ import annotations

import re
from typing import Any

#: Innermost stack frames shown under a function's error (the whole trace is in --json).
FRAMES_SHOWN = 5

_FRAME_RE = re.compile(
    r'\s*File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<fn>[^\n]+)\n?(?P<code>.*)', re.S
)

#: Where a handler's files live inside the sandbox (its folder, as on Lambda).
TASK_ROOT = "/var/task/"

#: Standard-library modules the sandbox leaves out, and what to use instead.
SANDBOX_LACKS = {
    "sqlite3": "there is no SQLite (no writable file system); keep state outside the function",
    "_sqlite3": "there is no SQLite (no writable file system)",
    "dbm": "there is no dbm (no writable file system)",
    "multiprocessing": "a function cannot start processes",
    "curses": "there is no terminal",
    "tkinter": "there is no display",
    "ssl": "it does not import under WASI (no TLS; and no network either)",
    "ctypes": "it does not import under WASI (no native code)",
    "bz2": "it does not import under WASI (zlib and gzip work)",
    "lzma": "it does not import under WASI (zlib and gzip work)",
}

#: Failures of things the sandbox does not offer, recognised by their message.
SANDBOX_MESSAGES = (
    (
        "can't start new thread",
        "the sandbox has no threads: do the work in the handler's own thread",
    ),
    ("does not support processes", "the sandbox cannot start processes (no subprocess, os.fork)"),
    (
        "Name or service not known",
        "the sandbox has no network sockets (no DNS, no outbound connections)",
    ),
    ("socket", "the sandbox has no network sockets"),
)


def frames(stack: list[str]) -> list[tuple[str, int, str, str]]:
    """Parse Python traceback entries into (file, line, function, source) tuples."""
    out = []
    for entry in stack:
        match = _FRAME_RE.match(entry)
        if match:
            path = match["file"].removeprefix(TASK_ROOT)
            code = match["code"].strip().split("\n")[0]  # not the ~~^^ marker line
            out.append((path, int(match["line"]), match["fn"].strip(), code))
    return out


def hint(error_type: str, message: str) -> str | None:
    """Return advice for a failure a user can fix in a known way, or None."""
    missing = re.search(r"No module named '([^']+)'", message)
    if missing:
        module = missing.group(1)
        top = module.split(".")[0]
        if top in SANDBOX_LACKS:
            return f"`{top}` is not available in firebox's sandbox: {SANDBOX_LACKS[top]} (docs/python.md)."
        return (
            f"`{top}` is not in the sandbox's standard library. Vendor it beside the handler\n"
            f"  (pip install --target FOLDER {top}; pure-Python packages only) or list it in\n"
            "  FOLDER/requirements.txt, which `firebox deploy` installs into the bundle."
        )
    for needle, advice in SANDBOX_MESSAGES:
        if needle in message:
            return advice + " (docs/python.md)."
    return None


def describe(error: Any) -> str:
    """Return a function error as the CLI prints it: type and message, innermost frames, hint."""
    payload = getattr(error, "payload", None)
    if not isinstance(payload, dict):
        return f"error: {error.code}: {error.message}"
    error_type = str(payload.get("errorType", "Error"))
    message = str(payload.get("errorMessage", ""))
    lines = [f"error: {error_type}: {message}"]
    parsed = frames([str(s) for s in payload.get("stackTrace") or []])
    if parsed:
        shown = parsed[-FRAMES_SHOWN:]
        if len(parsed) > len(shown):
            lines.append(f"  ... {len(parsed) - len(shown)} outer frames (all in --json)")
        for path, line, fn, code in shown:
            lines.append(f"  {path}:{line} in {fn}" + (f"\n      {code}" if code else ""))
    advice = hint(error_type, message)
    if advice:
        lines.append(f"hint: {advice}")
    return "\n".join(lines)
