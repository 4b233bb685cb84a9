"""Bare ``kvmprobe``: a short summary of this host."""

from __future__ import annotations

from kvmprobe.commands.common import Invocation, get_snapshot
from kvmprobe.errors import KvmprobeError
from kvmprobe.limits import DEFAULT_DEVICE
from kvmprobe.render.output import emit


def summary(inv: Invocation) -> None:
    """Usable or not, API version, capability and feature counts, where to look next (for the
    default device: kvmprobe alone takes no --device)."""
    from kvmprobe.analysis.effective import analyse
    from kvmprobe.render.summary import summary_text

    try:
        snap = get_snapshot(inv, None, DEFAULT_DEVICE)
    except KvmprobeError as e:
        e.hint = (e.hint + "; " if e.hint else "") + "run 'kvmprobe doctor' for a full diagnosis"
        raise
    analysis = analyse(snap) if snap.supported_cpuid is not None else None
    emit(summary_text(snap, analysis, inv.term()) + "\n")
