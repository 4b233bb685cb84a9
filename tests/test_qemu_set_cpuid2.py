"""kvmprobe's ``export cpuid2`` against the table QEMU itself passes to KVM_SET_CPUID2.

QEMU 7.2 runs ``-cpu host`` (``-arch-capabilities`` where a vCPU here refuses KVM's
ARCH_CAPABILITIES value, as kvmprobe's export does) under ``strace -v -e trace=ioctl``; the
KVM_SET_CPUID2 entries strace prints are compared bit for bit with kvmprobe's export for the
same irqchip mode. Every differing bit must be claimed by a rule of
tests/peers/qemu_policy.md ("Rules for the KVM_SET_CPUID2 comparison"), each a VMM choice or
a known QEMU 7.2 policy, named here as in that section. An unclaimed bit fails the test.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_export_qemu import _installed_is_the_table_version, _qemu_or_skip

from kvmprobe.analysis import cpuid as cp
from kvmprobe.analysis.effective import analyse
from kvmprobe.analysis.export import QEMU_AMD_ALIASES
from kvmprobe.analysis.guest_cpuid import GuestCpu, guest_cpu_from_analysis
from kvmprobe.analysis.quirks import Options
from kvmprobe.cli import main
from kvmprobe.tables import qemu_models_data as qm
from kvmprobe.vocab import Irqchip

POLICY = Path(__file__).resolve().parent / "peers" / "qemu_policy.md"
REGS = ("eax", "ebx", "ecx", "edx")
FLAG_NAMES = {
    "KVM_CPUID_FLAG_SIGNIFCANT_INDEX": 1,
    "KVM_CPUID_FLAG_STATEFUL_FUNC": 2,
    "KVM_CPUID_FLAG_STATE_READ_NEXT": 4,
}
_ENTRY = re.compile(
    r"\{function=(\w+), index=(\w+), flags=([^,]*), eax=(\w+), ebx=(\w+), ecx=(\w+), "
    r"edx=(\w+)\}"
)

Key = tuple[int, int]
Regs = tuple[int, int, int, int, int]  # flags, eax, ebx, ecx, edx


def parse_set_cpuid2(text: str) -> dict[Key, Regs]:
    """The entries of the first KVM_SET_CPUID2 call strace printed (``-v`` prints them all)."""
    line = next(x for x in text.splitlines() if "KVM_SET_CPUID2" in x and "entries=[" in x)
    nent = int(re.search(r"nent=(\d+)", line).group(1))  # type: ignore[union-attr]
    out: dict[Key, Regs] = {}
    for m in _ENTRY.finditer(line):
        f, i, flags, *regs = m.groups()
        fl = 0
        for word in flags.split("|"):
            fl |= FLAG_NAMES[word] if word in FLAG_NAMES else int(word, 0)
        vals = [int(x, 0) for x in regs]
        out[(int(f, 0), int(i, 0))] = (fl, vals[0], vals[1], vals[2], vals[3])
    assert len(out) == nent, f"parsed {len(out)} of {nent} entries (strace abbreviated?)"
    return out


def test_parser_reads_strace_61_output() -> None:
    text = (
        "350 ioctl(9, KVM_SET_CPUID2, {nent=2, entries=[{function=0x40000000, index=0, "
        "flags=0, eax=0x40000001, ebx=0x4b4d564b, ecx=0x564b4d56, edx=0x4d}, {function=0x2, "
        "index=0, flags=KVM_CPUID_FLAG_STATEFUL_FUNC|KVM_CPUID_FLAG_STATE_READ_NEXT, eax=0, "
        "ebx=0, ecx=0, edx=0}]}) = 0"
    )
    got = parse_set_cpuid2(text)
    assert got == {(0x40000000, 0): (0, 0x40000001, 0x4B4D564B, 0x564B4D56, 0x4D),
                   (2, 0): (6, 0, 0, 0, 0)}  # fmt: skip


# -- the rules (named as in qemu_policy.md) --------------------------------------------------


@dataclass(frozen=True)
class Diff:
    key: Key
    reg: str  # "flags" or a register
    qemu: int
    kvmprobe: int

    @property
    def bits(self) -> int:
        return self.qemu ^ self.kvmprobe


Rule = Callable[[Diff, GuestCpu], int]  # -> the differing bits the rule explains


def _all(d: Diff, g: GuestCpu) -> int:
    return d.bits


def _leaves(keys: set[int], regs: tuple[str, ...] = REGS, mask: int = 0xFFFF_FFFF) -> Rule:
    def rule(d: Diff, g: GuestCpu) -> int:
        return d.bits & mask if d.key[0] in keys and d.reg in regs else 0

    return rule


def _bit(leaf: int, sub: int, reg: str, bit: int, when: Callable[[GuestCpu], bool]) -> Rule:
    def rule(d: Diff, g: GuestCpu) -> int:
        if d.key == (leaf, sub) and d.reg == reg and when(g):
            return d.bits & (1 << bit)
        return 0

    return rule


def _no_qemu_name(d: Diff, g: GuestCpu) -> int:
    """Bits kvmprobe sets that QEMU 7.2's host model cannot carry: no property name in 7.2
    (x86_cpu_get_migratable_flags() keeps named bits only), or no feature word at all."""
    if d.reg == "flags":
        return 0
    table = cp.by_loc()
    out = 0
    for bit in range(32):
        if (d.bits & d.kvmprobe) >> bit & 1:
            f = table.get((d.key[0], d.key[1], d.reg, bit))
            if f is None or not f.qemu_name or f.qemu_name not in qm.FEATURE_NAMES:
                out |= 1 << bit
    return out


def _quirk_set(d: Diff, g: GuestCpu) -> int:
    """Bits kvmprobe's export sets by a quirk although KVM does not offer them; QEMU 7.2's host
    model starts from KVM's offer."""
    out = 0
    for c in g.changes:
        if c.action == "set" and c.loc[:3] == (*d.key, d.reg) and not d.qemu >> c.loc[3] & 1:
            out |= 1 << c.loc[3]
    return out & d.bits


