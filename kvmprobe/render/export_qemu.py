"""``kvmprobe export qemu``: a QEMU ``-cpu`` argument, with comment lines for what it cannot
say. Stdlib only."""

from __future__ import annotations

from collections.abc import Sequence

from kvmprobe.analysis.export import QEMU_NAMES_FROM, QemuCpu
from kvmprobe.analysis.guest_cpuid import GuestCpu, baseline_notes
from kvmprobe.render.text import folded
from kvmprobe.snapshot import Snapshot

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def qemu_text(g: GuestCpu, q: QemuCpu, files: Sequence[str] = ()) -> str:
    fms = g.signature
    sig = "" if fms is None else " family {} model {} stepping {}".format(*fms)
    what = f"the baseline of {len(g.hosts)} snapshots, " if g.is_baseline else ""
    lines = [
        f"# kvmprobe export qemu: {what}{g.vendor or 'unknown vendor'}{sig}, irqchip {g.irqchip}"
        + (f", disable-exits {','.join(g.disable_exits)}" if g.disable_exits else ""),
    ]
    lines += [f"# {note}" for note in baseline_notes(g)]
    lines.append(f"# assumes the CPU models and property names of {q.qemu_version}")
    lines.append(f"# QEMU feature names by CPUID bit as of {QEMU_NAMES_FROM} (target/i386/cpu.c)")
    if q.base == "host":
        lines.append(
            "# base: QEMU's host model (what KVM_GET_SUPPORTED_CPUID offers), minus what this "
            "guest must not have; enforce: QEMU stops rather than give less"
        )
    else:
        lines.append(f"# base: {q.base}, {q.choice}; enforce: QEMU stops rather than give less")
    for names, what in (
        (q.not_addable, "effective but not offered by KVM, so QEMU's enforce would refuse them "
         "(set them in KVM_SET_CPUID2 yourself, see 'kvmprobe export cpuid2')"),
        (q.not_in_version, "differences this QEMU version has no property for (it cannot be "
         "asked for them; its host model leaves such bits out)"),
        (q.unnamed, "differences QEMU has no property name for (+: effective, not in the base; "
         "-: in the base, not effective)"),
        (q.derived, "set by QEMU itself from the features above (XSAVE components, AMD copies "
         "of leaf 1 EDX)"),
        (q.unmigratable, "left out of this baseline: QEMU will not migrate a guest that has "
         "them (invtsc needs a fixed tsc-frequency=; add it with one if you do not migrate)"),
        (q.unchecked, "model features kvmprobe cannot check (QEMU's enforce checks them)"),
    ):  # fmt: skip
        if names:
            lines.append(f"# {what}: " + " ".join(names))
    comments = [part for line in lines for part in folded(line[2:], "# ", "#   ")]
    return "\n".join([*comments, f"-cpu {q.value}"]) + "\n"


def qemu_document(snap: Snapshot, g: GuestCpu, q: QemuCpu) -> dict[str, Any]:
    """``export qemu --json``: the ``-cpu`` value and everything its comment lines say."""
    from kvmprobe.render import json as rj
    from kvmprobe.render.export_cpuid2 import guest_json

    body = {
        "guest": guest_json(g),
        "cpu": q.value,
        "base": q.base,
        "choice": q.choice,
        "qemu_version": q.qemu_version,
        "names_from": QEMU_NAMES_FROM,
        "plus": list(q.plus),
        "minus": list(q.minus),
        "not_addable": list(q.not_addable),
        "not_in_version": list(q.not_in_version),
        "unnamed": list(q.unnamed),
        "derived": list(q.derived),
        "unchecked": list(q.unchecked),
        "unmigratable": list(q.unmigratable),
        "notes": baseline_notes(g),
    }
    return rj.document("export-qemu", snap, body)


def qemu_json(snap: Snapshot, g: GuestCpu, q: QemuCpu) -> str:
    from kvmprobe.render import json as rj

    return rj.dumps(qemu_document(snap, g, q))
