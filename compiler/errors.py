"""Typed errors of the compiler: handler source -> artifact (compiler layer).

Each message says what is wrong and what the user can do about it.
"""

from __future__ import annotations


class CompileError(Exception):
    """Base of every error raised while turning handler source into an artifact."""


class InvalidHandler(CompileError):
    """The handler string is malformed, or its module is not in the bundle."""

    def __init__(self, handler: str, reason: str) -> None:
        super().__init__(
            f"Invalid handler {handler!r}: {reason}. A Python handler is 'module.function'"
            " (for example 'lambda_function.lambda_handler'), with module.py at the top"
            " of the source directory or zip."
        )
        self.handler = handler


class NativeDependencyError(CompileError):
    """A dependency needs native code, which cannot run inside WebAssembly."""

    def __init__(self, package: str, path: str, reason: str = "") -> None:
        because = f": {reason}" if reason else f" ({path})"
        super().__init__(
            f"Distribution {package!r} needs native code{because}. firebox runs Python"
            " handlers in WebAssembly: optional accelerators with a pure-Python fallback"
            " are dropped at deploy, but this one has none. Use a pure-Python alternative"
            " or remove the dependency."
        )
        self.package = package
        self.path = path
        self.reason = reason


class DependencyInstallError(CompileError):
    """pip could not install the requirements of a function."""

    def __init__(self, requirements: str, output: str) -> None:
        super().__init__(
            f"Installing {requirements} failed (only pure-Python wheels are accepted):\n"
            f"{output.strip()[-2000:]}"
        )


class BundleTooLarge(CompileError):
    """The code bundle exceeds the size firebox accepts."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"The code bundle is {size} bytes, over the limit of {limit} bytes; remove"
            " unused files or dependencies."
        )
        self.size = size
        self.limit = limit


class InvalidBundle(CompileError):
    """The bytes are not a firebox Python code bundle (a zip archive)."""


class InterpreterBuildError(CompileError):
    """componentize-py failed to build the shared Python interpreter component."""