def _xsave_absent(g: GuestCpu) -> bool:
    return not g.has(cp.feature_loc("X86_FEATURE_XSAVE"))


def _xsave_leaf(d: Diff, g: GuestCpu) -> int:
    if d.key[0] != 0xD:
        return 0
    if _xsave_absent(g):
        return d.bits
    return d.bits if d.key in {(0xD, 0), (0xD, 1)} and d.reg == "ebx" else 0


def _amd_alias(d: Diff, g: GuestCpu) -> int:
    return d.bits & QEMU_AMD_ALIASES if d.key == (0x80000001, 0) and d.reg == "edx" else 0


def _userspace(g: GuestCpu) -> bool:
    return g.irqchip == Irqchip.USERSPACE


def _async_pf_userspace(d: Diff, g: GuestCpu) -> int:
    """ASYNC_PF, ASYNC_PF_VMEXIT and ASYNC_PF_INT (0x40000001 EAX bits 4, 10, 14)."""
    if not _userspace(g) or d.key != (0x40000001, 0) or d.reg != "eax":
        return 0
    return d.bits & (1 << 4 | 1 << 10 | 1 << 14)


RULES: dict[str, Rule] = {
    "topology": _leaves({0xB, 0x1F, 0x8000001E}),
    "topology-leaf1": _leaves({1}, ("ebx",), 0xFFFF_0000),
    "topology-80000008": _leaves({0x80000008}, ("ecx",), 0x0003_F0FF),
    "cache-descriptors": _leaves({2, 4, 0x80000005, 0x80000006, 0x8000001D}, (*REGS, "flags")),
    "brand-string": _leaves({0x80000002, 0x80000003, 0x80000004}),
    "amd-brand-id": _leaves({0x80000001}, ("ebx",)),
    "mwait-leaf": _leaves({5}),
    "leaf7-subleaf-count": _leaves({7}, ("eax",)),
    "kvm-signature-leaf": _leaves({0x40000000}, ("eax",)),
    "xsave-leaf": _xsave_leaf,
    "no-qemu-name": _no_qemu_name,
    "quirk-set": _quirk_set,
    "invtsc-not-migratable": _bit(0x80000007, 0, "edx", 8, lambda g: True),
    "topoext-not-autoenabled": _bit(0x80000001, 0, "ecx", 22, lambda g: True),
    "msi-ext-dest-id-split": _bit(0x40000001, 0, "eax", 15, lambda g: g.irqchip == "split"),
    "tsc-deadline-userspace": _bit(1, 0, "ecx", 24, _userspace),
    "async-pf-userspace": _async_pf_userspace,
    "amd-aliases": _amd_alias,
}


def test_every_rule_is_documented() -> None:
    text = POLICY.read_text()
    section = text.split("## Rules for the KVM_SET_CPUID2 comparison", 1)
    assert len(section) == 2, "qemu_policy.md lacks the rules section"
    for name in RULES:
        assert f"**`{name}`**" in section[1], f"rule {name} is not documented"


