"""Every vocabulary kvmprobe speaks, defined once.

Analysis, JSON documents and reports all use these enums; their string values are what JSON
carries, so they never change once published (new members may be added).
"""

from __future__ import annotations

from enum import StrEnum


class Irqchip(StrEnum):
    """Where the VMM puts the interrupt controllers (LAPIC, IOAPIC, PIC)."""

    #: KVM_CREATE_IRQCHIP: LAPIC, IOAPIC and PIC all in the kernel
    KERNEL = "kernel"
    #: KVM_ENABLE_CAP(KVM_CAP_SPLIT_IRQCHIP): LAPIC in the kernel, IOAPIC/PIC in the VMM
    SPLIT = "split"
    #: no in-kernel irqchip: the VMM emulates every interrupt controller
    USERSPACE = "userspace"

    @property
    def lapic_in_kernel(self) -> bool:
        return self is not Irqchip.USERSPACE


class CpuidTable(StrEnum):
    """Which CPUID table a vCPU was given with KVM_SET_CPUID2 (kvmprobe.kvm.verify)."""

    #: KVM_GET_SUPPORTED_CPUID's answer, as KVM returned it
    SUPPORTED = "supported"
    #: kvmprobe's effective table for one irqchip set-up (what ``kvmprobe export`` hands out)
    EFFECTIVE = "effective"


class Scope(StrEnum):
    """The fd a KVM_CHECK_EXTENSION answer came from."""

    SYSTEM = "system"
    VM = "vm"
    VM_SPLIT_IRQCHIP = "vm_split_irqchip"

    @property
    def label(self) -> str:
        """Column heading in reports."""
        return _SCOPE_LABELS[self]


_SCOPE_LABELS = {Scope.SYSTEM: "/dev/kvm", Scope.VM: "VM", Scope.VM_SPLIT_IRQCHIP: "VM+split"}


class DisableExit(StrEnum):
    """Exits a VMM may turn off with KVM_CAP_X86_DISABLE_EXITS (names of the
    KVM_X86_DISABLE_EXITS_* flags, lower-cased; their values live in kvmprobe.tables)."""

    MWAIT = "mwait"
    HLT = "hlt"
    PAUSE = "pause"
    CSTATE = "cstate"

    @property
    def flag(self) -> int:
        from kvmprobe.tables import caps_data

        return int(getattr(caps_data, f"KVM_X86_DISABLE_EXITS_{self.name}"))


class FeatureStatus(StrEnum):
    """What a guest in the analysed set-up gets of one CPUID feature."""

    SUPPORTED = "supported"
    ADDED_BY_QUIRK = "added-by-quirk"
    REMOVED_BY_QUIRK = "removed-by-quirk"
    OPT_IN = "opt-in"
    RUNTIME = "runtime"
    EMULATED = "emulated"
    HOST_ONLY = "host-only"
    UNSUPPORTED = "unsupported"
    #: a probe step the answer depends on failed: effective is null, the reason names the step
    UNKNOWN = "unknown"


class QuirkEffect(StrEnum):
    """What a quirk record does to the features it targets when its condition holds."""

    REMOVE = "remove"
    ADD = "add"
    OPT_IN = "opt-in"
    RUNTIME = "runtime"
    EMULATED = "emulated"
    NOTE = "note"
    #: a leaf the VMM must build itself
    VMM_BUILDS = "vmm-builds"
    #: a catalogue row that cannot change a CPUID analysis (concerns MSRs or cap semantics)
    NOT_APPLICABLE = "not-applicable"


class CheckStatus(StrEnum):
    """Outcome of one doctor check."""

    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"
    SKIP = "SKIP"


class Vendor(StrEnum):
    """CPU vendor families the quirks distinguish."""

    INTEL = "intel"
    AMD = "amd"
    OTHER = "other"

    @property
    def display(self) -> str:
        return {"intel": "Intel", "amd": "AMD", "other": "other"}[self.value]


