"""Lambda's filesystem and process surface inside the guest: cwd, /tmp, fcntl, asyncio, threads (guest side).

The host maps the bundle read-only at /var/task, an empty /tmp and the runtime layer
(runtime/sandbox.py). This module makes the interpreter use them as Lambda's does
(cwd /var/task, tempfile in /tmp, no bytecode written) and gives the standard modules a
WebAssembly CPython lacks or cannot run the behaviour a handler may rely on: `fcntl`
locks that always succeed (the instance is the only process there is), an asyncio event
loop without the self-pipe socket WASI cannot make, and thread starts that fail saying
why. `install` runs at build time (into the snapshot); `enter` at every `load`.
"""

from __future__ import annotations

# isort: off
import firebox_guest_ssl  # noqa: F401 - before asyncio and the SDK look for `ssl`
# isort: on

import asyncio
import contextlib
import os
import selectors
import sys
import tempfile
import threading
import time
import types
from collections.abc import Callable
from typing import Any

TASK_ROOT = "/var/task"
TMP_ROOT = "/tmp"

NO_THREADS = (
    "threads are not available in firebox's WebAssembly sandbox (one thread per"
    " instance); run the work inline, or use asyncio"
)


def _fcntl_module() -> types.ModuleType:
    module = types.ModuleType("fcntl", "File locks and descriptor flags (firebox: one process).")
    constants = {
        "LOCK_SH": 1, "LOCK_EX": 2, "LOCK_NB": 4, "LOCK_UN": 8,
        "F_DUPFD": 0, "F_GETFD": 1, "F_SETFD": 2, "F_GETFL": 3, "F_SETFL": 4,
        "F_GETLK": 5, "F_SETLK": 6, "F_SETLKW": 7, "FD_CLOEXEC": 1,
        "F_RDLCK": 0, "F_WRLCK": 1, "F_UNLCK": 2,
    }  # fmt: skip
    for name, value in constants.items():
        setattr(module, name, value)

    def flock(fd: Any, operation: int) -> None:
        """Succeed: no other process can hold a lock on this instance's files."""
        _fileno(fd)

    def lockf(fd: Any, cmd: int, len: int = 0, start: int = 0, whence: int = 0) -> None:
        """Succeed, like `flock`."""
        _fileno(fd)

    def fcntl(fd: Any, cmd: int, arg: Any = 0) -> Any:
        """Return 0 (or `arg` for byte buffers) for the flag commands; no-op otherwise."""
        _fileno(fd)
        return arg if isinstance(arg, bytes | bytearray) else 0

    def ioctl(fd: Any, request: int, arg: Any = 0, mutate_flag: bool = True) -> Any:
        raise OSError(25, "Inappropriate ioctl for device (no terminals in firebox)")

    for function in (flock, lockf, fcntl, ioctl):
        setattr(module, function.__name__, function)
    return module


def _fileno(fd: Any) -> int:
    number = fd if isinstance(fd, int) else fd.fileno()
    os.fstat(number)  # EBADF for a closed descriptor, as the real call gives
    return int(number)


class _PipelessLoop(asyncio.SelectorEventLoop):
    """A selector loop without the self-pipe: WASI has no socketpair, and one thread needs none."""

    def _make_self_pipe(self) -> None:
        self._ssock = self._csock = None
        self._internal_fds = 0

    def _close_self_pipe(self) -> None:
        return None

    def _write_to_self(self) -> None:
        return None

    def _process_self_data(self, data: bytes) -> None:
        return None


class _Policy(asyncio.DefaultEventLoopPolicy):
    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        return _PipelessLoop(selectors.SelectSelector())


def _refuse_threads(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError(NO_THREADS)


NO_SOCKETS = (
    "sockets are not available in firebox's WebAssembly sandbox; outbound HTTP goes"
    " through the host's HTTP API"
)


def _explain_sockets() -> None:
    """Make socket errors say why; let UDP sockets exist and drop what they send.

    A UDP send to an address where nothing listens is silently lost on Lambda too; the
    X-Ray SDK (Powertools' Tracer) makes its daemon socket at import and only sends to it.
    """
    import socket
    import weakref

    # The class socket.py defines, even when the host HTTP layer's subclass already
    # replaced `socket.socket` (the import order of the guest modules is not fixed).
    cls = next(
        c for c in socket.socket.__mro__ if c.__module__ == "socket" and c.__name__ == "socket"
    )
    original_init = cls.__init__
    dropping: weakref.WeakSet[socket.socket] = weakref.WeakSet()

    def init(self: socket.socket, *args: Any, **kwargs: Any) -> None:
        try:
            original_init(self, *args, **kwargs)
        except OSError as exc:
            kind = args[1] if len(args) > 1 else kwargs.get("type", socket.SOCK_STREAM)
            if kind == socket.SOCK_DGRAM:
                dropping.add(self)
                return
            raise PermissionError(exc.errno, f"{exc.strerror}: {NO_SOCKETS}") from None

    def dropper(name: str, result: Callable[..., Any]) -> None:
        original = getattr(cls, name)

        def method(self: socket.socket, *args: Any, **kwargs: Any) -> Any:
            if self in dropping:
                return result(*args)
            return original(self, *args, **kwargs)

        setattr(cls, name, method)

    cls.__init__ = init  # type: ignore[method-assign]
    for name in ("sendto", "send", "sendall"):
        dropper(name, lambda data, *rest: len(data))
    for name in ("connect", "setblocking", "settimeout", "close", "bind"):
        dropper(name, lambda *rest: None)


def _tzset() -> None:
    """Accept `time.tzset()`: local time is UTC in the guest (Lambda sets TZ=:UTC too)."""


def install() -> None:
    """Patch the interpreter once, at build time: fcntl, asyncio's loop, thread starts."""
    sys.modules.setdefault("fcntl", _fcntl_module())
    asyncio.set_event_loop_policy(_Policy())
    for name in ("_start_joinable_thread", "_start_new_thread"):
        if hasattr(threading, name):
            setattr(threading, name, _refuse_threads)
    sys.dont_write_bytecode = True  # /var/task is read-only, as on Lambda
    if not hasattr(time, "tzset"):  # WASI CPython lacks it; its local time is always UTC
        time.tzset = _tzset  # type: ignore[attr-defined]
    _explain_sockets()


def enter() -> None:
    """Make the instance's directories current: cwd /var/task, temporary files in /tmp."""
    with contextlib.suppress(OSError):  # no sandbox (a host without the preopens): stay in /
        os.chdir(TASK_ROOT)
    tempfile.tempdir = None  # recomputed from TMPDIR or /tmp on first use


install()
