"""The house rules, checked on the code itself (DESIGN.md, "The house").

Pure modules import no I/O, terminal or CLI library; only kvm/ talks to devices; render/ never
reaches into kvm/; the JSON path never imports rich. Imports are read from the source (AST),
including those inside functions, so a lazy import cannot slip past.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "kvmprobe"

# Modules whose code must stay pure: ints and dataclasses in and out, no I/O.
PURE = ["analysis", "tables", "knowledge", "vocab", "limits.py", "errors.py", "frozen.py"]
PURE += ["words.py", "lazy.py"]
IO_MODULES = {"os", "fcntl", "ctypes", "click", "rich", "subprocess", "socket", "io", "shutil"}


def _files(*parts: str) -> list[Path]:
    out: list[Path] = []
    for part in parts:
        path = PACKAGE / part
        out += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return out


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _rel(path: Path) -> str:
    return str(path.relative_to(PACKAGE.parent))


@pytest.mark.parametrize("path", _files(*PURE), ids=_rel)
def test_pure_modules_do_no_io(path: Path) -> None:
    bad = {
        name
        for name in _imports(path)
        if name.split(".")[0] in IO_MODULES
        or name.startswith(("kvmprobe.kvm", "kvmprobe.render", "kvmprobe.cli"))
    }
    assert not bad, f"{_rel(path)} is pure but imports {sorted(bad)}"


@pytest.mark.parametrize("path", _files("render"), ids=_rel)
def test_render_never_touches_the_device(path: Path) -> None:
    bad = {n for n in _imports(path) if n.startswith("kvmprobe.kvm") or n in ("fcntl", "ctypes")}
    assert not bad, f"{_rel(path)} imports {sorted(bad)}"


def test_only_kvm_issues_ioctls() -> None:
    for path in _files("."):
        if path.is_relative_to(PACKAGE / "kvm"):
            continue
        bad = {n for n in _imports(path) if n.split(".")[0] in ("fcntl", "ctypes")}
        assert not bad, f"{_rel(path)} imports {sorted(bad)}: only kvm/ may"


def test_kvm_layer_draws_no_conclusions() -> None:
    for path in _files("kvm"):
        bad = {
            n
            for n in _imports(path)
            if n.startswith(("kvmprobe.analysis", "kvmprobe.render", "kvmprobe.cli", "rich"))
        }
        assert not bad, f"{_rel(path)} imports {sorted(bad)}"


def test_json_renderer_is_stdlib_only() -> None:
    names = _imports(PACKAGE / "render" / "json.py")
    assert not {n for n in names if n.split(".")[0] in ("rich", "click")}


@pytest.mark.parametrize("path", [*_files("commands"), PACKAGE / "quick.py"], ids=_rel)
def test_command_bodies_never_import_click(path: Path) -> None:
    """The bodies run without click for a plain command line (kvmprobe.quick); only cli.py
    and entry.py (usage errors) speak to it."""
    bad = {n for n in _imports(path) if n.split(".")[0] == "click" or n == "kvmprobe.cli"}
    assert not bad, f"{_rel(path)} imports {sorted(bad)}"


def test_no_second_command_module() -> None:
    """Options are declared in cli.py only: no other module declares click commands or
    options (the bodies are in commands/, without click)."""
    for path in _files("."):
        if path.name == "cli.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                for d in node.decorator_list:
                    text = ast.unparse(d)
                    assert not text.startswith(("click.", "main.")), f"{_rel(path)}: @{text}"


def test_value_types_use_frozen() -> None:
    """Value types are declared with @frozen (kvmprobe/frozen.py), never with the standard
    library's frozen dataclass, which costs ten times as much at start-up."""
    for path in _files("."):
        if path.name == "frozen.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "dataclass":
                frozen_kw = [k for k in node.keywords if k.arg == "frozen"]
                assert not frozen_kw, f"{_rel(path)}:{node.lineno}: use @frozen"


# What a --json command must never pay for at start-up (issue #10): dataclasses brings inspect
# (with ast, dis, tokenize) and copy; typing and datetime cost about as much again.
COSTLY = {"dataclasses", "typing", "inspect", "datetime", "copy", "ast", "dis", "tokenize"}
#: the modules that import click, which imports typing and inspect itself
CLICK_MODULES = {"cli.py", "entry.py"}


