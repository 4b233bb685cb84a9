"""The documented KVM CPUID quirks as data records, and the engine that applies them.

Each record names the bits it touches, a condition evaluated on the snapshot and the VMM
set-up (probing behaviour, e.g. "is TSC_DEADLINE already in KVM_GET_SUPPORTED_CPUID", never
comparing kernel versions), its effect, a one-line reason in our words, and a citation in a
fixed form. Records that cannot change a supported-CPUID analysis say so (effect
``not-applicable``) and why. The catalogue they cover is research/quirks.md section 1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from kvmprobe.analysis.cpuid import (
    CpuidView,
    Loc,
    family_model_stepping,
    fmt_loc,
    vendor_kind,
    xcr0_mask,
)
from kvmprobe.snapshot import Snapshot

IRQCHIP_MODES = ("kernel", "split", "userspace")
EXIT_NAMES = {"mwait": 0, "hlt": 1, "pause": 2, "cstate": 3}  # KVM_X86_DISABLE_EXITS_* bits

# Effects, strongest last
REMOVE = "remove"
ADD = "add"
OPT_IN = "opt-in"
RUNTIME = "runtime"
EMULATED = "emulated"
NOTE = "note"
NOT_APPLICABLE = "not-applicable"

# Citations (fixed forms)
API_PROBLEMS = 'api.rst "Known KVM API problems"'
API_4_46 = "api.rst 4.46 KVM_GET_SUPPORTED_CPUID"
API_4_88 = "api.rst 4.88 KVM_GET_EMULATED_CPUID"
API_7_13 = "api.rst 7.13 KVM_CAP_X86_DISABLE_EXITS"
API_7_31 = "api.rst 7.31 KVM_CAP_DISABLE_QUIRKS2"
API_EXIT_HC = "api.rst 8.34 KVM_CAP_EXIT_HYPERCALL"
CPUID_RST = "Documentation/virt/kvm/x86/cpuid.rst"
ERRATA_RST = 'Documentation/virt/kvm/x86/errata.rst "KVM_GET_SUPPORTED_CPUID issues"'
QEMU_KVM = "QEMU target/i386/kvm/kvm.c kvm_arch_get_supported_cpuid()"
QEMU_KVM_CPU = "QEMU target/i386/kvm/kvm-cpu.c"
QEMU_TSX = "QEMU target/i386/kvm/kvm.c host_tsx_broken()"
FC_NORMALIZE = "Firecracker src/vmm/src/cpu_config/x86_64/cpuid/normalize.rs"
FC_INTEL = "Firecracker src/vmm/src/cpu_config/x86_64/cpuid/intel/normalize.rs"
FC_XSTATE = "Firecracker src/vmm/src/arch/x86_64/xstate.rs"
CH_ARCH = "cloud-hypervisor arch/src/x86_64/mod.rs"
LINUX_ASYNC_PF = (
    "Linux arch/x86/kvm/x86.c kvm_pv_enable_async_pf(), kvm_pv_enable_async_pf_int() "
    "(both refuse to enable without an in-kernel LAPIC)"
)
COMMIT_TSC = (
    'Linux commit 9be4ec35d668 ("KVM: x86: Advertise TSC_DEADLINE_TIMER in '
    'KVM_GET_SUPPORTED_CPUID") (v6.14)'
)
COMMIT_HYPERVISOR = (
    'Linux commit 9aa470f5ddb2 ("KVM: x86: Advertise HYPERVISOR in '
    'KVM_GET_SUPPORTED_CPUID") (v6.14)'
)
COMMIT_TOPOLOGY = (
    'Linux commit 45e966fcca03 ("KVM: x86: Do not return host topology information from '
    'KVM_GET_SUPPORTED_CPUID") (v6.2)'
)
COMMIT_ARCH_CAP = (
    'Linux commit 0cf9135b773b ("KVM: x86: Emulate MSR_IA32_ARCH_CAPABILITIES on AMD hosts") (v5.1)'
)

KVM_CAP_TSC_DEADLINE_TIMER = 72
KVM_CAP_X86_DISABLE_EXITS = 143
KVM_CAP_EXIT_HYPERCALL = 201
KVM_CAP_DISABLE_QUIRKS2 = 213
KVM_CAP_PMU_CAPABILITY = 212
KVM_HC_MAP_GPA_RANGE = 12
KVM_X86_QUIRK_MWAIT_NEVER_UD_FAULTS = 6
MSR_IA32_ARCH_CAPABILITIES = 0x10A
XFEATURE_XTILECFG = 17
XFEATURE_XTILEDATA = 18

# Locations used by the records (facts: arch/x86/include/asm/cpufeatures.h, kvm_para.h)
X2APIC: Loc = (0x1, 0, "ecx", 21)
TSC_DEADLINE: Loc = (0x1, 0, "ecx", 24)
HYPERVISOR: Loc = (0x1, 0, "ecx", 31)
MONITOR: Loc = (0x1, 0, "ecx", 3)
VMX: Loc = (0x1, 0, "ecx", 5)
PDCM: Loc = (0x1, 0, "ecx", 15)
MOVBE: Loc = (0x1, 0, "ecx", 22)
OSXSAVE: Loc = (0x1, 0, "ecx", 27)
APIC: Loc = (0x1, 0, "edx", 9)
MCE: Loc = (0x1, 0, "edx", 7)
MTRR: Loc = (0x1, 0, "edx", 12)
MCA: Loc = (0x1, 0, "edx", 14)
PAT: Loc = (0x1, 0, "edx", 16)
HTT: Loc = (0x1, 0, "edx", 28)
ARAT: Loc = (0x6, 0, "eax", 2)
HLE: Loc = (0x7, 0, "ebx", 4)
FDP_EXCPTN_ONLY: Loc = (0x7, 0, "ebx", 6)
ERMS: Loc = (0x7, 0, "ebx", 9)
RTM: Loc = (0x7, 0, "ebx", 11)
ZERO_FCS_FDS: Loc = (0x7, 0, "ebx", 13)
OSPKE: Loc = (0x7, 0, "ecx", 4)
WAITPKG: Loc = (0x7, 0, "ecx", 5)
RDPID: Loc = (0x7, 0, "ecx", 22)
FSRM: Loc = (0x7, 0, "edx", 4)
AMX_BF16: Loc = (0x7, 0, "edx", 22)
AMX_TILE: Loc = (0x7, 0, "edx", 24)
AMX_INT8: Loc = (0x7, 0, "edx", 25)
ARCH_CAPABILITIES: Loc = (0x7, 0, "edx", 29)
FZRM: Loc = (0x7, 1, "eax", 10)
FSRS: Loc = (0x7, 1, "eax", 11)
FSRC: Loc = (0x7, 1, "eax", 12)
AVX10: Loc = (0x7, 1, "edx", 19)
MCDT_NO: Loc = (0x7, 2, "edx", 5)
SVM: Loc = (0x80000001, 0, "ecx", 2)
TOPOEXT: Loc = (0x80000001, 0, "ecx", 22)
OVERFLOW_RECOV: Loc = (0x80000007, 0, "ebx", 0)
SUCCOR: Loc = (0x80000007, 0, "ebx", 1)
KVM_PV_UNHALT: Loc = (0x40000001, 0, "eax", 7)
KVM_ASYNC_PF: Loc = (0x40000001, 0, "eax", 4)
KVM_ASYNC_PF_VMEXIT: Loc = (0x40000001, 0, "eax", 10)
KVM_ASYNC_PF_INT: Loc = (0x40000001, 0, "eax", 14)
KVM_STEAL_TIME: Loc = (0x40000001, 0, "eax", 5)
KVM_MSI_EXT_DEST_ID: Loc = (0x40000001, 0, "eax", 15)
KVM_HC_MAP_GPA_RANGE_BIT: Loc = (0x40000001, 0, "eax", 16)
KVM_MIGRATION_CONTROL: Loc = (0x40000001, 0, "eax", 17)
KVM_HINTS_REALTIME: Loc = (0x40000001, 0, "edx", 0)
AMD_ALIAS_MASK = 0x0183F3FF  # 0x80000001.EDX bits that repeat 1.EDX on AMD


@dataclass(frozen=True)
class Options:
    """The VMM set-up being analysed."""

    irqchip: str = "kernel"
    disable_exits: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.irqchip not in IRQCHIP_MODES:
            raise ValueError(f"irqchip must be one of {IRQCHIP_MODES}")
        unknown = set(self.disable_exits) - set(EXIT_NAMES)
        if unknown:
            raise ValueError(f"unknown exits: {sorted(unknown)}")


class Ctx:
    """What a quirk condition may look at: the snapshot, the options, and views of it."""

    def __init__(self, snap: Snapshot, opts: Options) -> None:
        self.snap = snap
        self.opts = opts
        self.kgsc = CpuidView(snap.supported_cpuid)
        self.kgec = CpuidView(snap.emulated_cpuid)
        self.host = CpuidView(snap.host.cpuid) if snap.host.cpuid else None

    @cached_property
    def vendor(self) -> str:
        v = vendor_kind(self.kgsc)
        if v == "other" and self.host is not None:
            v = vendor_kind(self.host)
        return v

    @property
    def lapic_in_kernel(self) -> bool:
        return self.opts.irqchip in ("kernel", "split")

    def kvm(self, loc: Loc) -> bool:
        return self.kgsc.has_loc(loc)

    def host_has(self, loc: Loc) -> bool | None:
        return None if self.host is None else self.host.has_loc(loc)

    def cap(self, number: int) -> int:
        return self.snap.cap(number, "system") or 0

    def exit_allowed(self, name: str) -> bool:
        return bool(self.cap(KVM_CAP_X86_DISABLE_EXITS) >> EXIT_NAMES[name] & 1)

    def exit_disabled(self, name: str) -> bool:
        """The set-up asks for this exit to be disabled and KVM allows it."""
        return name in self.opts.disable_exits and self.exit_allowed(name)

    def module_param(self, param: str, modules: tuple[str, ...]) -> tuple[str, str] | None:
        for m in modules:
            info = self.snap.host.modules.get(m)
            if info and param in info.params:
                return m, info.params[param]
        return None


# A condition returns (applies, evidence): evidence is the facts it read, for --explain.
Test = Callable[[Ctx, Loc], tuple[bool, str]]


@dataclass(frozen=True)
class Quirk:
    id: str
    bits: tuple[Loc, ...]
    effect: str
    when: str  # the condition in words
    reason: str  # one line, ours: why the effect
    citation: tuple[str, ...]
    test: Test | None = None
    effective: bool | None = None  # RUNTIME/NOTE: what the guest effectively gets (None: keep)
    vendor: str = "both"
    catalogue: str = ""  # the research/quirks.md row this record covers
    targets: Callable[[Ctx], tuple[Loc, ...]] | None = field(default=None, compare=False)


def _yn(b: bool | None) -> str:
    return "unknown" if b is None else ("yes" if b else "no")


def _in_kgsc(c: Ctx, loc: Loc) -> str:
    return f"{fmt_loc(*loc)} in KVM_GET_SUPPORTED_CPUID: {_yn(c.kvm(loc))}"


def _irq(c: Ctx) -> str:
    return f"irqchip={c.opts.irqchip}"


# -- conditions --------------------------------------------------------------------------------


def t_userspace_lapic(c: Ctx, loc: Loc) -> tuple[bool, str]:
    return (
        c.opts.irqchip == "userspace" and c.kvm(loc),
        f"{_irq(c)} (LAPIC in kernel: {_yn(c.lapic_in_kernel)}); {_in_kgsc(c, loc)}",
    )


def t_tsc_legacy_add(c: Ctx, loc: Loc) -> tuple[bool, str]:
    cap = c.cap(KVM_CAP_TSC_DEADLINE_TIMER)
    ok = not c.kvm(loc) and cap > 0 and c.lapic_in_kernel
    return ok, f"{_in_kgsc(c, loc)}; KVM_CAP_TSC_DEADLINE_TIMER={cap}; {_irq(c)}"


def t_tsc_legacy_missing(c: Ctx, loc: Loc) -> tuple[bool, str]:
    cap = c.cap(KVM_CAP_TSC_DEADLINE_TIMER)
    return (not c.kvm(loc) and cap == 0), f"{_in_kgsc(c, loc)}; KVM_CAP_TSC_DEADLINE_TIMER={cap}"


def t_in_kgsc(c: Ctx, loc: Loc) -> tuple[bool, str]:
    return c.kvm(loc), _in_kgsc(c, loc)


def t_not_in_kgsc(c: Ctx, loc: Loc) -> tuple[bool, str]:
    return not c.kvm(loc), _in_kgsc(c, loc)


def t_hlt_exits_disabled(c: Ctx, loc: Loc) -> tuple[bool, str]:
    asked = "hlt" in c.opts.disable_exits
    allowed = c.exit_allowed("hlt")
    return (
        asked and allowed and c.kvm(loc),
        f"HLT exits disabled by the set-up: {_yn(asked)}; KVM_CAP_X86_DISABLE_EXITS="
        f"{c.cap(KVM_CAP_X86_DISABLE_EXITS):#x} (HLT allowed: {_yn(allowed)})",
    )


def t_split(c: Ctx, loc: Loc) -> tuple[bool, str]:
    return c.opts.irqchip == "split", _irq(c)


def t_not_split(c: Ctx, loc: Loc) -> tuple[bool, str]:
    return c.opts.irqchip != "split", _irq(c)


def t_always(c: Ctx, loc: Loc) -> tuple[bool, str]:
    return True, "always"


def _mwait_evidence(c: Ctx) -> str:
    return (
        f"KVM_CAP_X86_DISABLE_EXITS={c.cap(KVM_CAP_X86_DISABLE_EXITS):#x} "
        f"(MWAIT allowed: {_yn(c.exit_allowed('mwait'))}); "
        f"set-up disables MWAIT exits: {_yn('mwait' in c.opts.disable_exits)}"
    )


def t_mwait_given(c: Ctx, loc: Loc) -> tuple[bool, str]:
    return c.exit_disabled("mwait") and not c.kvm(loc), _mwait_evidence(c)


def t_mwait_available(c: Ctx, loc: Loc) -> tuple[bool, str]:
    ok = c.exit_allowed("mwait") and "mwait" not in c.opts.disable_exits and not c.kvm(loc)
    return ok, _mwait_evidence(c)


def t_mwait_unavailable(c: Ctx, loc: Loc) -> tuple[bool, str]:
    p = c.module_param("mitigate_smt_rsb", ("kvm",))
    extra = f"; kvm.mitigate_smt_rsb={p[1]}" if p else ""
    return not c.exit_allowed("mwait") and not c.kvm(loc), _mwait_evidence(c) + extra


def t_mwait_nop(c: Ctx, loc: Loc) -> tuple[bool, str]:
    q2 = c.cap(KVM_CAP_DISABLE_QUIRKS2)
    has = bool(q2 >> KVM_X86_QUIRK_MWAIT_NEVER_UD_FAULTS & 1)
    return (
        not c.exit_disabled("mwait"),
        f"KVM_CAP_DISABLE_QUIRKS2={q2:#x} (MWAIT_NEVER_UD_FAULTS can be disabled: {_yn(has)})",
    )


def t_host_has_kvm_lacks(c: Ctx, loc: Loc) -> tuple[bool, str]:
    h = c.host_has(loc)
    return (
        bool(h) and not c.kvm(loc),
        f"{_in_kgsc(c, loc)}; host CPUID has it: {_yn(h)}",
    )


def t_tsx_broken(c: Ctx, loc: Loc) -> tuple[bool, str]:
    fms = family_model_stepping(c.kgsc)
    if fms is None or c.vendor != "intel":
        return False, f"vendor={c.vendor}; family/model from KGSC leaf 1: {fms}"
    fam, model, step = fms
    broken = fam == 6 and (model in (60, 69, 70) or (model == 63 and step < 4))
    return broken and c.kvm(loc), f"Intel family {fam} model {model} stepping {step}"


def t_arch_cap_missing_msr(c: Ctx, loc: Loc) -> tuple[bool, str]:
    lists = [c.snap.msr_index_list, c.snap.msr_feature_index_list]
    known = [x for x in lists if x is not None]
    in_lists = any(MSR_IA32_ARCH_CAPABILITIES in x for x in known)
    return (
        c.kvm(loc) and bool(known) and not in_lists,
        f"{_in_kgsc(c, loc)}; MSR 0x10a in KVM's MSR lists: {_yn(in_lists if known else None)}",
    )


def t_amd_host(c: Ctx, loc: Loc) -> tuple[bool, str]:
    return c.vendor == "amd" and not c.kvm(loc), f"vendor={c.vendor}; {_in_kgsc(c, loc)}"


def t_nested_offered(c: Ctx, loc: Loc) -> tuple[bool, str]:
    p = c.module_param("nested", ("kvm_intel", "kvm_amd", "kvm_pvm"))
    ps = f"{p[0]}.nested={p[1]}" if p else "no 'nested' module parameter seen"
    return c.kvm(loc), f"{_in_kgsc(c, loc)}; {ps}"


def t_nested_missing(c: Ctx, loc: Loc) -> tuple[bool, str]:
    p = c.module_param("nested", ("kvm_intel", "kvm_amd", "kvm_pvm"))
    ps = f"{p[0]}.nested={p[1]}" if p else "no 'nested' module parameter seen"
    vendor_bit = (loc == VMX and c.vendor == "intel") or (loc == SVM and c.vendor == "amd")
    return (not c.kvm(loc) and vendor_bit), f"{_in_kgsc(c, loc)}; vendor={c.vendor}; {ps}"


def t_amd_alias(c: Ctx, loc: Loc) -> tuple[bool, str]:
    base = (0x1, 0, "edx", loc[3])
    ok = c.vendor == "intel" and not c.kvm(loc) and c.kvm(base)
    return ok, f"vendor={c.vendor}; {_in_kgsc(c, loc)}; {fmt_loc(*base)}: {_yn(c.kvm(base))}"


def _xcomp(c: Ctx) -> tuple[int | None, int | None]:
    supp = c.snap.attr(0, 0)  # KVM_X86_GRP_SYSTEM / KVM_X86_XCOMP_GUEST_SUPP
    return supp, xcr0_mask(c.kgsc)


def t_amx_not_permitted(c: Ctx, loc: Loc) -> tuple[bool, str]:
    supp, kg = _xcomp(c)
    amx = (1 << XFEATURE_XTILECFG) | (1 << XFEATURE_XTILEDATA)
    ok = supp is not None and bool(supp & amx) and not c.kvm(loc)
    perm = c.snap.xcomp.get("guest_perm_after")
    return ok, (
        f"KVM_X86_XCOMP_GUEST_SUPP={'unknown' if supp is None else hex(supp)}; "
        f"0xD.0 XCR0 mask in KGSC={'unknown' if kg is None else hex(kg)}; "
        f"guest permission of the probing process={'unknown' if perm is None else hex(perm)}"
    )


def t_amx_permission_needed(c: Ctx, loc: Loc) -> tuple[bool, str]:
    supp, _ = _xcomp(c)
    return c.kvm(loc), (
        f"{_in_kgsc(c, loc)}; KVM_X86_XCOMP_GUEST_SUPP={'unknown' if supp is None else hex(supp)}"
    )


def t_xtilecfg_alone(c: Ctx, loc: Loc) -> tuple[bool, str]:
    cfg = c.kgsc.bit(0xD, 0, "eax", XFEATURE_XTILECFG)
    data = c.kgsc.bit(0xD, 0, "eax", XFEATURE_XTILEDATA)
    return cfg and not data, f"0xD.0.eax XTILECFG={_yn(cfg)} XTILEDATA={_yn(data)}"


def t_exit_hypercall(c: Ctx, loc: Loc) -> tuple[bool, str]:
    v = c.cap(KVM_CAP_EXIT_HYPERCALL)
    ok = bool(v >> KVM_HC_MAP_GPA_RANGE & 1) and not c.kvm(loc)
    return ok, f"KVM_CAP_EXIT_HYPERCALL={v:#x} (KVM_HC_MAP_GPA_RANGE forwardable: {_yn(ok)})"


def t_pmu_off(c: Ctx, loc: Loc) -> tuple[bool, str]:
    version = (c.kgsc.reg(0xA, 0, "eax") or 0) & 0xFF
    p = c.module_param("enable_pmu", ("kvm",))
    ps = f"; kvm.enable_pmu={p[1]}" if p else ""
    return c.vendor == "intel" and version == 0 and c.kvm(loc), (
        f"vendor={c.vendor}; KGSC 0xA.0.eax version={version}{ps}"
    )


def t_emulated_only(c: Ctx, loc: Loc) -> tuple[bool, str]:
    e = c.kgec.has_loc(loc)
    return e and not c.kvm(loc), (
        f"KVM_GET_EMULATED_CPUID has it: {_yn(e) if c.kgec else 'not probed'}; {_in_kgsc(c, loc)}"
    )


def emulated_targets(c: Ctx) -> tuple[Loc, ...]:
    out: list[Loc] = []
    for e in c.kgec.entries:
        if e.function in (0x0, 0x80000000):  # max-leaf words, not feature bits
            continue
        for reg in ("eax", "ebx", "ecx", "edx"):
            v = e.reg(reg)
            out += [(e.function, e.index, reg, b) for b in range(32) if v >> b & 1]
    return tuple(out)


def t_steal_time_missing(c: Ctx, loc: Loc) -> tuple[bool, str]:
    return not c.kvm(loc), f"{_in_kgsc(c, loc)} (KVM reports it only when the host keeps"\
        " scheduler statistics)"  # fmt: skip


# -- the records -------------------------------------------------------------------------------

QUIRKS: tuple[Quirk, ...] = (
    Quirk(
        "x2apic-needs-lapic",
        (X2APIC,),
        REMOVE,
        "the LAPIC is emulated in userspace",
        "x2APIC needs KVM's in-kernel LAPIC (full or split irqchip): KVM cannot hand x2APIC "
        "MSR accesses to a userspace LAPIC",
        (API_PROBLEMS, API_4_46, QEMU_KVM),
        t_userspace_lapic,
        catalogue="x2apic-needs-lapic",
    ),
    Quirk(
        "x2apic-emulated",
        (X2APIC,),
        NOTE,
        "KVM reports x2APIC and the host CPU lacks it",
        "KVM reports x2APIC whatever the host has, because its in-kernel LAPIC emulates it",
        (API_4_46,),
        lambda c, loc: (
            c.kvm(loc) and c.host_has(loc) is False,
            f"{_in_kgsc(c, loc)}; host CPUID has it: {_yn(c.host_has(loc))}",
        ),
        catalogue="x2apic-needs-lapic",
    ),
    Quirk(
        "pv-unhalt-needs-lapic",
        (KVM_PV_UNHALT,),
        REMOVE,
        "the LAPIC is emulated in userspace",
        "PV spinlock kicks (PV_UNHALT) are delivered by KVM's in-kernel LAPIC, which a "
        "userspace irqchip does not have",
        (API_PROBLEMS, QEMU_KVM),
        t_userspace_lapic,
        catalogue="pv-unhalt-needs-lapic",
    ),
    Quirk(
        "async-pf-needs-lapic",
        (KVM_ASYNC_PF, KVM_ASYNC_PF_VMEXIT, KVM_ASYNC_PF_INT),
        REMOVE,
        "the LAPIC is emulated in userspace",
        "KVM refuses to enable asynchronous page faults (MSR_KVM_ASYNC_PF_EN, _INT) without "
        "its in-kernel LAPIC; a guest that tries fails (QEMU 7.2 still offers it and its "
        "userspace-irqchip VMs abort writing MSR 0x4b564d06)",
        (LINUX_ASYNC_PF,),
        t_userspace_lapic,
        catalogue="(new) async-pf-needs-lapic",
    ),
    Quirk(
        "pv-unhalt-vs-hlt-exits",
        (KVM_PV_UNHALT,),
        REMOVE,
        "the set-up disables HLT exits (--disable-exits hlt) and KVM allows it",
        "with HLT exits disabled a halted vCPU is never woken by a PV kick, so PV_UNHALT must "
        "not be offered (KVM also clears it when such CPUID is set, since v6.14)",
        (API_7_13,),
        t_hlt_exits_disabled,
        catalogue="pv-unhalt-vs-hlt-exits",
    ),
    Quirk(
        "tsc-deadline-legacy-cap",
        (TSC_DEADLINE,),
        ADD,
        "not in KVM_GET_SUPPORTED_CPUID, KVM_CAP_TSC_DEADLINE_TIMER present, LAPIC in kernel",
        "kernels before 6.14 never put TSC_DEADLINE in KVM_GET_SUPPORTED_CPUID; the "
        "capability says the in-kernel LAPIC timer can emulate it",
        (API_PROBLEMS, API_4_46, COMMIT_TSC, QEMU_KVM),
        t_tsc_legacy_add,
        catalogue="tsc-deadline",
    ),
    Quirk(
        "tsc-deadline-legacy-no-cap",
        (TSC_DEADLINE,),
        NOTE,
        "not in KVM_GET_SUPPORTED_CPUID and KVM_CAP_TSC_DEADLINE_TIMER absent",
        "this KVM offers no TSC deadline timer emulation",
        (API_PROBLEMS,),
        t_tsc_legacy_missing,
        catalogue="tsc-deadline",
    ),
    Quirk(
        "tsc-deadline-reported",
        (TSC_DEADLINE,),
        NOTE,
        "TSC_DEADLINE is in KVM_GET_SUPPORTED_CPUID",
        "reported by KVM_GET_SUPPORTED_CPUID since Linux 6.14, emulated by the in-kernel LAPIC "
        "timer whatever the host has; older kernels signal it only with "
        "KVM_CAP_TSC_DEADLINE_TIMER",
        (COMMIT_TSC, API_PROBLEMS),
        t_in_kgsc,
        catalogue="tsc-deadline",
    ),
    Quirk(
        "tsc-deadline-needs-lapic",
        (TSC_DEADLINE,),
        REMOVE,
        "the LAPIC is emulated in userspace",
        "the TSC deadline timer is a mode of the LAPIC timer that KVM emulates only in its "
        "in-kernel LAPIC; a userspace LAPIC would have to emulate it itself",
        (API_PROBLEMS, QEMU_KVM),
        lambda c, loc: (
            c.opts.irqchip == "userspace" and (c.kvm(loc) or c.cap(KVM_CAP_TSC_DEADLINE_TIMER) > 0),
            f"{_irq(c)}; {_in_kgsc(c, loc)}; "
            f"KVM_CAP_TSC_DEADLINE_TIMER={c.cap(KVM_CAP_TSC_DEADLINE_TIMER)}",
        ),
        catalogue="tsc-deadline",
    ),
    Quirk(
        "hypervisor-bit-legacy",
        (HYPERVISOR,),
        ADD,
        "not in KVM_GET_SUPPORTED_CPUID",
        "kernels before 6.14 leave HYPERVISOR out; every VMM sets it, and it is always safe",
        (COMMIT_HYPERVISOR, QEMU_KVM, FC_NORMALIZE, CH_ARCH),
        t_not_in_kgsc,
        catalogue="hypervisor-bit",
    ),
    Quirk(
        "msi-ext-dest-id-split",
        (KVM_MSI_EXT_DEST_ID,),
        OPT_IN,
        "split irqchip",
        "the VMM's own IOAPIC and MSI routing can take 15-bit destination IDs; the VMM "
        "decides, KVM never reports it (QEMU: kvm-msi-ext-dest-id)",
        (CPUID_RST, QEMU_KVM, CH_ARCH),
        t_split,
        catalogue="msi-ext-dest-id",
    ),
    Quirk(
        "msi-ext-dest-id-not-split",
        (KVM_MSI_EXT_DEST_ID,),
        NOTE,
        "irqchip is not split",
        "only meaningful when the VMM emulates the IOAPIC (split irqchip); KVM's in-kernel "
        "IOAPIC does not support it",
        (QEMU_KVM,),
        t_not_split,
        catalogue="msi-ext-dest-id",
    ),
    Quirk(
        "kvm-hints-realtime",
        (KVM_HINTS_REALTIME,),
        OPT_IN,
        "always",
        "a promise the VMM makes (vCPUs pinned to dedicated physical CPUs, never preempted); "
        "KVM leaves 0x40000001.EDX empty (QEMU: kvm-hint-dedicated)",
        (CPUID_RST, QEMU_KVM),
        t_always,
        catalogue="kvm-hints-realtime",
    ),
    Quirk(
        "kvm-hc-map-gpa-range",
        (KVM_HC_MAP_GPA_RANGE_BIT,),
        OPT_IN,
        "KVM_CAP_EXIT_HYPERCALL can forward KVM_HC_MAP_GPA_RANGE",
        "the VMM must enable KVM_CAP_EXIT_HYPERCALL and handle the hypercall itself; KVM "
        "never reports the bit",
        (API_EXIT_HC, CPUID_RST),
        t_exit_hypercall,
        catalogue="kvm-pv-leaf-contents",
    ),
    Quirk(
        "kvm-migration-control",
        (KVM_MIGRATION_CONTROL,),
        NOTE,
        "always",
        "a VMM-provided MSR for encrypted-guest live migration; KVM never reports the bit",
        (CPUID_RST,),
        t_always,
        catalogue="kvm-pv-leaf-contents",
    ),
    Quirk(
        "kvm-steal-time-missing",
        (KVM_STEAL_TIME,),
        NOTE,
        "not in KVM_GET_SUPPORTED_CPUID",
        "KVM offers steal time only when the host kernel keeps scheduler run-delay statistics",
        (CPUID_RST,),
        t_steal_time_missing,
        catalogue="kvm-pv-leaf-contents",
    ),
    Quirk(
        "monitor-mwait-exits-disabled",
        (MONITOR,),
        ADD,
        "the set-up disables MWAIT exits (--disable-exits mwait) and KVM allows it",
        "with MWAIT exits disabled the guest runs MONITOR/MWAIT natively; KVM never puts the "
        "bit in KVM_GET_SUPPORTED_CPUID, the VMM must set it",
        (API_4_46, API_7_13, QEMU_KVM_CPU),
        t_mwait_given,
        catalogue="monitor-mwait",
    ),
    Quirk(
        "monitor-mwait-available",
        (MONITOR,),
        OPT_IN,
        "KVM_CAP_X86_DISABLE_EXITS offers MWAIT and the set-up does not use it",
        "available if the VMM disables MWAIT exits on the VM before creating vCPUs (QEMU: "
        "-overcommit cpu-pm=on)",
        (API_7_13, QEMU_KVM_CPU),
        t_mwait_available,
        catalogue="monitor-mwait",
    ),
    Quirk(
        "monitor-mwait-unavailable",
        (MONITOR,),
        NOTE,
        "KVM_CAP_X86_DISABLE_EXITS does not offer MWAIT",
        "KVM will not let guests run MWAIT natively here (the host lacks usable MWAIT/ARAT, or "
        "kvm.mitigate_smt_rsb is on)",
        (API_7_13,),
        t_mwait_unavailable,
        catalogue="disable-exits-semantics",
    ),
    Quirk(
        "mwait-intercepted-nop",
        (MONITOR,),
        NOTE,
        "MWAIT exits are intercepted",
        "intercepted MONITOR/MWAIT run as NOPs even without the CPUID bit, unless the VMM "
        "disables KVM_X86_QUIRK_MWAIT_NEVER_UD_FAULTS",
        (API_7_31,),
        t_mwait_nop,
        catalogue="mwait-runtime-quirks",
    ),
    Quirk(
        "x87-inverted",
        (FDP_EXCPTN_ONLY, ZERO_FCS_FDS),
        NOTE,
        "always",
        "inverted bits: set means the legacy x87 behaviour is gone; clearing them in guest "
        "CPUID cannot bring it back, so VMMs should pass them set",
        (ERRATA_RST, FC_INTEL),
        t_always,
        vendor="intel",
        catalogue="x87-inverted",
    ),
    Quirk(
        "topoext-vmm-builds",
        (TOPOEXT,),
        OPT_IN,
        "AMD host and not in KVM_GET_SUPPORTED_CPUID",
        "safe for the VMM to set, provided it builds leaves 0x8000001D/0x8000001E itself "
        "(QEMU always sets it)",
        (QEMU_KVM, CH_ARCH),
        t_amd_host,
        vendor="amd",
        catalogue="topoext",
    ),
    Quirk(
        "arat-emulated",
        (ARAT,),
        ADD,
        "not in KVM_GET_SUPPORTED_CPUID",
        "the emulated APIC timer never stops in deep C-states, so ARAT is always true for a "
        "guest; older kernels do not report it",
        (QEMU_KVM,),
        t_not_in_kgsc,
        catalogue="arat",
    ),
    Quirk(
        "fast-string-passthrough",
        (ERMS, FSRM, FZRM, FSRS, FSRC, MCDT_NO),
        ADD,
        "the host CPU has it and KVM_GET_SUPPORTED_CPUID does not",
        "a performance hint, not a new instruction: safe to pass through from the host (older "
        "kernels filter it; FZRM/FSRS/FSRC are reported since 6.3)",
        (QEMU_KVM,),
        t_host_has_kvm_lacks,
        catalogue="fast-string-passthrough",
    ),
    Quirk(
        "tsx-broken",
        (HLE, RTM),
        REMOVE,
        "Intel Haswell with broken TSX (family 6 model 60/69/70, or 63 stepping < 4)",
        "TSX is unreliable on these parts; QEMU hides HLE/RTM from guests there",
        (QEMU_TSX,),
        t_tsx_broken,
        vendor="intel",
        catalogue="tsx-broken",
    ),
    Quirk(
        "arch-capabilities-svm",
        (ARCH_CAPABILITIES,),
        REMOVE,
        "reported in KGSC but MSR 0x10a is in neither of KVM's MSR lists",
        "Linux 4.17-4.20 reported ARCH_CAPABILITIES on AMD without emulating the MSR",
        (COMMIT_ARCH_CAP, QEMU_KVM),
        t_arch_cap_missing_msr,
        vendor="amd",
        catalogue="arch-capabilities-svm",
    ),
    Quirk(
        "overflow-recov-succor",
        (OVERFLOW_RECOV, SUCCOR),
        OPT_IN,
        "not in KVM_GET_SUPPORTED_CPUID",
        "machine-check recovery bits a VMM can offer because it injects MCEs itself (QEMU "
        "sets both); KVM zeroes the leaf",
        (QEMU_KVM,),
        t_not_in_kgsc,
        vendor="amd",
        catalogue="overflow-recov-succor",
    ),
    Quirk(
        "emulated-cpuid",
        (MOVBE, RDPID),
        EMULATED,
        "in KVM_GET_EMULATED_CPUID and not in KVM_GET_SUPPORTED_CPUID",
        "KVM can emulate the instruction by trapping it: it works, but slowly, so it is kept "
        "out of the supported list",
        (API_4_88,),
        t_emulated_only,
        catalogue="emulated-cpuid",
        targets=emulated_targets,
    ),
    Quirk(
        "nested-virt-offered",
        (VMX, SVM),
        NOTE,
        "reported in KVM_GET_SUPPORTED_CPUID",
        "offered because the vendor module's 'nested' parameter is on; exposing it commits the "
        "VMM to saving and restoring nested state",
        (API_4_46, CH_ARCH),
        t_nested_offered,
        catalogue="nested-virt-bits",
    ),
    Quirk(
        "nested-virt-missing",
        (VMX, SVM),
        NOTE,
        "the host vendor's bit is not reported",
        "guests get no nested virtualization: enable the vendor module's 'nested' parameter",
        (API_4_46,),
        t_nested_missing,
        catalogue="nested-virt-bits",
    ),
    Quirk(
        "waitpkg-opt-in",
        (WAITPKG,),
        OPT_IN,
        "reported in KVM_GET_SUPPORTED_CPUID",
        "UMWAIT/TPAUSE let the guest park the physical CPU; offer it only when vCPUs own "
        "their CPUs (QEMU adds it only with -overcommit cpu-pm=on, Firecracker never)",
        (QEMU_KVM_CPU, FC_INTEL),
        t_in_kgsc,
        vendor="intel",
        catalogue="waitpkg",
    ),
    Quirk(
        "legacy-1edx",
        (MCE, MTRR, MCA, PAT),
        ADD,
        "not in KVM_GET_SUPPORTED_CPUID",
        "kernels before 2.6.30 under-reported these; VMMs set them regardless",
        (QEMU_KVM,),
        t_not_in_kgsc,
        catalogue="legacy-1edx",
    ),
    Quirk(
        "htt-vmm-decides",
        (HTT,),
        OPT_IN,
        "always",
        "KVM never reports HTT; the VMM sets it when the guest has more than one vCPU",
        (QEMU_KVM, FC_NORMALIZE),
        t_always,
        catalogue="legacy-1edx",
    ),
    Quirk(
        "amd-aliases",
        tuple((0x80000001, 0, "edx", b) for b in range(32) if AMD_ALIAS_MASK >> b & 1),
        NOTE,
        "Intel host, bit absent here but present in 1.EDX",
        "AMD repeats these 1.EDX bits here; a VMM presenting an AMD-style CPUID on an Intel "
        "host copies them from 1.EDX",
        (QEMU_KVM,),
        t_amd_alias,
        vendor="intel",
        catalogue="amd-aliases",
    ),
    Quirk(
        "amx-needs-permission",
        (AMX_TILE, AMX_BF16, AMX_INT8),
        OPT_IN,
        "KVM_X86_XCOMP_GUEST_SUPP has AMX but KGSC of this process does not",
        "AMX state is dynamically enabled: the VMM must call arch_prctl(ARCH_REQ_XCOMP_GUEST_"
        "PERM) before creating vCPUs, or KVM hides it",
        (API_4_46, FC_XSTATE),
        t_amx_not_permitted,
        vendor="intel",
        catalogue="xsave-dynamic",
    ),
    Quirk(
        "amx-permission-requested",
        (AMX_TILE, AMX_BF16, AMX_INT8),
        NOTE,
        "reported in KVM_GET_SUPPORTED_CPUID",
        "reported because kvmprobe asked for guest AMX permission first, as a VMM must",
        (API_4_46,),
        t_amx_permission_needed,
        vendor="intel",
        catalogue="xsave-dynamic",
    ),
    Quirk(
        "xsave-runtime-osxsave",
        (OSXSAVE, OSPKE),
        RUNTIME,
        "always",
        "KVM sets it at run time from the guest's own CR4 (OSXSAVE, PKE); a VMM does not offer it",
        (API_4_46,),
        t_always,
        effective=False,
        catalogue="xsave-runtime",
    ),
    Quirk(
        "apic-runtime",
        (APIC,),
        RUNTIME,
        "always",
        "KVM clears it at run time while the guest has its APIC disabled in APIC_BASE",
        (API_4_46,),
        t_always,
        catalogue="xsave-runtime",
    ),
    Quirk(
        "pmu-off",
        (PDCM,),
        NOTE,
        "Intel host whose KGSC leaf 0xA reports no PMU",
        "no vPMU for guests (kvm.enable_pmu=N or no architectural PMU on the host): PDCM "
        "points at an MSR the guest cannot use",
        (FC_NORMALIZE,),
        t_pmu_off,
        vendor="intel",
        catalogue="pmu",
    ),
)


# Catalogue rows that concern leaves, fields, MSRs or capabilities rather than a feature bit.
@dataclass(frozen=True)
class LeafQuirk:
    id: str
    leaves: tuple[int, ...]
    effect: str  # "vmm-builds" | "note" | NOT_APPLICABLE
    reason: str
    citation: tuple[str, ...]
    test: Callable[[Ctx], tuple[bool, str]] | None = None
    catalogue: str = ""


def _topology_state(c: Ctx) -> tuple[bool, str]:
    e = c.kgsc.entry(0xB, 0)
    if e is None:
        return True, "leaf 0xB not in KGSC"
    zero = e.eax == 0 and e.ebx == 0 and e.ecx == 0
    return True, (
        "KGSC 0xB.0 EAX/EBX/ECX are zero (kernel hides host topology)"
        if zero
        else "KGSC 0xB.0 carries the host's topology (old kernel): do not pass it through"
    )


def _avx10_state(c: Ctx) -> tuple[bool, str]:
    k = (c.kgsc.reg(0x24, 0, "ebx") or 0) & 0xFF
    h = None if c.host is None else (c.host.reg(0x24, 0, "ebx") or 0) & 0xFF
    return bool(c.kvm(AVX10)), f"AVX10 version: KVM {k}, host {h if h is not None else '?'}"


def _pmu_state(c: Ctx) -> tuple[bool, str]:
    eax = c.kgsc.reg(0xA, 0, "eax") or 0
    cap = c.cap(KVM_CAP_PMU_CAPABILITY)
    return True, f"KGSC 0xA.0.eax={eax:#x} (version {eax & 0xFF}); KVM_CAP_PMU_CAPABILITY={cap}"


def _guest_phys(c: Ctx) -> tuple[bool, str]:
    eax = c.kgsc.reg(0x80000008, 0, "eax")
    if eax is None:
        return False, "leaf 0x80000008 not in KGSC"
    return True, f"PhysAddrSize={eax & 0xFF}, GuestPhysBits={(eax >> 16) & 0xFF}"


LEAF_QUIRKS: tuple[LeafQuirk, ...] = (
    LeafQuirk(
        "topology-leaves",
        (0xB, 0x1F, 0x8000001E),
        "vmm-builds",
        "KVM returns no usable topology: the VMM must fill in x2APIC IDs and core/thread "
        "counts per vCPU",
        (API_PROBLEMS, COMMIT_TOPOLOGY, FC_NORMALIZE, CH_ARCH),
        _topology_state,
        "topology-leaves",
    ),
    LeafQuirk(
        "cache-leaves",
        (0x80000005, 0x80000006),
        "note",
        "passed from the host; some VMMs copy host values when KVM returns zeros",
        (FC_NORMALIZE, CH_ARCH),
        None,
        "cache-leaves",
    ),
    LeafQuirk(
        "lapic-timer-freq",
        (0x40000010,),
        "vmm-builds",
        "the timing leaf (TSC and APIC bus kHz) is not produced by KVM; a VMM may build it "
        "(KVM's APIC bus runs at 1 GHz unless KVM_CAP_X86_APIC_BUS_CYCLES_NS changes it)",
        (CH_ARCH,),
        None,
        "lapic-timer-freq",
    ),
    LeafQuirk(
        "avx10-version",
        (0x24,),
        "note",
        "take the AVX10 version from KVM, not the host: KVM caps it at what it supports",
        (QEMU_KVM,),
        _avx10_state,
        "avx10",
    ),
    LeafQuirk(
        "pmu-leaf",
        (0xA,),
        "note",
        "synthesised from KVM's vPMU; all zero when kvm.enable_pmu is off; a VM can also turn "
        "it off with KVM_CAP_PMU_CAPABILITY",
        (FC_NORMALIZE,),
        _pmu_state,
        "pmu",
    ),
    LeafQuirk(
        "guest-phys-bits",
        (0x80000008,),
        "note",
        "EAX[23:16] is the largest guest-physical address KVM can map, which may be smaller "
        "than the physical address width in EAX[7:0]",
        (QEMU_KVM_CPU,),
        _guest_phys,
        "guest-phys-bits",
    ),
    LeafQuirk(
        "leaf-limits",
        (0x0, 0x80000000),
        "note",
        "KVM caps the maximum basic and extended leaves at what it knows",
        (API_4_46, QEMU_KVM),
        None,
        "leaf-limits",
    ),
    LeafQuirk(
        "amx-half-enabled",
        (0xD,),
        "note",
        "XTILECFG without XTILEDATA (kernels before 6.4 without permission) makes XSETBV fault; "
        "clear XTILECFG if XTILEDATA is absent",
        (FC_XSTATE,),
        lambda c: t_xtilecfg_alone(c, (0xD, 0, "eax", 17)),
        "amx-half-enabled",
    ),
    LeafQuirk(
        "xsave-sizes-runtime",
        (0xD,),
        "note",
        "0xD.0 EBX and 0xD.1 EBX (XSAVE area sizes) are recomputed by KVM from the guest's "
        "XCR0/XSS at run time",
        (API_4_46,),
        None,
        "xsave-runtime",
    ),
    LeafQuirk(
        "arch-cap-fb-clear",
        (),
        NOT_APPLICABLE,
        "concerns the IA32_ARCH_CAPABILITIES MSR value (FB_CLEAR), not a CPUID bit; the raw "
        "feature-MSR value is kept in the snapshot",
        (QEMU_KVM,),
        None,
        "arch-cap-fb-clear",
    ),
    LeafQuirk(
        "vmx-ctls2-missing",
        (),
        NOT_APPLICABLE,
        "concerns the VMX control MSRs of nested guests, not a CPUID bit",
        (QEMU_KVM,),
        None,
        "vmx-ctls2-missing",
    ),
    LeafQuirk(
        "disable-quirks-vs-2",
        (),
        NOT_APPLICABLE,
        "concerns capability semantics (KVM_CAP_DISABLE_QUIRKS2 returns a mask); shown by "
        "'kvmprobe caps disable_quirks'",
        (API_7_31,),
        None,
        "disable-quirks-vs-2",
    ),
)


# -- the engine --------------------------------------------------------------------------------

STATUSES = (
    "supported",
    "added-by-quirk",
    "removed-by-quirk",
    "opt-in",
    "runtime",
    "emulated",
    "host-only",
    "unsupported",
)


@dataclass
class Step:
    """One quirk considered for one feature: whether it applied, and the facts read."""

    quirk: str
    applied: bool
    evidence: str
    effect: str


@dataclass
class Verdict:
    kvm: bool
    emulated: bool
    host: bool | None
    effective: bool
    status: str
    quirks: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    citations: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)


def base_verdict(c: Ctx, loc: Loc) -> Verdict:
    kvm = c.kvm(loc)
    host = c.host_has(loc)
    emulated = c.kgec.has_loc(loc)
    if kvm:
        status = "supported"
    elif host:
        status = "host-only"
    else:
        status = "unsupported"
    return Verdict(kvm=kvm, emulated=emulated, host=host, effective=kvm, status=status)


def _apply(v: Verdict, q: Quirk) -> None:
    if q.effect == REMOVE:
        v.effective = False
        v.status = "removed-by-quirk" if v.kvm else "unsupported"
    elif q.effect == ADD:
        v.effective = True
        v.status = "added-by-quirk" if not v.kvm else "supported"
    elif q.effect == OPT_IN:
        v.effective = True
        v.status = "opt-in"
    elif q.effect == EMULATED:
        v.effective = True
        v.status = "emulated"
    elif q.effect == RUNTIME:
        v.status = "runtime"
        if q.effective is not None:
            v.effective = q.effective
    v.quirks.append(q.id)
    v.reasons.append(q.reason)
    for cit in q.citation:
        if cit not in v.citations:
            v.citations.append(cit)


def quirks_for(c: Ctx) -> dict[Loc, list[Quirk]]:
    """Which records target each location (static bits plus computed targets)."""
    out: dict[Loc, list[Quirk]] = {}
    for q in QUIRKS:
        locs = q.bits + (q.targets(c) if q.targets else ())
        for loc in dict.fromkeys(locs):
            out.setdefault(loc, []).append(q)
    return out


def evaluate(c: Ctx, loc: Loc, records: list[Quirk]) -> Verdict:
    v = base_verdict(c, loc)
    for q in records:
        assert q.test is not None
        applied, evidence = q.test(c, loc)
        v.steps.append(Step(q.id, applied, evidence, q.effect))
        if applied:
            _apply(v, q)
    return v


def quirk_index() -> dict[str, Quirk | LeafQuirk]:
    return {q.id: q for q in (*QUIRKS, *LEAF_QUIRKS)}