class PsabiLevel(StrEnum):
    """An x86-64 micro-architecture level of the x86-64 psABI, or "below the baseline".

    The psABI calls the first level "baseline"; compilers and the glibc-hwcaps directories
    call it x86-64 or x86-64-v1. kvmprobe writes it ``x86-64-v1``.
    """

    BELOW_V1 = "below-x86-64-v1"
    V1 = "x86-64-v1"
    V2 = "x86-64-v2"
    V3 = "x86-64-v3"
    V4 = "x86-64-v4"

    @property
    def rank(self) -> int:
        """0 for below-v1, then 1..4; levels are cumulative, so a higher rank includes lower."""
        return _LEVEL_ORDER.index(self)

    @classmethod
    def levels(cls) -> tuple[PsabiLevel, ...]:
        """The four real levels, lowest first (BELOW_V1 is not a level)."""
        return _LEVEL_ORDER[1:]

    @classmethod
    def parse(cls, text: str) -> PsabiLevel | None:
        """A level from a user's spelling: ``x86-64-v2``, ``x86_64-v2``, ``v2``, ``x86-64``,
        ``baseline`` (case-insensitive). None when the text names no level."""
        t = text.strip().lower().replace("_", "-")
        if t in ("x86-64", "baseline", "x86-64-baseline"):
            return cls.V1
        t = t.removeprefix("x86-64-")
        for level in cls.levels():
            if t == level.value.removeprefix("x86-64-"):
                return level
        return None


_LEVEL_ORDER: tuple[PsabiLevel, ...] = (
    PsabiLevel.BELOW_V1,
    PsabiLevel.V1,
    PsabiLevel.V2,
    PsabiLevel.V3,
    PsabiLevel.V4,
)


class Offered(StrEnum):
    """Whether a guest in the analysed set-up can be given one feature."""

    YES = "yes"
    NO = "no"
    #: the evidence is missing (a failed probe step, a feature the mapping does not hold)
    UNKNOWN = "unknown"


class NotOfferedReason(StrEnum):
    """Why a feature is not offered. The values that also exist in FeatureStatus are spelt the
    same, so a report can use either."""

    #: the host CPU has it, KVM does not pass it on
    HOST_ONLY = "host-only"
    #: KVM reports it, but a documented quirk of this set-up takes it away
    REMOVED_BY_QUIRK = "removed-by-quirk"
    #: only in KVM_GET_EMULATED_CPUID: KVM emulates the instructions (a trap each time)
    EMULATED = "emulated"
    #: neither the host nor KVM has it
    UNSUPPORTED = "unsupported"
    #: the VMM must enable something first (a capability, a permission request)
    OPT_IN = "opt-in"
    #: a bit the CPU sets at run time from guest state (OSXSAVE, OSPKE), never offered as such
    RUNTIME = "runtime"
    #: the answer says "no" without saying why
    UNKNOWN = "unknown"


class RequirementKind(StrEnum):
    """How kvmprobe checks one row of a psABI level."""

    #: a CPUID feature bit the guest must be offered
    CPUID = "cpuid"
    #: a control the guest OS sets (CR4.OSFXSR, EFER.SCE, CR4.OSXSAVE); counted as met when the
    #: CPUID feature that makes it possible is offered
    OS_ENABLE = "os-enable"
    #: an XSAVE state component that must be enumerated in XCR0 for the level's registers to be
    #: usable ("fully enabled" in the psABI's words)
    XSAVE_STATE = "xsave-state"


class ConsistencyCheck(StrEnum):
    """A contradiction inside one CPUID answer (usually KVM_GET_SUPPORTED_CPUID)."""

    #: a feature is offered while a feature it depends on (cpuid-deps.c) is not
    DEPENDENCY = "dependency"
    #: leaf 0xD enumerates state components beyond x87/SSE while XSAVE is not offered
    XSAVE_STATE_WITHOUT_XSAVE = "xsave-state-without-xsave"
    #: a state component is enumerated while the feature that uses it is not offered
    STATE_WITHOUT_FEATURE = "state-without-feature"
    #: a feature is offered while the XCR0 state it needs is not enumerated
    FEATURE_WITHOUT_STATE = "feature-without-state"
    #: XSAVE is offered but leaf 0xD is missing
    XSAVE_LEAF_MISSING = "xsave-leaf-missing"
    #: a component is enumerated in XCR0 but its 0xD subleaf is missing or reports size 0
    COMPONENT_WITHOUT_SIZE = "component-without-size"


