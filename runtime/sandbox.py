"""The filesystem a Python guest sees, as Lambda gives it: WASI preopens and /tmp quotas (engine layer).

Every instance gets exactly four directories and nothing else of the host:
  /var/task             the function's bundle, extracted once per bundle, read-only (the cwd)
  /tmp                  an empty, writable directory of its own, removed with the instance
  /usr/share/zoneinfo   the IANA database from the runtime layer's tzdata, read-only
  the layer root        boto3/botocore/tzdata (compiler/runtime_layer.py), read-only, at
                        the path the interpreter snapshot imported them from

WASI has no disk quota, so a watchdog thread measures every live /tmp (allocated blocks,
so sparse files count as what they use) and, past the function's ephemeral-storage
size, empties it and marks the instance: the call then fails and the instance is
discarded. Disk use per instance is so bounded by the quota plus what a guest writes
in one watchdog period. Preopens are configured per Store, so an instance restored from
a memory snapshot gets fresh handles from its own WasiConfig.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import tempfile
import threading
import weakref
import zipfile
from pathlib import Path

import wasmtime
from firebox.runtime import config
from firebox.runtime.errors import GuestTrap, InvocationError

log = logging.getLogger("firebox.sandbox")

MiB = 1024 * 1024

#: Lambda's default EphemeralStorage (512 MB; Lambda allows up to 10,240 MB).
DEFAULT_EPHEMERAL_MB = config.FIREBOX_EPHEMERAL_STORAGE_MB.get()

#: How often the watchdog measures every live /tmp (seconds).
WATCH_INTERVAL_S = config.FIREBOX_TMP_WATCH_INTERVAL_S.get()

#: Where bundles are extracted and per-instance /tmp folders live on the host.
SANDBOX_DIR = Path(
    config.FIREBOX_SANDBOX_DIR.get()
    or Path(tempfile.gettempdir()) / f"firebox-sandbox-{os.getuid()}"
)

TASK_ROOT = "/var/task"
TMP_ROOT = "/tmp"
ZONEINFO_ROOT = "/usr/share/zoneinfo"
#: componentize-py served the second `-p` folder (the runtime layer) at /1 at build time.
LAYER_GUEST_ROOT = "/1"


class EphemeralStorageExceeded(GuestTrap):
    """An instance wrote more to /tmp than its ephemeral-storage size (it is discarded)."""

    def __init__(self, message: str) -> None:
        InvocationError.__init__(self, message)


def _extract(bundle: bytes, target: Path) -> None:
    staging = Path(tempfile.mkdtemp(prefix="extract-", dir=target.parent))
    try:
        with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
            for info in archive.infolist():
                name = info.filename
                # The deploy checks refused unsafe names; check again, cheaply.
                if name.startswith("/") or ".." in name.split("/") or info.is_dir():
                    continue
                path = staging / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(archive.read(info))
        os.replace(staging, target)
    except OSError:
        if not target.is_dir():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# id(bundle) -> (bundle, folder): hashing a 17 MB bundle per instance would cost ~30 ms.
_task_dirs: dict[int, tuple[bytes, Path]] = {}
_task_lock = threading.Lock()
_TASK_CACHE = 64


def task_dir(bundle: bytes) -> Path:
    """Return the host folder holding `bundle` extracted (content-addressed, made once)."""
    cached = _task_dirs.get(id(bundle))
    if cached is not None and cached[0] is bundle:
        return cached[1]
    digest = hashlib.sha256(bundle).hexdigest()[:32]
    target = SANDBOX_DIR / "task" / digest
    with _task_lock:
        if not target.is_dir():
            target.parent.mkdir(parents=True, exist_ok=True)
            _extract(bundle, target)
        if len(_task_dirs) >= _TASK_CACHE:
            _task_dirs.pop(next(iter(_task_dirs)))
        _task_dirs[id(bundle)] = (bundle, target)
    return target


_layer: Path | None = None


def layer_dir() -> Path | None:
    """Return the runtime layer's host folder (boto3, botocore, tzdata), or None without one."""
    global _layer
    if _layer is None:
        from firebox.compiler.interpreter import default_cache_dir
        from firebox.compiler.runtime_layer import build_runtime_layer

        try:
            _layer = build_runtime_layer(default_cache_dir())
        except Exception as exc:  # a missing distribution: guests run without the layer
            log.warning("no Python runtime layer (boto3, tzdata): %s", exc)
            return None
    return _layer


