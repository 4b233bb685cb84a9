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
