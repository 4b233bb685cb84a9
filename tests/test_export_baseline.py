"""kvmprobe export FORMAT --from A --from B...: the baseline of several hosts in every format.

The table's policy (analysis.guest_cpuid.guest_cpu_from_baseline) is checked register by
register against the hosts it came from; every format names the baseline's snapshots; a
feature-MSR bit is given only when every host gives it; the live libvirt test asks the
running libvirtd whether this host provides the baseline of itself and both recorded hosts."""

from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import FIXTURES
from support.comments import unfolded_libvirt, unfolded_qemu
from test_export_firecracker import apply, validator
from test_export_libvirt import (
    _all_taken,
    _libvirt_or_skip,
    compares_or_xfail,
)

from kvmprobe.analysis import cpuid as cp
from kvmprobe.analysis.baseline import BaselineBuilder
from kvmprobe.analysis.effective import analyse
from kvmprobe.analysis.export import (
    _model_msr_bit,
    firecracker_cpuid,
    firecracker_msrs,
    libvirt_custom,
    msr_bits_given_qemu,
    qemu_model,
)
from kvmprobe.analysis.guest_cpuid import (
    PER_VCPU_FIELDS,
    GuestCpu,
    guest_cpu_from_analysis,
    guest_cpu_from_baseline,
)
from kvmprobe.analysis.profile import build, feature_space
from kvmprobe.analysis.quirks import Options
from kvmprobe.cli import main
from kvmprobe.render.export_firecracker import firecracker_doc
from kvmprobe.snapshot import SetAttempt, Snapshot, load
from kvmprobe.tables import qemu_models_data as qm

A = str(FIXTURES / "amd-epyc-pvm-6.18.json")
B = str(FIXTURES / "amd-epyc-zen4-pvm-6.18.json")


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def baseline_of(snaps: list[Snapshot]) -> tuple[GuestCpu, list[GuestCpu]]:
    builder = BaselineBuilder()
    guests = []
    for s in snaps:
        builder.add(build(s, Options()))
        guests.append(guest_cpu_from_analysis(analyse(s)))
    return guest_cpu_from_baseline(builder.finish(), guests), guests


def fixtures() -> list[Snapshot]:
    return [load(A)[0], load(B)[0]]


# -- the table ------------------------------------------------------------------------------


def test_the_table_follows_the_policy() -> None:
    g, hosts = baseline_of(fixtures())
    assert g.hosts == (A, B) and g.is_baseline
    keys = [(e.function, e.index) for e in g.entries]
    assert len(keys) == len(set(keys))
    tables = [{(e.function, e.index): e for e in h.entries} for h in hosts]
    view = cp.CpuidView(g.entries)
    max_basic = min(t[(0, 0)].eax for t in tables)
    max_ext = min(t[(0x80000000, 0)].eax for t in tables)
    assert view.entry(0, 0) is not None and view.entry(0, 0).eax == max_basic  # type: ignore[union-attr]
    for leaf, sub in keys:
        assert all((leaf, sub) in t for t in tables), (hex(leaf), sub)  # leaves all hosts have
        assert leaf <= max_basic or leaf >= 0x40000000
        assert leaf < 0x80000000 or leaf <= max_ext
    # every feature bit is the baseline's: set exactly when every host's export sets it
    space = feature_space()
    for i, (leaf, sub, reg) in enumerate(space.slots):
        e = view.entry(leaf, sub)
        if e is None or (leaf, sub) not in keys:
            continue
        for bit in range(32):
            if space.space[i] >> bit & 1:
                loc = (leaf, sub, reg, bit)
                assert view.has_loc(loc) == g.has(loc), cp.fmt_loc(*loc)
                if g.has(loc):
                    assert all(h.has(loc) for h in hosts), cp.fmt_loc(*loc)
    # fields that differ and no rule settles are the first host's, and said so
    first = tables[0]
    assert g.signature == hosts[0].signature
    for name in g.first_host_fields:
        fd = next(f for f in cp.fields() if f.name == name)
        assert len({fd.extract(getattr(t[(fd.leaf, fd.subleaf)], fd.register)) for t in tables}) > 1
        got = fd.extract(getattr(view.entry(fd.leaf, fd.subleaf), fd.register))
        assert got == fd.extract(getattr(first[(fd.leaf, fd.subleaf)], fd.register)), name
    assert "model" in g.first_host_fields  # the two recorded hosts are different models
    # the recordings ran CPUID on CPUs with different APIC IDs: per-vCPU values, never named
    differ = {
        fd.name
        for fd in cp.fields()
        if all((fd.leaf, fd.subleaf) in t for t in tables)
        and len({fd.extract(getattr(t[(fd.leaf, fd.subleaf)], fd.register)) for t in tables}) > 1
    }
    assert "initial_apic_id" in differ
    assert not differ & PER_VCPU_FIELDS & set(g.first_host_fields)
    # XSAVE sizes: the largest of the hosts
    size_max = view.entry(0xD, 0)
    assert size_max is not None and size_max.ecx == max(t[(0xD, 0)].ecx for t in tables)


