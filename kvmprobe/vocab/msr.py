"""Feature MSRs and Hyper-V: how an MSR is laid out, VMX control settings, where an MSR comes
from, and what a Hyper-V enlightenment needs."""

from __future__ import annotations

from enum import StrEnum


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
