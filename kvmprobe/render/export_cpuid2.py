"""``kvmprobe export cpuid2``: the effective table as KVM_SET_CPUID2 entries (a JSON document)
or in the text format of the ``cpuid`` tool's ``-r`` output (``cpuid -f FILE`` decodes it).
Stdlib only."""

from __future__ import annotations

from kvmprobe.analysis.guest_cpuid import Change, GuestCpu
from kvmprobe.render import json as rj
from kvmprobe.snapshot import Snapshot

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def change_json(c: Change) -> dict[str, Any]:
    return {
        "where": c.where,
        "name": c.name,
        "action": c.action,
        "status": c.status,
        "reason": c.reason,
    }


def guest_json(g: GuestCpu) -> dict[str, Any]:
    fms = g.signature
    return {
        "vendor": g.vendor,
        "family": None if fms is None else fms[0],
        "model": None if fms is None else fms[1],
        "stepping": None if fms is None else fms[2],
        "irqchip": g.irqchip,
        "disable_exits": list(g.disable_exits),
        "with_opt_in": g.with_opt_in,
        "features": g.names(),
        "refused_msrs": [
            {"index": f"{index:#x}", "refused_bits": list(bits)}
            for index, bits in sorted(g.refused_msrs.items())
        ],
        "baseline": baseline_json(g),
    }


def baseline_json(g: GuestCpu) -> dict[str, Any] | None:
    """A baseline's hosts and what the export took from where (None for one host)."""
    if not g.is_baseline:
        return None
    return {
        "hosts": list(g.hosts),
        "first_host_fields": list(g.first_host_fields),
        "msr_bits": [
            {
                "name": r.bit.feature_name,
                "msr": None if r.index is None else f"{r.index:#x}",
                "given": r.effective,
                "why": r.why,
            }
            for r in g.msr_bits
        ],
    }


def tried_json(snap: Snapshot, g: GuestCpu) -> dict[str, Any] | None:
    """What a vCPU said to this very table: live, the export tried it; from a snapshot,
    ``record`` tried the plain table of each irqchip mode. None when no attempt applies."""
    from kvmprobe.analysis.guest_cpuid import vcpu_calls

    calls = vcpu_calls(snap, g)
    if not calls:
        return None
    return {
        "irqchip": calls[0].irqchip,
        "table": calls[0].table,
        "calls": [
            {"what": a.what, "accepted": a.accepted, "errno_name": a.errno_name} for a in calls
        ],
    }


def cpuid2_document(snap: Snapshot, g: GuestCpu) -> dict[str, Any]:
    body = {
        "guest": guest_json(g),
        "tried_on_vcpu": tried_json(snap, g),
        "nent": len(g.entries),
        "entries": [e.to_json() for e in g.entries],
        "changes": [change_json(c) for c in g.changes],
    }
    return rj.document("export-cpuid2", snap, body)


def cpuid2_json(snap: Snapshot, g: GuestCpu) -> str:
    return rj.dumps(cpuid2_document(snap, g))


def cpuid_r_text(g: GuestCpu) -> str:
    """The table as ``cpuid -r`` prints one CPU: a ``CPU 0:`` header, then one line per
    (leaf, subleaf) with the four registers in hex."""
    lines = ["CPU 0:"]
    for e in g.entries:
        lines.append(
            f"   {e.function:#010x} {e.index:#04x}: eax={e.eax:#010x} ebx={e.ebx:#010x} "
            f"ecx={e.ecx:#010x} edx={e.edx:#010x}"
        )
    return "\n".join(lines) + "\n"
