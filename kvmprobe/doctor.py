"""``kvmprobe doctor``: gather the facts, run the checks, print the report, give the status.

The CLI command is a thin wrapper around ``run_doctor``. Working live, device access is
looked at first (kvmprobe.kvm.access); the device is probed only when it opens, and when it
does not, the kernel checks still run on what /sys and /proc show. An unusable device is a
FAIL in the report with exit status 3 or 4, never an exception. A bad ``--from`` file is
still a KvmprobeError (exit 1), as for every other command.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from kvmprobe.analysis.doctor import DoctorOptions, DoctorReport, Facts, ProbeFailure, diagnose
from kvmprobe.errors import ExitStatus, KvmprobeError, errno_name
from kvmprobe.snapshot import Snapshot

JSON_KIND = "doctor"


def _warn(message: str) -> None:
    print(f"kvmprobe: warning: {message}", file=sys.stderr)


def _probe(
    device: str, probe: Callable[[str], Snapshot]
) -> tuple[Snapshot | None, ProbeFailure | None]:
    """The probe's snapshot, or why it could not be taken (never an exception for a device
    that misbehaves)."""
    try:
        return probe(device), None
    except KvmprobeError as e:
        return None, ProbeFailure(e.message, e.hint, int(e.status))
    except OSError as e:  # an ioctl the device layer does not guard
        message = f"probing {device} failed: {errno_name(e.errno)}: {e.strerror or e}"
        hint = "the device opened but stopped answering; look at 'dmesg | grep -i kvm'"
        return None, ProbeFailure(message, hint, int(ExitStatus.KVM_UNAVAILABLE))


def gather_live(device: str) -> tuple[Facts, Snapshot | None]:
    """Device access facts, then the probe when the device opens, else host facts alone."""
    from kvmprobe.kvm import access as acc
    from kvmprobe.kvm import host as hostmod
    from kvmprobe.kvm.probe import Recorder, probe

    access = acc.gather(device)
    snap: Snapshot | None = None
    failure: ProbeFailure | None = None
    if access.open_tried and access.open_errno is None:
        snap, failure = _probe(device, probe)
    if snap is not None:
        host = snap.host
    else:
        rdev = access.node.rdev if access.node is not None else None
        host = hostmod.collect(Recorder(), rdev)
    return Facts(device=device, host=host, access=access, probe_failure=failure), snap


def gather_recorded(from_file: str) -> tuple[Facts, Snapshot]:
    from kvmprobe.snapshot import load

    snap, warnings = load(from_file)
    for w in warnings:
        _warn(f"{from_file}: {w}")
    return Facts(device=snap.device, host=snap.host), snap


def _source_snapshot(facts: Facts, snap: Snapshot | None) -> Snapshot:
    """The snapshot the JSON ``source`` object describes (a stand-in when nothing opened)."""
    if snap is not None:
        return snap
    return Snapshot(device=facts.device, api_version=None, host=facts.host, source="live")


def render_json(report: DoctorReport, facts: Facts, snap: Snapshot | None) -> str:
    from kvmprobe.render import json as rj

    body = {"device": facts.device, **report.to_json()}
    return rj.dumps(rj.document(JSON_KIND, _source_snapshot(facts, snap), body))


def run_doctor(
    device: str,
    from_file: str | None,
    as_json: bool,
    console_factory: Callable[[], Any],
    options: DoctorOptions | None = None,
) -> int:
    """Diagnose ``device`` (or the snapshot in ``from_file``), print, return the exit status."""
    if from_file:
        facts, snap = gather_recorded(from_file)
        recorded: Snapshot | None = snap
    else:
        facts, recorded = gather_live(device)
    report = diagnose(facts, recorded, options)
    if as_json:
        sys.stdout.write(render_json(report, facts, recorded))
        sys.stdout.flush()
    else:
        from kvmprobe.render.doctor_report import print_doctor

        source = recorded.source if recorded is not None else "live"
        print_doctor(console_factory(), report, facts.device, source, facts.host.kernel_release)
    return report.verdict.exit_status
