"""KVM API checks: the API version, creating a VM and a vCPU, the kvm_run mmap size, and
every other probe step that failed.

Pure: the Snapshot in, Checks out. A probe that could not run at all is the ProbeError with
step ``snapshot.PROBE_STEP``; its errno decides whether that means "not available" or
"permission denied".
"""

from __future__ import annotations

from kvmprobe.analysis.doctor.report import Check, failed, passed, skipped, warned
from kvmprobe.snapshot import PROBE_STEP, ProbeError, Snapshot, Steps
from kvmprobe.tables.caps_data import KVM_API_VERSION
from kvmprobe.vocab import DoctorOutcome
from kvmprobe.words import count

PAGE = 4096  # the x86 page size VMMs map kvm_run with

_CREATE_HINTS = {
    "EBUSY": "another hypervisor holds the CPU's virtualization extensions (VirtualBox, "
    "VMware Workstation/Player, or an out-of-tree hypervisor module): stop it and retry",
    "ENOMEM": "the host is short of memory (or of memory a VM needs): free some and retry",
    "EMFILE": "this process ran out of file descriptors: raise 'ulimit -n'",
    "ENFILE": "the system ran out of file descriptors",
    "EINVAL": "KVM refused the default VM type; look at 'dmesg | grep -i kvm'",
    "EPERM": "a security policy (seccomp, SELinux, AppArmor) refuses creating VMs here",
    "EACCES": "a security policy (seccomp, SELinux, AppArmor) refuses creating VMs here",
}
_PERMISSION_ERRNOS = ("EPERM", "EACCES")
# Why the probe could not run, by errno name: (what it means, the fix).
_PROBE_FAILURES = {
    "EACCES": (DoctorOutcome.PERMISSION, "a security policy (seccomp, SELinux, AppArmor) or the "
               "node's permissions refuse it; see the device checks above"),
    "EPERM": (DoctorOutcome.PERMISSION, "a security policy (seccomp, SELinux, AppArmor) or the "
              "node's permissions refuse it; see the device checks above"),
    "EROFS": (DoctorOutcome.PERMISSION, "bind-mount the device read-write"),
    "ENOTTY": (DoctorOutcome.UNAVAILABLE, "the node does not answer like KVM: check the path "
               "and the kernel's KVM"),
    "EINVAL": (DoctorOutcome.UNAVAILABLE, "the node does not answer like KVM: check the path "
               "and the kernel's KVM"),
    "ENXIO": (DoctorOutcome.UNAVAILABLE, "the KVM module is not loaded or was unloaded: "
              "modprobe kvm_intel or kvm_amd"),
    "ENODEV": (DoctorOutcome.UNAVAILABLE, "the KVM module is not loaded or was unloaded: "
               "modprobe kvm_intel or kvm_amd"),
}  # fmt: skip
_STOPPED_ANSWERING = "the device opened but stopped answering; look at 'dmesg | grep -i kvm'"

# Failures another check already reports (or, for host CPUID, that only root avoids).
STEPS_WITH_OWN_CHECK = frozenset(
    {PROBE_STEP, "KVM_CREATE_VM", "KVM_CREATE_VCPU", "KVM_ENABLE_CAP(KVM_CAP_SPLIT_IRQCHIP)",
     "KVM_GET_VCPU_MMAP_SIZE", "host CPUID"}
)  # fmt: skip


def usable(snap: Snapshot) -> bool:
    """KVM answered the API version every VMM needs and a VM could be created (or creation
    was not recorded)."""
    if snap.api_version != KVM_API_VERSION:
        return False
    return snap.creation.get("vm", "ok") == "ok"


def _error_for(snap: Snapshot, step: str) -> ProbeError | None:
    return next((e for e in snap.errors if e.step == step), None)


def _check_api_version(snap: Snapshot) -> Check:
    cid, title = "api.version", "KVM API version"
    stopped = _error_for(snap, PROBE_STEP)
    if stopped is not None:
        default = (DoctorOutcome.UNAVAILABLE, _STOPPED_ANSWERING)
        outcome, hint = _PROBE_FAILURES.get(stopped.errno_name or "", default)
        return failed(cid, title, stopped.message, hint, outcome)
    if snap.api_version is None and snap.access is not None and not snap.access.opened:
        return skipped(cid, title, "the device could not be opened")
    if snap.api_version == KVM_API_VERSION:
        return passed(cid, title, f"KVM_GET_API_VERSION answered {KVM_API_VERSION}")
    got = "no answer" if snap.api_version is None else f"{snap.api_version}"
    evidence = f"KVM_GET_API_VERSION: {got}; every VMM requires {KVM_API_VERSION}"
    hint = "this is not a working KVM device; check the path and the kernel's KVM"
    return failed(cid, title, evidence, hint, DoctorOutcome.UNAVAILABLE)


