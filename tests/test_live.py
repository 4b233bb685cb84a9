"""Live tests against /dev/kvm: kvmprobe's answers must equal direct ioctls made here.

Skipped with the reason when /dev/kvm cannot be opened; KVMPROBE_REQUIRE_LIVE=1 makes that a
failure. The direct calls below use only fcntl/struct, independently of kvmprobe.kvm."""

from __future__ import annotations

import fcntl
import json
import os
import struct

import pytest
from click.testing import CliRunner

from kvmprobe.cli import main

KVM_GET_API_VERSION = 0xAE00
KVM_CREATE_VM = 0xAE01
KVM_CHECK_EXTENSION = 0xAE03
KVM_GET_SUPPORTED_CPUID = 0xC008AE05
KVM_ENABLE_CAP = 0x4068AEA3


def _direct_caps(fd: int) -> dict[int, int]:
    return {n: v for n in range(512) if (v := fcntl.ioctl(fd, KVM_CHECK_EXTENSION, n))}


def _direct_supported_cpuid(fd: int) -> list[dict[str, int]]:
    n = 256
    while True:
        buf = bytearray(struct.pack("<II", n, 0) + bytes(40 * n))
        try:
            fcntl.ioctl(fd, KVM_GET_SUPPORTED_CPUID, buf, True)
        except OSError as e:
            if e.errno == 7:  # E2BIG
                n *= 2
                continue
            raise
        nent = struct.unpack_from("<I", buf)[0]
        keys = ("function", "index", "flags", "eax", "ebx", "ecx", "edx")
        return [
            dict(zip(keys, struct.unpack_from("<7I", buf, 8 + 40 * i), strict=True))
            for i in range(nent)
        ]


@pytest.fixture(scope="module")
def one_cpu():
    """KVM copies per-CPU values (the initial APIC ID in 1.EBX[31:24], x2APIC IDs in 0xB/0x1F
    EDX) from whichever CPU runs the ioctl: compare answers taken on the same CPU."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    yield
    os.sched_setaffinity(0, before)


@pytest.fixture(scope="module")
def direct(live_device, one_cpu):
    fd = os.open(live_device, os.O_RDWR | os.O_CLOEXEC)
    try:
        out = {"api": fcntl.ioctl(fd, KVM_GET_API_VERSION, 0), "system": _direct_caps(fd)}
        vm = fcntl.ioctl(fd, KVM_CREATE_VM, 0)
        try:
            out["vm"] = _direct_caps(vm)
        finally:
            os.close(vm)
        vm = fcntl.ioctl(fd, KVM_CREATE_VM, 0)
        try:
            fcntl.ioctl(vm, KVM_ENABLE_CAP, struct.pack("<IIQQQQ64x", 121, 0, 24, 0, 0, 0))
            out["vm_split_irqchip"] = _direct_caps(vm)
        finally:
            os.close(vm)
        out["cpuid"] = _direct_supported_cpuid(fd)
    finally:
        os.close(fd)
    return out


def _run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_live_caps_match_direct_ioctls(direct, live_device) -> None:
    r = _run("caps", "--json", "--all", "--device", live_device)
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    assert doc["source"]["kind"] == "live" and doc["source"]["api_version"] == direct["api"] == 12
    by_number = {c["number"]: c for c in doc["caps"]}
    for scope in ("system", "vm", "vm_split_irqchip"):
        nonzero = {n: c[scope] for n, c in by_number.items() if c[scope]}
        assert nonzero == direct[scope], scope


def test_live_record_replays_to_same_caps(tmp_path, live_device) -> None:
    out = tmp_path / "host.json"
    assert _run("record", "-o", str(out), "--device", live_device).exit_code == 0
    live = json.loads(_run("caps", "--json", "--all", "--device", live_device).stdout)
    replay = json.loads(_run("caps", "--json", "--all", "--from", str(out)).stdout)
    assert live.pop("source")["kind"] == "live"
    assert replay.pop("source")["kind"] == "snapshot"
    assert live == replay


def test_live_supported_cpuid_matches_direct(direct, live_device, one_cpu) -> None:
    from kvmprobe.kvm.probe import probe

    snap = probe(live_device)
    assert [e.to_json() for e in snap.supported_cpuid] == direct["cpuid"]
    assert snap.creation.get("vm") == "ok"


def test_live_probe_leaks_no_fds(live_device) -> None:
    from kvmprobe.kvm.probe import probe

    before = sorted(os.listdir("/proc/self/fd"))
    for _ in range(20):
        probe(live_device)
    assert sorted(os.listdir("/proc/self/fd")) == before


def test_live_record_tries_the_effective_tables(tmp_path, live_device) -> None:
    """``record`` gives each irqchip mode's effective table to a vCPU of a VM set up for that
    mode (where it differs from KVM's own), and the live export tries what it exports."""
    from kvmprobe.analysis.guest_cpuid import effective_tables
    from kvmprobe.analysis.verify import verification
    from kvmprobe.snapshot import load

    out = tmp_path / "host.json"
    assert _run("record", "-o", str(out), "--device", live_device).exit_code == 0
    snap, _ = load(str(out))
    v = verification(snap)
    differing = {m for m, t in effective_tables(snap).items() if t != snap.supported_cpuid}
    assert {a.irqchip for a in v.effective if a.what == "KVM_SET_CPUID2"} == differing
    for a in v.effective:
        assert a.accepted is not None or a.errno is not None
    r = _run("export", "cpuid2", "--irqchip", "userspace", "--device", live_device)
    if r.exit_code == 5:  # this host refuses kvmprobe's table: the export must say so
        assert "a vCPU refused the table" in r.output
        return
    assert r.exit_code == 0, r.output
    tried = json.loads(r.stdout)["tried_on_vcpu"]
    assert tried is not None and tried["irqchip"] == "userspace"
    assert tried["calls"][0]["what"] == "KVM_SET_CPUID2"


def test_live_text_report_is_verified_like_json(live_device) -> None:
    """The quirks read the vCPU verification, so the text report probes with it too: the same
    verdict as --json, never 'no vCPU verification' for a live probe."""
    text = _run("cpuid", "arch_capabilities", "--device", live_device)
    assert text.exit_code == 0, text.output
    assert "no vCPU verification" not in text.stdout
    doc = json.loads(_run("cpuid", "--json", "--all", "--device", live_device).stdout)
    (item,) = [f for f in doc["features"] if f["name"] == "arch_capabilities"]
    status = item["status"]
    assert status.replace("-", " ").split()[0] in text.stdout.replace("-", " ")


def test_live_fleet_outputs_run_the_checks_a_recording_holds(tmp_path, live_device) -> None:
    """metrics (and fact, nfd) examine the live host as doctor does: the same doctor checks
    live and from a fresh recording, so a series never depends on where the data came from."""
    out = tmp_path / "host.json"
    assert _run("record", "-o", str(out), "--device", live_device).exit_code == 0

    def checks(*args: str) -> set[str]:
        text = _run("metrics", *args).stdout
        return {
            ln.split("}")[0] for ln in text.splitlines() if ln.startswith("kvmprobe_doctor_check{")
        }

    assert checks("--device", live_device) == checks("--from", str(out))
