"""Local firebox nodes for the cases: free ports, the `firebox` command, node subprocesses (bench).

Both the `python` and the `http` cases start real `firebox serve` processes; what they
share lives here, so the cases do not import each other.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from firebox.compiler.interpreter import default_cache_dir
from firebox.sdk.client import Client, find_credentials

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 60.0


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def persistent_compiled_dir() -> Path:
    """Where the bench keeps compiled interpreters between runs (keys make sharing safe)."""
    env = os.environ.get("FIREBOX_BENCH_COMPILED")
    return Path(env) if env else default_cache_dir() / "bench-compiled"


def _link_tree(src: Path, dst: Path, suffixes: tuple[str, ...] = (".ccwasm",)) -> int:
    """Hard-link (or copy) the files of `src` with `suffixes` into `dst`; return how many."""
    count = 0
    if not src.is_dir():
        return 0
    for path in src.rglob("*"):
        if not path.is_file() or path.suffix not in suffixes or path.name.startswith("."):
            continue
        target = dst / path.relative_to(src)
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)
        count += 1
    return count


def seed_compiled(data_dir: Path) -> int:
    """Put the compiled interpreter of earlier runs into `data_dir/compiled` (saves ~20 s)."""
    return _link_tree(persistent_compiled_dir(), data_dir / "compiled")


def save_compiled(data_dir: Path) -> int:
    """Keep the compiled interpreter of this run for the next ones."""
    return _link_tree(data_dir / "compiled", persistent_compiled_dir())


def firebox_cmd() -> list[str]:
    """The `firebox` command of this venv."""
    binary = Path(sys.executable).with_name("firebox")
    return [str(binary)] if binary.exists() else [sys.executable, "-m", "firebox.sdk.cli"]


@dataclass
class Node:
    """One `firebox serve` subprocess on 127.0.0.1, in its own process group."""

    data_dir: Path
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    started_ns: int = 0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        """Spawn the node (FIREBOX_COMPILED_CACHE is dropped unless `env` sets it)."""
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if k != "FIREBOX_COMPILED_CACHE"}
        # Enough execution slots that one function may run the 64 connections of the
        # http case at once (admission gives one function three quarters of the slots).
        env.setdefault("FIREBOX_WORKER_THREADS", "48")
        env.update(self.env)
        cmd = [*firebox_cmd(), "serve", "--host", HOST, "--port", str(self.port)]
        with self.log.open("ab") as out:
            self.started_ns = time.perf_counter_ns()
            self.proc = subprocess.Popen(
                [*cmd, "--data-dir", str(self.data_dir)],
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_healthy(self, timeout_s: float = START_TIMEOUT_S) -> int:
        """Poll /healthz until 200; return ns since the spawn. Raises RuntimeError on failure."""
        deadline = time.monotonic() + timeout_s
        with httpx.Client(timeout=2.0) as http:
            while True:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise RuntimeError(f"firebox exited at start:\n{self.tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if http.get(self.url + "/healthz").status_code == 200:
                        return time.perf_counter_ns() - self.started_ns
                if time.monotonic() > deadline:
                    raise RuntimeError(f"firebox not healthy in {timeout_s}s:\n{self.tail()}")
                time.sleep(0.005)

    def client(self, timeout: float = 120.0) -> Client:
        """A Client with the admin credentials the node wrote into its data dir."""
        return Client(self.url, find_credentials(self.data_dir), timeout=timeout)

    def stop(self) -> None:
        """Stop the node and everything in its process group (workers, replacements)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=15)
        # Workers the supervisor restarted while shutting down may outlive the node.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        self.proc = None

    def tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-2000:]
        except OSError:
            return ""


@contextlib.contextmanager
def running(node: Node) -> Iterator[Node]:
    """Start `node` and stop it however the block ends."""
    try:
        node.start()
        yield node
    finally:
        node.stop()
