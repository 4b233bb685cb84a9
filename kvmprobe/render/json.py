"""JSON documents (stdlib only: this path must never import rich)."""

from __future__ import annotations

import json

from kvmprobe import __version__
from kvmprobe.snapshot import JSON_SAFE_MAX, ProbeError, Snapshot
from kvmprobe.vocab import Scope

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from kvmprobe.analysis.caps import CapRow, DecodedValue
    from kvmprobe.analysis.cpuid import FeatureDef
    from kvmprobe.analysis.cpuid_query import Selection as CpuidSelection
    from kvmprobe.analysis.effective import CpuidAnalysis, FeatureResult, FieldResult
    from kvmprobe.analysis.explanation import FieldExplanation
    from kvmprobe.analysis.hyperv import HvProperty, HyperVAnalysis
    from kvmprobe.analysis.msr import DecodedBit, DecodedMsr, MsrAnalysis, Selection
    from kvmprobe.analysis.verify import MsrTrial

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
    """A whole JSON document: its schema, where the facts came from, the body, and every probe
    step that failed (answers that depend on one are null/"unknown" in the body)."""
    return {
        "schema": f"kvmprobe.{kind}/{major}",
        "source": source_object(snap),
        **body,
        "probe_errors": [_error(e) for e in snap.errors],
    }


def dumps(doc: dict[str, Any], terminal: bool | None = None) -> str:
    """The document as text: indented two spaces per level for a person at a terminal;
    otherwise (a pipe, a file) the top two levels indented and everything deeper on one line,
    one list item per line -- still easy to diff and read, and written by json's C encoder,
    several times faster than its indenting one (``terminal`` None: ask standard output)."""
    if terminal is None:
        import sys

        try:
            terminal = sys.stdout is not None and sys.stdout.isatty()
        except (OSError, ValueError, AttributeError):
            terminal = False
    if terminal:
        return json.dumps(doc, indent=2) + "\n"
    return _layered(doc, 0, _one_line_encoder()) + "\n"


def _one_line_encoder() -> Callable[[Any], str]:
    """What ``json.JSONEncoder(separators=(", ", ": ")).encode`` does, with json's C encoder
    made once for the whole document: ``encode`` makes a new one for every value, a quarter of
    the time of a document of a thousand small values (cpuid --json: 4.0 ms to 2.9 ms, as fast
    as one json.dumps call of the document on one line). The standard ``encode`` where this
    Python has no C encoder, or one that does not answer as it does."""
    std = json.JSONEncoder(separators=(", ", ": "))
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return std.encode
    try:  # the arguments JSONEncoder.iterencode gives it
        c_encode = make(
            {}, std.default, json.encoder.encode_basestring_ascii, None, std.key_separator,
            std.item_separator, std.sort_keys, std.skipkeys, std.allow_nan,
        )  # fmt: skip
    except TypeError:
        return std.encode

    def encode(value: Any) -> str:
        return "".join(c_encode(value, 0))

    sample = {"a": [1, -2.5, None, True, "\u00e9\n"], "b": {}, "c": 2**64}
    try:
        if encode(sample) != std.encode(sample):
            return std.encode
    except Exception:  # any failure of the fast path: the standard one
        return std.encode
    return encode


def _layered(value: Any, depth: int, enc: Callable[[Any], str]) -> str:
    if depth >= 2 or not isinstance(value, dict | list) or not value:
        return str(enc(value))
    pad = "  " * (depth + 1)
    if isinstance(value, dict):
        body = ",\n".join(f"{pad}{enc(k)}: {_layered(v, depth + 1, enc)}" for k, v in value.items())
        return "{\n" + body + "\n" + "  " * depth + "}"
    body = ",\n".join(pad + _layered(v, depth + 1, enc) for v in value)
    return "[\n" + body + "\n" + "  " * depth + "]"


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
                **{str(scope): _safe_int(row.values.get(scope)) for scope in Scope},
                "differs": row.differs,
                "decoded": {str(scope): decoded_json(d) for scope, d in row.decoded.items()},
                "text": {str(scope): d.text for scope, d in row.decoded.items()},
                "unknown": {str(scope): why for scope, why in row.failures.items()},
                "description": info.description,
            }
        )
    return {"all": include_zero, "count": len(items), "caps": items}


