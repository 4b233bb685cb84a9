"""JSON bodies of ``kvmprobe msr`` (kvmprobe.msr/1) and ``kvmprobe hyperv`` (kvmprobe.hyperv/1).

Stdlib only (this path must never import rich); the documents are wrapped by
``kvmprobe.render.json.document()`` like every other kind. 64-bit MSR values travel as hex
strings ("0x400000000c000069") with their two 32-bit halves as integers, so no number in a
document exceeds 2**53.
"""

from __future__ import annotations

from typing import Any

from kvmprobe.analysis.hyperv import HvProperty, HyperVAnalysis
from kvmprobe.analysis.msr import DecodedBit, DecodedMsr, MsrAnalysis, Selection, msr_name
from kvmprobe.snapshot import ProbeError
from kvmprobe.vocab_msr import MsrLayoutKind

__all__ = ["hyperv_body", "msr_body"]

_LOW32 = 0xFFFF_FFFF


def _error(e: ProbeError) -> dict[str, Any]:
    return e.to_json()


def _bit(b: DecodedBit) -> dict[str, Any]:
    row = b.bit
    item: dict[str, Any] = {
        "name": row.name,
        "position": row.position,
        "lo": row.lo,
        "hi": row.hi,
        "kernel": row.kernel_name,
        "qemu": row.qemu_name,
        "libvirt": row.libvirt_name,
        "cpuinfo": row.cpuinfo_name,
        "set": b.is_set,
        "value": b.value,
        "description": row.description,
    }
    if row.is_field and row.value_table:
        item["value_name"] = b.value_name
    if b.setting is not None:
        item["setting"] = str(b.setting)
        item["allowed0"] = b.allowed0
        item["allowed1"] = b.value
    if row.skip:
        item["skip"] = row.skip
    return item


def _msr(d: DecodedMsr) -> dict[str, Any]:
    item: dict[str, Any] = {
        "index": d.index,
        "hex_index": f"{d.index:#x}",
        "name": d.name,
        "aliases": list(d.aliases),
        "known": d.known,
        "origin": str(d.origin),
        "kind": str(d.kind),
        "description": d.description,
        "value": d.hex,
        "value_hi": d.value >> 32,
        "value_lo": d.value & _LOW32,
        "set": [b.bit.name for b in d.set_bits],
        "bits": [_bit(b) for b in d.bits],
        "remainder": f"{d.remainder:#x}",
        "reading": d.reading,
        "partial": d.partial,
    }
    if d.kind is MsrLayoutKind.CONTROLS:
        item["remainder_must_be_1"] = f"{d.remainder_must1:#x}"
        item["default1"] = f"{d.default1:#x}"
    return item


def msr_body(
    a: MsrAnalysis,
    sel: Selection,
    name_filter: str | None,
    mitigations: str | None,
    errors: tuple[ProbeError, ...],
) -> dict[str, Any]:
    """The body of ``kvmprobe msr --json``."""
    index_list = None
    if sel.index_list is not None:
        index_list = [
            {
                "index": e.index,
                "hex_index": f"{e.index:#x}",
                "name": e.name,
                "aliases": list(e.aliases),
                "known": e.known,
                "origin": str(e.origin),
            }
            for e in sel.index_list
        ]
    return {
        "filter": name_filter,
        "vendor": str(a.vendor),
        "feature_msr_list": (
            None if a.feature_list is None else [f"{i:#x}" for i in a.feature_list]
        ),
        "count": len(sel.features),
        "feature_msrs": [_msr(d) for d in sel.features],
        "unread": [
            {"index": i, "hex_index": f"{i:#x}", "name": msr_name(i)[0], "why": why}
            for i, why in a.unread
        ],
        "msr_index_list": index_list,
        "not_reported": [
            {"index": i, "hex_index": f"{i:#x}", "name": msr_name(i)[0]} for i in sel.known_absent
        ],
        "mitigations": mitigations,
        "probe_errors": [_error(e) for e in errors],
    }


def _mask(leaf: int, reg: str, mask: int) -> dict[str, Any]:
    return {"leaf": f"{leaf:#x}", "register": reg, "mask": f"{mask:#x}"}


def _prop(p: HvProperty) -> dict[str, Any]:
    return {
        "name": p.name,
        "aliases": list(p.aliases),
        "qemu_feature": p.feature,
        "supported": p.supported,
        "passthrough": p.passthrough,
        "skip_passthrough": p.skip_passthrough,
        "needs_bits": [_mask(*m) for m in p.needs],
        "missing_bits": [_mask(*m) for m in p.missing],
        "dependencies": list(p.dependencies),
        "unmet_dependencies": list(p.unmet),
        "requirements": [
            {"needs": str(req), "through": via, "citation": cite}
            for req, cite, via in p.requirements
        ],
        "description": p.description,
    }


def hyperv_body(a: HyperVAnalysis, errors: tuple[ProbeError, ...]) -> dict[str, Any]:
    """The body of ``kvmprobe hyperv --json``."""
    leaves = []
    for leaf in a.leaves:
        leaves.append(
            {
                "leaf": f"{leaf.leaf:#x}",
                "function": leaf.leaf,
                "name": leaf.name,
                "known": leaf.name is not None,
                "description": leaf.description,
                "signatures": {name: text for name, text, _d in leaf.signatures},
                "fields": {f.name: f.value for f in leaf.fields},
                "registers": {
                    r.register: {
                        "value": r.value,
                        "set": [b.name for b in r.bits if b.set],
                        "bits": [
                            {
                                "bit": b.bit,
                                "name": b.kernel_name,
                                "qemu_macro": b.qemu_macro,
                                "set": b.set,
                                "description": b.description,
                            }
                            for b in r.bits
                        ],
                        "remainder": f"{r.remainder:#x}",
                    }
                    for r in leaf.registers
                },
            }
        )
    return {
        "availability": str(a.availability),
        "evidence": list(a.evidence),
        "capabilities": {name: value for name, value in a.caps},
        "error": None if a.error is None else _error(a.error),
        "vendor": a.vendor,
        "interface": a.interface,
        "entries": [e.to_json() for e in a.entries],
        "leaves": leaves,
        "properties": [_prop(p) for p in a.properties],
        "passthrough": list(a.passthrough),
        "probe_errors": [_error(e) for e in errors],
    }
