"""The generated MSR and Hyper-V tables: current, consistent, pinned to upstream facts, and
cross-checked against QEMU's and libvirt's names.

QEMU cross-checks run on the committed facts (feature_word_info names pinned bit by bit) and on
QEMU 7.2's own answer recorded on the fixture's host (tests/peers/recorded): every vmx-* and
ARCH_CAPABILITIES property that QEMU knows must be in our tables, and its value for the host
must equal our decoding of the same host's ARCH_CAPABILITIES. libvirt's installed cpu_map, when
present, must name the same MSR bits as our facts.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import FIXTURES

from kvmprobe.analysis import msr as m
from kvmprobe.snapshot import load
from kvmprobe.tables import hyperv_data as H
from kvmprobe.tables import msr_data as M

ROOT = Path(__file__).resolve().parent.parent

RECORDED = Path(__file__).parent / "peers" / "recorded" / "qemu-host-kernel.json"
LIBVIRT_MAP = Path("/usr/share/libvirt/cpu_map/x86_features.xml")


def _gen():  # the generator as a module, without touching sys.path
    import importlib.util

    path = ROOT / "scripts" / "gen_msr_tables.py"
    spec = importlib.util.spec_from_file_location("gen_msr_tables", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gen_msr_tables"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_committed_tables_are_current() -> None:
    assert _gen().main(["--check"]) == 0


def _copy_inputs(tmp_path: Path) -> tuple[Path, Path]:
    facts = tmp_path / "facts.json"
    overlay = tmp_path / "overlay.tsv"
    shutil.copy(ROOT / "scripts/data/msr_facts.json", facts)
    shutil.copy(ROOT / "scripts/data/msr_overlay.tsv", overlay)
    return facts, overlay


def _run(tmp_path: Path, facts: Path, overlay: Path, capsys: pytest.CaptureFixture[str]) -> str:
    rc = _gen().main([
        "--facts", str(facts), "--overlay", str(overlay),
        "--msr-output", str(tmp_path / "m.py"), "--hyperv-output", str(tmp_path / "h.py"),
    ])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 1, "the generator accepted broken inputs"
    assert not (tmp_path / "m.py").exists()
    return err


def test_generator_refuses_a_bit_without_description(tmp_path, capsys) -> None:
    facts, overlay = _copy_inputs(tmp_path)
    text = overlay.read_text().replace("arch_capabilities\tARCH_CAP_ITS_NO\t", "x\ty\t")
    overlay.write_text(text)
    err = _run(tmp_path, facts, overlay, capsys)
    assert "no overlay row for arch_capabilities ARCH_CAP_ITS_NO" in err


def test_generator_refuses_an_overlay_row_matching_nothing(tmp_path, capsys) -> None:
    facts, overlay = _copy_inputs(tmp_path)
    overlay.write_text(overlay.read_text() + "arch_capabilities\tARCH_CAP_BOGUS\tNothing\t-\n")
    err = _run(tmp_path, facts, overlay, capsys)
    assert "match no fact" in err and "ARCH_CAP_BOGUS" in err


def test_generator_refuses_a_qemu_name_on_an_unlisted_bit(tmp_path, capsys) -> None:
    facts, overlay = _copy_inputs(tmp_path)
    data = json.loads(facts.read_text())
    data["qemu"]["words"][0]["names"]["40"] = "made-up"
    facts.write_text(json.dumps(data))
    err = _run(tmp_path, facts, overlay, capsys)
    assert "QEMU names bit 40" in err


def test_generator_refuses_a_source_without_commit(tmp_path, capsys) -> None:
    facts, overlay = _copy_inputs(tmp_path)
    data = json.loads(facts.read_text())
    data["layouts"][0]["source"]["commit"] = "main"
    facts.write_text(json.dumps(data))
    err = _run(tmp_path, facts, overlay, capsys)
    assert "40-digit" in err


# -- pinned facts ------------------------------------------------------------------------------


def _row(layout: str, name: str) -> m.MsrBit:
    hits = [b for b in m.layout_rows(layout) if name in b.names()]
    assert len(hits) == 1, (layout, name, hits)
    return hits[0]


@pytest.mark.parametrize(
    ("name", "bit"),
    [("RDCL_NO", 0), ("MDS_NO", 5), ("PSCHANGE_MC_NO", 6), ("TAA_NO", 8), ("BHI_NO", 20),
     ("GDS_NO", 26), ("RFDS_NO", 27), ("RFDS_CLEAR", 28), ("ITS_NO", 62)],
)  # fmt: skip
def test_arch_capabilities_positions(name: str, bit: int) -> None:
    assert _row("arch_capabilities", name).lo == bit


def test_msr_numbers() -> None:
    assert M.MSR_IA32_ARCH_CAPABILITIES == 0x10A
    assert M.MSR_IA32_PERF_CAPABILITIES == 0x345
    assert M.MSR_IA32_UCODE_REV == M.MSR_AMD64_PATCH_LEVEL == 0x8B
    assert M.MSR_AMD64_DE_CFG == 0xC0011029
    assert M.MSR_IA32_VMX_BASIC == 0x480 and M.MSR_IA32_VMX_VMFUNC == 0x491
    assert M.MSR_IA32_VMX_PROCBASED_CTLS3 == 0x492
    assert M.MSR_KVM_POLL_CONTROL == 0x4B564D05
    assert M.MSR_NAMES[0x8B] == ("MSR_IA32_UCODE_REV", "MSR_AMD64_PATCH_LEVEL")
    assert _row("de_cfg", "LFENCE_SERIALIZE").lo == 1


@pytest.mark.parametrize(
    ("layout", "qemu", "bit"),
    [
        ("vmx_secondary", "vmx-ept", 1), ("vmx_secondary", "vmx-vpid", 5),
        ("vmx_secondary", "vmx-unrestricted-guest", 7), ("vmx_pinbased", "vmx-posted-intr", 7),
        ("vmx_procbased", "vmx-cr3-load-noexit", 15), ("vmx_procbased", "vmx-secondary-ctls", 31),
        ("vmx_exit", "vmx-exit-ack-intr", 15), ("vmx_entry", "vmx-entry-ia32e-mode", 9),
        ("vmx_entry", "vmx-entry-load-fred", 23), ("vmx_basic", "vmx-true-ctls", 55),
        ("vmx_misc", "vmx-activity-hlt", 6), ("vmx_vmfunc", "vmx-eptp-switching", 0),
        ("vmx_ept_vpid_cap", "vmx-eptad", 21), ("vmx_ept_vpid_cap", "vmx-invvpid", 32),
        ("arch_capabilities", "skip-l1dfl-vmentry", 3),
        ("perf_capabilities", "full-width-write", 13),
    ],
)  # fmt: skip
def test_qemu_feature_word_info_names(layout: str, qemu: str, bit: int) -> None:
    """QEMU target/i386/cpu.c feature_word_info, as transcribed into the committed facts."""
    assert [b.lo for b in m.layout_rows(layout) if b.qemu_name == qemu] == [bit]


def test_qemu_names_ept_vpid_spelling_kept() -> None:
    # QEMU spells INVVPID single-context (41) like INVEPT single-context (25): kept, and a
    # lookup finds both rather than picking one.
    assert {r.bit.lo for r in m.lookup_bit("vmx-invept-single-context")} == {25, 41}


def test_table_invariants() -> None:
    layouts = {row[0] for row in M.ROWS}
    assert layouts == set(M.LAYOUT_KIND) - {lid for lid, k in M.LAYOUT_KIND.items() if k == "value"}
    for lid in layouts:
        rows = m.layout_rows(lid)
        assert len({r.name for r in rows}) == len(rows), lid
        mask = 0
        for r in rows:
            assert r.description, (lid, r.name)
            assert len(r.description) <= 72
            assert not mask & r.mask, (lid, r.name)
            mask |= r.mask
    for index, lid in M.MSR_LAYOUT.items():
        assert index in M.MSR_NAMES and lid in M.LAYOUT_KIND
        assert M.MSR_DESCRIPTIONS[index]
    for _repo, _path, commit in M.SOURCES + H.SOURCES:
        assert re.fullmatch(r"[0-9a-f]{40}", commit)
    # every skip label sits on an ARCH_CAPABILITIES immunity bit
    skips = {row[0] for row in M.ROWS if row[9]}
    assert skips == {"arch_capabilities"}


def test_hyperv_tables() -> None:
    named = {(leaf, reg, bit) for leaf, reg, bit, *_ in H.HV_BITS}
    assert len(H.HV_PROPERTIES) == 21
    for name, _al, _f, needs, _deps, _extra, _skip, desc in H.HV_PROPERTIES:
        assert name.startswith("hv-") and desc
        for leaf, reg, mask in needs:
            for bit in range(32):
                if mask >> bit & 1:
                    assert (leaf, reg, bit) in named, (name, hex(leaf), reg, bit)
    props = {p[0]: p for p in H.HV_PROPERTIES}
    assert props["hv-time"][3] == ((0x40000003, "eax", (1 << 1) | (1 << 9)),)
    assert props["hv-syndbg"][6] is True  # skip_passthrough
    assert props["hv-stimer"][4] == ("hv-synic", "hv-time")
    assert int.from_bytes(b"Hv#1", "little") == H.HV_INTERFACE_SIGNATURE


# -- peers ---------------------------------------------------------------------------------------


def _qemu_props() -> dict[str, object]:
    doc = json.loads(RECORDED.read_text())
    assert doc["qemu"]["version"][:2] == [7, 2]
    return dict(doc["model"]["props"])


def test_every_qemu_vmx_property_is_in_our_tables() -> None:
    ours = {r.qemu_name for rows in map(m.layout_rows, M.LAYOUT_KIND) for r in rows}
    theirs = {k for k in _qemu_props() if k.startswith("vmx-")}
    assert len(theirs) > 80
    assert theirs - ours == set()


def test_qemu_arch_capabilities_agree_with_our_decoding() -> None:
    """QEMU 7.2's -cpu host answer on the fixture's host vs our decoding of its
    ARCH_CAPABILITIES: every name QEMU knows must match, bit for bit."""
    snap, _ = load(str(FIXTURES / "amd-epyc-pvm-6.18.json"))
    d = m.decode_msr(M.MSR_IA32_ARCH_CAPABILITIES, snap.feature_msrs[M.MSR_IA32_ARCH_CAPABILITIES])
    props = _qemu_props()
    compared = 0
    for b in d.bits:
        q = b.bit.qemu_name
        if q and q in props:
            assert props[q] is b.is_set, q
            compared += 1
    assert compared >= 9  # QEMU 7.2 names bits 0-8 of ARCH_CAPABILITIES
    # QEMU 7.2 predates gds-no, rfds-no and bhi-no: it drops bits KVM sets
    assert "gds-no" not in props and _row("arch_capabilities", "gds-no").lo == 26


def test_qemu_hv_properties_are_ours() -> None:
    theirs = {k for k in _qemu_props() if k.startswith("hv-")}
    not_cpuid = {"hv-spinlocks", "hv-vendor-id", "hv-passthrough", "hv-enforce-cpuid",
                 "hv-no-nonarch-coresharing"}  # fmt: skip
    theirs = {k for k in theirs if not k.startswith("hv-version-id")} - not_cpuid
    ours = {p[0] for p in H.HV_PROPERTIES} | {a for p in H.HV_PROPERTIES for a in p[1]}
    assert theirs - ours == set()


@pytest.mark.skipif(not LIBVIRT_MAP.exists(), reason="libvirt's cpu_map is not installed here")
def test_installed_libvirt_names_match() -> None:
    root = ET.parse(LIBVIRT_MAP).getroot()
    compared = set()
    for feat in root.iter("feature"):
        msr = feat.find("msr")
        if msr is None:
            continue
        index = int(msr.get("index", "0"), 16)
        mask = int(msr.get("eax", "0"), 16) | int(msr.get("edx", "0"), 16) << 32
        lid = M.MSR_LAYOUT.get(index)
        if lid is None or mask.bit_count() != 1:
            continue
        bit = mask.bit_length() - 1
        hits = [r for r in m.layout_rows(lid) if r.lo == bit]
        assert hits and hits[0].libvirt_name == feat.get("name"), (feat.get("name"), bit)
        compared.add(feat.get("name"))
    # the four names libvirt's host-model requires on the fixture's host, and the rest of 9.0's
    assert {"mds-no", "rdctl-no", "pschange-mc-no", "skip-l1dfl-vmentry"} <= compared
    assert len(compared) >= 10
