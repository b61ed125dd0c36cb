"""The distribution: a built wheel and the editable install both import from anywhere."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"runtime": "firebox/runtime", "sdk": "firebox/sdk", "compiler": "firebox/compiler"}


def source_files() -> set[str]:
    """Every file of the three code folders, as it must appear in the wheel."""
    files = set()
    for folder, target in FOLDERS.items():
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files.add(f"{target}/{path.relative_to(ROOT / folder).as_posix()}")
    return files


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(ROOT)],
        check=True,
        timeout=300,
    )  # fmt: skip
    (path,) = out.glob("firebox-*.whl")
    return path


def test_wheel_holds_every_source_file_under_firebox(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = source_files() - names
    assert not missing, f"files left out of the wheel (add their package to pyproject): {missing}"
    top_level = {n.split("/")[0] for n in names if not n.startswith("firebox-")}
    assert top_level == {"firebox"}


def test_wheel_imports_from_any_directory(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True, timeout=300
    )
    code = (
        "import firebox.runtime, firebox.sdk, firebox.compiler, firebox.runtime.http,"
        " firebox.runtime.storage, importlib.util;"
        "print(firebox.runtime.__file__);"
        "assert importlib.util.find_spec('runtime') is None"
    )
    out = subprocess.run(
        [python, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert str(env_dir) in out.stdout


def test_editable_install_imports_from_any_directory(tmp_path: Path) -> None:
    code = (
        "import firebox.runtime.node, firebox.sdk.cli, firebox.compiler.build, importlib.util;"
        "assert importlib.util.find_spec('runtime') is None, 'a top-level runtime package leaked'"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
