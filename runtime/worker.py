"""A worker process: runs guests on threads, keeps ready pools, answers the node (worker layer).

Started by the node's supervisor as `python -m firebox.runtime.worker`; it talks to the
node over one inherited socket with `firebox.runtime.wire` frames. Guest code never
runs in the node process. A guest blocked in a host call cannot be interrupted by
epochs and a Python thread cannot be killed: the watchdog (`firebox.runtime.watchdog`)
answers such an invocation or load on time and sets its thread aside, and the node
kills this whole process only when even that fails (a last resort).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import psutil
from firebox.runtime import config
from firebox.runtime.artifacts import ArtifactStore, CompiledCache
from firebox.runtime.engine import EngineSettings
from firebox.runtime.errors import FireboxError, InvocationError, Throttled, TimedOut
from firebox.runtime.guest.component import RESTORE_TIMEOUT_S
from firebox.runtime.guest.engine import get_engine
from firebox.runtime.guest.loading import load_program
from firebox.runtime.guest.protocol import CallContext
from firebox.runtime.host import aws, services
from firebox.runtime.host.log import LogBuffer
from firebox.runtime.limits import Limits, bound_error
from firebox.runtime.pool import InstancePool, PoolFiller, ReadyBudget
from firebox.runtime.specs import FunctionSpec, InvokeReply, InvokeRequest
from firebox.runtime.threads import GuestThreads
from firebox.runtime.watchdog import Ticket, Watchdog
from firebox.runtime.wire import pack, recv_frame


class Worker:
    """The state of one worker process: engine, caches, pools and the reply channel."""

    def __init__(
        self,
        sock: socket.socket,
        data_dir: Path,
        settings: EngineSettings,
        threads: int,
        idle_shrink_s: float,
    ) -> None:
        self.sock = sock
        self.engine = get_engine(settings)
        self.artifacts = ArtifactStore(data_dir)
        self.cache = CompiledCache(data_dir, settings)
        self.pools: dict[str, InstancePool] = {}
        # Half the allocator's slots may hold ready instances; the rest serve calls.
        self.filler = PoolFiller(
            budget=ReadyBudget(settings.pool_slots // 2, config.FIREBOX_READY_MEMORY_MB.get())
        )
        self.executor = GuestThreads(threads)
        self.watchdog = Watchdog(
            self.send,
            on_stuck=self._on_stuck,
            on_unstuck=lambda _: self.executor.retire(),
            max_stuck=2 * threads,
        )
        #: Calls of one function stuck here past which its new calls are throttled.
        self.stuck_per_function = max(1, threads // 4)
        #: Stuck threads in all past which the worker asks the node to recycle it.
        self.recycle_at = threads
        self._recycling = False
        self.idle_shrink_s = idle_shrink_s
        self._send_lock = threading.Lock()
        self._load_lock = threading.Lock()

    def _on_stuck(self, _ticket: Ticket) -> None:
        self.executor.add()  # keep `threads` free threads
        if not self._recycling and self.watchdog.total_stuck() >= self.recycle_at:
            # The node stops sending calls here and restarts this process once the calls
            # it still runs are done: stuck threads hold memory and slots for good.
            self._recycling = True
            with contextlib.suppress(OSError):
                self.send({"id": None, "op": "recycle", "stuck": dict(self.watchdog.stuck)})

    def send(self, message: dict[str, Any]) -> None:
        """Send one frame to the node (thread-safe)."""
        frame = pack(message)
        with self._send_lock:
            self.sock.sendall(frame)

    def pool_for(self, key: str, spec: FunctionSpec | None) -> InstancePool:
        """Return the pool of a function version, loading it from `spec` if new here."""
        pool = self.pools.get(key)
        if pool is not None:
            return pool
        with self._load_lock:
            pool = self.pools.get(key)
            if pool is not None:
                return pool
            if spec is None:
                raise FireboxError(f"function {key} is not loaded in this worker")
            program = load_program(spec, self.engine, self.artifacts, self.cache)
            share = self.filler.budget.pool_share(spec.limits.memory_mb)
            pool = InstancePool(
                program,
                min_ready=min(spec.provisioned, share),
                max_ready=min(spec.concurrency, share),
                reuse=spec.isolation == "reuse",
                idle_shrink_s=self.idle_shrink_s,
                init_timeout_s=spec.init_timeout_s(),
                memory_mb=spec.limits.memory_mb,
            )
            self.pools[key] = pool
            self.filler.add(key, pool)
            return pool

    # --- operations ---------------------------------------------------------------

    def op_load(self, msg: dict[str, Any]) -> dict[str, Any]:
        key = msg["fn"]
        spec = FunctionSpec.from_wire(msg["spec"])
        pool = self.pool_for(key, spec)
        # One instance made now proves the function initializes (a Python handler that
        # fails to import fails its deploy) and makes the first invocation warm; under
        # its own deadline, and a version that fails leaves no pool behind to refill.
        seconds = spec.init_timeout_s()

        def overdue() -> dict[str, Any]:
            self.drop(key)
            error = TimedOut(seconds)
            error.message = f"initialization did not finish within {seconds:.2f} seconds"
            error.args = (error.message,)
            return {"id": msg.get("id"), "ok": False, "error": error.to_dict()}

        msg["_ticket"] = self.watchdog.watch(
            msg.get("id"), key, time.monotonic() + seconds, "initialization", overdue
        )
        try:
            pool.fill_one()
        except BaseException:
            self.drop(key)
            raise
        return {}

    def op_unload(self, msg: dict[str, Any]) -> dict[str, Any]:
        self.drop(msg["fn"])
        return {}

    def drop(self, key: str) -> None:
        """Forget a version's pool: no more refills, its ready instances closed."""
        self.filler.remove(key)
        pool = self.pools.pop(key, None)
        if pool is not None:
            pool.close()

    def op_stats(self, msg: dict[str, Any]) -> dict[str, Any]:
        info = psutil.Process().memory_full_info()
        return {
            "pid": os.getpid(),
            "rss": info.rss,
            "uss": getattr(info, "uss", 0),
            "cache": asdict(self.cache.stats),
            "pools": {key: asdict(pool.snapshot()) for key, pool in list(self.pools.items())},
            "fill_errors": dict(self.filler.errors),
            "stuck": dict(self.watchdog.stuck),
            "threads": self.executor.live,
            "queued": self.executor.queued,
        }

    def watch_invoke(self, msg: dict[str, Any]) -> None:
        """Watch an invocation from its arrival: its deadline is the node's (sent with it,
        one monotonic clock for both processes), so time queued here counts, and the
        watchdog answers it on time even if no thread took it up yet."""
        limits = msg.get("limits") or {}
        timeout_s = float(limits.get("timeout_s", 0) or 0) or Limits().timeout_s
        deadline = float(msg.get("deadline") or time.monotonic() + timeout_s)
        log = LogBuffer(int(limits.get("max_log_bytes", 0) or 0) or Limits().max_log_bytes)
        msg["_log"], msg["_deadline"] = log, deadline

        def overdue() -> dict[str, Any]:
            reply = InvokeReply(ok=False, error=TimedOut(timeout_s).to_dict())
            return {**replace(reply, log=log.text()).to_wire(), "id": msg.get("id")}

        msg["_ticket"] = self.watchdog.watch(
            msg.get("id"), str(msg.get("fn")), deadline, "an invocation", overdue,
            started=False,
        )  # fmt: skip

    def op_invoke(self, msg: dict[str, Any]) -> dict[str, Any]:
        if "_ticket" not in msg:
            self.watch_invoke(msg)
        if not self.watchdog.start(msg["_ticket"]):
            return {}  # it waited here past its deadline: the watchdog answered it
        # Before anything of the call runs: if this process is lost from now on, the node
        # knows the call may have had effects (it fails it) and that the calls it got no
        # such frame for never ran (it sends those to another worker). One small frame
        # per call, not waited for: the caller's path gains no round trip.
        with contextlib.suppress(OSError):
            self.send({"id": msg.get("id"), "op": "started"})
        request = InvokeRequest.from_wire(msg)
        log: LogBuffer = msg["_log"]
        deadline: float = msg["_deadline"]
        ctx = CallContext(
            request_id=request.request_id,
            deadline=deadline,
            log=log,
            function_name=request.name,
            function_version=request.version,
            invoked_arn=request.invoked_arn,
            client_context=request.client_context,
        )
        warm = False
        try:
            stuck = self.watchdog.stuck.get(request.key, 0)
            if stuck >= self.stuck_per_function:
                error = Throttled(request.name, self.stuck_per_function)
                error.message = (
                    f"Rate exceeded: {stuck} calls of function {request.name} are stuck in"
                    " host calls past their deadline on this worker; retry later"
                )
                error.args = (error.message,)
                raise error
            pool = self.pool_for(request.key, request.spec)
            msg["_pool"] = pool
            instance, warm = pool.lease()
            try:
                output, stats = instance.call(request.export, request.payload, ctx)
            finally:
                pool.release(instance)
            reply = InvokeReply(
                ok=True, output=output, warm=warm, fuel=stats.fuel, memory_bytes=stats.memory_bytes
            )
        except FireboxError as exc:
            reply = InvokeReply(ok=False, error=bound_error(exc.to_dict()), warm=warm)
        return replace(reply, log=log.text()).to_wire()

    def handle(self, msg: dict[str, Any]) -> None:
        """Run one request from the node and send its reply (never raises)."""
        op = msg.get("op")
        try:
            handler = getattr(self, f"op_{op}")
            reply = handler(msg)
            reply.setdefault("ok", True)
        except FireboxError as exc:
            reply = {"ok": False, "error": exc.to_dict()}
        except Exception as exc:  # a bug of ours: report it, keep serving
            traceback.print_exc(file=sys.stderr)
            reply = {"ok": False, "error": InvocationError(f"internal error: {exc}").to_dict()}
        reply["id"] = msg.get("id")
        ticket: Ticket | None = msg.get("_ticket")
        if ticket is not None and not self.watchdog.finish(ticket):
            return  # the watchdog answered it (past its deadline); this reply is late
        # If the node is gone, the main loop sees EOF and exits.
        with contextlib.suppress(OSError):
            self.send(reply)
        if op == "invoke":
            pool: InstancePool | None = msg.get("_pool")
            if pool is not None:
                self.after_invoke(pool, str(msg.get("fn")))

    def after_invoke(self, pool: InstancePool, key: str) -> None:
        """Once the caller has its answer: reset the instance the call used for the next
        call, here on this thread (handing it to the filler's thread cost three thread
        wake-ups per call), watched like a call; then wake the filler only if the pool is
        still short (a new instance to make)."""
        if pool.has_used():
            ticket = self.watchdog.watch(
                None, key, time.monotonic() + RESTORE_TIMEOUT_S, "a reset in place", lambda: None
            )
            try:
                pool.recycle_one()
            finally:
                self.watchdog.finish(ticket)
        if pool.deficit() > 0:
            self.filler.poke()

    def serve(self) -> None:
        """Read requests until the node closes the socket."""
        self.send({"id": 0, "ok": True, "ready": True, "pid": os.getpid()})
        while True:
            msg = recv_frame(self.sock)
            if msg is None:
                break
            if msg.get("op") == "invoke":
                self.watch_invoke(msg)
            if msg.get("op") in ("invoke", "load"):
                self.executor.submit(self.handle, msg)
            else:
                self.handle(msg)
        self.filler.stop()
        self.executor.shutdown()
        for pool in self.pools.values():
            pool.close()


