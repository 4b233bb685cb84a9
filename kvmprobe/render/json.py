"""JSON documents (stdlib only: this path must never import rich)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from kvmprobe import __version__
from kvmprobe.snapshot import Snapshot

if TYPE_CHECKING:
    from kvmprobe.analysis.doctor import DoctorReport


def source_object(snap: Snapshot) -> dict[str, Any]:
    live = snap.source == "live"
    return {
        "kind": "live" if live else "snapshot",
        "file": None if live else snap.source,
        "device": snap.device,
        "recorded_at": snap.recorded_at,
        "kernel_release": snap.host.kernel_release,
        "api_version": snap.api_version,
        "kvmprobe_version": __version__,
        "recorded_by": snap.kvmprobe_version,
    }


def document(kind: str, snap: Snapshot, body: dict[str, Any], major: int = 1) -> dict[str, Any]:
    return {"schema": f"kvmprobe.{kind}/{major}", "source": source_object(snap), **body}


def dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2) + "\n"


def caps_body(rows: list, include_zero: bool) -> dict[str, Any]:
    """The ``caps`` list of ``kvmprobe caps --json`` (DESIGN.md minimums plus extras)."""
    from kvmprobe.analysis.caps import decoded_json

    items = []
    for row in rows:
        info = row.info
        items.append(
            {
                "number": info.number,
                "name": info.name,
                "known": info.known,
                "arch": info.arch,
                "kind": info.kind,
                "unit": info.unit,
                "system": row.values.get("system"),
                "vm": row.values.get("vm"),
                "vm_split_irqchip": row.values.get("vm_split_irqchip"),
                "differs": row.differs,
                "decoded": {scope: decoded_json(d) for scope, d in row.decoded.items()},
                "text": {scope: d.text for scope, d in row.decoded.items()},
                "description": info.description,
            }
        )
    return {"all": include_zero, "count": len(items), "caps": items}


def reason_text(v: Any) -> str:
    if v.reasons:
        return "; ".join(v.reasons)
    return {
        "supported": "reported by KVM_GET_SUPPORTED_CPUID",
        "unsupported": "not reported by KVM_GET_SUPPORTED_CPUID",
        "host-only": "the host CPU has it; KVM does not pass it on",
    }.get(v.status, "")


def feature_json(r: Any) -> dict[str, Any]:
    f, v = r.feature, r.verdict
    return {
        "name": f.name,
        "qemu": f.qemu_name,
        "kernel_name": f.kernel_name,
        "known": f.known,
        "leaf": f.leaf,
        "subleaf": f.subleaf,
        "register": f.register,
        "bit": f.bit,
        "where": f.where,
        "area": f.area,
        "description": f.description,
        "kvm": v.kvm,
        "emulated": v.emulated,
        "host": v.host,
        "effective": v.effective,
        "status": v.status,
        "quirks": list(v.quirks),
        "reason": reason_text(v),
        "citations": list(v.citations),
    }


def cpuid_body(a: Any, features: list[Any], include_steps: bool = False) -> dict[str, Any]:
    snap = a.snap
    out_features = []
    for r in features:
        item = feature_json(r)
        if include_steps:
            item["steps"] = [
                {"quirk": s.quirk, "applied": s.applied, "effect": s.effect, "evidence": s.evidence}
                for s in r.verdict.steps
            ]
        out_features.append(item)
    return {
        "irqchip": a.options.irqchip,
        "disable_exits": sorted(a.options.disable_exits),
        "counts": a.counts(),
        "strings": a.strings,
        "host_cpuid": a.host_available,
        "entries": [e.to_json() for e in snap.supported_cpuid or ()],
        "emulated_entries": [e.to_json() for e in snap.emulated_cpuid or ()],
        "features": out_features,
        "fields": [
            {
                "name": fr.field.name,
                "where": fr.field.where,
                "leaf": fr.field.leaf,
                "subleaf": fr.field.subleaf,
                "register": fr.field.register,
                "lo": fr.field.lo,
                "hi": fr.field.hi,
                "kvm": fr.kvm,
                "host": fr.host,
                "description": fr.field.description,
            }
            for fr in a.fields
        ],
        "xsave_components": [
            {"component": x.number, "size": x.size, "offset": x.offset, "supervisor": x.supervisor}
            for x in a.xsave_components
        ],
        "leaf_notes": [
            {
                "quirk": n.quirk.id,
                "leaves": [f"{x:#x}" for x in n.quirk.leaves],
                "effect": n.quirk.effect,
                "reason": n.quirk.reason,
                "evidence": n.evidence,
                "citations": list(n.quirk.citation),
            }
            for n in a.leaf_notes
        ],
    }


def doctor_document(snap: Snapshot, report: DoctorReport) -> dict[str, Any]:
    """``kvmprobe doctor --json`` (``kvmprobe.doctor/1``): the device, every check in order,
    the counts per status and the verdict with its fixed exit status."""
    v = report.verdict
    body = {
        "device": snap.device,
        "checks": [
            {
                "id": c.id,
                "group": c.group,
                "title": c.title,
                "status": str(c.status),
                "evidence": c.evidence,
                "hint": c.hint or None,
                "details": list(c.details),
                "citation": c.citation,
            }
            for c in report.checks
        ],
        "counts": {str(status): n for status, n in report.counts.items()},
        "verdict": {
            "status": str(v.outcome),
            "exit_status": v.exit_status,
            "message": v.message,
            "first_failure": v.first_failure,
        },
    }
    return document("doctor", snap, body)
