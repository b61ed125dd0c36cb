"""An in-memory meta-path importer over a function's code bundle (guest side).

The bundle is a zip archive laid out like a Lambda deployment package: the handler's
modules and vendored packages at its root. Each module's source is inflated from memory
on first import; the sandbox also extracts the bundle read-only at /var/task for code
that reads its files.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.resources.abc
import io
import os
import pathlib
import sys
import types
import zipfile
from collections.abc import Sequence

#: Where the bundle appears to live, like Lambda's LAMBDA_TASK_ROOT (for `__file__`).
TASK_ROOT = "/var/task"


class BundleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds and loads modules, packages and namespace packages from a zip bundle."""

    def __init__(self, bundle: bytes) -> None:
        self._zip = zipfile.ZipFile(io.BytesIO(bundle))
        self._files = {info.filename: info for info in self._zip.infolist() if not info.is_dir()}
        self._dirs: set[str] = set()
        for name in self._files:
            parts = name.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                self._dirs.add("/".join(parts[:i]))

    def read(self, relative: str) -> bytes:
        """Return the bytes of a bundle file; raises `OSError` when there is none."""
        info = self._files.get(relative.lstrip("/"))
        if info is None:
            raise FileNotFoundError(relative)
        return self._zip.read(info)

    def names(self) -> list[str]:
        """Return the names of the bundle's files."""
        return list(self._files)

    def has_module(self, fullname: str) -> bool:
        """Return True when `fullname` is a module or package of the bundle."""
        base = fullname.replace(".", "/")
        return f"{base}.py" in self._files or base in self._dirs

    # -- MetaPathFinder ------------------------------------------------------------

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        base = fullname.replace(".", "/")
        if f"{base}/__init__.py" in self._files:
            spec = importlib.machinery.ModuleSpec(
                fullname, self, origin=f"{TASK_ROOT}/{base}/__init__.py", is_package=True
            )
            spec.submodule_search_locations = [f"{TASK_ROOT}/{base}"]
        elif f"{base}.py" in self._files:
            spec = importlib.machinery.ModuleSpec(fullname, self, origin=f"{TASK_ROOT}/{base}.py")
        elif base in self._dirs:
            # A namespace package: a folder of modules without __init__.py.
            spec = importlib.machinery.ModuleSpec(fullname, None, is_package=True)
            spec.submodule_search_locations = [f"{TASK_ROOT}/{base}"]
            return spec
        else:
            return None
        spec.has_location = True
        return spec

    def invalidate_caches(self) -> None:
        return None

    # -- Loader --------------------------------------------------------------------

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        spec = module.__spec__
        assert spec is not None and spec.origin is not None
        source = self.get_data(spec.origin)
        code = compile(source, spec.origin, "exec", dont_inherit=True)
        exec(code, module.__dict__)

    def get_data(self, path: str) -> bytes:
        """Return a bundle file's bytes by its `/var/task/...` or relative path."""
        if path.startswith(TASK_ROOT + "/"):
            path = path[len(TASK_ROOT) + 1 :]
        return self.read(path)

    def get_source(self, fullname: str) -> str | None:
        # Used by linecache, so tracebacks in stackTrace show the failing line.
        module = sys.modules.get(fullname)
        spec = getattr(module, "__spec__", None)
        origin = getattr(spec, "origin", None)
        if origin is None:
            base = fullname.replace(".", "/")
            origin = base + ".py" if f"{base}.py" in self._files else base + "/__init__.py"
        try:
            return self.get_data(origin).decode("utf-8", errors="replace")
        except OSError:
            return None

    def get_filename(self, fullname: str) -> str:
        base = fullname.replace(".", "/")
        if f"{base}/__init__.py" in self._files:
            return f"{TASK_ROOT}/{base}/__init__.py"
        return f"{TASK_ROOT}/{base}.py"

    def is_package(self, fullname: str) -> bool:
        return f"{fullname.replace('.', '/')}/__init__.py" in self._files

    def get_resource_reader(self, fullname: str) -> DiskResources:
        # importlib.resources (certifi, tzdata, templates) reads a package's files from
        # its folder under /var/task, where the sandbox extracted the bundle.
        return DiskResources(f"{TASK_ROOT}/{fullname.replace('.', '/')}")


class DiskResources(importlib.resources.abc.TraversableResources):
    """The resources of one bundle package: the files of its folder on disk."""

    def __init__(self, path: str) -> None:
        self._path = path

    def files(self) -> pathlib.Path:
        return pathlib.Path(self._path)


class TaskDir:
    """The bundle as the sandbox extracted it at /var/task, read by Python's own path finder."""

    def names(self) -> list[str]:
        """Return the top-level names under /var/task (enough to see `*.dist-info`)."""
        return [f"{name}/" for name in os.listdir(TASK_ROOT)]

    def has_module(self, fullname: str) -> bool:
        """Return True when `fullname` is a module or package under /var/task."""
        base = f"{TASK_ROOT}/{fullname.replace('.', '/')}"
        return os.path.isdir(base) or os.path.isfile(base + ".py")


def install(bundle: bytes, extra_path: Sequence[str] = ()) -> BundleFinder | TaskDir:
    """Make the bundle importable; sys.path is /var/task, then `extra_path`.

    An empty `bundle` means the host extracted it at /var/task: the standard path
    finder imports from there (passing the bytes through the component boundary costs
    ~2.5 s per MiB in wasmtime-py). Otherwise a finder over the bytes goes first on
    `sys.meta_path`, and the files on disk serve code that reads them.
    """
    sys.path[:] = [TASK_ROOT, *extra_path]
    sys.path_importer_cache.clear()
    if not bundle:
        return TaskDir()
    finder = BundleFinder(bundle)
    sys.meta_path.insert(0, finder)
    return finder
