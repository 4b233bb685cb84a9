"""Pin every ioctl number, struct size and field offset to the verified x86_64 ABI.

Expected values are the ones in the project's verified ABI notes (computed from
include/uapi/linux/kvm.h of Linux v7.2 and checked against strace's v7.2 ioctl table)."""

import ctypes

import pytest

from kvmprobe.kvm import abi

IOCTLS = {
    "KVM_GET_API_VERSION": 0x0000AE00,
    "KVM_CREATE_VM": 0x0000AE01,
    "KVM_GET_MSR_INDEX_LIST": 0xC004AE02,
    "KVM_CHECK_EXTENSION": 0x0000AE03,
    "KVM_GET_VCPU_MMAP_SIZE": 0x0000AE04,
    "KVM_GET_SUPPORTED_CPUID": 0xC008AE05,
    "KVM_GET_EMULATED_CPUID": 0xC008AE09,
    "KVM_GET_MSR_FEATURE_INDEX_LIST": 0xC004AE0A,
    "KVM_X86_GET_MCE_CAP_SUPPORTED": 0x8008AE9D,
    "KVM_GET_SUPPORTED_HV_CPUID": 0xC008AEC1,
    "KVM_CREATE_VCPU": 0x0000AE41,
    "KVM_ENABLE_CAP": 0x4068AEA3,
    "KVM_GET_MSRS": 0xC008AE88,
    "KVM_GET_DEVICE_ATTR": 0x4018AEE2,
    "KVM_HAS_DEVICE_ATTR": 0x4018AEE3,
    # vCPU set-up a VMM performs (checked with gcc against the Debian 6.1 uapi header)
    "KVM_CREATE_IRQCHIP": 0x0000AE60,
    "KVM_SET_MSRS": 0x4008AE89,
    "KVM_SET_CPUID2": 0x4008AE90,
    "KVM_X86_SETUP_MCE": 0x4008AE9C,
    "KVM_SET_XCRS": 0x4188AEA7,
}

STRUCTS = {
    # name: (size, {field: offset})
    "kvm_cpuid_entry2": (
        40,
        {
            "function": 0,
            "index": 4,
            "flags": 8,
            "eax": 12,
            "ebx": 16,
            "ecx": 20,
            "edx": 24,
            "padding": 28,
        },
    ),
    "kvm_cpuid2": (8, {"nent": 0, "padding": 4}),
    "kvm_msr_list": (4, {"nmsrs": 0}),
    "kvm_msr_entry": (16, {"index": 0, "reserved": 4, "data": 8}),
    "kvm_msrs": (8, {"nmsrs": 0, "pad": 4}),
    "kvm_device_attr": (24, {"flags": 0, "group": 4, "attr": 8, "addr": 16}),
    "kvm_xcr": (16, {"xcr": 0, "reserved": 4, "value": 8}),
    "kvm_xcrs": (392, {"nr_xcrs": 0, "flags": 4, "xcrs": 8, "padding": 264}),
    "kvm_enable_cap": (104, {"cap": 0, "flags": 4, "args": 8, "pad": 40}),
}


@pytest.mark.parametrize("name,value", sorted(IOCTLS.items()))
def test_ioctl_numbers(name: str, value: int) -> None:
    assert getattr(abi, name) == value, f"{name} = {getattr(abi, name):#x}, want {value:#x}"


@pytest.mark.parametrize("name", sorted(STRUCTS))
def test_struct_layouts(name: str) -> None:
    size, offsets = STRUCTS[name]
    cls = getattr(abi, name)
    assert ctypes.sizeof(cls) == size
    for field, off in offsets.items():
        assert getattr(cls, field).offset == off, f"{name}.{field}"


def test_variable_length_helpers() -> None:
    assert ctypes.sizeof(abi.kvm_cpuid2_with(3)) == 8 + 3 * 40
    assert abi.kvm_cpuid2_with(3).entries.offset == 8
    assert ctypes.sizeof(abi.kvm_msr_list_with(5)) == 4 + 5 * 4
    assert abi.kvm_msrs_with(2).entries.offset == 8
    assert ctypes.sizeof(abi.kvm_msrs_with(2)) == 8 + 2 * 16
    assert abi.kvm_cpuid2_with(3) is abi.kvm_cpuid2_with(3)  # cached


def test_constants() -> None:
    assert abi.KVM_API_VERSION == 12
    assert abi.KVM_CAP_SPLIT_IRQCHIP == 121
    assert abi.KVM_CAP_CHECK_EXTENSION_VM == 105
    assert abi.KVM_CAP_SYS_ATTRIBUTES == 209
    assert abi.KVM_CPUID_FLAG_SIGNIFCANT_INDEX == 1
    assert abi.ARCH_REQ_XCOMP_GUEST_PERM == 0x1025