def die_with_parent() -> None:
    """On Linux, have the kernel SIGKILL this worker when the node dies (SIGKILL and
    OOM included): a dead node's invocations must not run on unseen after its
    concurrency slots and leases expired and another node took them."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the node died before the signal was set
        os._exit(0)


def main(argv: list[str] | None = None) -> None:
    """Entry point of a worker process (`python -m firebox.runtime.worker`)."""
    die_with_parent()
    parser = argparse.ArgumentParser(prog="firebox-worker")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--settings", default="{}")
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--idle-shrink-s", type=float, default=60.0)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--queue-url", default="")
    parser.add_argument("--api-url", default="")
    args = parser.parse_args(argv)
    # Host capabilities (tables, buckets, secrets, queue sends) reach the node's stores.
    services.configure(args.data_dir, args.database_url or None, args.queue_url or None)
    sock = socket.socket(fileno=args.fd)
    # The node's first frame: the key execution-role credentials are signed with, so
    # boto3 in a function reaches the node's AWS APIs with its own role (host/aws.py).
    hello = recv_frame(sock) or {}
    aws.configure(args.api_url or None, bytes(hello.get("role_key") or b""))
    settings = EngineSettings(**json.loads(args.settings))
    worker = Worker(sock, args.data_dir, settings, args.threads, args.idle_shrink_s)
    worker.serve()
    # Close explicitly: Stores with WASI stdout callbacks alive at exit can panic.
    os._exit(0)


if __name__ == "__main__":
    main()