def _import_time_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import that runs when the module is imported: at module level,
    in class bodies and in if/try blocks, but not in functions or under ``if TYPE_CHECKING:``
    (``TYPE_CHECKING = False`` in the module: type checkers take the block as typing's)."""
    found: list[tuple[int, str]] = []

    def visit(nodes: list[ast.AST]) -> None:
        for node in nodes:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
                visit(list(node.orelse))
                continue
            if isinstance(node, ast.Import):
                found.extend((node.lineno, alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.append((node.lineno, node.module))
            visit(list(ast.iter_child_nodes(node)))

    visit(list(ast.parse(path.read_text(encoding="utf-8"), str(path)).body))
    return found


@pytest.mark.parametrize(
    "path",
    # cli.py and entry.py import click, which imports typing and inspect itself
    [p for p in _files(".") if not (p.parent == PACKAGE and p.name in CLICK_MODULES)],
    ids=_rel,
)
def test_no_costly_standard_module_is_imported_at_import_time(path: Path) -> None:
    """typing only for type checkers (``if TYPE_CHECKING:``), value types from
    kvmprobe.frozen, timestamps without datetime: importing kvmprobe's modules imports none of
    COSTLY (tests/test_speed_paths.py runs the --json paths to check the same from outside)."""
    bad = [f"{line}: {name}" for line, name in _import_time_imports(path)
           if name.split(".")[0] in COSTLY]  # fmt: skip
    assert not bad, f"{_rel(path)} imports at import time: {bad}"


def test_only_frozen_imports_dataclasses() -> None:
    """Value types take field() and replace() from kvmprobe.frozen; it alone imports
    dataclasses, and only when something reads a class's fields or assigns to a value."""
    users = sorted(_rel(p) for p in _files(".") if "dataclasses" in _imports(p))
    assert users == ["kvmprobe/frozen.py"]


def test_the_import_time_check_sees_what_it_must(tmp_path: Path) -> None:
    # the checker itself, on a made-up module: what runs at import is found, what does not is not
    source = """
import os
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any
else:
    import copy
try:
    from datetime import datetime
except ImportError:
    import inspect
class C:
    import ast
def f():
    import dataclasses
"""
    path = tmp_path / "made_up.py"
    path.write_text(source, encoding="utf-8")
    names = [name for _line, name in _import_time_imports(path)]
    assert names == ["os", "copy", "datetime", "inspect", "ast"]


def test_every_vocabulary_is_found_where_vocab_says() -> None:
    """kvmprobe.vocab loads its modules on first use: its table names every enum of the package,
    each in the module that defines it, and exports exactly those."""
    import enum
    import importlib

    import kvmprobe.vocab as vocab

    found = {}
    for path in _files("vocab"):
        if path.name == "__init__.py":
            continue
        module = importlib.import_module(f"kvmprobe.vocab.{path.stem}")
        for name, value in vars(module).items():
            if (
                isinstance(value, type)
                and issubclass(value, enum.Enum)
                and value.__module__ == module.__name__
            ):
                found[name] = path.stem
    assert found == vocab.HOME
    assert vocab.__all__ == sorted(found)
    for name in found:
        assert getattr(vocab, name).__name__ == name


#: modules that hand out some names lazily, through a module ``__getattr__``
LAZY_NAMES = {
    "kvmprobe.vocab": ["Irqchip", "Scope", "FeatureStatus"],
    "kvmprobe.snapshot": ["Snapshot", "AccessFacts", "SetAttempt"],
    "kvmprobe.analysis.effective": ["analyse", "explain", "Explanation"],
    "kvmprobe.analysis.deps": ["Violation", "Dropped"],
    "kvmprobe.errors": ["KvmprobeError"],
}


def test_type_checkers_see_no_lazy_module_getattr(tmp_path: Path) -> None:
    """A module ``__getattr__`` tells mypy that every name is there (typed as what it returns),
    so a misspelt ``from kvmprobe.vocab import Irqchipp`` would type-check. The lazy names are
    declared for type checkers under TYPE_CHECKING; the ``__getattr__`` is for run time only."""
    import subprocess
    import sys

    lines = []
    for module, names in LAZY_NAMES.items():
        lines.append(f"from {module} import {', '.join(names)}")
        lines.append(f"from {module} import {names[0]}x  # misspelt: line {len(lines) + 1}")
    src = tmp_path / "lazy_names.py"
    src.write_text("\n".join(lines) + "\n")
    r = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--cache-dir", str(tmp_path),
         "--no-error-summary", str(src)],
        capture_output=True, text=True, timeout=300, cwd=PACKAGE.parent,
    )  # fmt: skip
    flagged = sorted(
        int(line.split(":")[1]) for line in r.stdout.splitlines() if ": error:" in line
    )
    assert flagged == list(range(2, 2 * len(LAZY_NAMES) + 1, 2)), r.stdout
