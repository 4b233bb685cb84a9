"""KVM ioctl numbers and the ctypes structures they take. Nothing else lives here.

Numbers follow include/uapi/linux/kvm.h (Linux v7.2) and arch/x86/include/uapi/asm/kvm.h;
struct layouts are the x86_64 ones. tests/test_abi.py pins every size, offset and number.
"""

from __future__ import annotations

import ctypes
from functools import cache

from ioctl_opt import IO, IOR, IOW, IOWR

from kvmprobe.tables.caps_data import KVM_API_VERSION, KVMIO

KVM_RDEV = (10, 232)  # /dev/kvm: misc major 10, KVM_MINOR 232 (include/linux/miscdevice.h)

u8 = ctypes.c_uint8
u32 = ctypes.c_uint32
u64 = ctypes.c_uint64


class kvm_cpuid_entry2(ctypes.Structure):
    _fields_ = (
        ("function", u32),
        ("index", u32),
        ("flags", u32),
        ("eax", u32),
        ("ebx", u32),
        ("ecx", u32),
        ("edx", u32),
        ("padding", u32 * 3),
    )


class kvm_cpuid2(ctypes.Structure):
    _fields_ = (("nent", u32), ("padding", u32))


class kvm_msr_list(ctypes.Structure):
    _fields_ = (("nmsrs", u32),)


class kvm_msr_entry(ctypes.Structure):
    _fields_ = (("index", u32), ("reserved", u32), ("data", u64))


class kvm_msrs(ctypes.Structure):
    _fields_ = (("nmsrs", u32), ("pad", u32))


class kvm_device_attr(ctypes.Structure):
    _fields_ = (("flags", u32), ("group", u32), ("attr", u64), ("addr", u64))


class kvm_xcr(ctypes.Structure):
    _fields_ = (("xcr", u32), ("reserved", u32), ("value", u64))


KVM_MAX_XCRS = 16  # arch/x86/include/uapi/asm/kvm.h


class kvm_xcrs(ctypes.Structure):
    _fields_ = (
        ("nr_xcrs", u32),
        ("flags", u32),
        ("xcrs", kvm_xcr * KVM_MAX_XCRS),
        ("padding", u64 * 16),
    )


class kvm_enable_cap(ctypes.Structure):
    _fields_ = (("cap", u32), ("flags", u32), ("args", u64 * 4), ("pad", u8 * 64))


@cache
def kvm_cpuid2_with(n: int) -> type[ctypes.Structure]:
    """struct kvm_cpuid2 followed by room for n entries."""
    return type(
        f"kvm_cpuid2_{n}",
        (ctypes.Structure,),
        {"_fields_": (("nent", u32), ("padding", u32), ("entries", kvm_cpuid_entry2 * n))},
    )


@cache
def kvm_msr_list_with(n: int) -> type[ctypes.Structure]:
    """struct kvm_msr_list followed by room for n indices."""
    return type(
        f"kvm_msr_list_{n}",
        (ctypes.Structure,),
        {"_fields_": (("nmsrs", u32), ("indices", u32 * n))},
    )


@cache
def kvm_msrs_with(n: int) -> type[ctypes.Structure]:
    """struct kvm_msrs followed by n entries."""
    return type(
        f"kvm_msrs_{n}",
        (ctypes.Structure,),
        {"_fields_": (("nmsrs", u32), ("pad", u32), ("entries", kvm_msr_entry * n))},
    )


# System ioctls (/dev/kvm)
KVM_GET_API_VERSION = IO(KVMIO, 0x00)
KVM_CREATE_VM = IO(KVMIO, 0x01)
KVM_GET_MSR_INDEX_LIST = IOWR(KVMIO, 0x02, kvm_msr_list)
KVM_CHECK_EXTENSION = IO(KVMIO, 0x03)
KVM_GET_VCPU_MMAP_SIZE = IO(KVMIO, 0x04)
KVM_GET_SUPPORTED_CPUID = IOWR(KVMIO, 0x05, kvm_cpuid2)
KVM_GET_EMULATED_CPUID = IOWR(KVMIO, 0x09, kvm_cpuid2)
KVM_GET_MSR_FEATURE_INDEX_LIST = IOWR(KVMIO, 0x0A, kvm_msr_list)
KVM_X86_GET_MCE_CAP_SUPPORTED = IOR(KVMIO, 0x9D, u64)
KVM_GET_SUPPORTED_HV_CPUID = IOWR(KVMIO, 0xC1, kvm_cpuid2)