class DependencyKind(StrEnum):
    """Where a dependency between two features comes from."""

    #: a row of Linux's cpuid_deps[] (arch/x86/kernel/cpu/cpuid-deps.c)
    CPUID_DEPS = "cpuid-deps"
    #: a feature needs its XSAVE state component enumerated in XCR0 (Linux
    #: xsave_cpuid_features[] pairs each component with its feature; glibc counts the feature
    #: usable only with the state enabled)
    XSAVE_STATE = "xsave-state"


class MsrLayoutKind(StrEnum):
    """How a feature MSR's value reads (the generated tables' LAYOUT_KIND)."""

    #: named bits and multi-bit fields
    BITS = "bits"
    #: a VMX control MSR: low 32 bits are the allowed-0 settings (a 1 there means the control
    #: must be 1), high 32 bits the allowed-1 settings (a 1 there means it may be 1)
    CONTROLS = "controls"
    #: every one of the 64 bits is an allowed-1 setting (IA32_VMX_PROCBASED_CTLS3)
    ALLOWED1 = "allowed1"
    #: a number, not bits (microcode revision, CR0/CR4 fixed masks, ...)
    VALUE = "value"
    #: not in kvmprobe's tables: shown as its raw value
    UNKNOWN = "unknown"


class ControlSetting(StrEnum):
    """What a nested hypervisor may do with one VMX control bit."""

    #: allowed-0 bit is 1: the control must be 1
    REQUIRED = "must-be-1"
    #: allowed-0 bit is 0 and allowed-1 bit is 1: the nested hypervisor chooses
    OPTIONAL = "optional"
    #: allowed-1 bit is 0: the control must stay 0 (not offered)
    UNAVAILABLE = "unavailable"
    #: must be 1 yet may not be 1: a value no CPU should report
    INCONSISTENT = "inconsistent"


class MsrOrigin(StrEnum):
    """Which upstream header names an MSR (the generated tables' MSR_ORIGIN)."""

    MSR_INDEX = "msr-index"
    KVM = "kvm"
    HYPERV = "hyperv"
    UNKNOWN = "unknown"


class HvAvailability(StrEnum):
    """What kvmprobe can say about KVM's Hyper-V emulation."""

    #: KVM_GET_SUPPORTED_HV_CPUID answered
    AVAILABLE = "available"
    #: KVM says it has none (KVM_CAP_SYS_HYPERV_CPUID and KVM_CAP_HYPERV answered 0)
    NOT_BUILT = "not-built"
    #: the capability is there, but the ioctl failed (see the recorded error)
    FAILED = "failed"
    #: the question was not asked (or its capability scope could not be probed)
    UNKNOWN = "unknown"


class HvRequirement(StrEnum):
    """What a Hyper-V enlightenment needs beyond KVM reporting its bits."""

    #: an in-kernel local APIC: KVM_CREATE_IRQCHIP or KVM_CAP_SPLIT_IRQCHIP
    LAPIC = "lapic"
    #: nested VMX (Intel): the enlightened VMCS is a VMX feature
    NESTED_VMX = "nested-vmx"
    #: nested virtualization support in the vendor module
    NESTED = "nested"


class DoctorOutcome(StrEnum):
    """What doctor's verdict says about a host. Each outcome has one fixed exit status."""

    USABLE = "ok"
    UNAVAILABLE = "unavailable"
    PERMISSION = "permission"
    NOT_READY = "not-ready"

    @property
    def exit_status(self) -> int:
        """The fixed exit status (kvmprobe.errors.ExitStatus) this outcome ends the command with."""
        from kvmprobe.errors import ExitStatus

        return int(
            {
                DoctorOutcome.USABLE: ExitStatus.OK,
                DoctorOutcome.UNAVAILABLE: ExitStatus.KVM_UNAVAILABLE,
                DoctorOutcome.PERMISSION: ExitStatus.PERMISSION,
                DoctorOutcome.NOT_READY: ExitStatus.CHECK_FAILED,
            }[self]
        )


class NodeKind(StrEnum):
    """What kind of file a device path is (from stat(), following symlinks)."""

    CHAR = "char"
    BLOCK = "block"
    DIRECTORY = "directory"
    REGULAR = "regular"
    FIFO = "fifo"
    SOCKET = "socket"
    OTHER = "other"


