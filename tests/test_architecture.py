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
PURE = ["analysis", "tables", "knowledge", "vocab.py", "limits.py", "errors.py", "frozen.py"]
PURE += ["words.py"]
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
