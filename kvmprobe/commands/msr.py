"""``kvmprobe msr``: feature MSRs, decoded bit by bit."""

from __future__ import annotations

from kvmprobe.commands.common import Invocation, get_snapshot, warn
from kvmprobe.errors import ExitStatus, KvmprobeError
from kvmprobe.limits import DEFAULT_DEVICE
from kvmprobe.render.output import emit


def msr(
    inv: Invocation,
    name_filter: str | None = None,
    as_json: bool = False,
    from_file: str | None = None,
    device: str = DEFAULT_DEVICE,
) -> None:
    """Feature MSRs KVM reports, decoded bit by bit, and the MSRs KVM saves and restores.

    Feature MSRs (KVM_GET_MSR_FEATURE_INDEX_LIST, values from KVM_GET_MSRS on /dev/kvm) tell a
    guest which speculation mitigations it may skip (ARCH_CAPABILITIES), what its PMU can do
    (PERF_CAPABILITIES) and, for nested guests, every VMX control. FILTER is an MSR number
    (0x10a), part of an MSR name (arch_capabilities) or a bit name as Linux, QEMU or libvirt
    spell it (MDS_NO, mds-no, vmx-ept).
    """
    from kvmprobe.analysis import msr as m

    snap = get_snapshot(inv, from_file, device)
    a = m.analyse(snap)
    sel = m.select(a, name_filter)
    if name_filter and sel.empty and not sel.known_absent:
        raise KvmprobeError(
            f"no MSR or MSR bit matches {name_filter!r}",
            "give an MSR number (0x10a), part of an MSR name (arch_capabilities) or a bit name "
            "(mds-no, vmx-ept); 'kvmprobe msr' lists them all",
            ExitStatus.USAGE,
        )
    mitigations = m.mitigation_summary(snap)
    if as_json:
        from kvmprobe.render import json as rj
        from kvmprobe.render.json import msr_body

        body = msr_body(a, sel, name_filter, mitigations, snap.errors, snap)
        emit(rj.dumps(rj.document("msr", snap, body)))
    else:
        from kvmprobe.render.msr_report import msr_lines

        lines = msr_lines(
            snap, a, sel, inv.term(),
            name_filter=name_filter, mitigations=mitigations, errors=a.errors,
        )  # fmt: skip
        inv.emit_lines(lines)
    if sel.empty and sel.known_absent:
        names = ", ".join(m.msr_name(i)[0] for i in sel.known_absent)
        warn(f"{name_filter!r} names {names}, which KVM does not report here")
