"""kvmprobe export firecracker: a Firecracker custom CPU template.

Firecracker cannot run here; the template is checked against the facts of Firecracker's
documented format (tests/peers/firecracker-cpu-template.schema.json names its source) and by
applying it, the way the format describes (0 clears, 1 sets, x keeps), to KVM's offer."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import FIXTURES, RECORDED_HOSTS
from jsonschema import Draft202012Validator
from test_export_cpuid2 import refused_arch_caps

from kvmprobe.analysis import cpuid as cp
from kvmprobe.analysis.effective import analyse
from kvmprobe.analysis.export import FIRECRACKER_FORMAT_FROM, firecracker_cpuid, firecracker_msrs
from kvmprobe.analysis.guest_cpuid import ARCH_CAPABILITIES_LOC, GuestCpu, guest_cpu_from_analysis
from kvmprobe.analysis.quirks import Options
from kvmprobe.cli import main
from kvmprobe.render.export_firecracker import firecracker_doc
from kvmprobe.snapshot import CpuidEntry, SetAttempt, load
from kvmprobe.vocab import Irqchip

SCHEMA_FILE = Path(__file__).parent / "peers" / "firecracker-cpu-template.schema.json"
FIX = str(FIXTURES / "amd-epyc-pvm-6.18.json")


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def apply(doc: dict[str, object], base: tuple[CpuidEntry, ...]) -> cp.CpuidView:
    """The template applied to ``base`` as Firecracker's documentation describes."""
    regs = {(e.function, e.index): [e.eax, e.ebx, e.ecx, e.edx] for e in base}
    for item in doc["cpuid_modifiers"]:  # type: ignore[attr-defined]
        key = (int(item["leaf"], 16), int(item["subleaf"], 16))
        for m in item["modifiers"]:
            bits = m["bitmap"].removeprefix("0b").replace("_", "")
            assert len(bits) == 32
            i = cp.REGISTERS.index(m["register"])
            for pos, ch in enumerate(reversed(bits)):
                if ch == "1":
                    regs[key][i] |= 1 << pos
                elif ch == "0":
                    regs[key][i] &= ~(1 << pos)
    return cp.CpuidView(
        tuple(CpuidEntry(f, x, 0, *regs[(f, x)]) for f, x in regs)  # flags do not matter here
    )


def test_source_is_named_in_the_schema_facts() -> None:
    assert FIRECRACKER_FORMAT_FROM in json.loads(SCHEMA_FILE.read_text())["$comment"]


@pytest.mark.parametrize("host", [p.name for p in RECORDED_HOSTS])
@pytest.mark.parametrize("irqchip", list(Irqchip))
def test_template_gives_kvms_offer_the_effective_features(host: str, irqchip: Irqchip) -> None:
    snap = load(str(FIXTURES / host))[0]
    g = guest_cpu_from_analysis(analyse(snap, Options(irqchip=irqchip)))
    doc = firecracker_doc(firecracker_cpuid(g))
    assert list(validator().iter_errors(doc)) == []
    got = apply(doc, g.offered)
    final = cp.CpuidView(g.entries)
    for f in cp.features():
        if f.loc in g.runtime or final.entry(f.leaf, f.subleaf) is None:
            continue
        assert got.has_loc(f.loc) == g.has(f.loc), f.name


def modifiers(g: GuestCpu) -> dict[cp.Loc, str]:
    out: dict[cp.Loc, str] = {}
    for x in firecracker_cpuid(g):
        for reg, bits in x.bitmaps:
            for pos, ch in enumerate(reversed(bits)):
                out[(x.leaf, x.subleaf, reg, pos)] = ch
    return out


def test_marks_only_what_differs_from_kvm() -> None:
    snap = load(FIX)[0]
    g = guest_cpu_from_analysis(analyse(refused_arch_caps(snap)))
    m = modifiers(g)
    assert m[ARCH_CAPABILITIES_LOC] == "0"  # a vCPU refused the MSR value
    for name in ("erms", "fsrm"):  # effective by a quirk, not in KVM's offer
        f = cp.lookup(name)
        assert f is not None and m[f.loc] == "1"
    sse2 = cp.lookup("sse2")
    assert sse2 is not None and m.get(sse2.loc, "x") == "x"  # KVM already gives it
    for loc in g.runtime:
        assert m.get(loc, "x") == "x"
    # userspace irqchip: x2apic must be cleared
    gu = guest_cpu_from_analysis(analyse(snap, Options(irqchip=Irqchip.USERSPACE)))
    x2 = cp.lookup("x2apic")
    assert x2 is not None and modifiers(gu)[x2.loc] == "0"


def test_cli_writes_firecracker_json_only() -> None:
    r = run("export", "firecracker", "--from", FIX)
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    # Firecracker's format: no kvmprobe source block
    assert set(doc) == {"cpuid_modifiers", "msr_modifiers"}
    assert list(validator().iter_errors(doc)) == []
    # feature-MSR bits KVM advertises but no verification vouches for (format 1): 0, every
    # named one (ARCH_CAPABILITIES; PLATFORM_INFO's CPUID faulting)
    snap = load(FIX)[0]
    named = guest_cpu_from_analysis(analyse(snap)).msr_bits
    assert {m["addr"] for m in doc["msr_modifiers"]} == {"0x10a", "0xce"}
    for m in doc["msr_modifiers"]:
        index = int(m["addr"], 16)
        bits = m["bitmap"].removeprefix("0b")[::-1]  # bit 0 first
        zeros = {i for i, c in enumerate(bits) if c == "0"}
        assert zeros == {r.bit.lo for r in named if r.index == index}
        assert zeros <= {i for i in range(64) if snap.feature_msrs[index] >> i & 1}


def test_msr_modifiers_clear_only_what_a_vcpu_refused() -> None:
    snap = load(FIX)[0]
    value = snap.feature_msrs[0x10A]
    took = tuple(
        SetAttempt("KVM_SET_MSRS", "split", i, v, True) for i, v in snap.feature_msrs.items()
    )
    g = guest_cpu_from_analysis(analyse(replace(snap, verification=took)))
    assert firecracker_msrs(g) == ()
    mds = (
        *(a for a in took if a.target != 0x10A),
        SetAttempt("KVM_SET_MSRS", "split", 0x10A, value, False, None, (5,)),
    )
    (m,) = firecracker_msrs(guest_cpu_from_analysis(analyse(replace(snap, verification=mds))))
    assert m.addr == 0x10A and m.bitmap == "x" * 58 + "0" + "x" * 5


def test_the_schema_facts_reject_wrong_documents() -> None:
    v = validator()

    def doc(register: str = "eax", bitmap: str = "0b" + "x" * 32, leaf: object = "0x1") -> object:
        mod = {"register": register, "bitmap": bitmap}
        return {"cpuid_modifiers": [{"leaf": leaf, "subleaf": "0x0", "flags": 0,
                                     "modifiers": [mod]}]}  # fmt: skip

    bad = [doc(bitmap="0b1"), doc(register="rax"), doc(bitmap="0b" + "y" * 32), doc(leaf=1),
           {"source": {}}]  # fmt: skip
    for d in bad:
        assert list(v.iter_errors(d)), d
    assert list(v.iter_errors(doc())) == []
    ok = doc(bitmap="0b" + "x_" * 32)
    assert list(v.iter_errors(ok)) == []


@pytest.mark.parametrize("host", [p.name for p in RECORDED_HOSTS])
def test_golden_templates_validate(host: str) -> None:
    path = Path(__file__).parent / "golden" / host.removesuffix(".json") / "export-firecracker.json"
    assert list(validator().iter_errors(json.loads(path.read_text()))) == []
