"""Plain command lines run without click (kvmprobe.quick): the table is click's command tree,
the bodies take exactly click's parameters with click's defaults, and every command line the
quick path accepts gives byte for byte what click's path gives."""

from __future__ import annotations

import inspect
import itertools
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import click
import pytest
from conftest import RECORDED_HOSTS
from test_speed_paths import FORBIDDEN

from kvmprobe import quick
from kvmprobe.cli import main
from kvmprobe.commands import BODIES, body
from kvmprobe.snapshot import load

# click keeps the help option a command first makes, so contexts here carry kvmprobe's own
# settings (-h as well as --help), as a real run's do
_ctx = main.make_context("kvmprobe", [], resilient_parsing=True)
COMMANDS = {name: main.get_command(_ctx, name) for name in main.list_commands(_ctx)}


def _value_less_flags(cmd: click.Command) -> dict[str, str]:
    """Every option spelling of ``cmd`` that takes no value and sets its parameter to true,
    in the order click declares them (help and version, eager and exposed to no body, aside)."""
    out: dict[str, str] = {}
    for p in cmd.params:
        if not isinstance(p, click.Option) or p.is_eager:
            continue
        if p.is_flag and p.is_bool_flag and not p.multiple:
            assert not p.secondary_opts and p.envvar is None, p.name
            assert not p.get_default(_ctx), p.name
            for opt in p.opts:
                out[opt] = p.name or ""
    return out


def test_the_table_is_clicks() -> None:
    plain = {n for n, cmd in COMMANDS.items() if not any(p.required for p in cmd.params)}
    assert set(quick.FLAGS) == plain | {""}
    for name in plain:
        assert list(quick.FLAGS[name].items()) == list(_value_less_flags(COMMANDS[name]).items())
    assert list(quick.FLAGS[""].items()) == list(_value_less_flags(main).items())
    assert set(BODIES) == set(COMMANDS) | {""}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_bodies_take_clicks_parameters_and_defaults(name: str) -> None:
    """What click passes a body is what its signature names; a parameter the command line can
    leave out has the same default in both (the quick path relies on the body's)."""
    cmd = COMMANDS[name]
    sig = inspect.signature(body(name))
    names = [p for p in sig.parameters if p != "inv"]
    assert names == [p.name for p in cmd.params if p.expose_value]
    ctx = cmd.make_context(name, [], parent=_ctx, resilient_parsing=True)
    for p in cmd.params:
        if p.expose_value and not p.required:
            assert sig.parameters[p.name or ""].default == ctx.params[p.name or ""], p.name


@pytest.mark.parametrize(
    "argv",
    [
        ["cpuid", "--json", "--json"],
        ["cpuid", "--help"],
        ["cpuid", "-h"],
        ["cpuid", "avx"],
        ["cpuid", "--device", "/dev/kvm"],
        ["cpuid", "--jsn"],
        ["cpuid", "--"],
        ["caps", "--raw"],  # cpuid's flag, not caps'
        ["export"],
        ["diff", "a.json"],
        ["--version"],
        ["--help"],
        ["--debug", "cpuid"],
        ["nosuchcommand"],
    ],
)
def test_what_click_must_parse(argv: list[str]) -> None:
    assert quick.plain(argv) is None
    assert quick.run(argv) is None


def test_shell_completion_is_left_to_click(monkeypatch: pytest.MonkeyPatch) -> None:
    assert quick.plain(["cpuid"]) is not None
    monkeypatch.setenv(quick.COMPLETION_VARIABLE, "bash_complete")
    assert quick.plain([]) is None and quick.plain(["cpuid"]) is None


def _command_lines() -> list[list[str]]:
    """Every plain command line worth comparing: each command with each subset of its own
    flags, and once with --no-color and --debug."""
    lines: list[list[str]] = []
    for name, flags in quick.FLAGS.items():
        own = [f for f, p in flags.items() if p not in ("debug", "no_color")]
        prefix = [name] if name else []
        for k in range(len(own) + 1):
            for subset in itertools.combinations(own, k):
                lines.append([*prefix, *subset])
        lines.append([*prefix, "--no-color", "--debug"])
    return lines


_STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def _outcome(run: Callable[[], Any], capsys: pytest.CaptureFixture[str]) -> tuple[Any, str, str]:
    try:
        status = run()
    except SystemExit as e:
        status = e.code
    except Exception as e:  # --debug: the error itself, not a line
        status = f"{type(e).__name__}: {e}"
    out, err = capsys.readouterr()
    return status or 0, _STAMP.sub("TIME", out), _STAMP.sub("TIME", err)


@pytest.mark.parametrize("host", [p.name for p in RECORDED_HOSTS])
def test_quick_and_click_give_the_same(
    host: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each command line through both paths, on a recorded host standing in for the device."""
    import kvmprobe.kvm.probe as device

    snap, _ = load(str(RECORDED_HOSTS[0].parent / host))
    monkeypatch.setattr(device, "probe", lambda path, **kw: snap)
    monkeypatch.setattr(device, "examine", lambda path, tables=None: snap)
    monkeypatch.setattr(device, "record", lambda path, tables=None: snap)
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.delenv(quick.COMPLETION_VARIABLE, raising=False)
    compared = 0
    for argv in _command_lines():
        fast = _outcome(lambda a=argv: quick.run(a), capsys)
        slow = _outcome(
            lambda a=argv: main(args=list(a), prog_name="kvmprobe", standalone_mode=False), capsys
        )
        assert fast == slow, argv
        assert fast[1] or fast[2] or isinstance(fast[0], str), argv  # each did something
        compared += 1
    assert compared >= 40


def _imported(argv: list[str], **kw: Any) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    r = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "kvmprobe", *argv],
        capture_output=True, text=True, timeout=60, **kw,
    )  # fmt: skip
    names = {
        line.rsplit("|", 1)[-1].strip()
        for line in r.stderr.splitlines()
        if line.startswith("import time:")
    }
    return r, names


def test_a_plain_command_line_never_imports_click() -> None:
    r, names = _imported(["schema", "--list"])
    assert r.returncode == 0 and "cpuid" in r.stdout
    assert "click" not in names and "kvmprobe.quick" in names
    r, names = _imported(["schema", "cpuid"])  # an argument: click parses it
    assert r.returncode == 0 and "click" in names
    assert json.loads(r.stdout)["$id"].endswith("kvmprobe.cpuid/1")


def test_live_plain_command_lines_match_clicks(live_device: str) -> None:
    """On the live device: the quick path (no --device) against click's (--device given)."""
    if os.path.realpath(live_device) != os.path.realpath("/dev/kvm"):
        pytest.skip("the quick path probes the default device only")
    for argv in (["caps", "--json"], ["cpuid", "--json"], ["doctor", "--json"], ["caps"]):
        fast, names = _imported(argv)
        slow = subprocess.run(
            [sys.executable, "-m", "kvmprobe", *argv, "--device", live_device],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert "click" not in names, argv
        assert not names & set(FORBIDDEN), argv  # nor the costly standard modules
        assert fast.returncode == slow.returncode, argv
        assert _STAMP.sub("TIME", fast.stdout) == _STAMP.sub("TIME", slow.stdout), argv
