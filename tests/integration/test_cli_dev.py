"""`firebox new` + `firebox dev` against a real node: save, see the result, break, see the line."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import Server

pytestmark = pytest.mark.slow


def _env(server: Server) -> dict[str, str]:
    env = {**os.environ, "FIREBOX_ENDPOINT": server.url, "FIREBOX_DATA_DIR": str(server.data_dir)}
    env.pop("FIREBOX_ACCESS_KEY_ID", None)
    env.pop("FIREBOX_SECRET_ACCESS_KEY", None)
    return env


class Lines:
    """The lines a process prints, read on a thread so a test can wait for one."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.mark = 0  # where the next wait starts looking: where the previous one began reading
        self.used: set[int] = set()  # lines a wait matched already
        assert proc.stdout is not None
        stream = proc.stdout

        def pump() -> None:
            for line in stream:
                self.lines.put(line)

        threading.Thread(target=pump, daemon=True).start()

    def wait_for(self, text: str, timeout: float) -> float:
        """Return the seconds until a line containing `text` appeared; fail after `timeout`.

        Lines the previous wait read count too (each line matches once): the followed
        logs and the event's result come from two streams, in either order.
        """
        started = time.monotonic()
        begin, self.mark = self.mark, len(self.seen)
        for index in range(begin, len(self.seen)):
            if index not in self.used and text in self.seen[index]:
                self.used.add(index)
                return 0.0
        while time.monotonic() - started < timeout:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                continue
            self.seen.append(line)
            if text in line:
                self.used.add(len(self.seen) - 1)
                return time.monotonic() - started
        raise AssertionError(f"no line with {text!r} in {timeout} s; saw:\n{''.join(self.seen)}")


def _save(path: Path, text: str) -> None:
    path.write_text(text)
    # Guarantee a new mtime even on filesystems with coarse timestamps.
    stamp = time.time_ns() + 10_000_000
    os.utime(path, ns=(stamp, stamp))


def test_new_then_dev_live_reload(server: Server, tmp_path: Path) -> None:
    env = _env(server)
    cli = [sys.executable, "-m", "firebox.sdk.cli"]
    made = subprocess.run([*cli, "new", "greeter"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert made.returncode == 0, made.stderr
    folder = tmp_path / "greeter"
    assert {p.name for p in folder.iterdir()} == {"firebox.toml", "app.py", "event.json"}
    again = subprocess.run([*cli, "new", "greeter"], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=60)  # fmt: skip
    assert again.returncode == 1 and "not empty" in again.stderr

    proc = subprocess.Popen([*cli, "dev", "greeter"], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    out = Lines(proc)
    try:
        out.wait_for(f"POST {server.url}/v1/functions/greeter/invoke", 240)
        out.wait_for('event.json -> {"message": "Hello, firebox!"', 60)
        out.wait_for("watching greeter", 10)
        app = folder / "app.py"
        source = app.read_text()
        # Save a change: the new result shows (in a second or two on an idle machine; the
        # bound is loose because speed is the bench's business, not a test's).
        _save(app, source.replace('f"Hello, {name}!"', 'f"Howdy, {name}!"'))
        out.wait_for('event.json -> {"message": "Howdy, firebox!"', 30)
        # The logs are followed: the greeting the handler logged shows up.
        out.wait_for("greeting firebox", 10)
        # Break it: the error names its type and line.
        broken = source.replace(
            '    name = event.get("name", "world")\n', '    name = event["nobody"]\n'
        )
        assert broken != source
        _save(app, broken)
        out.wait_for("error: KeyError: 'nobody'", 10)
        out.wait_for("app.py:10 in handler", 5)
        # Fix it: back to the greeting.
        _save(app, source)
        out.wait_for('event.json -> {"message": "Hello, firebox!"', 10)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
