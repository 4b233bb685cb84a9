"""What the CPUID analysis says of a feature or value: its status, the quirks' effects, vendors,
x86-64 levels, whether a guest is offered it and why not, dependency and consistency kinds."""

from __future__ import annotations

from enum import StrEnum


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


class LevelSource(StrEnum):
    """Where the host CPU's own x86-64 level was read from (fleet facts, metrics, labels)."""

    #: the host's CPUID (/dev/cpu/N/cpuid): every row of the level checked bit by bit
    CPUID = "cpuid"
    #: the /proc/cpuinfo flags, when the host's CPUID could not be read (not root): Linux lists
    #: a flag only for a feature it enabled, XSAVE state included
    CPUINFO = "cpuinfo"


class FieldEncoding(StrEnum):
    """How a multi-bit CPUID field's value reads (the generated table's FIELD_ENCODINGS; the
    JSON keeps the raw value whatever the encoding)."""

    #: a count, a size, a level, an ID: shown in decimal
    NUMBER = "number"
    #: CPUID stores the number minus one (cache ways, line size, sets): reports show value + 1
    MINUS_ONE = "minus-one"
    #: a bitmap, a mask, a leaf number or an address part: shown in hex
    HEX = "hex"
