"""Synthetic snapshots built from documented values, for what the hardware here cannot show
(Intel hosts, kernels before 6.14, AMX, ...). Every value used is a documented bit position."""

from __future__ import annotations

from dataclasses import replace

from kvmprobe.snapshot import CpuidEntry, HostInfo, ModuleInfo, Snapshot

GENUINE_INTEL = (0x756E6547, 0x49656E69, 0x6C65746E)  # ebx, edx, ecx of leaf 0
AUTHENTIC_AMD = (0x68747541, 0x69746E65, 0x444D4163)
KVM_SIG = (0x4B4D564B, 0x564B4D56, 0x0000004D)  # "KVMKVMKVM" in ebx, ecx, edx

SIGNIFICANT = 1


def bits(*positions: int) -> int:
    v = 0
    for p in positions:
        v |= 1 << p
    return v


class Cpuid:
    """A mutable set of entries: cpuid.set(leaf, sub, reg, bit) and friends."""

    def __init__(self, vendor: str = "intel") -> None:
        self.regs: dict[tuple[int, int], dict[str, int]] = {}
        self.flags: dict[tuple[int, int], int] = {}
        b, d, c = GENUINE_INTEL if vendor == "intel" else AUTHENTIC_AMD
        self.put(0x0, 0, eax=0x24, ebx=b, ecx=c, edx=d)
        self.put(0x1, 0, eax=0x000906EA if vendor == "intel" else 0x00A00F11)
        self.put(0x7, 0, eax=2, flags=SIGNIFICANT)
        self.put(0x7, 1, flags=SIGNIFICANT)
        self.put(0x7, 2, flags=SIGNIFICANT)
        self.put(0xD, 0, eax=0x7, flags=SIGNIFICANT)
        self.put(0x40000000, 0, eax=0x40000001, ebx=KVM_SIG[0], ecx=KVM_SIG[1], edx=KVM_SIG[2])
        self.put(0x40000001, 0)
        self.put(0x80000000, 0, eax=0x80000021)
        self.put(0x80000001, 0)

    def put(self, leaf: int, sub: int = 0, flags: int = 0, **regs: int) -> Cpuid:
        r = self.regs.setdefault((leaf, sub), {"eax": 0, "ebx": 0, "ecx": 0, "edx": 0})
        r.update(regs)
        self.flags[(leaf, sub)] = flags or self.flags.get((leaf, sub), 0)
        return self

    def set(self, leaf: int, sub: int, reg: str, *bitpos: int) -> Cpuid:
        self.put(leaf, sub)
        self.regs[(leaf, sub)][reg] |= bits(*bitpos)
        return self

    def clear(self, leaf: int, sub: int, reg: str, *bitpos: int) -> Cpuid:
        self.regs[(leaf, sub)][reg] &= ~bits(*bitpos)
        return self

    def entries(self) -> tuple[CpuidEntry, ...]:
        return tuple(
            CpuidEntry(leaf, sub, self.flags.get((leaf, sub), 0), **r)
            for (leaf, sub), r in sorted(self.regs.items())
        )


def snapshot(
    kgsc: Cpuid,
    *,
    caps: dict[int, int] | None = None,
    kgec: Cpuid | None = None,
    host: Cpuid | None = None,
    msr_index_list: tuple[int, ...] = (0x10A,),
    device_attrs: dict[str, int] | None = None,
    modules: dict[str, dict[str, str]] | None = None,
    kernel: str = "6.1.0-synthetic",
) -> Snapshot:
    return Snapshot(
        device="/dev/kvm",
        api_version=12,
        caps={"system": dict(caps or {}), "vm": dict(caps or {}), "vm_split_irqchip": None},
        supported_cpuid=kgsc.entries(),
        emulated_cpuid=kgec.entries() if kgec else (),
        msr_index_list=msr_index_list,
        msr_feature_index_list=(),
        device_attrs=dict(device_attrs or {}),
        host=HostInfo(
            kernel_release=kernel,
            cpuid=host.entries() if host else None,
            cpuid_source="/dev/cpu/0/cpuid" if host else None,
            modules={
                name: ModuleInfo(name, False, params) for name, params in (modules or {}).items()
            },
        ),
        source="synthetic",
    )


def with_host_cpuid(snap: Snapshot, host: Cpuid) -> Snapshot:
    return replace(snap, host=replace(snap.host, cpuid=host.entries()))
