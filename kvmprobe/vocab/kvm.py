"""What KVM and the device node say: irqchip set-ups, CPUID tables, fd scopes, exits, capability
architectures, and the kinds of node, cgroup and ACL entry the access checks read."""

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