class CgroupVersion(StrEnum):
    """Which cgroup hierarchies a process runs under (from /proc/self/cgroup)."""

    V1 = "v1"
    V2 = "v2"
    HYBRID = "hybrid"
    UNKNOWN = "unknown"


class AclTag(StrEnum):
    """Kinds of POSIX ACL entry (a tag the kernel adds later is kept as ``"tag 0x.."``)."""

    USER_OBJ = "user_obj"
    USER = "user"
    GROUP_OBJ = "group_obj"
    GROUP = "group"
    MASK = "mask"
    OTHER = "other"


class CompareRule(StrEnum):
    """How ``kvmprobe diff`` and ``baseline`` compare one value across hosts."""

    #: the destination must have the same value (vendor, XSAVE component sizes and offsets)
    MATCH = "must-match"
    #: the destination's value must not be smaller (leaf maxima, address widths, cap values)
    NOT_LESS = "must-not-shrink"
    #: the destination must have every bit or member the source has (XCR0, flag caps, MSR list)
    SUPERSET = "must-keep-all"
    #: shown when it differs, never blocks a migration (family/model: the VMM's choice)
    INFO = "informational"


class Change(StrEnum):
    """What ``kvmprobe diff`` found for one item, seen from a guest started on A."""

    #: A gives it, B does not: a guest from A loses it on B
    LOST = "lost"
    #: B gives it, A does not
    ADDED = "added"
    #: a value that must match (or must not shrink) differs
    DIFFERS = "differs"
    #: the evidence on A, on B or on both is unknown: never treated as equal
    UNKNOWN = "unknown"
    #: an informational value differs
    NOTE = "note"


class RequireKind(StrEnum):
    """What one ``--require`` item names."""

    FEATURE = "cpuid-feature"
    MSR_BIT = "msr-bit"
    LEVEL = "psabi-level"


class LevelSource(StrEnum):
    """Where the host CPU's own x86-64 level was read from (fleet facts, metrics, labels)."""

    #: the host's CPUID (/dev/cpu/N/cpuid): every row of the level checked bit by bit
    CPUID = "cpuid"
    #: the /proc/cpuinfo flags, when the host's CPUID could not be read (not root): Linux lists
    #: a flag only for a feature it enabled, XSAVE state included
    CPUINFO = "cpuinfo"


class CapArch(StrEnum):
    """The architectures the capability table files its capabilities under (generic ones
    apply everywhere)."""

    GENERIC = "generic"
    X86 = "x86"
    ARM64 = "arm64"
    S390 = "s390"
    POWERPC = "powerpc"
    RISCV = "riscv"
    MIPS = "mips"
    LOONGARCH = "loongarch"

    @classmethod
    def of_machine(cls, machine: str) -> CapArch | None:
        """The architecture of a ``uname -m`` answer (None: not one KVM runs on)."""
        for prefix, arch in _MACHINE_PREFIXES:
            if machine.startswith(prefix):
                return arch
        return None


_MACHINE_PREFIXES: tuple[tuple[str, CapArch], ...] = (
    ("x86_64", CapArch.X86),
    ("i386", CapArch.X86),
    ("i486", CapArch.X86),
    ("i586", CapArch.X86),
    ("i686", CapArch.X86),
    ("aarch64", CapArch.ARM64),
    ("arm64", CapArch.ARM64),
    ("s390", CapArch.S390),
    ("ppc", CapArch.POWERPC),
    ("riscv", CapArch.RISCV),
    ("mips", CapArch.MIPS),
    ("loongarch", CapArch.LOONGARCH),
)


class FieldEncoding(StrEnum):
    """How a multi-bit CPUID field's value reads (the generated table's FIELD_ENCODINGS; the
    JSON keeps the raw value whatever the encoding)."""

    #: a count, a size, a level, an ID: shown in decimal
    NUMBER = "number"
    #: CPUID stores the number minus one (cache ways, line size, sets): reports show value + 1
    MINUS_ONE = "minus-one"
    #: a bitmap, a mask, a leaf number or an address part: shown in hex
    HEX = "hex"