def test_the_baseline_of_one_host_twice_is_that_host() -> None:
    s = load(A)[0]
    g, (h, _) = baseline_of([s, replace(s, source="again.json")])
    assert g.features == h.features and g.first_host_fields == ()
    assert {(e.function, e.index) for e in g.entries} <= {(e.function, e.index) for e in h.entries}
    mine = {(e.function, e.index): e for e in h.entries}
    for e in g.entries:
        if e.function != 0xD:  # leaf 0xD is rebuilt from the baseline's components
            assert e == mine[(e.function, e.index)], hex(e.function)


# -- feature-MSR bits -----------------------------------------------------------------------


def _verified(snap: Snapshot, refuse_bit: int | None = None) -> Snapshot:
    took = _all_taken(snap)
    if refuse_bit is None:
        return replace(snap, verification=took)
    value = snap.feature_msrs[0x10A]
    refused = SetAttempt("KVM_SET_MSRS", "split", 0x10A, value, False, None, (refuse_bit,))
    return replace(snap, verification=(*took[1:], refused))


def test_an_msr_bit_is_given_only_when_every_host_gives_it() -> None:
    s = load(A)[0]
    both = [_verified(s), replace(_verified(s), source="b.json")]
    g, _ = baseline_of(both)
    given = {r.bit.qemu_name for r in g.msr_bits if r.effective}
    assert {"mds-no", "rdctl-no"} <= given
    # one host's vCPU refuses MDS_NO (bit 5): the baseline does not give it; rdctl-no stays
    g, _ = baseline_of([_verified(s), replace(_verified(s, 5), source="b.json")])
    mds = next(r for r in g.msr_bits if r.bit.qemu_name == "mds-no")
    assert mds.effective is False and mds.why.startswith("not given on b.json")
    assert "rdctl-no" in msr_bits_given_qemu(g)
    c = libvirt_custom(g)
    assert "mds-no" in c.msr_disable and "rdctl-no" in c.msr_require
    assert any(m.addr == 0x10A and m.bitmap[63 - 5] == "0" for m in firecracker_msrs(g))
    # unverified on one host (a format-1 snapshot): unknown, left out, said where
    g, _ = baseline_of([_verified(s), replace(s, source="old.json")])
    mds = next(r for r in g.msr_bits if r.bit.qemu_name == "mds-no")
    assert mds.effective is None and "unknown on old.json" in mds.why
    assert "mds-no" in libvirt_custom(g).msr_disable


