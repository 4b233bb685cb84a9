"""``kvmprobe export libvirt``: a libvirt ``<cpu>`` element, with XML comments for what it
cannot say. Stdlib only."""

from __future__ import annotations

from kvmprobe.analysis.export import LIBVIRT_NAMES_FROM, LibvirtCpu
from kvmprobe.analysis.guest_cpuid import GuestCpu, baseline_notes
from kvmprobe.render.text import folded
from kvmprobe.snapshot import Snapshot

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _comment(text: str) -> str:
    """One XML comment, folded over lines ("--" may not appear inside one)."""
    return "\n".join(folded(text.replace("--", "- -") + " -->", "<!-- ", "     "))


def libvirt_xml(g: GuestCpu, c: LibvirtCpu) -> str:
    fms = g.signature
    sig = "" if fms is None else " family {} model {} stepping {}".format(*fms)
    setup = f"irqchip {g.irqchip}" + (
        f", disable-exits {','.join(g.disable_exits)}" if g.disable_exits else ""
    )
    what = f"the baseline of {len(g.hosts)} snapshots, " if g.is_baseline else ""
    lines = [
        _comment(f"kvmprobe export libvirt: {what}{g.vendor or 'unknown vendor'}{sig}, {setup}"),
        *(_comment(note) for note in baseline_notes(g)),
        _comment(f"libvirt feature and model names as of {LIBVIRT_NAMES_FROM}"),
    ]
    if c.not_addable:
        lines.append(
            _comment(
                "effective but not offered by KVM, so libvirt could not give them (set them in "
                "KVM_SET_CPUID2 yourself, see 'kvmprobe export cpuid2'): " + " ".join(c.not_addable)
            )
        )
    if c.unnamed:
        lines.append(
            _comment("effective, but libvirt has no CPUID feature name for: " + " ".join(c.unnamed))
        )
    if c.msr_unnamed:
        lines.append(
            _comment(
                "KVM advertises these feature-MSR bits but a guest is not given them (refused "
                "by a vCPU or unverified), and libvirt has no name for them: "
                + " ".join(c.msr_unnamed)
            )
        )
    if c.unmigratable:
        lines.append(
            _comment(
                "left out of this baseline: QEMU will not migrate a guest that has them: "
                + " ".join(c.unmigratable)
            )
        )
    if c.host_model_lacks:
        lines.append(
            _comment(
                "left out although KVM offers them: QEMU's host model does not turn them on by "
                "itself, and libvirt judges a CPU against that host model, so requiring them "
                "would make it call this CPU incompatible (hypervisor-cpu-compare, migration); "
                "add <feature policy='require'/> for them only where nothing compares: "
                + " ".join(c.host_model_lacks)
            )
        )
    lines.append("<cpu mode='custom' match='exact'>")
    lines.append(f"  <model fallback='forbid'>{c.model}</model>")
    if c.vendor is not None:
        lines.append(f"  <vendor>{c.vendor}</vendor>")
    for policy, names in (("require", c.require), ("disable", c.disable)):
        lines += [f"  <feature policy='{policy}' name='{n}'/>" for n in names]
    # feature-MSR bits (libvirt defines them by MSR 0x10a...): effective ones, then the ones
    # KVM advertises that a guest is not given, which libvirt's host-model would copy
    for policy, names in (("require", c.msr_require), ("disable", c.msr_disable)):
        lines += [f"  <feature policy='{policy}' name='{n}'/>" for n in names]
    lines.append("</cpu>")
    return "\n".join(lines) + "\n"


def libvirt_document(snap: Snapshot, g: GuestCpu, c: LibvirtCpu) -> dict[str, Any]:
    """``export libvirt --json``: the ``<cpu>`` element (with its comments) and its parts."""
    from kvmprobe.render import json as rj
    from kvmprobe.render.export_cpuid2 import guest_json

    body = {
        "guest": guest_json(g),
        "xml": libvirt_xml(g, c),
        "model": c.model,
        "vendor": c.vendor,
        "names_from": LIBVIRT_NAMES_FROM,
        "require": list(c.require),
        "disable": list(c.disable),
        "msr_require": list(c.msr_require),
        "msr_disable": list(c.msr_disable),
        "not_addable": list(c.not_addable),
        "unnamed": list(c.unnamed),
        "msr_unnamed": list(c.msr_unnamed),
        "unmigratable": list(c.unmigratable),
        "host_model_lacks": list(c.host_model_lacks),
        "notes": baseline_notes(g),
    }
    return rj.document("export-libvirt", snap, body)


def libvirt_json(snap: Snapshot, g: GuestCpu, c: LibvirtCpu) -> str:
    from kvmprobe.render import json as rj

    return rj.dumps(libvirt_document(snap, g, c))