class _TmpWatch:
    """Measures every live /tmp folder from one daemon thread; empties those over quota."""

    def __init__(self) -> None:
        self._dirs: dict[Path, int] = {}
        self.exceeded: set[Path] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, path: Path, quota: int) -> None:
        with self._lock:
            self._dirs[path] = quota
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="tmp-watch", daemon=True)
                self._thread.start()

    def remove(self, path: Path) -> None:
        with self._lock:
            self._dirs.pop(path, None)
            self.exceeded.discard(path)
        shutil.rmtree(path, ignore_errors=True)

    def check(self, path: Path) -> None:
        """Measure `path` now; raises `EphemeralStorageExceeded` when it is or was over quota."""
        quota = self._dirs.get(path)
        if quota is None:
            return
        if path in self.exceeded or usage(path) > quota:
            self._empty(path)
            raise EphemeralStorageExceeded(
                f"the function wrote more than its ephemeral storage ({quota // MiB} MB) to"
                " /tmp; raise EphemeralStorage or write less"
            )

    def _empty(self, path: Path) -> None:
        self.exceeded.add(path)
        self.empty(path)

    def empty(self, path: Path) -> None:
        """Remove everything in `path` (files truncated first: open descriptors keep blocks)."""
        for child in list(path.iterdir()) if path.is_dir() else ():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            elif child.is_symlink() or not child.is_file():
                child.unlink(missing_ok=True)  # never follow a guest's link out of /tmp
            else:
                # Truncate before unlinking: an open descriptor keeps an unlinked file's blocks.
                try:
                    os.truncate(child, 0)
                finally:
                    child.unlink(missing_ok=True)

    def _run(self) -> None:
        stop = threading.Event()
        while not stop.wait(WATCH_INTERVAL_S):
            with self._lock:
                watched = list(self._dirs.items())
            for path, quota in watched:
                try:
                    if path not in self.exceeded and usage(path) > quota:
                        log.warning("instance /tmp %s over %d bytes: emptied", path, quota)
                        self._empty(path)
                except OSError:
                    continue


_watch = _TmpWatch()


def usage(path: Path) -> int:
    """Return the bytes of disk the files under `path` occupy (allocated blocks)."""
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
            except OSError:
                continue
    return total


def wasi_config(store: wasmtime.Store, bundle: bytes, ephemeral_mb: int = 0) -> wasmtime.WasiConfig:
    """Return the WASI configuration of one new instance of a Python function.

    Makes the instance's empty /tmp (removed when `store` is garbage-collected) and
    watches it against `ephemeral_mb` (default `DEFAULT_EPHEMERAL_MB`). No environment,
    arguments or network: the guest sets its own environment in `load`.
    """
    config = wasmtime.WasiConfig()
    config.preopen_dir(str(task_dir(bundle)), TASK_ROOT, False)
    tmp_parent = SANDBOX_DIR / "tmp"
    tmp_parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="i-", dir=tmp_parent))
    config.preopen_dir(str(tmp), TMP_ROOT, True)
    _watch.add(tmp, (ephemeral_mb or DEFAULT_EPHEMERAL_MB) * MiB)
    _tmp_of[id(store)] = tmp
    weakref.finalize(store, _release, id(store), tmp)
    layer = layer_dir()
    if layer is not None:
        config.preopen_dir(str(layer), LAYER_GUEST_ROOT, False)
        zoneinfo = layer / "tzdata" / "zoneinfo"
        if zoneinfo.is_dir():
            config.preopen_dir(str(zoneinfo), ZONEINFO_ROOT, False)
    return config


_tmp_of: dict[int, Path] = {}


def _release(key: int, tmp: Path) -> None:
    _tmp_of.pop(key, None)
    _watch.remove(tmp)


def empty_tmp(store: wasmtime.Store) -> bool:
    """Empty `store`'s /tmp for its next invocation; return False if it could not be."""
    tmp = _tmp_of.get(id(store))
    if tmp is None:
        return False
    try:
        with os.scandir(tmp) as entries:
            if next(entries, None) is None:
                return True
        _watch.empty(tmp)
    except OSError:
        return False
    return True


def check_tmp(store: wasmtime.Store) -> None:
    """Raise `EphemeralStorageExceeded` when `store`'s /tmp went over its quota."""
    tmp = _tmp_of.get(id(store))
    if tmp is not None:
        _watch.check(tmp)
