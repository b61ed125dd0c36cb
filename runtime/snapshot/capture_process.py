"""Captures run in a child process of the node, killed at their deadline (engine layer).

A function's init runs once, at deploy, in the capture (capture.py). Epoch deadlines stop
wasm code, not a guest blocked in a host call: `time.sleep(10**9)` at module level sits
in wasmtime's own WASI sleep, which nothing in the process can cut short. In the node
that froze every later Python deploy behind the builder's lock, for good. So the capture
runs in a child process (one, reused from deploy to deploy), and a capture whose init is
still running `CAPTURE_GRACE_S` past its budget is answered with `TimedOut` and the child
killed; the next capture starts a new one. The child also keeps a capture's memory (up to a GiB)
out of the node's own address space.

The node and the child speak `firebox.runtime.wire` frames over an inherited socket: a
request carries the pickled `(bundle, handler, config)` (both ends are firebox, never
guest code), a reply the pickled `Capture` or the error's wire form.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import pickle
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from firebox.compiler.interpreter_split import SplitInterpreter
from firebox.runtime.errors import (
    FireboxError,
    InvalidArtifact,
    ServiceUnavailable,
    TimedOut,
    error_from_dict,
)
from firebox.runtime.guest.function_config import PythonFunctionConfig
from firebox.runtime.snapshot.capture import Capture
from firebox.runtime.wire import MAX_FRAME, pack, recv_frame

log = logging.getLogger("firebox.capture")

#: Beyond the init budget (epochs end wasm code at it), what instantiating the split
#: interpreter and unpacking the bundle may add before the child is killed as blocked
#: in the function's init.
CAPTURE_GRACE_S = 4.0
#: Once the function's init is done, the most reading its memory and building the
#: snapshot module may take (firebox's own code: ~0.1-1 s).
BUILD_TIMEOUT_S = 60.0
#: How long a new child may take to be ready: the first one on a machine compiles the
#: split interpreter for the capture engine (~20-35 s), later ones load it from disk.
START_TIMEOUT_S = 300.0


class CaptureProcess:
    """Runs `CaptureEngine.capture` in a child process; a drop-in for the engine in
    `SnapshotBuilder` (its `split` and `capture`). One capture at a time (the builder
    holds its lock around each)."""

    def __init__(self, split: SplitInterpreter, cache_dir: Path) -> None:
        self.split = split
        self.cache_dir = cache_dir
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        #: Children killed because a capture overran its deadline (for stats and tests).
        self.killed = 0

    def start(self) -> None:
        """Start the child unless it runs; wait until it is ready (compiled)."""
        with self._lock:
            self._ensure()

    def _ensure(self) -> socket.socket:
        if self._proc is not None and self._proc.poll() is None and self._sock is not None:
            return self._sock
        self._stop()
        parent, child = socket.socketpair()
        cmd = [sys.executable, "-m", __name__, "--fd", str(child.fileno())]
        self._proc = subprocess.Popen(cmd, pass_fds=[child.fileno()], stdin=subprocess.DEVNULL)
        child.close()
        self._sock = parent
        parent.sendall(pack({"split": pickle.dumps(self.split), "cache": str(self.cache_dir)}))
        reply = self._receive(START_TIMEOUT_S)
        if reply is None or not reply.get("ready"):
            self._stop()
            detail = (reply or {}).get("error") or {}
            raise ServiceUnavailable(
                "the snapshot capture process did not start"
                + (f": {detail.get('message')}" if detail else "")
            )
        return parent

    def _receive(self, timeout_s: float) -> dict[str, Any] | None:
        """Return the child's next frame, or None when it did not answer within
        `timeout_s` or died."""
        sock = self._sock
        if sock is None:
            return None
        ready, _, _ = select.select([sock], [], [], max(0.0, timeout_s))
        if not ready:
            return None
        sock.settimeout(max(1.0, timeout_s))  # the frame follows its first byte closely
        try:
            return recv_frame(sock)
        except (OSError, ValueError):
            return None
        finally:
            sock.settimeout(None)

    def _stop(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(10)
            self._proc = None

    def close(self) -> None:
        """Stop the child (the node is stopping)."""
        with self._lock:
            self._stop()

    def capture(self, bundle: bytes, handler: str, config: PythonFunctionConfig) -> Capture:
        """Capture in the child; raise what `CaptureEngine.capture` raises, and TimedOut
        (the child killed) when it ran `CAPTURE_GRACE_S` past the init budget."""
        with self._lock:
            sock = self._ensure()
            request = pickle.dumps((bundle, handler, config))
            if len(request) > MAX_FRAME:
                raise InvalidArtifact(
                    f"the code bundle is too large to capture ({len(bundle)} bytes)"
                )
            started = time.monotonic()
            try:
                sock.sendall(pack({"capture": request}))
            except OSError:
                self._stop()
                raise ServiceUnavailable("the snapshot capture process died; retry") from None
            reply = self._receive(config.load_timeout_s + CAPTURE_GRACE_S)
            if reply is not None and reply.get("initialized"):
                reply = self._receive(BUILD_TIMEOUT_S)
            if reply is None:
                alive = self._proc is not None and self._proc.poll() is None
                self._stop()
                if alive:  # still running: blocked in a host call past the init budget
                    self.killed += 1
                    log.warning(
                        "the init of %s ran %.1f s, past its %.1f s budget (blocked in a host"
                        " call such as time.sleep); its capture process was killed",
                        config.function_name, time.monotonic() - started, config.load_timeout_s,
                    )  # fmt: skip
                    raise TimedOut(config.load_timeout_s)
                raise ServiceUnavailable("the snapshot capture process died during init; retry")
            if "error" in reply:
                raise error_from_dict(reply["error"])
            result: Capture = pickle.loads(reply["capture"])
            return result


def serve(sock: socket.socket) -> None:
    """The child: make the capture engine, then answer capture requests until EOF."""
    from firebox.compiler.cache_files import file_lock
    from firebox.runtime.snapshot.capture import CaptureEngine

    hello = recv_frame(sock)
    if hello is None:
        return
    split: SplitInterpreter = pickle.loads(hello["split"])
    cache_dir = Path(hello["cache"])
    try:
        with file_lock(cache_dir / ".capture-compile.lock"):
            engine = CaptureEngine(split, cache_dir)
    except FireboxError as exc:
        sock.sendall(pack({"ready": False, "error": exc.to_dict()}))
        return
    sock.sendall(pack({"ready": True}))
    while True:
        request = recv_frame(sock)
        if request is None:
            return
        bundle, handler, config = pickle.loads(request["capture"])
        try:
            result = engine.capture(
                bundle, handler, config, lambda: sock.sendall(pack({"initialized": True}))
            )
        except FireboxError as exc:
            sock.sendall(pack({"error": exc.to_dict()}))
            continue
        except Exception as exc:  # a bug of ours, not the function's: say it, keep serving
            log.exception("capture of %s failed", handler)
            message = f"the snapshot capture failed: {type(exc).__name__}: {exc}"
            sock.sendall(pack({"error": {"type": "FireboxError", "message": message}}))
            continue
        sock.sendall(pack({"capture": pickle.dumps(result)}))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="firebox's snapshot capture process")
    parser.add_argument("--fd", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="firebox capture: %(message)s")
    serve(socket.socket(fileno=args.fd))


if __name__ == "__main__":
    main()
