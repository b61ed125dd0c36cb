"""A worker process: runs guests on threads, keeps ready pools, answers the node (worker layer).

Started by the node's supervisor as `python -m firebox.runtime.worker`; it talks to the
node over one inherited socket with `firebox.runtime.wire` frames. Guest code never
runs in the node process: a guest blocked in a host call cannot be interrupted by
epochs and a Python thread cannot be killed, so the node kills this whole process
instead when a call overstays its deadline.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import psutil
from firebox.runtime.artifacts import ArtifactStore, CompiledCache
from firebox.runtime.engine import EngineSettings
from firebox.runtime.errors import FireboxError, InvocationError
from firebox.runtime.guest.engine import get_engine
from firebox.runtime.guest.loading import load_program
from firebox.runtime.guest.protocol import CallContext
from firebox.runtime.host import services
from firebox.runtime.host.log import LogBuffer
from firebox.runtime.pool import InstancePool, PoolFiller
from firebox.runtime.specs import FunctionSpec, InvokeReply, InvokeRequest
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
        self.filler = PoolFiller()
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="guest")
        self.idle_shrink_s = idle_shrink_s
        self._send_lock = threading.Lock()
        self._load_lock = threading.Lock()

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
            pool = InstancePool(
                program,
                min_ready=spec.provisioned,
                max_ready=spec.concurrency,
                reuse=spec.isolation == "reuse",
                idle_shrink_s=self.idle_shrink_s,
            )
            self.pools[key] = pool
            self.filler.add(key, pool)
            return pool

    # --- operations ---------------------------------------------------------------

    def op_load(self, msg: dict[str, Any]) -> dict[str, Any]:
        pool = self.pool_for(msg["fn"], FunctionSpec.from_wire(msg["spec"]))
        # One instance made now proves the function initializes (a Python handler that
        # fails to import fails its deploy) and makes the first invocation warm.
        pool.fill_one()
        return {}

    def op_unload(self, msg: dict[str, Any]) -> dict[str, Any]:
        key = msg["fn"]
        self.filler.remove(key)
        pool = self.pools.pop(key, None)
        if pool is not None:
            pool.close()
        return {}

    def op_stats(self, msg: dict[str, Any]) -> dict[str, Any]:
        info = psutil.Process().memory_full_info()
        return {
            "pid": os.getpid(),
            "rss": info.rss,
            "uss": getattr(info, "uss", 0),
            "cache": asdict(self.cache.stats),
            "pools": {key: asdict(pool.snapshot()) for key, pool in list(self.pools.items())},
            "fill_errors": dict(self.filler.errors),
        }

    def op_invoke(self, msg: dict[str, Any]) -> dict[str, Any]:
        request = InvokeRequest.from_wire(msg)
        limits = request.limits
        log = LogBuffer(limits.max_log_bytes)
        ctx = CallContext(
            request_id=request.request_id,
            deadline=time.monotonic() + limits.timeout_s,
            log=log,
            function_name=request.name,
            function_version=request.version,
            invoked_arn=request.invoked_arn,
            client_context=request.client_context,
        )
        warm = False
        try:
            pool = self.pool_for(request.key, request.spec)
            instance, warm = pool.lease()
            try:
                output, stats = instance.call(request.export, request.payload, ctx)
            finally:
                pool.release(instance)
            reply = InvokeReply(
                ok=True, output=output, warm=warm, fuel=stats.fuel, memory_bytes=stats.memory_bytes
            )
        except FireboxError as exc:
            reply = InvokeReply(ok=False, error=exc.to_dict(), warm=warm)
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
        # If the node is gone, the main loop sees EOF and exits.
        with contextlib.suppress(OSError):
            self.send(reply)
        if op == "invoke":
            # Refill (and close what was discarded) only once the caller has its answer:
            # the filler's Python work would otherwise contend for the GIL with this call.
            self.filler.poke()

    def serve(self) -> None:
        """Read requests until the node closes the socket."""
        self.send({"id": 0, "ok": True, "ready": True, "pid": os.getpid()})
        while True:
            msg = recv_frame(self.sock)
            if msg is None:
                break
            if msg.get("op") in ("invoke", "load"):
                self.executor.submit(self.handle, msg)
            else:
                self.handle(msg)
        self.filler.stop()
        for pool in self.pools.values():
            pool.close()


def main(argv: list[str] | None = None) -> None:
    """Entry point of a worker process (`python -m firebox.runtime.worker`)."""
    parser = argparse.ArgumentParser(prog="firebox-worker")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--settings", default="{}")
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--idle-shrink-s", type=float, default=60.0)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--queue-url", default="")
    args = parser.parse_args(argv)
    # Host capabilities (tables, buckets, secrets, queue sends) reach the node's stores.
    services.configure(args.data_dir, args.database_url or None, args.queue_url or None)
    sock = socket.socket(fileno=args.fd)
    settings = EngineSettings(**json.loads(args.settings))
    worker = Worker(sock, args.data_dir, settings, args.threads, args.idle_shrink_s)
    worker.serve()
    # Close explicitly: Stores with WASI stdout callbacks alive at exit can panic.
    os._exit(0)


if __name__ == "__main__":
    main()
