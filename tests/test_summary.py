"""The bare ``kvmprobe`` summary: built in render/summary.py from a Snapshot and its analysis."""

from __future__ import annotations

from dataclasses import replace

import pytest
from click.testing import CliRunner
from conftest import FIXTURES, RECORDED_HOSTS

from kvmprobe.analysis.effective import analyse
from kvmprobe.cli import main
from kvmprobe.render.summary import summary_text
from kvmprobe.snapshot import ProbeError, load

SNAP, _ = load(str(FIXTURES / RECORDED_HOSTS[0].name))


def test_summary_of_a_recorded_host() -> None:
    text = summary_text(SNAP, analyse(SNAP))
    lines = text.splitlines()
    assert lines[0] == "KVM is usable at /dev/kvm: API version 12, kernel 6.18.44-fc-v657"
    assert lines[1].startswith("  capabilities: 99 answered non-zero on /dev/kvm (VM created: ok")
    assert lines[2].startswith("  guest CPUID (in-kernel irqchip): ")
    assert "host features KVM does not pass on" in text.replace("\n    ", " ")
    assert "  kvmprobe doctor    why KVM does or does not work here" in lines
    assert any(line.startswith("  kvmprobe export ") for line in lines)
    assert all(len(line) <= 80 and line == line.rstrip() for line in lines)


def test_summary_without_cpuid_and_with_errors() -> None:
    err = ProbeError("KVM_GET_SUPPORTED_CPUID", 14, "EFAULT: Bad address")
    snap = replace(SNAP, supported_cpuid=None, errors=(err,))
    text = summary_text(snap, None)
    assert "guest CPUID (in-kernel irqchip)" not in text
    assert "  1 probe step failed: see 'kvmprobe record'" in text.splitlines()


def test_summary_escapes_what_it_shows() -> None:
    snap = replace(SNAP, device="/dev/\x1b[2Jkvm", host=replace(SNAP.host, kernel_release="\u202e"))
    text = summary_text(snap, None)
    assert "\x1b" not in text and "\u202e" not in text and "\\x1b[2J" in text


@pytest.mark.live
def test_bare_command_live(live_device) -> None:
    r = CliRunner().invoke(main, [])
    assert r.exit_code == 0, r.stderr
    assert r.stdout.startswith(f"KVM is usable at {live_device}: API version 12")
