"""Checks and comparisons: doctor's statuses and outcomes, --require items, and how diff and
baseline compare hosts."""

from __future__ import annotations

from enum import StrEnum


class CheckStatus(StrEnum):
    """Outcome of one doctor check."""

    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"
    SKIP = "SKIP"


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
