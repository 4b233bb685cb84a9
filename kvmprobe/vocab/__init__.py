"""Every vocabulary kvmprobe speaks, defined once.

Analysis, JSON documents and reports all use these enums; their string values are what JSON
carries, so they never change once published (new members may be added).

Each enum lives in one module of this package, by subject (kvm, cpuid, msr, checks), and is
imported from here (``from kvmprobe.vocab import Irqchip``). A module is loaded the first time
one of its enums is asked for: creating an enum class costs about a tenth of a millisecond, and
a command needs only some of them.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from kvmprobe.vocab.checks import (
        Change,
        CheckStatus,
        CompareRule,
        DoctorOutcome,
        RequireKind,
    )
    from kvmprobe.vocab.cpuid import (
        ConsistencyCheck,
        DependencyKind,
        FeatureStatus,
        FieldEncoding,
        LevelSource,
        NotOfferedReason,
        Offered,
        PsabiLevel,
        QuirkEffect,
        RequirementKind,
        Vendor,
    )
    from kvmprobe.vocab.kvm import (
        AclTag,
        CapArch,
        CgroupVersion,
        CpuidTable,
        DisableExit,
        Irqchip,
        NodeKind,
        Scope,
    )
    from kvmprobe.vocab.msr import (
        ControlSetting,
        HvAvailability,
        HvRequirement,
        MsrLayoutKind,
        MsrOrigin,
    )

#: every enum's name -> the module of this package that defines it
HOME: dict[str, str] = {
    "Irqchip": "kvm",
    "CpuidTable": "kvm",
    "Scope": "kvm",
    "DisableExit": "kvm",
    "CapArch": "kvm",
    "NodeKind": "kvm",
    "CgroupVersion": "kvm",
    "AclTag": "kvm",
    "FeatureStatus": "cpuid",
    "QuirkEffect": "cpuid",
    "Vendor": "cpuid",
    "PsabiLevel": "cpuid",
    "Offered": "cpuid",
    "NotOfferedReason": "cpuid",
    "ConsistencyCheck": "cpuid",
    "DependencyKind": "cpuid",
    "FieldEncoding": "cpuid",
    "LevelSource": "cpuid",
    "RequirementKind": "cpuid",
    "MsrLayoutKind": "msr",
    "ControlSetting": "msr",
    "MsrOrigin": "msr",
    "HvAvailability": "msr",
    "HvRequirement": "msr",
    "CheckStatus": "checks",
    "DoctorOutcome": "checks",
    "RequireKind": "checks",
    "CompareRule": "checks",
    "Change": "checks",
}

__all__ = [
    "AclTag",
    "CapArch",
    "CgroupVersion",
    "Change",
    "CheckStatus",
    "CompareRule",
    "ConsistencyCheck",
    "ControlSetting",
    "CpuidTable",
    "DependencyKind",
    "DisableExit",
    "DoctorOutcome",
    "FeatureStatus",
    "FieldEncoding",
    "HvAvailability",
    "HvRequirement",
    "Irqchip",
    "LevelSource",
    "MsrLayoutKind",
    "MsrOrigin",
    "NodeKind",
    "NotOfferedReason",
    "Offered",
    "PsabiLevel",
    "QuirkEffect",
    "RequireKind",
    "RequirementKind",
    "Scope",
    "Vendor",
]


if not TYPE_CHECKING:  # to a type checker, a module __getattr__ makes every name exist
    from kvmprobe.lazy import forward

    __getattr__ = forward(__name__, {name: f"{__name__}.{m}" for name, m in HOME.items()})


def __dir__() -> list[str]:
    return sorted({*globals(), *HOME})
