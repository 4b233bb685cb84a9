"""``kvmprobe doctor``: why KVM does or does not work here."""

from __future__ import annotations

from kvmprobe.commands.common import Invocation, exit_with, get_snapshot
from kvmprobe.limits import DEFAULT_DEVICE
from kvmprobe.render.output import emit


def doctor(
    inv: Invocation,
    as_json: bool = False,
    from_file: str | None = None,
    device: str = DEFAULT_DEVICE,
) -> None:
    """Why KVM does or does not work here, and what to do about it.

    Checks the device node and access rights, the KVM modules and their parameters, the API,
    readiness for QEMU, Firecracker and cloud-hypervisor, and nested virtualization. Exit
    status: 0 usable, 3 not available, 4 permission denied, 5 a VMM's requirement missing.
    """
    from kvmprobe.analysis.doctor import diagnose

    if from_file:
        snap = get_snapshot(inv, from_file, device)
    else:
        from kvmprobe.analysis.guest_cpuid import effective_tables
        from kvmprobe.kvm.probe import examine

        snap = examine(device, effective_tables)
    report = diagnose(snap)
    if as_json:
        from kvmprobe.render import json as rj

        emit(rj.dumps(rj.doctor_document(snap, report)))
    else:
        from kvmprobe.render.doctor_report import doctor_lines

        inv.emit_lines(doctor_lines(snap, report, inv.term()))
    exit_with(report.verdict.exit_status)
