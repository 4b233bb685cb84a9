"""JSON documents (stdlib only: this path must never import rich)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from kvmprobe import __version__
from kvmprobe.snapshot import Snapshot
from kvmprobe.vocab import Scope

if TYPE_CHECKING:
    from kvmprobe.analysis.caps import CapRow, DecodedValue

if TYPE_CHECKING:
    from kvmprobe.analysis.effective import CpuidAnalysis, FeatureResult


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


def decoded_json(d: DecodedValue) -> list[str]:
    """The ``decoded`` list for JSON output.

    Constant names, then the remainder as a hex string (``"0x40"``) when non-zero; for count,
    size and scalar caps the text (``["4096 bytes"]``); ``[]`` for booleans, zero and unknown
    caps (the raw value is always reported next to this list).
    """
    out = list(d.names)
    if d.remainder:
        out.append(f"{d.remainder:#x}")
    if out or d.value <= 0:
        return out
    kind = d.kind
    if kind in ("count", "size", "scalar"):
        return [d.text]
    if kind == "":  # built by hand: infer from the text
        bare = d.text in ("yes", "no") or d.text.isdecimal()
        return [] if bare else [d.text]
    return []


def caps_body(rows: list[CapRow], include_zero: bool) -> dict[str, Any]:
    """The ``caps`` list of ``kvmprobe caps --json`` (DESIGN.md minimums plus extras)."""
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
                **{str(scope): row.values.get(scope) for scope in Scope},
                "differs": row.differs,
                "decoded": {str(scope): decoded_json(d) for scope, d in row.decoded.items()},
                "text": {str(scope): d.text for scope, d in row.decoded.items()},
                "description": info.description,
            }
        )
    return {"all": include_zero, "count": len(items), "caps": items}


def feature_json(r: FeatureResult) -> dict[str, Any]:
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
        "status": v.status.value,
        "quirks": list(v.quirks),
        "reason": v.reason,
        "citations": list(v.citations),
    }


def cpuid_body(
    a: CpuidAnalysis, features: list[FeatureResult], include_steps: bool = False
) -> dict[str, Any]:
    """The body of ``kvmprobe cpuid --json`` (with the quirk steps for ``--explain``)."""
    snap = a.snap
    out_features = []
    for r in features:
        item = feature_json(r)
        if include_steps:
            item["steps"] = [
                {
                    "quirk": s.quirk,
                    "applied": s.applied,
                    "effect": s.effect.value,
                    "evidence": s.evidence,
                }
                for s in r.verdict.steps
            ]
        out_features.append(item)
    return {
        "irqchip": a.options.irqchip.value,
        "disable_exits": sorted(x.value for x in a.options.disable_exits),
        "counts": {status.value: n for status, n in a.counts().items()},
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
                "effect": n.quirk.effect.value,
                "reason": n.quirk.reason,
                "evidence": n.evidence,
                "citations": list(n.quirk.citation),
            }
            for n in a.leaf_notes
        ],
    }
