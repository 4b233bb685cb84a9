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

#: golden name -> (arguments, terminal width); text reports at 80 and 120 columns and the
#: stacked layout at 60, as a person sees them
CASES: dict[str, tuple[list[str], int]] = {
    "caps.json": (["caps", "--json", "--all"], 120),
    "cpuid-kernel.json": (["cpuid", "--json", "--irqchip", "kernel"], 120),
    "cpuid-split.json": (["cpuid", "--json", "--irqchip", "split"], 120),
    "cpuid-userspace.json": (["cpuid", "--json", "--irqchip", "userspace"], 120),
    "doctor.json": (["doctor", "--json"], 120),
    "caps-60.txt": (["caps", "--no-color"], 60),
    "caps-80.txt": (["caps", "--no-color"], 80),
    "caps-120.txt": (["caps", "--no-color"], 120),
    "cpuid-60.txt": (["cpuid", "--no-color"], 60),
    "cpuid-80.txt": (["cpuid", "--no-color"], 80),
    "cpuid-120.txt": (["cpuid", "--no-color"], 120),
    "cpuid-host-80.txt": (["cpuid", "--no-color", "--host"], 80),
    "cpuid-host-120.txt": (["cpuid", "--no-color", "--host"], 120),
    "cpuid-split-80.txt": (["cpuid", "--no-color", "--irqchip", "split"], 80),
    "cpuid-userspace-80.txt": (["cpuid", "--no-color", "--irqchip", "userspace"], 80),
    "cpuid-userspace-120.txt": (["cpuid", "--no-color", "--irqchip", "userspace"], 120),
    "cpuid-mwait-80.txt": (["cpuid", "--no-color", "--disable-exits", "mwait,hlt"], 80),
    "cpuid-avx-80.txt": (["cpuid", "--no-color", "avx"], 80),
    "cpuid-sse3-60.txt": (["cpuid", "--no-color", "sse3"], 60),
    "cpuid-0x40000001-userspace-80.txt": (
        ["cpuid", "--no-color", "0x40000001", "--irqchip", "userspace"], 80,
    ),
    "cpuid-0x80000008-120.txt": (["cpuid", "--no-color", "0x80000008", "--host"], 120),
    "cpuid-raw-x2apic-80.txt": (["cpuid", "--no-color", "--raw", "x2apic"], 80),
    "cpuid-raw-60.txt": (["cpuid", "--no-color", "--raw"], 60),
    "explain-tsc-deadline-userspace-80.txt": (
        ["cpuid", "--no-color", "--explain", "tsc-deadline", "--irqchip", "userspace"], 80,
    ),
    "explain-tsc-deadline-userspace-120.txt": (
        ["cpuid", "--no-color", "--explain", "tsc-deadline", "--irqchip", "userspace"], 120,
    ),
    "doctor-60.txt": (["doctor", "--no-color"], 60),
    "doctor-80.txt": (["doctor", "--no-color"], 80),
    "doctor-120.txt": (["doctor", "--no-color"], 120),
    "fact.json": (["fact"], 120),  # always JSON (an Ansible fact)
    "export-cpuid2.json": (["export", "cpuid2"], 120),  # always JSON
    "export-cpuid2.txt": (["export", "cpuid2", "--cpuid-r"], 120),
    "export-qemu-userspace.txt": (["export", "qemu", "--irqchip", "userspace"], 120),
    "export-firecracker.json": (["export", "firecracker"], 120),  # Firecracker's JSON
    "export-libvirt.xml": (["export", "libvirt"], 120),
    "export-qemu.json": (["export", "qemu", "--json"], 120),
    "export-libvirt.json": (["export", "libvirt", "--json"], 120),
}  # fmt: skip
# doctor's exit status is its verdict (0, 3, 4 or 5); every other command here exits 0
DOCTOR_STATUSES = (0, 3, 4, 5)


def _render(host: str, args: list[str], columns: int = 120) -> str:
    cwd = os.getcwd()
    os.chdir(FIXTURES)  # so the recorded file is named by its base name in every output
    try:
        r = CliRunner().invoke(
            main, [*args, "--from", host], env={"COLUMNS": str(columns), "NO_COLOR": None},
            catch_exceptions=False,
        )  # fmt: skip
    finally:
        os.chdir(cwd)
    ok = DOCTOR_STATUSES if args[0] == "doctor" else (0,)
    assert r.exit_code in ok, r.stderr
    out = r.stdout
    if args[:2] == ["export", "firecracker"]:
        out = json.dumps(json.loads(out), indent=2) + "\n"  # Firecracker's format: no source
    elif (
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
    else:
        assert all(line == line.rstrip() for line in out.splitlines()), "a line ends in blanks"
    return out


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("host", [p.name for p in RECORDED_HOSTS])
def test_golden(host: str, name: str) -> None:
    got = _render(host, *CASES[name])
    path = GOLDEN / host.removesuffix(".json") / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(got)
    assert path.exists(), f"no golden file {path}: run with KVMPROBE_UPDATE_GOLDEN=1"
    assert got == path.read_text(), f"{path} differs (KVMPROBE_UPDATE_GOLDEN=1 to accept)"
