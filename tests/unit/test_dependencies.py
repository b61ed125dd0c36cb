"""Native code in bundles: optional accelerators dropped with a note, the rest refused by distribution."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from firebox.compiler.dependencies import strip_accelerators
from firebox.compiler.errors import InvalidHandler, NativeDependencyError
from firebox.compiler.python import bundle_python_function, validate_bundle

SO = ".cpython-312-x86_64-linux-gnu.so"


def record(dist: str, *names: str) -> str:
    return "".join(f"{name},sha256=x,1\n" for name in names) + f"{dist}.dist-info/RECORD,,\n"


def test_known_fallbacks_are_dropped_with_a_note() -> None:
    files = {
        "yaml/__init__.py": b"",
        f"yaml/_yaml{SO}": b"\x7fELF",
        "PyYAML-6.0.2.dist-info/RECORD": record(
            "PyYAML-6.0.2", "yaml/__init__.py", f"yaml/_yaml{SO}"
        ).encode(),
        "PyYAML-6.0.2.dist-info/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: false\n",
        "markupsafe/_native.py": b"",
        f"markupsafe/_speedups{SO}": b"\x7fELF",
    }
    report = strip_accelerators(files)
    assert report.dropped == [f"markupsafe/_speedups{SO}", f"yaml/_yaml{SO}"]
    assert f"yaml/_yaml{SO}" not in files and "yaml/__init__.py" in files
    assert any(note.startswith("PyYAML: dropped 1 native accelerator") for note in report.notes)
    assert any("markupsafe._native" in note for note in report.notes)


def test_mypyc_builds_are_dropped_and_named_by_distribution() -> None:
    helper = f"650fdafa2468af73c11f__mypyc{SO}"
    files = {
        "chardet/__init__.py": b"",
        f"chardet/__init__{SO}": b"\x7fELF",
        helper: b"\x7fELF",
        "chardet-7.0.0.dist-info/RECORD": record(
            "chardet-7.0.0", helper, f"chardet/__init__{SO}"
        ).encode(),
    }
    report = strip_accelerators(files)
    assert sorted(report.dropped) == sorted([helper, f"chardet/__init__{SO}"])
    assert report.notes[0].startswith("chardet: dropped 2")


def test_native_only_is_refused_naming_the_distribution_and_why() -> None:
    files = {
        f"numpy/_core/_multiarray_umath{SO}": b"\x7fELF",
        "numpy-2.2.0.dist-info/RECORD": record(
            "numpy-2.2.0", f"numpy/_core/_multiarray_umath{SO}"
        ).encode(),
    }
    with pytest.raises(NativeDependencyError, match=r"Distribution 'numpy'.*WASI build") as info:
        strip_accelerators(files)
    assert info.value.package == "numpy"


def test_unknown_extension_without_fallback_is_refused() -> None:
    with pytest.raises(NativeDependencyError, match=r"fastjson.*no pure-Python fallback"):
        strip_accelerators({f"fastjson/_speedups{SO}": b"\x7fELF", "fastjson/__init__.py": b""})


def test_uploaded_bundle_is_repacked_without_accelerators() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("app.py", "def handler(e, c):\n    return 1\n")
        archive.writestr("simplejson/__init__.py", "")
        archive.writestr(f"simplejson/_speedups{SO}", b"\x7fELF")
    checked = validate_bundle(out.getvalue(), "app.handler")
    names = zipfile.ZipFile(io.BytesIO(checked.data)).namelist()
    assert names == ["app.py", "simplejson/__init__.py"]
    assert checked.notes and checked.notes[0].startswith("simplejson: dropped 1")


@pytest.mark.parametrize(
    "handler", ["auto-confirm.lambda_handler", "src/app.handler", "pkg.mod.fn"]
)
def test_any_importable_module_name_is_a_handler(tmp_path: Path, handler: str) -> None:
    module = handler.rpartition(".")[0].replace(".", "/")
    (tmp_path / module).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / f"{module}.py").write_text("def lambda_handler(e, c):\n    return 1\n")
    assert bundle_python_function(tmp_path, handler)


def test_a_handler_without_a_function_is_refused(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("")
    with pytest.raises(InvalidHandler):
        bundle_python_function(tmp_path, "app.")
