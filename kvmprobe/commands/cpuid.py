"""``kvmprobe cpuid``: the CPUID features a guest can really be given, and why."""

from __future__ import annotations

from kvmprobe.commands.common import (
    Invocation,
    get_snapshot,
    parse_exits,
    parse_require,
    print_require,
    require_exit,
    unknown_feature,
    warn_refused_exits,
)
from kvmprobe.errors import ExitStatus, KvmprobeError
from kvmprobe.limits import DEFAULT_DEVICE
from kvmprobe.render.output import emit
from kvmprobe.vocab import Irqchip

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _check_cpuid_require(a: Any, reqs: Any) -> Any:
    if reqs is None:
        return None
    from kvmprobe.analysis.guest import analysis_subject
    from kvmprobe.analysis.require import check

    return [check(reqs, analysis_subject(a))]


def cpuid(
    inv: Invocation,
    feature_filter: str | None = None,
    irqchip: str = Irqchip.KERNEL.value,
    disable_exits: str | None = None,
    show_host: bool = False,
    show_all: bool = False,
    raw: bool = False,
    explain: str | None = None,
    require: str | None = None,
    as_json: bool = False,
    from_file: str | None = None,
    device: str = DEFAULT_DEVICE,
) -> None:
    """The CPUID features a guest can really be given, with documented quirks applied.

    FEATURE-FILTER selects features, values, leaf notes and --raw entries: a name in any
    spelling --explain accepts (x2apic, tsc-deadline, X86_FEATURE_AVX, sse3) is always shown
    with everything whose name contains it; a location selects a bit, a register or a leaf
    (0x1.0.ecx[24], 0x1.0.ecx, 0x40000001).

    The report ends with the x86-64 level a guest can be given (and the host's own) and warns
    where KVM's answer contradicts itself. With --require, exit status 5 when the guest lacks
    an item.
    """
    from kvmprobe.analysis import cpuid_query as cq
    from kvmprobe.analysis import effective
    from kvmprobe.analysis.quirks import Options

    reqs = parse_require(require)
    opts = Options(irqchip=Irqchip(irqchip), disable_exits=parse_exits(disable_exits))
    unused: dict[str, str] = {}
    if explain:
        with_explain = "with --explain (it shows one feature's or value's story)"
        unused |= dict.fromkeys(("feature_filter", "raw", "show_host", "show_all"), with_explain)
    if as_json:  # the document is the same with and without them
        unused.setdefault("raw", "with --json (the document always carries the raw entries)")
        unused.setdefault("show_host", "with --json (the document always has the host's CPUID)")
        unused.setdefault("show_all", "with --json (the document always lists every feature)")
    elif raw:
        for name in ("show_host", "show_all"):
            unused.setdefault(name, "with --raw (it shows KVM's entries only)")
    inv.warn_unused(unused)

    target = None
    msr_explain: Any = ()  # feature-MSR bits --explain names (mds-no), when no CPUID feature
    told = None  # what --explain names: a feature, MSR bits, a value, a bit no table names
    if explain:
        told = cq.explain_target(explain)
        if told is None:
            raise unknown_feature(explain)
        if told.refusal is not None:
            raise KvmprobeError(*told.refusal, ExitStatus.USAGE)
        target, alias_of, msr_explain = told.feature, told.alias_of, told.msr_bits
    flt = None
    msr_refs: Any = ()  # feature-MSR bits the filter names
    if feature_filter:
        flt = cq.parse_filter(feature_filter)
        if flt.exact is None:
            from kvmprobe.analysis.msr import lookup_bit

            msr_refs = lookup_bit(feature_filter)
        if flt.exact is None and flt.location is None and not msr_refs and not _names_anything(flt):
            raise unknown_feature(feature_filter)
    # the text report does not show the vCPU verification; JSON carries it
    snap = get_snapshot(inv, from_file, device, named_caps=True)
    if snap.supported_cpuid is None:
        raise KvmprobeError(
            "no KVM_GET_SUPPORTED_CPUID answer in "
            + ("the snapshot" if from_file else "the probe"),
            "see the 'errors' list in 'kvmprobe record' output",
        )
    refused, exits_known = warn_refused_exits(snap, opts)
    a = effective.analyse(snap, opts)
    required = _check_cpuid_require(a, reqs)
    if msr_explain:
        _explain_msr_bits(inv, a, msr_explain, explain or "", as_json, required)
        return
    if told is not None and told.field is not None:
        _explain_value(inv, a, told, as_json, required)
        return
    if told is not None and told.bit is not None:  # a bit no table names: KVM sets it, or no
        target = next((r.feature for r in a.features if r.feature.loc == told.bit), None)
        if target is None:
            where = told.text.strip()
            raise KvmprobeError(
                f"no feature kvmprobe knows is at {where}, and KVM does not set that bit here",
                f"'kvmprobe cpuid {where.rsplit('[', 1)[0]}' shows the whole register",
                ExitStatus.USAGE,
            )
    if target is not None:
        from kvmprobe.analysis.explanation import explain as story_of

        story = story_of(a, target)
        assert story is not None
        if as_json:
            from kvmprobe.render import json as rj

            body = rj.cpuid_body(a, [story.result], include_steps=True)
            if required is not None:
                body["require"] = rj.require_json(required)
            emit(rj.dumps(rj.document("cpuid", snap, body)))
        else:
            from kvmprobe.render.cpuid_report import explain_lines
            from kvmprobe.render.text import safe as safe_text

            typed = safe_text(explain) if explain and alias_of is not None else None
            inv.emit_lines(explain_lines(a, story, inv.term(), typed))
            print_require(inv, required)
        require_exit(required, as_json)
        return
    sel = cq.select(a, flt)
    msr_bits: Any = ()
    if msr_refs:
        from kvmprobe.analysis.msr_features import bit_result

        msr_bits = tuple(bit_result(a, ref) for ref in msr_refs)
        if not sel.features:  # only MSR bits match: the report shows them alone
            why = "when FEATURE-FILTER names feature-MSR bits only"
            inv.warn_unused({k: why for k in ("raw", "show_host", "show_all") if k not in unused})
    if flt is not None and sel.empty and not msr_bits:
        raise KvmprobeError(
            f"nothing in KVM's CPUID answer matches {feature_filter!r}",
            "a location must name a leaf KVM answers: see 'kvmprobe cpuid --raw'",
            ExitStatus.USAGE,
        )
    if as_json:
        from kvmprobe.render import json as rj

        body = rj.cpuid_body(a, list(sel.features))
        if flt is not None:
            body["filter"] = flt.text
            body["fields"] = [f for f in body["fields"] if _field_selected(f, sel)]
            ids = {n.quirk.id for n in sel.notes}
            body["leaf_notes"] = [n for n in body["leaf_notes"] if n["quirk"] in ids]
            body["matched"] = rj.matched_json(sel, msr_bits)
        from kvmprobe.analysis.guest import cpuid_consistency, psabi_summary

        body["psabi"] = rj.psabi_json(psabi_summary(a))
        body["consistency"] = rj.consistency_json(cpuid_consistency(snap))
        if required is not None:
            body["require"] = rj.require_json(required)
        if msr_bits:
            body["msr_bits"] = [rj.msr_bit_json(r) for r in msr_bits]
        emit(rj.dumps(rj.document("cpuid", snap, body)))
        require_exit(required, as_json)
        return
    from kvmprobe.render import cpuid_report as cr

    term = inv.term()
    if raw and (sel.features or not msr_bits):  # MSR bits alone have no CPUID registers
        inv.emit_lines(cr.raw_lines(sel, term, "KVM_GET_SUPPORTED_CPUID entries"))
        print_require(inv, required)
        require_exit(required, as_json)
        return
    view = cr.View(
        selection=sel,
        flt=flt,
        show_host=show_host,
        show_all=show_all,
        refused=tuple(refused),
        exits_known=exits_known,
        msr_bits=msr_bits,  # feature-MSR bits the filter names (mds-no; ssb-no: CPUID too)
    )
    inv.emit_lines(cr.cpuid_lines(a, view, term))
    print_require(inv, required)
    require_exit(required, as_json)