# VM ioctls
KVM_CREATE_VCPU = IO(KVMIO, 0x41)
KVM_CREATE_IRQCHIP = IO(KVMIO, 0x60)
KVM_ENABLE_CAP = IOW(KVMIO, 0xA3, kvm_enable_cap)

# vCPU ioctls
KVM_SET_MSRS = IOW(KVMIO, 0x89, kvm_msrs)
KVM_SET_CPUID2 = IOW(KVMIO, 0x90, kvm_cpuid2)
KVM_X86_SETUP_MCE = IOW(KVMIO, 0x9C, u64)
KVM_SET_XCRS = IOW(KVMIO, 0xA7, kvm_xcrs)

# system, VM, vCPU and device ioctls
KVM_GET_MSRS = IOWR(KVMIO, 0x88, kvm_msrs)
KVM_GET_DEVICE_ATTR = IOW(KVMIO, 0xE2, kvm_device_attr)
KVM_HAS_DEVICE_ATTR = IOW(KVMIO, 0xE3, kvm_device_attr)

# KVM uapi constants the probe relies on: generated from the verified ABI facts, never retyped.
from kvmprobe.tables.caps_data import (  # noqa: E402
    KVM_CAP_CHECK_EXTENSION_VM,
    KVM_CAP_EXT_EMUL_CPUID,
    KVM_CAP_GET_MSR_FEATURES,
    KVM_CAP_IRQCHIP,
    KVM_CAP_MCE,
    KVM_CAP_SPLIT_IRQCHIP,
    KVM_CAP_SYS_ATTRIBUTES,
    KVM_CAP_SYS_HYPERV_CPUID,
    KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
    KVM_X86_DEFAULT_VM,
    KVM_X86_GRP_SEV,
    KVM_X86_GRP_SYSTEM,
    KVM_X86_SEV_VMSA_FEATURES,
    KVM_X86_SNP_POLICY_BITS,
    KVM_X86_XCOMP_GUEST_SUPP,
)

__all__ = [
    "KVMIO",
    "KVM_API_VERSION",
    "KVM_CAP_CHECK_EXTENSION_VM",
    "KVM_CAP_EXT_EMUL_CPUID",
    "KVM_CAP_GET_MSR_FEATURES",
    "KVM_CAP_IRQCHIP",
    "KVM_CAP_MCE",
    "KVM_CAP_SPLIT_IRQCHIP",
    "KVM_CAP_SYS_ATTRIBUTES",
    "KVM_CAP_SYS_HYPERV_CPUID",
    "KVM_CPUID_FLAG_SIGNIFCANT_INDEX",
    "KVM_X86_DEFAULT_VM",
    "KVM_X86_GRP_SEV",
    "KVM_X86_GRP_SYSTEM",
    "KVM_X86_SEV_VMSA_FEATURES",
    "KVM_X86_SNP_POLICY_BITS",
    "KVM_X86_XCOMP_GUEST_SUPP",
]

# arch/x86/include/uapi/asm/prctl.h
ARCH_GET_XCOMP_SUPP = 0x1021
ARCH_GET_XCOMP_GUEST_PERM = 0x1024
ARCH_REQ_XCOMP_GUEST_PERM = 0x1025
XFEATURE_XTILEDATA = 18
SYS_arch_prctl = 158  # x86_64 syscall number

# Number of routes QEMU and cloud-hypervisor reserve for the IOAPIC with a split irqchip.
SPLIT_IRQCHIP_IOAPIC_PINS = 24