def test_a_named_model_drops_the_msr_bits_the_guest_lacks(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a model that has feature-MSR bits (an Intel model, relabelled for the recorded
    AMD host), the bits the guest is given stay and every other one is removed by name."""
    model = qm.MODELS["Cascadelake-Server-v2"]
    bits = {n for n in model.features if _model_msr_bit(n)}
    assert {"mds-no", "rdctl-no"} & bits
    monkeypatch.setattr(qm, "MODELS", {model.name: model._replace(vendor="AuthenticAMD")})
    s = load(A)[0]
    for snap in (_verified(s), _verified(s, 5), s):
        g = guest_cpu_from_analysis(analyse(snap))
        q = qemu_model(g)
        given = msr_bits_given_qemu(g)
        assert {n for n in bits if n not in given} <= set(q.minus)
        assert not (bits & given) & set(q.minus)
        assert not bits & set(q.unchecked)  # checked now
        assert all(n in qm.FEATURE_NAMES for n in q.minus)
    assert "mds-no" not in qemu_model(guest_cpu_from_analysis(analyse(_verified(s)))).minus
    assert "mds-no" in qemu_model(guest_cpu_from_analysis(analyse(_verified(s, 5)))).minus


# -- every format ---------------------------------------------------------------------------


def test_every_format_names_the_baseline() -> None:
    r = run("export", "qemu", "--from", A, "--from", B)
    assert r.exit_code == 0, r.stderr
    assert f"# the baseline of 2 snapshots: {A}, {B}" in unfolded_qemu(r.stdout)
    r = run("export", "libvirt", "--from", A, "--from", B)
    assert r.exit_code == 0
    assert f"<!-- the baseline of 2 snapshots: {A}, {B} -->" in unfolded_libvirt(r.stdout)
    ET.fromstring(r.stdout)
    for args in (["cpuid2", "--cpuid-r"], ["firecracker"]):
        r = run("export", *args, "--from", A, "--from", B)
        assert r.exit_code == 0, r.stderr
        assert f"kvmprobe: note: the baseline of 2 snapshots: {A}, {B}" in r.stderr
        assert "baseline" not in r.stdout  # the format has no room for comments
    r = run("export", "cpuid2", "--from", A, "--from", B)
    doc = json.loads(r.stdout)
    assert doc["guest"]["baseline"]["hosts"] == [A, B] and doc["tried_on_vcpu"] is None
    assert doc["nent"] == len(doc["entries"])
    for kind in ("qemu", "libvirt"):
        doc = json.loads(run("export", kind, "--json", "--from", A, "--from", B).stdout)
        assert doc["schema"] == f"kvmprobe.export-{kind}/1"
        assert doc["guest"]["baseline"]["hosts"] == [A, B]
        assert doc["notes"][0] == f"the baseline of 2 snapshots: {A}, {B}"


@pytest.mark.skipif(shutil.which("cpuid") is None, reason="the 'cpuid' tool is not installed")
def test_cpuid_tool_decodes_the_baseline(tmp_path: Path) -> None:
    out = tmp_path / "t.txt"
    assert (
        run("export", "cpuid2", "--cpuid-r", "--from", A, "--from", B, "-o", str(out)).exit_code
        == 0
    )
    p = subprocess.run(["cpuid", "-f", str(out)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "unexpected input" not in p.stderr, p.stderr


def test_the_firecracker_template_gives_the_baseline_on_every_host() -> None:
    g, hosts = baseline_of(fixtures())
    doc = firecracker_doc(firecracker_cpuid(g), firecracker_msrs(g))
    validator().validate(doc)
    for h in hosts:
        got = apply(doc, h.offered)
        for loc in cp.by_loc():
            if loc in g.runtime or cp.CpuidView(g.entries).entry(loc[0], loc[1]) is None:
                continue
            assert got.has_loc(loc) == g.has(loc), cp.fmt_loc(*loc)
        for (leaf, sub, reg), mask in g.pinned.items():  # the fields a guest must not see shrink
            e, want = got.entry(leaf, sub), cp.CpuidView(g.entries).entry(leaf, sub)
            assert e is not None and want is not None
            assert getattr(e, reg) & mask == getattr(want, reg) & mask


def test_libvirt_requires_only_what_every_host_offers() -> None:
    g, hosts = baseline_of(fixtures())
    c = libvirt_custom(g)
    from kvmprobe.tables import libvirt_data as lv

    by_name = {n: loc for loc, n in lv.FEATURES.items()}
    for name in c.require:
        assert all(cp.CpuidView(h.offered).has_loc(by_name[name]) for h in hosts), name
        assert g.has(by_name[name]) and all(h.has(by_name[name]) for h in hosts), name


def test_no_common_vendor_is_refused_in_every_format(tmp_path: Path) -> None:
    from support import hosts

    intel = tmp_path / "intel.json"
    intel.write_text(json.dumps(hosts.host_snapshot(hosts.HASWELL).to_json()))
    for fmt in ("cpuid2", "firecracker", "libvirt", "qemu"):
        r = run("export", fmt, "--from", A, "--from", str(intel))
        assert r.exit_code == 5, (fmt, r.stderr)
        lines = r.stderr.splitlines()
        assert len(lines) == 2 and r.stdout == ""
        assert lines[0].startswith("kvmprobe: error: the snapshots have no common CPUID vendor")
        assert lines[1].startswith("hint: ")


# -- libvirt, live --------------------------------------------------------------------------


def test_libvirt_can_provide_the_baseline_of_live_and_fixtures(tmp_path: Path) -> None:
    """The baseline of this host and both recorded hosts: the running libvirtd says this host
    provides it (identical or superset), with the single-host test's allowance for features
    libvirt does not count although KVM offers them (also absent from its own host-model)."""
    _libvirt_or_skip()
    live = tmp_path / "live.json"
    assert run("record", "-o", str(live)).exit_code == 0
    xml_file = tmp_path / "cpu.xml"
    r = run("export", "libvirt", "--from", str(live), "--from", A, "--from", B, "-o", str(xml_file))
    assert r.exit_code == 0, r.stderr
    assert "the baseline of 3 snapshots" in xml_file.read_text()
    compares_or_xfail(xml_file, "the baseline")


@pytest.mark.parametrize("irqchip", ["kernel", "split", "userspace"])
def test_kvm_takes_the_baseline_table_of_live_and_fixtures(irqchip: str, tmp_path: Path) -> None:
    """KVM_SET_CPUID2 (and XCR0) on a vCPU of this host accept the cpuid2 baseline of this
    host and both recorded hosts, in each irqchip set-up."""
    import os

    from kvmprobe.analysis.verify import verification
    from kvmprobe.kvm.probe import try_tables
    from kvmprobe.snapshot import CpuidEntry
    from kvmprobe.vocab import Irqchip

    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        pytest.skip("/dev/kvm is not usable here")
    live = tmp_path / "live.json"
    assert run("record", "-o", str(live)).exit_code == 0
    r = run("export", "cpuid2", "--irqchip", irqchip, "--from", str(live), "--from", A, "--from", B)
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    entries = tuple(
        CpuidEntry(e["function"], e["index"], e["flags"], e["eax"], e["ebx"], e["ecx"], e["edx"])
        for e in doc["entries"]
    )
    snap = try_tables(load(str(live))[0], {Irqchip(irqchip): entries}, "/dev/kvm")
    refusal = verification(snap).effective_refusal(irqchip)
    assert refusal is None, refusal
