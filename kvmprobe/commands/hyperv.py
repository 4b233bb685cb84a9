"""``kvmprobe hyperv``: the Hyper-V enlightenments KVM offers."""

from __future__ import annotations

from kvmprobe.commands.common import Invocation, get_snapshot
from kvmprobe.limits import DEFAULT_DEVICE
from kvmprobe.render.output import emit


def hyperv(
    inv: Invocation,
    as_json: bool = False,
    from_file: str | None = None,
    device: str = DEFAULT_DEVICE,
) -> None:
    """The Hyper-V enlightenments KVM offers (KVM_GET_SUPPORTED_HV_CPUID on /dev/kvm).

    Each bit of the Hyper-V leaves 0x40000000-0x4000000A, decoded; for every QEMU hv-*
    property whether KVM supports it, whether hv-passthrough would turn it on and what else it
    needs (an in-kernel irqchip, nested VMX). When KVM was built without Hyper-V emulation this
    says so, with the evidence, and exits 0.
    """
    from kvmprobe.analysis import hyperv as h

    snap = get_snapshot(inv, from_file, device)
    a = h.analyse(snap)
    if as_json:
        from kvmprobe.render import json as rj
        from kvmprobe.render.json import hyperv_body

        emit(rj.dumps(rj.document("hyperv", snap, hyperv_body(a, snap.errors))))
    else:
        from kvmprobe.render.hyperv_report import hyperv_lines

        inv.emit_lines(hyperv_lines(snap, a, inv.term()))
