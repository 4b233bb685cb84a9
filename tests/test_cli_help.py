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
