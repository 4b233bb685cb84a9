"""kvmprobe export cpuid2: the effective table as KVM_SET_CPUID2 entries and as 'cpuid -r'."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import FIXTURES
from support import hosts

from kvmprobe.analysis import cpuid as cp
from kvmprobe.analysis.effective import analyse
from kvmprobe.analysis.guest_cpuid import (
    ARCH_CAPABILITIES_LOC,
    GuestCpu,
    guest_cpu_from_analysis,
)
from kvmprobe.analysis.quirks import Options
from kvmprobe.cli import main
from kvmprobe.errors import KvmprobeError
from kvmprobe.render.export_cpuid2 import cpuid_r_text
from kvmprobe.snapshot import SetAttempt, Snapshot, load
from kvmprobe.tables import msr_data
from kvmprobe.vocab import FeatureStatus, Irqchip

FIX = str(FIXTURES / "amd-epyc-pvm-6.18.json")
MODELS = [hosts.HASWELL, hosts.SKYLAKE_SERVER, hosts.EPYC_MILAN, hosts.GRANITE_RAPIDS]


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def fixture() -> Snapshot:
    return load(FIX)[0]


def bit(entries: tuple[object, ...] | list[object], loc: cp.Loc) -> bool:
    return cp.CpuidView(entries).has_loc(loc)  # type: ignore[arg-type]


def snapshots() -> list[Snapshot]:
    return [fixture(), load(str(FIXTURES / "amd-epyc-zen4-pvm-6.18.json"))[0]] + [
        hosts.host_snapshot(m) for m in MODELS
    ]


@pytest.mark.parametrize(
    "snap", snapshots(), ids=["pvm", "zen4-pvm", "haswell", "skylake-sp", "milan", "granite"]
)
@pytest.mark.parametrize("irqchip", list(Irqchip))
@pytest.mark.parametrize("opt_in", [False, True])
def test_table_is_kvms_answer_with_exactly_the_listed_changes(
    snap: Snapshot, irqchip: Irqchip, opt_in: bool
) -> None:
    a = analyse(snap, Options(irqchip=irqchip))
    g = guest_cpu_from_analysis(a, with_opt_in=opt_in)
    kvm = snap.supported_cpuid or ()
    assert [(e.function, e.index, e.flags) for e in g.entries] == [
        (e.function, e.index, e.flags) for e in kvm
    ]
    # every differing bit is a listed change, and every set/cleared change is in the table
    listed = {c.loc: c for c in g.changes if c.action != "left-out"}
    for old, new in zip(kvm, g.entries, strict=True):
        for reg in cp.REGISTERS:
            diff = old.reg(reg) ^ new.reg(reg)
            for b in range(32):
                if diff >> b & 1:
                    loc = (old.function, old.index, reg, b)
                    assert loc in listed, f"{cp.fmt_loc(*loc)} changed without a reason"
                    assert listed[loc].action == ("set" if new.reg(reg) >> b & 1 else "cleared")
    assert len(listed) == sum(
        bin(o.reg(r) ^ n.reg(r)).count("1")
        for o, n in zip(kvm, g.entries, strict=True)
        for r in cp.REGISTERS
    )
    # the policy, feature by feature
    for r in a.features:
        st, loc = r.verdict.status, r.feature.loc
        has = bit(g.entries, loc)
        if st is FeatureStatus.UNKNOWN or st is FeatureStatus.REMOVED_BY_QUIRK:
            assert not has
        elif st is FeatureStatus.ADDED_BY_QUIRK and cp.CpuidView(kvm).entry(loc[0], loc[1]):
            assert has
        elif st in (FeatureStatus.OPT_IN, FeatureStatus.EMULATED):
            if not opt_in:
                assert not has, r.feature.name
            elif cp.CpuidView(kvm).entry(loc[0], loc[1]) is not None:
                assert has == bool(r.verdict.effective), r.feature.name
        elif st in (FeatureStatus.RUNTIME, FeatureStatus.SUPPORTED):
            refused = loc in {c.loc for c in g.changes if c.status == "refused"}
            assert has == (bit(kvm, loc) and not refused)
        assert (loc in g.features) == has


def test_opt_in_bits_are_left_out_unless_asked() -> None:
    a = analyse(fixture())
    plain = guest_cpu_from_analysis(a)
    with_opt_in = guest_cpu_from_analysis(a, with_opt_in=True)
    ht = cp.lookup("ht")
    movbe = cp.lookup("movbe")
    assert ht is not None and movbe is not None
    assert not plain.has(ht.loc) and with_opt_in.has(ht.loc)
    assert not plain.has(movbe.loc) and with_opt_in.has(movbe.loc)
    left = {c.name for c in plain.changes if c.action == "left-out"}
    assert {"ht", "movbe"} <= left
    assert all("--with-opt-in" in c.reason for c in plain.changes if c.action == "left-out")


def refused_arch_caps(snap: Snapshot) -> Snapshot:
    attempt = SetAttempt(
        "KVM_SET_MSRS", "kernel", msr_data.MSR_IA32_ARCH_CAPABILITIES,
        0x400000000C000069, False, None, (0, 3, 5, 6, 26, 27, 62),
    )  # fmt: skip
    return dataclasses.replace(snap, verification=(attempt,))


def test_a_refused_arch_capabilities_value_clears_its_cpuid_bit() -> None:
    snap = fixture()
    assert bit(snap.supported_cpuid or (), ARCH_CAPABILITIES_LOC), "fixture advertises it"
    g = guest_cpu_from_analysis(analyse(refused_arch_caps(snap)))
    assert not g.has(ARCH_CAPABILITIES_LOC)
    # the quirk record arch-capabilities-refused removes it, with the verification's evidence
    (c,) = [c for c in g.changes if c.name == "arch_capabilities"]
    assert (c.action, c.status) == ("cleared", "removed-by-quirk")
    assert "refused by KVM_SET_MSRS on a vCPU" in c.reason
    assert "MDS_NO" in g.refused_msrs[msr_data.MSR_IA32_ARCH_CAPABILITIES]
    # accepted on a vCPU: kept
    ok = SetAttempt(
        "KVM_SET_MSRS", "kernel", msr_data.MSR_IA32_ARCH_CAPABILITIES, 0x400000000C000069, True
    )
    verified = dataclasses.replace(snap, verification=(ok,))
    assert guest_cpu_from_analysis(analyse(verified)).has(ARCH_CAPABILITIES_LOC)
    # not verified (a format-1 snapshot): unknown, so never exported as given
    assert snap.verification is None
    g1 = guest_cpu_from_analysis(analyse(snap))
    assert not g1.has(ARCH_CAPABILITIES_LOC)
    (c1,) = [c for c in g1.changes if c.name == "arch_capabilities"]
    assert (c1.action, c1.status) == ("cleared", "unknown") and "vCPU verification" in c1.reason


def test_a_refused_table_cannot_be_exported() -> None:
    snap = dataclasses.replace(
        fixture(), verification=(SetAttempt("KVM_SET_CPUID2", "kernel", None, 50, False, 22),)
    )
    with pytest.raises(KvmprobeError, match="refused KVM's own"):
        guest_cpu_from_analysis(analyse(snap))


def test_no_supported_cpuid_is_one_line_and_a_hint(tmp_path: Path) -> None:
    doc = json.loads(Path(FIX).read_text())
    doc["supported_cpuid"] = None
    doc["errors"].append({"step": "KVM_GET_SUPPORTED_CPUID", "errno": 7, "message": "E2BIG"})
    path = tmp_path / "empty.json"
    path.write_text(json.dumps(doc))
    r = run("export", "cpuid2", "--from", str(path))
    assert r.exit_code == 1
    lines = r.stderr.strip().splitlines()
    assert lines[-2].startswith("kvmprobe: error: nothing to export")
    assert lines[-1].startswith("hint: ")


def test_cli_json_document() -> None:
    r = run("export", "cpuid2", "--from", FIX)
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["schema"] == "kvmprobe.export-cpuid2/1"
    assert doc["nent"] == len(doc["entries"]) == len(fixture().supported_cpuid or ())
    assert doc["guest"]["vendor"] == "AuthenticAMD"
    assert set(doc["entries"][0]) == {"function", "index", "flags", "eax", "ebx", "ecx", "edx"}
    g = guest_cpu_from_analysis(analyse(fixture()))
    assert doc["entries"] == [e.to_json() for e in g.entries]
    opt = json.loads(run("export", "cpuid2", "--from", FIX, "--with-opt-in").stdout)
    assert opt["guest"]["with_opt_in"] is True and "ht" in opt["guest"]["features"]
    assert "ht" not in doc["guest"]["features"]


def test_cli_irqchip_changes_the_table() -> None:
    docs = {
        m: json.loads(run("export", "cpuid2", "--from", FIX, "--irqchip", m).stdout)
        for m in ("kernel", "userspace")
    }
    assert "x2apic" in docs["kernel"]["guest"]["features"]
    assert "x2apic" not in docs["userspace"]["guest"]["features"]
    assert docs["userspace"]["guest"]["irqchip"] == "userspace"


LINE = re.compile(
    r"^   0x([0-9a-f]{8}) 0x([0-9a-f]{2}): eax=0x([0-9a-f]{8}) ebx=0x([0-9a-f]{8}) "
    r"ecx=0x([0-9a-f]{8}) edx=0x([0-9a-f]{8})$"
)


def parse_cpuid_r(text: str) -> list[tuple[int, ...]]:
    lines = text.splitlines()
    assert lines[0] == "CPU 0:"
    out = []
    for line in lines[1:]:
        m = LINE.match(line)
        assert m, line
        out.append(tuple(int(x, 16) for x in m.groups()))
    return out


def test_cpuid_r_text_round_trips() -> None:
    g = guest_cpu_from_analysis(analyse(fixture()))
    rows = parse_cpuid_r(cpuid_r_text(g))
    assert rows == [(e.function, e.index, e.eax, e.ebx, e.ecx, e.edx) for e in g.entries]


def test_cli_writes_a_file_once(tmp_path: Path) -> None:
    out = tmp_path / "t.txt"
    r = run("export", "cpuid2", "--from", FIX, "--cpuid-r", "-o", str(out))
    assert r.exit_code == 0 and out.read_text().startswith("CPU 0:\n")
    again = run("export", "cpuid2", "--from", FIX, "-o", str(out))
    assert again.exit_code == 1
    assert again.stderr.splitlines() == [
        f"kvmprobe: error: {out} already exists",
        "hint: choose another name, or add --force to overwrite it",
    ]
    forced = run("export", "cpuid2", "--from", FIX, "-o", str(out), "--force")
    assert forced.exit_code == 0 and json.loads(out.read_text())["schema"].endswith("cpuid2/1")


def test_cli_bad_usage() -> None:
    r = run("export", "vmware", "--from", FIX)
    assert r.exit_code == 2 and "Invalid value for 'FORMAT'" in r.stderr
    r = run("export", "cpuid2", "--from", FIX, "--json", "--cpuid-r")
    assert r.exit_code == 2 and r.stderr.startswith("kvmprobe: error: --json applies to")
    r = run("export", "cpuid2", "--from", FIX, "--disable-exits", "nap")
    assert r.exit_code == 2 and "hint:" in r.stderr


def test_guest_cpu_is_a_neutral_input() -> None:
    """What a baseline will build: vendor, signature, features and the table only."""
    g = guest_cpu_from_analysis(analyse(hosts.host_snapshot(hosts.HASWELL)))
    plain = GuestCpu(g.vendor, g.signature, g.features, g.entries)
    assert plain.names() == g.names() and plain.vendor == "GenuineIntel"
    assert plain.signature == cp.family_model_stepping(cp.CpuidView(g.entries))


@pytest.mark.skipif(shutil.which("cpuid") is None, reason="the 'cpuid' tool is not installed")
def test_cpuid_tool_decodes_the_export(tmp_path: Path) -> None:
    out = tmp_path / "guest.cpuid"
    assert run("export", "cpuid2", "--from", FIX, "--cpuid-r", "-o", str(out)).exit_code == 0
    decoded = subprocess.run(
        ["cpuid", "-f", str(out)], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    assert 'vendor_id = "AuthenticAMD"' in decoded
    assert re.search(r"x2APIC: extended xAPIC support\s+= true", decoded)
    assert re.search(r"hypervisor guest status\s+= true", decoded)
    g = guest_cpu_from_analysis(analyse(fixture()))
    fam = g.signature
    assert fam is not None and f"(family synth)  = {fam[0]:#x} ({fam[0]})" in decoded
