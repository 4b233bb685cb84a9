"""Every command answers --help and -h with exit 0, and the usage line names it."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from kvmprobe.cli import main

COMMANDS = main.list_commands(click.Context(main))


def test_there_are_commands() -> None:
    assert {"caps", "cpuid", "doctor", "record", "msr", "hyperv"} <= set(COMMANDS)


@pytest.mark.parametrize("flag", ["--help", "-h"])
@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help(command: str, flag: str) -> None:
    args = [command, flag] if command else [flag]
    r = CliRunner().invoke(main, args, prog_name="kvmprobe")
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith(f"Usage: kvmprobe {command}".rstrip() + " ")


@pytest.mark.parametrize("width", [60, 80, 120])
def test_top_level_help_lists_every_command_whole(width: int) -> None:
    """``kvmprobe --help`` names every command with a short phrase of its own, shown whole:
    no phrase cut short with '...', no line wider than the terminal. Run as a user runs it
    (CliRunner would lay help out 80 columns wide whatever COLUMNS says)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "COLUMNS": str(width)}
    r = subprocess.run([sys.executable, "-m", "kvmprobe", "--help"], env=env,
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    for line in r.stdout.splitlines():
        assert len(line) <= width, f"{len(line)} > {width}: {line!r}"
        assert line == line.rstrip(), f"blanks at the end: {line!r}"
    listed = r.stdout[r.stdout.index("\nCommands:\n") :]  # the usage line's [ARGS]... is usage
    assert "..." not in listed
    for name in COMMANDS:
        cmd = main.get_command(click.Context(main), name)
        assert cmd is not None and cmd.short_help, f"{name} has no short help"
        assert len(cmd.short_help) < 45, (name, cmd.short_help)
        assert f"  {name}  " in listed or f"  {name}\n" in listed, name
        assert " ".join(cmd.short_help.split()) in " ".join(listed.split()), name
