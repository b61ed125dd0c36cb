"""Per-function limits, as data: what one invocation may use (limits layer).

How they are applied to a wasmtime Store is the guest layer's business
(`firebox.runtime.guest.store`); this module does not import wasmtime.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from firebox.runtime import config
from firebox.runtime.errors import InvalidManifest


@dataclass(frozen=True)
class Limits:
    """What one invocation of a function may use."""

    memory_mb: int = config.DEFAULT_MEMORY_MB
    timeout_s: float = config.DEFAULT_TIMEOUT_S
    fuel: int = config.DEFAULT_FUEL
    max_request_bytes: int = config.DEFAULT_MAX_REQUEST_BYTES
    max_response_bytes: int = config.DEFAULT_MAX_RESPONSE_BYTES
    max_log_bytes: int = config.DEFAULT_MAX_LOG_BYTES

    @property
    def memory_bytes(self) -> int:
        """The linear-memory cap in bytes."""
        return self.memory_mb * config.MiB

    def validate(self, max_memory_mb: int = config.MAX_MEMORY_MB) -> Limits:
        """Return self if every value is in range; raises InvalidManifest naming the bad one."""
        if not 1 <= self.memory_mb <= max_memory_mb:
            raise InvalidManifest(
                f"memory must be between 1 and {max_memory_mb} MB, got {self.memory_mb}"
            )
        if not 0 < self.timeout_s <= config.MAX_TIMEOUT_S:
            raise InvalidManifest(
                f"timeout must be between 0 and {config.MAX_TIMEOUT_S:.0f} seconds,"
                f" got {self.timeout_s}"
            )
        if not 0 < self.fuel <= config.MAX_FUEL:
            raise InvalidManifest(
                f"fuel must be a positive integer of at most {config.MAX_FUEL}, got {self.fuel}"
            )
        maxima = {
            "max_request_bytes": config.MAX_PAYLOAD_BYTES,
            "max_response_bytes": config.MAX_PAYLOAD_BYTES,
            "max_log_bytes": config.MAX_LOG_BYTES,
        }
        for name, maximum in maxima.items():
            if not 0 < getattr(self, name) <= maximum:
                raise InvalidManifest(
                    f"{name} must be between 1 and {maximum}, got {getattr(self, name)}"
                )
        return self

    def to_dict(self) -> dict[str, Any]:
        """Return the limits as a plain dict (wire and registry form)."""
        # Every field is a number: a shallow copy is `asdict` without its deep copy (this
        # runs once per invocation on the node's event loop).
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Limits:
        """Build limits from a dict, ignoring absent keys (defaults apply)."""
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


#: The most of an error message (and of a handler error's `errorMessage`) that leaves a
#: worker: a guest's 100 MiB exception message must not become a 100 MiB response.
MAX_ERROR_MESSAGE_CHARS = 64 * 1024
#: The most stack-trace lines of a handler error kept (the innermost), and chars per line.
MAX_STACK_LINES = 100
MAX_STACK_LINE_CHARS = 1024


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [truncated {len(text) - limit} characters]"


def bound_error(error: dict[str, Any]) -> dict[str, Any]:
    """Return an error's wire form with its message and handler payload within the caps above."""
    out = dict(error)
    if isinstance(out.get("message"), str):
        out["message"] = _clip(out["message"], MAX_ERROR_MESSAGE_CHARS)
    payload = out.get("payload")
    if isinstance(payload, dict):
        payload = dict(payload)
        for key, limit in (("errorMessage", MAX_ERROR_MESSAGE_CHARS), ("errorType", 256)):
            if isinstance(payload.get(key), str):
                payload[key] = _clip(payload[key], limit)
        trace = payload.get("stackTrace")
        if isinstance(trace, list):
            payload["stackTrace"] = [
                _clip(line, MAX_STACK_LINE_CHARS) if isinstance(line, str) else line
                for line in trace[-MAX_STACK_LINES:]
            ]
        out["payload"] = payload
    return out