def compare(qemu: dict[Key, Regs], g: GuestCpu) -> tuple[list[str], dict[str, int]]:
    """(unexplained differences, bits explained per rule). An entry one side lacks counts as
    all zero (rule ``absent-is-zero``); flags are compared where both sides have the entry."""
    mine: dict[Key, Regs] = {}
    for e in g.entries:
        mine.setdefault((e.function, e.index), (e.flags, e.eax, e.ebx, e.ecx, e.edx))
    zero: Regs = (0, 0, 0, 0, 0)
    unexplained: list[str] = []
    used: dict[str, int] = {}
    for key in sorted(set(qemu) | set(mine)):
        q, k = qemu.get(key, zero), mine.get(key, zero)
        both = key in qemu and key in mine
        for i, reg in enumerate(("flags", *REGS)):
            if reg == "flags" and not both:
                continue
            d = Diff(key, reg, q[i], k[i])
            left = d.bits
            for name, rule in RULES.items():
                took = rule(d, g) & left
                if took:
                    used[name] = used.get(name, 0) + bin(took).count("1")
                    left &= ~took
            if left:
                unexplained.append(
                    f"{cp.fmt_loc(key[0], key[1], reg, 0).rsplit('[', 1)[0]}: QEMU {q[i]:#x}, "
                    f"kvmprobe {k[i]:#x}, unexplained bits {left:#x}"
                )
    return unexplained, used


def _strace_or_skip() -> str:
    strace = shutil.which("strace")
    if strace is None:
        if os.environ.get("KVMPROBE_REQUIRE_STRACE") == "1":
            pytest.fail("KVMPROBE_REQUIRE_STRACE=1 but strace is not installed")
        pytest.skip("the KVM_SET_CPUID2 comparison needs strace")
    return strace


@pytest.mark.parametrize("irqchip", ["kernel", "split", "userspace"])
def test_export_cpuid2_equals_qemus_set_cpuid2(irqchip: str, tmp_path: Path) -> None:
    qemu = _qemu_or_skip()
    _installed_is_the_table_version(qemu)
    strace = _strace_or_skip()
    from support.qemu_peer import IRQCHIP_MODES

    from kvmprobe.kvm.probe import probe

    g = guest_cpu_from_analysis(analyse(probe("/dev/kvm"), Options(irqchip=Irqchip(irqchip))))
    cpu = "host,-arch-capabilities" if 0x10A in g.refused_msrs else "host"
    log = tmp_path / "strace.txt"
    argv = [strace, "-f", "-v", "-s", "65536", "-e", "trace=ioctl", "-o", str(log), qemu,
            "-accel", f"kvm,kernel-irqchip={IRQCHIP_MODES[irqchip]}", "-machine", "pc",
            "-cpu", cpu, "-S", "-nodefaults", "-display", "none", "-qmp", "stdio"]  # fmt: skip
    # QEMU may stop after KVM_SET_CPUID2 (at vCPU reset, on an MSR KVM refuses): the table
    # is what matters here, so the exit status is not
    subprocess.run(argv, input='{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n',
                   capture_output=True, text=True, timeout=120)  # fmt: skip
    qemu_table = parse_set_cpuid2(log.read_text())
    # the CLI's export is the same table
    r = CliRunner().invoke(main, ["export", "cpuid2", "--irqchip", irqchip])
    assert r.exit_code == 0, r.stderr
    import json

    doc = json.loads(r.stdout)
    assert [(e["function"], e["index"], e["eax"]) for e in doc["entries"]] == [
        (e.function, e.index, e.eax) for e in g.entries
    ]
    unexplained, used = compare(qemu_table, g)
    assert not unexplained, "\n".join(unexplained)
    # the rules that explain something here are few and expected
    assert "topology" in used and "cache-descriptors" in used


def test_an_unexplained_difference_fails() -> None:
    from kvmprobe.snapshot import CpuidEntry

    g = GuestCpu("AuthenticAMD", None, frozenset(), (CpuidEntry(1, 0, 0, 0, 0, 1 << 9, 0),))
    bad, _ = compare({(1, 0): (0, 0, 0, 0, 0)}, g)  # SSSE3 differs: no rule explains it
    assert bad and "unexplained bits 0x200" in bad[0]
    ok, _ = compare({(0xB, 0): (1, 0, 1, 0x100, 0), (1, 0): (0, 0, 0, 1 << 9, 0)}, g)
    assert ok == []