def _check_create(snap: Snapshot, key: str, cid: str, title: str, ioctl: str) -> Check:
    if snap.api_version != KVM_API_VERSION:
        return skipped(cid, title, "KVM did not answer (see above)")
    if key == "vcpu" and snap.creation.get("vm", "ok") != "ok":
        return skipped(cid, title, "no VM to create it in")
    result = snap.creation.get(key)
    if result is None:
        return skipped(cid, title, f"{ioctl} not recorded")
    if result == "ok":
        return passed(cid, title, f"{ioctl} worked")
    evidence = f"{ioctl} failed with {result}"
    hint = _CREATE_HINTS.get(result, "look at 'dmesg | grep -i kvm' for the reason")
    denied = result in _PERMISSION_ERRNOS
    outcome = DoctorOutcome.PERMISSION if denied else DoctorOutcome.UNAVAILABLE
    return failed(cid, title, evidence, hint, outcome)


def _check_mmap_size(snap: Snapshot) -> Check:
    cid, title = "api.vcpu_mmap_size", "vCPU mmap size"
    if snap.api_version != KVM_API_VERSION:
        return skipped(cid, title, "KVM did not answer (see above)")
    size = snap.vcpu_mmap_size
    if size is None:
        error = _error_for(snap, "KVM_GET_VCPU_MMAP_SIZE")
        if error is None:
            return skipped(cid, title, "KVM_GET_VCPU_MMAP_SIZE not recorded")
        hint = "VMMs map struct kvm_run with this size and cannot run vCPUs without it"
        evidence = f"KVM_GET_VCPU_MMAP_SIZE failed: {error.message}"
        return failed(cid, title, evidence, hint, DoctorOutcome.UNAVAILABLE)
    if size < PAGE:
        evidence = f"KVM_GET_VCPU_MMAP_SIZE answered {size}, less than one page"
        hint = "VMMs cannot map struct kvm_run; the kernel's KVM looks broken"
        return failed(cid, title, evidence, hint, DoctorOutcome.UNAVAILABLE)
    pages = f" ({size // PAGE} pages)" if size % PAGE == 0 else ""
    return passed(cid, title, f"{size} bytes{pages} per vCPU for kvm_run and its rings")


def _check_probe_errors(snap: Snapshot) -> Check:
    cid, title = "api.probe_errors", "probe steps"
    if snap.api_version is None:
        return skipped(cid, title, "nothing was probed")
    errors = [
        e
        for e in snap.errors
        if e.step not in STEPS_WITH_OWN_CHECK and not e.step.startswith(Steps.VERIFY)
    ]  # the vCPU verification's failures are judged by the VMM checks
    if not errors:
        return passed(cid, title, "every other ioctl kvmprobe asked was answered")
    shown = ", ".join(e.step for e in errors[:4]) + (" ..." if len(errors) > 4 else "")
    evidence = f"{count(len(errors), 'probe step')} failed: {shown}"
    hint = "the affected answers are missing from this report; the details say why"
    details = tuple(f"{e.step}: {e.message}" for e in errors)
    return warned(cid, title, evidence, hint, details=details)


def _check_consistency(snap: Snapshot) -> Check:
    """Contradictions inside KVM's own CPUID answer (a feature without one it depends on,
    XSAVE state without XSAVE...): a guest built from it may misbehave."""
    from kvmprobe.analysis.guest import cpuid_consistency

    cid, title = "api.cpuid_consistency", "CPUID answer consistent"
    if snap.supported_cpuid is None:
        return skipped(cid, title, "no KVM_GET_SUPPORTED_CPUID answer: nothing to check")
    findings = cpuid_consistency(snap)
    if not findings:
        return passed(cid, title, "no feature without what it depends on, no stray XSAVE state")
    evidence = f"{count(len(findings), 'contradiction')} in KVM_GET_SUPPORTED_CPUID: " + "; ".join(
        str(f.check) for f in findings
    )
    hint = (
        "a guest given this table may see state it cannot use; a VMM should clear what "
        "depends on a missing feature ('kvmprobe cpuid' shows each with its evidence)"
    )
    return warned(cid, title, evidence, hint, details=tuple(f.evidence for f in findings))


def api_checks(snap: Snapshot) -> list[Check]:
    return [
        _check_api_version(snap),
        _check_create(snap, "vm", "api.create_vm", "create a VM", "KVM_CREATE_VM"),
        _check_create(snap, "vcpu", "api.create_vcpu", "create a vCPU", "KVM_CREATE_VCPU"),
        _check_mmap_size(snap),
        _check_probe_errors(snap),
        _check_consistency(snap),
    ]
