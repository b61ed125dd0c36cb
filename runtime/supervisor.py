"""The node's worker processes: start, dispatch, watch deadlines, kill and replace (dispatch layer)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import zlib
from dataclasses import asdict
from typing import Any

from firebox.runtime.config import (
    KILL_GRACE_S,
    TIMEOUT_GRACE_S,
    NodeConfig,
    event_decode_allowance_s,
)
from firebox.runtime.engine import EngineSettings
from firebox.runtime.errors import (
    FireboxError,
    ServiceUnavailable,
    TimedOut,
    WorkerLost,
    error_from_dict,
)
from firebox.runtime.specs import FunctionSpec, InvokeReply, InvokeRequest
from firebox.runtime.wire import HEADER, pack, unpack

log = logging.getLogger("firebox.supervisor")

WORKER_START_TIMEOUT_S = 30.0
#: The longest a draining worker (recycled for stuck threads) may finish its calls.
DRAIN_S = 10.0
#: A call lost with its worker before it started is sent again only with at least this
#: much of its deadline left: less would end as a TimedOut, where WorkerLost says "retry".
RESEND_MIN_S = 0.1
#: On top of the init deadline, how long a pool load may take to compile its code (a
#: worker missing the compiled cache; the fat Python interpreter takes ~20 s here).
LOAD_COMPILE_S = 60.0


class LostBeforeStart(WorkerLost):
    """The worker died before this request began (no "started" frame came): it never ran,
    so it may be sent to another worker."""


class WorkerProcess:
    """One worker process and the socket the node talks to it over."""

    def __init__(
        self, index: int, config: NodeConfig, settings: EngineSettings, role_key: bytes = b""
    ) -> None:
        self.index = index
        self.config = config
        self.settings = settings
        #: The key role credentials are signed with (the worker issues its functions' own).
        self.role_key = role_key
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid = 0
        self.alive = False
        self.inflight = 0
        #: Why the supervisor killed this process, until its exit is counted.
        self.kill_reason: str | None = None
        #: True once the worker asked to be recycled (too many threads stuck in host
        #: calls): it gets no new calls, and is restarted once its calls are done.
        self.draining = False
        self.loaded: set[str] = set()
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        #: Pending invocations the worker said it began running (a "started" frame).
        self._started: set[int] = set()
        self._ids = itertools.count(1)
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._drain_task: asyncio.Task[None] | None = None
        self.exited: asyncio.Event = asyncio.Event()

    async def start(self) -> None:
        """Spawn the process and wait until it reports ready."""
        parent, child = socket.socketpair()
        cmd = [
            sys.executable,
            "-m",
            "firebox.runtime.worker",
            "--fd",
            str(child.fileno()),
            "--data-dir",
            str(self.config.data_dir),
            "--settings",
            json.dumps(asdict(self.settings)),
            "--threads",
            str(self.config.worker_threads),
            "--idle-shrink-s",
            str(self.config.idle_shrink_s),
            "--database-url",
            self.config.database_url or "",
            "--queue-url",
            self.config.queue_url or "",
            "--api-url",
            self.config.api_url or "",
        ]
        self.proc = subprocess.Popen(cmd, pass_fds=[child.fileno()], stdin=subprocess.DEVNULL)
        child.close()
        self.pid = self.proc.pid
        reader, self._writer = await asyncio.open_unix_connection(sock=parent)
        # The first frame: secrets the worker must not get on its command line (`ps`).
        self._writer.write(pack({"role_key": self.role_key}))
        self.exited = asyncio.Event()
        self.draining = False
        self._started.clear()
        ready: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[0] = ready
        self._reader_task = asyncio.create_task(self._read(reader))
        try:
            await asyncio.wait_for(ready, WORKER_START_TIMEOUT_S)
        except (TimeoutError, FireboxError):
            self.kill()
            raise ServiceUnavailable(f"worker {self.index} failed to start") from None
        self.alive = True

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                header = await reader.readexactly(HEADER.size)
                (length,) = HEADER.unpack(header)
                msg = unpack(await reader.readexactly(length))
                op = msg.get("op")
                if op is not None:
                    if op == "started":
                        request_id = int(msg.get("id") or 0)
                        if request_id in self._pending:
                            self._started.add(request_id)
                    elif op == "recycle" and not self.draining:
                        self.draining = True
                        self._drain_task = asyncio.create_task(self._drain(msg.get("stuck") or {}))
                    continue
                request_id = int(msg.get("id") or 0)
                self._started.discard(request_id)
                future = self._pending.pop(request_id, None)
                if future is not None and not future.done():
                    future.set_result(msg)
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            self.alive = False
            # Frames the worker wrote before it died are read above before the end of the
            # stream, so a call without a "started" frame surely did not begin.
            started = WorkerLost(
                f"worker process {self.pid} exited while running this invocation; retry"
            )
            unstarted = 0
            for request_id, future in self._pending.items():
                if future.done():
                    continue
                if request_id in self._started:
                    future.set_exception(started)
                else:
                    unstarted += 1
                    future.set_exception(
                        LostBeforeStart(
                            f"worker process {self.pid} exited before this request started; retry"
                        )
                    )
            if self._pending:
                log.warning(
                    "worker %d (pid %d) lost %d unanswered requests: %d had started, %d had"
                    " not", self.index, self.pid, len(self._pending),
                    len(self._pending) - unstarted, unstarted,
                )  # fmt: skip
            self._pending.clear()
            self._started.clear()
            if self._writer is not None:
                self._writer.close()
            if self.proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await asyncio.to_thread(self.proc.wait)
            self.exited.set()

    async def _drain(self, stuck: dict[str, int]) -> None:
        """Restart the worker once the calls it still runs are done (or `DRAIN_S` passed)."""
        log.warning(
            "worker %d (pid %d) has too many threads stuck in host calls (%s); draining it",
            self.index, self.pid, ", ".join(f"{k}: {n}" for k, n in sorted(stuck.items())),
        )  # fmt: skip
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DRAIN_S
        while self.inflight > 0 and loop.time() < deadline and self.alive:
            await asyncio.sleep(0.05)
        self.kill_reason = "stuck"
        self.kill()

    def send(self, msg: dict[str, Any]) -> asyncio.Future[dict[str, Any]]:
        """Send a request and return the future of its reply."""
        if not self.alive or self._writer is None:
            raise LostBeforeStart(f"worker {self.index} is not running")
        request_id = next(self._ids)
        msg["id"] = request_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        self._writer.write(pack(msg))
        return future

    async def request(self, msg: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
        """Send a request and return its reply; raises its error as a typed FireboxError."""
        reply = await asyncio.wait_for(self.send(msg), timeout)
        if not reply.get("ok"):
            raise error_from_dict(reply.get("error") or {})
        return reply

    def pending(self, request_id: int) -> bool:
        """Return True if the request is still unanswered."""
        return request_id in self._pending

    def kill(self) -> None:
        """Kill the process at once (SIGKILL); the reader fails what it still held."""
        self.alive = False
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)


class Supervisor:
    """Owns the node's worker processes and dispatches invocations to them."""

    def __init__(self, config: NodeConfig, settings: EngineSettings, role_key: bytes = b"") -> None:
        self.config = config
        self.settings = settings
        self.workers = [WorkerProcess(i, config, settings, role_key) for i in range(config.workers)]
        self.specs: dict[str, FunctionSpec] = {}
        self.restarts = 0
        #: Worker exits by reason: "deadline" (killed, not answering past one), "stuck"
        #: (recycled: too many threads stuck in host calls), "exited" (on its own).
        self.exits: collections.Counter[str] = collections.Counter()
        #: Invocations lost with a worker: "resent" (had not started, sent again) and
        #: "failed" (had started, or too late to resend: answered WorkerLost).
        self.lost: collections.Counter[str] = collections.Counter()
        self._watchers: list[asyncio.Task[None]] = []
        self._stopping = False
        self._worker_up = asyncio.Event()

    async def start(self) -> None:
        """Start every worker and watch them for exits."""
        await asyncio.gather(*(w.start() for w in self.workers))
        self._watchers = [asyncio.create_task(self._watch(w)) for w in self.workers]

    async def stop(self) -> None:
        """Stop every worker."""
        self._stopping = True
        for task in self._watchers:
            task.cancel()
        for worker in self.workers:
            worker.kill()
        await asyncio.gather(*(w.exited.wait() for w in self.workers if w.proc is not None))

    async def _watch(self, worker: WorkerProcess) -> None:
        while not self._stopping:
            await worker.exited.wait()
            if self._stopping:
                return
            log.warning(
                "worker %d (pid %d) exited; starting a replacement", worker.index, worker.pid
            )
            self.exits[worker.kill_reason or "exited"] += 1
            worker.kill_reason = None
            worker.loaded.clear()
            worker.inflight = 0
            try:
                await worker.start()
            except FireboxError:
                await asyncio.sleep(1.0)
                continue
            self.restarts += 1
            self._worker_up.set()
            for key, spec in list(self.specs.items()):
                if self.home(key) is worker:
                    with contextlib.suppress(FireboxError, TimeoutError):
                        await self._load_on(worker, key, spec)

    def home(self, key: str) -> WorkerProcess:
        """Return the worker a function's ready pool lives on (a stable hash of its key)."""
        return self.workers[zlib.crc32(key.encode()) % len(self.workers)]

    def choose(self, key: str) -> WorkerProcess | None:
        """Return the worker to run the next call of `key`: home, unless another is less busy."""
        home = self.home(key)
        best = home if home.alive and not home.draining else None
        for worker in self.workers:
            usable = worker.alive and not worker.draining
            if usable and (best is None or worker.inflight < best.inflight):
                best = worker
        return best

    async def acquire(self, key: str, wait_s: float) -> WorkerProcess:
        """Return a live worker for `key`, waiting up to `wait_s` while all are restarting.

        Raises ServiceUnavailable if none comes back in time.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while (worker := self.choose(key)) is None:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ServiceUnavailable("no worker process is running; retry shortly")
            self._worker_up.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._worker_up.wait(), remaining)
        return worker

    async def _load_on(self, worker: WorkerProcess, key: str, spec: FunctionSpec) -> None:
        # The worker answers at the init deadline; compiling (a cache miss) comes first.
        timeout = spec.init_timeout_s() + LOAD_COMPILE_S
        await worker.request({"op": "load", "fn": key, "spec": spec.to_wire()}, timeout)
        worker.loaded.add(key)

    def alive(self) -> int:
        """Return how many worker processes are running now."""
        return sum(1 for w in self.workers if w.alive)

    def usable(self) -> int:
        """Return how many workers take new calls now (running, not draining)."""
        return sum(1 for w in self.workers if w.alive and not w.draining)

    def slots(self) -> int:
        """Return how many invocations the workers taking calls now can run at once (their
        guest threads): while one restarts or drains, the others' threads are all there
        is. At least one worker's worth: during a full restart, calls wait for the
        replacement (`acquire`) instead of being refused, and then run on its threads."""
        return max(1, self.usable()) * self.config.worker_threads

    async def load(self, key: str, spec: FunctionSpec) -> None:
        """Compile a function version on its home worker and fill its ready pool there."""
        self.specs[key] = spec
        await self._load_on(self.home(key), key, spec)

    async def unload(self, key: str) -> None:
        """Drop a function version's pools on every worker."""
        self.specs.pop(key, None)
        # Every live worker, not only those that loaded it: a load that failed (or
        # timed out) may have left a pool there, which must not be refilled forever.
        for worker in self.workers:
            if worker.alive:
                worker.loaded.discard(key)
                with contextlib.suppress(FireboxError, TimeoutError):
                    await worker.request({"op": "unload", "fn": key}, timeout=10)

    async def invoke(self, request: InvokeRequest) -> InvokeReply:
        """Run one invocation on a worker and return its reply (which may carry a guest error).

        Answers TimedOut on time (the request's `limits.timeout_s`) even when the guest is
        stuck in a host call (the worker's watchdog answers then); a worker that does not
        answer at all within `KILL_GRACE_S` more is killed and replaced.
        A call lost with its worker before it started (the worker sent no "started" frame
        for it) is sent once more, to another live worker or the replacement, when at
        least `RESEND_MIN_S` of its deadline is left.
        Raises WorkerLost if the worker died while running it (or before, too late to resend).
        """
        timeout_s = request.limits.timeout_s
        worker = await self.acquire(request.key, WORKER_START_TIMEOUT_S)
        # The worker keeps the same deadline (one monotonic clock for both processes):
        # time the call waits in the worker counts, and its watchdog answers on time. A
        # call sent again keeps it: the time lost with the first worker counts too.
        deadline = time.monotonic() + timeout_s
        try:
            return await self._invoke_on(worker, request, deadline)
        except LostBeforeStart as lost:
            left = deadline - time.monotonic()
            if left < RESEND_MIN_S:
                self.lost["failed"] += 1
                raise WorkerLost(lost.message) from None
        except WorkerLost:
            self.lost["failed"] += 1
            raise
        self.lost["resent"] += 1
        log.info(
            "call %s of %s was lost with worker %d before it started; sending it again",
            request.request_id, request.key, worker.index,
        )  # fmt: skip
        try:
            again = await self.acquire(request.key, left)
            return await self._invoke_on(again, request, deadline)
        except WorkerLost as exc:  # once only: a second loss is the caller's to retry
            self.lost["failed"] += 1
            raise WorkerLost(exc.message) from None

    async def _invoke_on(
        self, worker: WorkerProcess, request: InvokeRequest, deadline: float
    ) -> InvokeReply:
        key = request.key
        timeout_s = request.limits.timeout_s
        # Not loaded on this worker yet (a version without ready instances, or the home
        # worker is busy): the worker loads it from the spec on the way.
        msg = request.to_wire(with_spec=key not in worker.loaded)
        msg["deadline"] = deadline
        worker.inflight += 1
        try:
            future = worker.send(msg)
            request_id = msg["id"]
            # A Python guest decodes a large event on a budget of its own (config.py).
            allowance = event_decode_allowance_s(len(request.payload))
            wait_s = deadline - time.monotonic() + TIMEOUT_GRACE_S + allowance
            if not await _wait(future, wait_s):
                asyncio.get_running_loop().call_later(
                    KILL_GRACE_S, self._condemn, worker, request_id, request
                )
                future.add_done_callback(_consume)
                raise TimedOut(timeout_s)
            worker.loaded.add(key)
            return InvokeReply.from_wire(future.result())
        finally:
            worker.inflight -= 1

    def _condemn(self, worker: WorkerProcess, request_id: int, request: InvokeRequest) -> None:
        if worker.pending(request_id):
            # The worker's watchdog answers calls stuck in host calls; no answer at all
            # means the whole process is wedged: the last resort.
            log.warning(
                "worker %d (pid %d) did not answer call %s of %s (function %s) past its"
                " deadline; killing it",
                worker.index, worker.pid, request.request_id, request.key, request.name,
            )  # fmt: skip
            worker.kill_reason = "deadline"
            worker.kill()

    async def stats(self) -> list[dict[str, Any]]:
        """Return each live worker's stats (pools, cache, memory)."""
        replies = await asyncio.gather(
            *(w.request({"op": "stats"}, timeout=10) for w in self.workers if w.alive),
            return_exceptions=True,
        )
        internal = ("ok", "id")
        return [
            {k: v for k, v in r.items() if k not in internal}
            for r in replies
            if isinstance(r, dict)
        ]


async def _wait(future: asyncio.Future[dict[str, Any]], timeout: float) -> bool:
    """Wait for `future` up to `timeout` seconds without cancelling it; return whether it is done.

    Cheaper than `wait_for(shield(...))`, which makes two extra tasks per invocation.
    """
    if future.done():
        return True
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()

    def wake(_: object = None) -> None:
        if not waiter.done():
            waiter.set_result(None)

    handle = loop.call_later(timeout, wake)
    future.add_done_callback(wake)
    try:
        await waiter
    finally:
        handle.cancel()
        future.remove_done_callback(wake)
    return future.done()


def _consume(future: asyncio.Future[dict[str, Any]]) -> None:
    if not future.cancelled():
        future.exception()
