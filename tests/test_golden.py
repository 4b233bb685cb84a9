"""Golden outputs: every recorded host through the CLI, JSON and no-colour text.

Regenerate after an intended change with KVMPROBE_UPDATE_GOLDEN=1 and review the diff."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner
from conftest import FIXTURES, GOLDEN, RECORDED_HOSTS

from kvmprobe import __version__
from kvmprobe.cli import main

UPDATE = os.environ.get("KVMPROBE_UPDATE_GOLDEN") == "1"

CASES = {
    "caps.json": ["caps", "--json", "--all"],
    "caps.txt": ["caps", "--no-color"],
    "cpuid-kernel.json": ["cpuid", "--json", "--irqchip", "kernel"],
    "cpuid-split.json": ["cpuid", "--json", "--irqchip", "split"],
    "cpuid-userspace.json": ["cpuid", "--json", "--irqchip", "userspace"],
    "cpuid-kernel.txt": ["cpuid", "--no-color", "--host"],
    "cpuid-split.txt": ["cpuid", "--no-color", "--irqchip", "split"],
    "cpuid-userspace.txt": ["cpuid", "--no-color", "--irqchip", "userspace"],
    "explain-tsc-deadline-userspace.txt": [
        "cpuid", "--no-color", "--explain", "tsc-deadline", "--irqchip", "userspace",
    ],
    "doctor.json": ["doctor", "--json"],
    "doctor.txt": ["doctor", "--no-color"],
    "fact.json": ["fact"],  # always JSON (an Ansible fact)
    "export-cpuid2.json": ["export", "cpuid2"],  # always JSON
    "export-cpuid2.txt": ["export", "cpuid2", "--cpuid-r"],
    "export-qemu-userspace.txt": ["export", "qemu", "--irqchip", "userspace"],
}  # fmt: skip
# doctor's exit status is its verdict (0, 3, 4 or 5); every other command here exits 0
DOCTOR_STATUSES = (0, 3, 4, 5)


def _render(host: str, args: list[str]) -> str:
    cwd = os.getcwd()
    os.chdir(FIXTURES)  # so the recorded file is named by its base name in every output
    try:
        r = CliRunner().invoke(
            main, [*args, "--from", host], env={"COLUMNS": "120", "NO_COLOR": None},
            catch_exceptions=False,
        )  # fmt: skip
    finally:
        os.chdir(cwd)
    ok = DOCTOR_STATUSES if args[0] == "doctor" else (0,)
    assert r.exit_code in ok, r.stderr
    out = r.stdout
    if (
        "--json" in args
        or args[0] == "fact"
        or (args[:2] == ["export", "cpuid2"] and "--cpuid-r" not in args)
    ):
        doc = json.loads(out)
        if args[0] == "doctor":
            assert doc["verdict"]["exit_status"] == r.exit_code
        assert doc["source"]["kvmprobe_version"] == __version__
        doc["source"]["kvmprobe_version"] = "<version>"  # golden files outlive releases
        out = json.dumps(doc, indent=2) + "\n"
    return "\n".join(line.rstrip() for line in out.splitlines()) + "\n"


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("host", [p.name for p in RECORDED_HOSTS])
def test_golden(host: str, name: str) -> None:
    got = _render(host, CASES[name])
    path = GOLDEN / host.removesuffix(".json") / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(got)
    assert path.exists(), f"no golden file {path}: run with KVMPROBE_UPDATE_GOLDEN=1"
    assert got == path.read_text(), f"{path} differs (KVMPROBE_UPDATE_GOLDEN=1 to accept)"