def _explain_msr_bits(
    inv: Invocation, a: Any, refs: Any, typed: str, as_json: bool, required: Any
) -> None:
    """``cpuid --explain mds-no``: a feature-MSR bit's story (QEMU spells two EPT/VPID
    capabilities alike, so a name can explain more than one bit)."""
    from kvmprobe.analysis.msr_features import bit_result

    results = [bit_result(a, ref) for ref in refs]
    if as_json:
        from kvmprobe.render import json as rj

        body = rj.cpuid_body(a, [], include_steps=True)
        body["msr_bits"] = [rj.msr_bit_json(r) for r in results]
        if required is not None:
            body["require"] = rj.require_json(required)
        emit(rj.dumps(rj.document("cpuid", a.snap, body)))
    else:
        from kvmprobe.render.msr_bits_report import explain_lines
        from kvmprobe.render.text import safe as safe_text

        lines = []
        for r in results:
            names = {n.lower().replace("_", "-") for n in r.bit.names()}
            shown = typed.lower().replace("_", "-") not in names
            lines += explain_lines(r, inv.term(), safe_text(typed) if shown else None)
        inv.emit_lines(lines)
        print_require(inv, required)
    require_exit(required, as_json)


def _explain_value(inv: Invocation, a: Any, told: Any, as_json: bool, required: Any) -> None:
    """``cpuid --explain phys_addr_bits`` (or its location): one value's story."""
    from kvmprobe.analysis.explanation import explain_field

    story = explain_field(a, told.field)
    assert story is not None
    if as_json:
        from kvmprobe.render import json as rj

        body = rj.cpuid_body(a, [], include_steps=True)
        body["fields"] = [rj.field_story_json(story)]
        if required is not None:
            body["require"] = rj.require_json(required)
        emit(rj.dumps(rj.document("cpuid", a.snap, body)))
    else:
        from kvmprobe.analysis.cpuid_query import parse_location
        from kvmprobe.render.cpuid_report import field_explain_lines
        from kvmprobe.render.text import safe

        loc = parse_location(told.text)  # bits within the value, not the value's own: say so
        inside = loc is not None and loc != parse_location(told.field.where)
        typed = safe(told.text.strip()) if inside else None
        inv.emit_lines(field_explain_lines(a, story, inv.term(), typed))
        print_require(inv, required)
    require_exit(required, as_json)


def _names_anything(flt: Any) -> bool:
    """Does a name filter match any feature or value name in the tables?"""
    from kvmprobe.analysis import cpuid as cp

    return any(flt.matches_feature(f) for f in cp.features()) or any(
        flt.matches_field(fd) for fd in cp.fields()
    )


def _field_selected(item: dict[str, Any], sel: Any) -> bool:
    return any(fr.field.where == item["where"] and fr.field.name == item["name"]
               for fr in sel.fields)  # fmt: skip
