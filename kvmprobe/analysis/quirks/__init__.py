"""The documented KVM CPUID quirks as data records: the registry.

Each theme module holds its records, each beside the condition it uses; this module only
collects them. A record names the bits it touches, a condition evaluated on the snapshot and
the VMM set-up (probing behaviour, e.g. "is TSC_DEADLINE already in KVM_GET_SUPPORTED_CPUID",
never comparing kernel versions), its effect, a one-line reason in our words, and a citation
in a fixed form. Records that cannot change a supported-CPUID analysis say so (effect
not-applicable) and why. The catalogue they cover is research/quirks.md section 1.

Order matters where two records touch one bit (the later effect wins), so the modules are
collected in a fixed order; a new quirk goes into its theme module's tuple.
"""

from __future__ import annotations

from kvmprobe.analysis.quirks import apic, errata, leaves, mwait, platform, pv, verified, xsave
from kvmprobe.analysis.quirks.engine import (
    Ctx,
    LeafQuirk,
    Options,
    Quirk,
    Step,
    Verdict,
    evaluate,
    quirks_for,
)

QUIRKS: tuple[Quirk, ...] = (
    *apic.QUIRKS,
    *pv.QUIRKS,
    *mwait.QUIRKS,
    *errata.QUIRKS,
    *platform.QUIRKS,
    *xsave.QUIRKS,
    *verified.QUIRKS,
)
LEAF_QUIRKS: tuple[LeafQuirk, ...] = leaves.LEAF_QUIRKS

__all__ = [
    "LEAF_QUIRKS",
    "QUIRKS",
    "Ctx",
    "LeafQuirk",
    "Options",
    "Quirk",
    "Step",
    "Verdict",
    "evaluate",
    "quirks_for",
]