def feature_identity(f: FeatureDef) -> dict[str, Any]:
    """Which feature: its names and its place in CPUID (every document says it the same way)."""
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
    }


def feature_json(r: FeatureResult) -> dict[str, Any]:
    f, v = r.feature, r.verdict
    return {
        **feature_identity(f),
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
        "given_counts": {status.value: n for status, n in a.tally().given.items()},
        "strings": a.strings,
        "host_cpuid": a.host_available,
        "entries": [e.to_json() for e in snap.supported_cpuid or ()],
        "emulated_entries": [e.to_json() for e in snap.emulated_cpuid or ()],
        "features": out_features,
        "fields": [field_json(fr) for fr in a.fields],
        "xsave_components": [
            {"component": x.number, "size": x.size, "offset": x.offset, "supervisor": x.supervisor}
            for x in a.xsave_components
        ],
        "verification": verification_json(snap),
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


def field_json(fr: FieldResult) -> dict[str, Any]:
    """One multi-bit field (a value) of ``cpuid --json``."""
    fd = fr.field
    return {
        "name": fd.name,
        "where": fd.where,
        "leaf": fd.leaf,
        "subleaf": fd.subleaf,
        "register": fd.register,
        "lo": fd.lo,
        "hi": fd.hi,
        "kvm": fr.kvm,
        "host": fr.host,
        "description": fd.description,
    }


def field_story_json(ex: FieldExplanation) -> dict[str, Any]:
    """``cpuid --explain phys_addr_bits --json``: the field, and what a guest is given."""
    return {
        **field_json(ex.field),
        "guest": ex.guest,
        "guest_unknown": ex.guest_unknown or None,
        "per_vcpu": ex.per_vcpu,
        "compare": None if ex.compare is None else ex.compare.rule.value,
    }


def matched_json(sel: CpuidSelection, msr_bits: Sequence[MsrBitResult] = ()) -> dict[str, Any]:
    """What a FEATURE-FILTER matched, counted as the text summary counts it (``counts`` and
    ``given_counts`` of the document stay those of the whole analysis)."""
    return {
        "features": len(sel.features),
        "fields": len(sel.fields),
        "msr_bits": len(msr_bits),
        "counts": {status.value: n for status, n in sel.counts().items()},
        "given_counts": {status.value: n for status, n in sel.tally().given.items()},
    }


# -- msr and hyperv ---------------------------------------------------------------------------

__all__ = ["hyperv_body", "msr_body"]

_LOW32 = 0xFFFF_FFFF


def _error(e: ProbeError) -> dict[str, Any]:
    return {**e.to_json(), "errno_name": e.errno_name}


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


def _trial(d: DecodedMsr, trial: MsrTrial | None) -> dict[str, Any] | None:
    if trial is None:
        return None
    return {
        "accepted": trial.accepted,
        "why_unknown": trial.why,
        "refused_bits": [
            {"bit": b.position, "name": None if b.row is None else b.row.name}
            for b in trial.refused
        ],
    }


def _msr(d: DecodedMsr, trial: MsrTrial | None = None) -> dict[str, Any]:
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
        "vcpu": _trial(d, trial),
    }
    from kvmprobe.vocab import MsrLayoutKind  # only MSR documents need it

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
    snap: Snapshot | None = None,
) -> dict[str, Any]:
    """The body of ``kvmprobe msr --json``."""
    from kvmprobe.analysis.verify import msr_trial, verification

    v = None if snap is None else verification(snap)
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
        "feature_msrs": [
            _msr(d, None if v is None else msr_trial(v, d.index)) for d in sel.features
        ],
        "unread": [
            {"index": i, "hex_index": f"{i:#x}", "name": _msr_name(i), "why": why}
            for i, why in a.unread
        ],
        "msr_index_list": index_list,
        "not_reported": [
            {"index": i, "hex_index": f"{i:#x}", "name": _msr_name(i)} for i in sel.known_absent
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


def _msr_name(index: int) -> str:
    from kvmprobe.analysis.msr import msr_name

    return msr_name(index)[0]


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


# -- fleet decisions: guest level, consistency, --require, diff, baseline ----------------------

if TYPE_CHECKING:
    from kvmprobe.analysis.baseline import Baseline
    from kvmprobe.analysis.deps import Finding
    from kvmprobe.analysis.diff import DiffItem, DiffResult
    from kvmprobe.analysis.guest import PsabiSummary
    from kvmprobe.analysis.levels import LevelReport
    from kvmprobe.analysis.profile import HostProfile
    from kvmprobe.analysis.require import RequireResult
    from kvmprobe.snapshot import CpuidEntry

_JSON_SAFE = 1 << 53


def _big(v: int | None) -> int | str | None:
    """Values above 2^53 as hex strings (JSON readers lose precision beyond)."""
    if v is None or v < _JSON_SAFE:
        return v
    return f"{v:#x}"


def _missing(report: LevelReport) -> dict[str, list[dict[str, Any]]]:
    return {
        str(r.level): [
            {
                "requirement": s.requirement.psabi_name,
                "feature": s.requirement.feature,
                "kind": str(s.requirement.kind),
                "where": s.requirement.where,
                "offered": str(s.answer.offered),
                "reason": str(s.reason),
            }
            for s in r.missing
        ]
        for r in report.levels
    }


def psabi_json(s: PsabiSummary) -> dict[str, Any]:
    """``psabi`` of ``kvmprobe cpuid --json``: the guest's level, the host CPU's own, and per
    level what is missing and why (emulated-only features do not count)."""
    return {
        "guest": str(s.guest.highest),
        "host": None if s.host is None else str(s.host.highest),
        "host_source": None if s.host_source is None else str(s.host_source),
        "host_cpuid_error": s.host_cpuid_error,
        "count_emulated": s.guest.count_emulated,
        "missing": _missing(s.guest),
        "emulated": {
            str(r.level): [q.feature for q in r.emulated] for r in s.guest.levels if r.emulated
        },
        "host_missing": None if s.host is None else _missing(s.host),
    }


def consistency_json(findings: tuple[Finding, ...]) -> list[dict[str, Any]]:
    """``consistency``: contradictions inside KVM's own CPUID answer, with evidence."""
    return [
        {
            "check": str(f.check),
            "features": list(f.features),
            "components": list(f.components),
            "evidence": f.evidence,
            "raw": [{"where": w, "value": f"{v:#010x}"} for w, v in f.raw],
        }
        for f in findings
    ]


def require_json(results: list[RequireResult]) -> dict[str, Any]:
    """``require``: every item for every subject (host or baseline), met or not and why."""
    return {
        "met": all(r.met for r in results),
        "subjects": [
            {
                "subject": r.subject,
                "met": r.met,
                "items": [
                    {
                        "item": o.requirement.text,
                        "kind": str(o.requirement.kind),
                        "name": o.requirement.label,
                        "met": o.met,
                        "offered": str(o.offered),
                        "why": o.why,
                    }
                    for o in r.outcomes
                ],
            }
            for r in results
        ],
    }


def _host_json(p: HostProfile) -> dict[str, Any]:
    return {
        "file": p.name,
        "kernel_release": p.kernel_release,
        "vendor": p.vendor,
        "signature": None if p.signature is None else list(p.signature),
        "probe_errors": [_error(e) for e in p.errors],
    }


def _diff_item(i: DiffItem) -> dict[str, Any]:
    return {
        "kind": i.kind,
        "name": i.name,
        "where": i.where,
        "change": str(i.change),
        "rule": str(i.rule),
        "a": i.a,
        "b": i.b,
        "reason": i.reason,
        "blocks": i.blocks,
        "blocks_reverse": i.blocks_reverse,
    }


def _answer_word(value: bool | None) -> str:
    from kvmprobe.vocab import Offered

    return str(Offered.UNKNOWN if value is None else Offered.YES if value else Offered.NO)


def diff_document(
    d: DiffResult, sources: tuple[Snapshot, Snapshot], require: list[RequireResult] | None
) -> dict[str, Any]:
    """``kvmprobe diff --json`` (``kvmprobe.diff/1``)."""
    from kvmprobe.vocab import Change

    a_src, b_src = (source_object(s) for s in sources)
    doc: dict[str, Any] = {
        "schema": "kvmprobe.diff/1",
        "source": {"kind": "diff", "kvmprobe_version": __version__, "a": a_src, "b": b_src},
        "irqchip": d.a.irqchip,
        "disable_exits": list(d.a.disable_exits),
        "a": _host_json(d.a),
        "b": _host_json(d.b),
        "can_take": d.can_take is True,
        "reverse": d.reverse is True,
        "answer": _answer_word(d.can_take),
        "reverse_answer": _answer_word(d.reverse),
        "counts": {str(c): len(d.group(c)) for c in Change},
        "lost": [_diff_item(i) for i in d.group(Change.LOST)],
        "added": [_diff_item(i) for i in d.group(Change.ADDED)],
        "differs": [_diff_item(i) for i in d.group(Change.DIFFERS)],
        "unknown": [_diff_item(i) for i in d.group(Change.UNKNOWN)],
        "notes": [_diff_item(i) for i in d.group(Change.NOTE)],
        "probe_errors": [_error(e) for s in sources for e in s.errors],
    }
    if require is not None:
        doc["require"] = require_json(require)
    return doc


def _entry(e: CpuidEntry) -> dict[str, int]:
    return e.to_json()


def baseline_document(
    b: Baseline,
    skipped: list[tuple[str, str]],
    require: list[RequireResult] | None,
    level: LevelReport,
) -> dict[str, Any]:
    """``kvmprobe baseline --json`` (``kvmprobe.baseline/1``).

    Built for exporters: ``features`` keep their CPUID locations (and QEMU names),
    ``fields`` their common values, ``xsave_components`` their common size and offset, and
    ``cpuid`` holds the baseline guest's register values as KVM_SET_CPUID2-style entries."""
    from kvmprobe.analysis.profile import feature_space, positions

    space = feature_space()
    feats = []
    for pos in positions(b.features):
        f = space.feature(pos)
        feats.append(feature_identity(f))
    left = []
    for lo in b.left_out:
        hosts: dict[str, list[str]] = {}
        for x in lo.lacking:
            hosts.setdefault(str(x.answer.why), []).append(x.host)
        left.append(
            {
                "name": lo.name,
                "qemu": lo.feature.qemu_name,
                "where": lo.feature.where,
                "giving": lo.giving,
                "lacking": len(lo.lacking),
                "dropped": lo.dropped,
                "hosts_lacking": hosts,
            }
        )
    doc: dict[str, Any] = {
        "schema": "kvmprobe.baseline/1",
        "source": {"kind": "fleet", "kvmprobe_version": __version__, "files": len(b.hosts)},
        "irqchip": b.irqchip,
        "disable_exits": list(b.disable_exits),
        "hosts": list(b.hosts),
        "skipped": [{"file": f, "error": msg} for f, msg in skipped],
        "psabi": {"guest": str(level.highest), "missing": _missing(level)},
        "count": len(feats),
        "features": feats,
        "left_out": left,
        "dropped": dict(b.dropped),
        "kept_inconsistent": dict(b.inconsistent),
        "vendor": b.vendor,
        "vendors": dict(b.vendors),
        "fields": [
            {
                "name": f.name,
                "where": f.where,
                "rule": str(f.rule),
                "value": f.value,
                "lowest": f.lowest,
                "highest": f.highest,
                "unknown_on": list(f.unknown),
                "why": f.why,
            }
            for f in b.fields
        ],
        "common_fields": dict(b.common_fields),
        "xcr0_mask": None if b.xcr0 is None else f"{b.xcr0:#x}",
        "xsave_components": [
            {"component": c.number, "size": c.size, "offset": c.offset, "supervisor": c.supervisor}
            for c in b.xsave_components
        ],
        "capabilities": [
            {
                "name": c.name,
                "rule": str(c.rule),
                "value": _big(c.value),
                "lowest": _big(c.lowest),
                "highest": _big(c.highest),
                "unknown_on": list(c.unknown),
                "why": c.why,
            }
            for c in b.caps
        ],
        "msr_index_list": None
        if b.msr_index_list is None
        else [f"{i:#x}" for i in sorted(b.msr_index_list)],
        "msr_index_list_unknown_on": list(b.msr_unknown),
        "arch_capabilities": None if b.arch_capabilities is None else f"{b.arch_capabilities:#x}",
        "arch_capabilities_unknown_on": list(b.arch_caps_unknown),
        "cpuid": [_entry(e) for e in b.registers()],
        "probe_errors": {h: [_error(e) for e in errs] for h, errs in b.errors.items()},
    }
    if require is not None:
        doc["require"] = require_json(require)
    return doc


def verification_json(snap: Snapshot) -> dict[str, Any]:
    """What a real vCPU refused of KVM's advertisement (null ``refusals`` when not tried)."""
    from kvmprobe.analysis.verify import verification

    v = verification(snap)
    return {
        "tried": v.tried,
        "refusals": None
        if not v.tried
        else [
            {
                "what": r.attempt.what,
                "call": r.what,
                "target": r.attempt.target,
                "value": None if r.attempt.value is None else f"{r.attempt.value:#x}",
                "errno_name": r.attempt.errno_name,
                "refused_bits": [
                    {"bit": b.position, "name": b.name, "qemu": b.qemu_name,
                     "libvirt": b.libvirt_name}
                    for b in r.bits
                ],
            }
            for r in v.refusals
        ],
        "could_not_ask": list(v.could_not_ask),
    }  # fmt: skip


def _safe_int(value: int | None) -> int | str | None:
    """A number JSON readers hold exactly, or a hex string above 2^53 (no reader loses it)."""
    if value is None or abs(value) <= JSON_SAFE_MAX:
        return value
    return f"{value:#x}"


if TYPE_CHECKING:
    from kvmprobe.analysis.msr_features import MsrBitResult


def msr_bit_json(r: MsrBitResult) -> dict[str, Any]:
    """One feature-MSR bit as ``cpuid --json`` shows it (``msr_bits``): its names, KVM's value,
    the answer (``effective`` null when unknown), why, and the vCPU attempt."""
    b = r.bit
    a = r.attempt
    ann = r.announced_by
    return {
        "name": b.feature_name,
        "kernel_name": b.kernel_name,
        "qemu": b.qemu_name,
        "libvirt": b.libvirt_name,
        "cpuinfo": b.cpuinfo_name,
        "msr": r.index if r.index is not None else (r.ref.msrs or (None,))[0],
        "bit": b.lo,
        "listed": r.index is not None,
        "advertised": None if r.advertised is None else f"{r.advertised:#x}",
        "kvm": r.set_in_advertised,
        "effective": r.effective,
        "offered": r.answer.offered.value,
        "reason": r.why,
        "attempt": None if a is None else a.to_json(),
        "announced_by": None
        if ann is None
        else {
            "name": ann.feature.name,
            "where": ann.feature.where,
            "status": ann.verdict.status.value,
            "effective": ann.verdict.effective,
            "quirks": list(ann.verdict.quirks),
        },
    }
