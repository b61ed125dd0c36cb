"""Capture of print(), sys.stderr and logging into the host's log import (guest side).

Output is line-buffered and sent through `host.log`, bounded per invocation by the
function's `max-log-bytes`: past the limit, one truncation marker, then nothing.
"""

from __future__ import annotations

import io
import logging
import time

from wit_world.imports import host

TRUNCATION_MARKER = "[firebox] log output truncated after {limit} bytes\n"

_LEVELS = {
    logging.DEBUG: host.LogLevel.DEBUG,
    logging.INFO: host.LogLevel.INFO,
    logging.WARNING: host.LogLevel.WARNING,
    logging.ERROR: host.LogLevel.ERROR,
    logging.CRITICAL: host.LogLevel.CRITICAL,
}


class LogBudget:
    """Counts the bytes logged in the current invocation and enforces the limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.truncated = False
        self.request_id = ""

    def reset(self, request_id: str) -> None:
        self.used = 0
        self.truncated = False
        self.request_id = request_id

    def emit(self, level: host.LogLevel, text: str) -> None:
        if self.truncated or not text:
            return
        size = len(text.encode("utf-8", errors="replace"))
        if self.used + size > self.limit:
            room = self.limit - self.used
            if room > 0:
                head = text.encode("utf-8", errors="replace")[:room]
                host.log(level, head.decode("utf-8", errors="ignore"))
            self.truncated = True
            self.used = self.limit
            if self.limit > 0:
                host.log(host.LogLevel.WARNING, TRUNCATION_MARKER.format(limit=self.limit))
            return
        self.used += size
        host.log(level, text)


class LogStream(io.TextIOBase):
    """A text stream (for sys.stdout / sys.stderr) that sends whole lines to the host."""

    def __init__(self, budget: LogBudget, level: host.LogLevel) -> None:
        super().__init__()
        self._budget = budget
        self._level = level
        self._pending: list[str] = []

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if "\n" in text:
            head, _, tail = text.rpartition("\n")
            self._pending.append(head + "\n")
            self._budget.emit(self._level, "".join(self._pending))
            self._pending = [tail] if tail else []
        elif text:
            self._pending.append(text)
        return len(text)

    def flush(self) -> None:
        if self._pending:
            text = "".join(self._pending)
            self._pending = []
            self._budget.emit(self._level, text)

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def isatty(self) -> bool:
        return False


class LambdaLogHandler(logging.Handler):
    """Formats records like Lambda's Python runtime and sends them to the host."""

    def __init__(self, budget: LogBudget) -> None:
        super().__init__()
        self._budget = budget
        formatter = logging.Formatter(
            "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n",
            "%Y-%m-%dT%H:%M:%S",
        )
        formatter.converter = time.gmtime
        self.setFormatter(formatter)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            record.aws_request_id = self._budget.request_id
            text = self.format(record)
            level = _LEVELS.get(record.levelno, host.LogLevel.INFO)
            self._budget.emit(level, text if text.endswith("\n") else text + "\n")
        except Exception:
            self.handleError(record)


def install(budget: LogBudget) -> tuple[LogStream, LogStream]:
    """Route sys.stdout/sys.stderr and the root logger to the host; return the streams."""
    import sys

    stdout = LogStream(budget, host.LogLevel.INFO)
    stderr = LogStream(budget, host.LogLevel.ERROR)
    sys.stdout = stdout
    sys.stderr = stderr
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(LambdaLogHandler(budget))
    return stdout, stderr
