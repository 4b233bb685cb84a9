"""VMM readiness: would QEMU, Firecracker and Cloud Hypervisor start on this KVM?

Each VMM is held to the capabilities its own start-up code insists on (knowledge/
vmm_requirements.py, cited), asked on the /dev/kvm fd as the VMM asks them. Pure.
"""

from __future__ import annotations

from kvmprobe.analysis.caps import cap_by_name
from kvmprobe.analysis.doctor.api import usable
from kvmprobe.analysis.doctor.report import Check, failed, passed, skipped, warned
from kvmprobe.analysis.msr import mitigation_picture
from kvmprobe.analysis.verify import SET_MSRS, qemu_host_fix, verification
from kvmprobe.knowledge.vmm_requirements import VMMS, VmmProfile
from kvmprobe.snapshot import Snapshot
from kvmprobe.tables.caps_data import KVM_CAP_SPLIT_IRQCHIP
from kvmprobe.vocab import DoctorOutcome, Scope


def missing_caps(snap: Snapshot, profile: VmmProfile) -> list[str]:
    """Required capabilities of ``profile`` that answered 0 on the /dev/kvm fd (a check that
    failed is not "missing": see ``unasked_caps``)."""
    missing = []
    for req in profile.requirements:
        if not req.required:
            continue
        info = cap_by_name(req.cap)
        if info is None or snap.cap(info.number, Scope.SYSTEM) == 0:
            missing.append(req.cap)
    return missing


def unasked_caps(snap: Snapshot, profile: VmmProfile) -> list[str]:
    """Required capabilities whose check failed: kvmprobe could not ask, so it cannot say."""
    out = []
    for req in profile.requirements:
        info = cap_by_name(req.cap) if req.required else None
        if info is not None and snap.cap(info.number, Scope.SYSTEM) is None:
            failure = snap.cap_failure(info.number, Scope.SYSTEM)
            why = failure.errno_name if failure is not None else None
            out.append(f"{req.cap} ({why or 'not asked'})")
    return out


def _refusal_problem(snap: Snapshot, profile: VmmProfile) -> tuple[str, str] | None:
    """(evidence, hint) when this VMM's default start-up writes a value KVM refuses."""
    if not profile.sets_feature_msrs:
        return None
    v = verification(snap)
    if not v.refusals:
        return None
    parts = []
    for r in v.refusals:
        if r.attempt.what == SET_MSRS:
            named = ", ".join(b.name for b in r.bits) or "none alone (only the whole value)"
            parts.append(f"{r.what} = {r.value_text} refused; bits refused alone: {named}")
        else:
            errno = f" ({r.attempt.errno_name})" if r.attempt.errno_name else ""
            parts.append(f"{r.what} refused{errno}")
    fix = qemu_host_fix(v) if profile.id == "qemu" else None
    evidence = (
        f"{profile.name} -cpu host will stop at start-up: KVM refuses values it advertises "
        f"({'; '.join(parts)})"
    )
    hint = (
        f"start with {fix} (in-kernel irqchip, QEMU's default; with kernel-irqchip=off QEMU "
        "also sets KVM's paravirtual MSRs: take 'kvmprobe export qemu --qemu-base host "
        "--irqchip userspace'), or a CPU model without these bits"
        if fix
        else "use a CPU model that does not carry what KVM refuses; report the refusal to the "
        "host kernel's maintainers"
    )
    return evidence, hint


def short_citation(source: str) -> str:
    """'owner/repo @ 0123456789ab' from a profile's source text."""
    repo, _, rest = source.partition(" @ ")
    return f"{repo.split()[-1] if repo else '?'} @ {rest[:12]}" if rest else source[:40]


def _needs_split_irqchip(profile: VmmProfile) -> bool:
    for req in profile.requirements:
        info = cap_by_name(req.cap)
        if req.required and info is not None and info.number == KVM_CAP_SPLIT_IRQCHIP:
            return True
    return False


def _vmm_check(snap: Snapshot, profile: VmmProfile) -> Check:
    cid, title = f"vmm.{profile.id}", f"{profile.name} start-up"
    required = [r for r in profile.requirements if r.required]
    if not usable(snap):
        return skipped(cid, title, "KVM is not usable here (see above)", citation=profile.source)
    if snap.caps.get(Scope.SYSTEM) is None:
        return skipped(cid, title, "no capability values", citation=profile.source)
    missing = missing_caps(snap, profile)
    problems = list(missing)
    split = snap.creation.get("split_irqchip")
    if _needs_split_irqchip(profile) and split not in (None, "ok"):
        problems.append(f"KVM_ENABLE_CAP(KVM_CAP_SPLIT_IRQCHIP) failed with {split}")
    cited = f"(as of {short_citation(profile.source)})"
    refusal = _refusal_problem(snap, profile)
    if profile.sets_feature_msrs and not problems and not verification(snap).tried:
        return warned(
            cid, title,
            f"all {len(required)} capabilities it requires are present {cited}; the values it "
            "writes at start-up were not tried on a vCPU (the snapshot predates that check)",
            "record a new snapshot, or run 'kvmprobe doctor' on the host itself",
        )  # fmt: skip
    v = verification(snap)
    if profile.sets_feature_msrs and not problems and refusal is None and v.could_not_ask:
        return warned(
            cid, title,
            f"all {len(required)} capabilities it requires are present {cited}; could not "
            f"try the values it writes at start-up: {'; '.join(v.could_not_ask)}",
            "the vCPU check itself failed (see the probe errors): run 'kvmprobe doctor' again",
        )  # fmt: skip
    if refusal is not None and not problems:
        evidence, hint = refusal
        return failed(
            cid, title, evidence, hint, DoctorOutcome.NOT_READY,
            citation=profile.sets_feature_msrs,
        )  # fmt: skip
    unasked = unasked_caps(snap, profile)
    if unasked and not problems:
        return warned(
            cid, title,
            f"could not ask {len(unasked)} of the {len(required)} capabilities it requires: "
            f"{', '.join(unasked)} {cited}",
            "the check itself failed (see the probe errors): run 'kvmprobe doctor' again; if "
            "it persists, look at 'dmesg | grep -i kvm'",
        )  # fmt: skip
    if not problems:
        evidence = f"all {len(required)} capabilities it requires at start-up are present {cited}"
        return passed(cid, title, evidence, citation=profile.source)
    notes = {r.cap: r.note for r in required}
    details = tuple(f"{name}: {notes[name]}" for name in missing if name in notes)
    evidence = f"missing: {', '.join(problems)} {cited}"
    hint = (
        f"{profile.name} checks these on /dev/kvm and refuses to start without them; they "
        "come with a newer or differently configured host kernel"
    )
    return failed(
        cid, title, evidence, hint, DoctorOutcome.NOT_READY, details=details,
        citation=profile.source,
    )  # fmt: skip


#: libvirt turns host-model into QEMU -cpu <model>,+feature,... with every feature KVM
#: reports that its cpu_map names, feature-MSR bits included (libvirt src/qemu/qemu_capabilities.c
#: host-model expansion; the names are in kvmprobe.tables.msr_data)
LIBVIRT_HOST_MODEL = "libvirt host-model (QEMU with the MSR features libvirt names)"


def _libvirt_check(snap: Snapshot) -> Check:
    cid, title = "vmm.libvirt-host-model", "libvirt host-model"
    v = verification(snap)
    if not usable(snap):
        return skipped(cid, title, "KVM is not usable here (see above)")
    if not v.tried:
        return skipped(cid, title, "not verified: the snapshot predates kvmprobe's vCPU check")
    named = [b.libvirt_name for r in v.refusals if r.attempt.what == SET_MSRS for b in r.bits]
    refused = [n for n in named if n]
    if not refused:
        return passed(cid, title, "no feature-MSR bit host-model would require is refused")
    disable = " ".join(f"<feature policy='disable' name='{n}'/>" for n in refused)
    return failed(
        cid, title,
        f"host-model requires {', '.join(refused)}, which KVM advertises but refuses on a "
        "vCPU: guests on host-model will not start",
        f"use mode='custom' (or host-model) with {disable}",
        DoctorOutcome.NOT_READY, citation=LIBVIRT_HOST_MODEL,
    )  # fmt: skip


def _mitigations_check(snap: Snapshot) -> Check:
    """What a guest is told about speculation (information: PASS when known)."""
    cid, title = "vmm.guest_mitigations", "guest speculation picture"
    picture = mitigation_picture(snap)
    if picture is None:
        return skipped(cid, title, "the feature MSRs were not read: unknown")
    if not picture.known:
        return warned(
            cid, title, picture.text,
            "record the snapshot again with this kvmprobe (it tries the bits on a vCPU)",
        )  # fmt: skip
    return passed(cid, title, picture.text)


def _effective_tables_check(snap: Snapshot) -> Check | None:
    """Did a vCPU take the table ``kvmprobe export`` gives, in each irqchip set-up? Only a
    recorded snapshot holds these attempts (``kvmprobe record`` makes them); None otherwise."""
    v = verification(snap)
    if not v.effective:
        return None
    cid, title = "vmm.exported_tables", "exported CPUID tables"
    modes = list(dict.fromkeys(a.irqchip for a in v.effective))
    refused = [(m, r) for m in modes if (r := v.effective_refusal(m)) is not None]
    if refused:
        what = "; ".join(
            f"{m} irqchip: {r.what} refused ({r.attempt.errno_name or 'fewer set'})"
            for m, r in refused
        )
        return failed(
            cid, title,
            f"a vCPU refused kvmprobe's effective table: {what}",
            "'kvmprobe export' stops for these set-ups; report the snapshot as a kvmprobe bug",
            DoctorOutcome.NOT_READY,
        )  # fmt: skip
    unasked = [a for a in v.effective if a.accepted is None]
    if unasked:
        what = ", ".join(f"{a.irqchip}: {a.what} ({a.errno_name})" for a in unasked)
        return warned(
            cid, title, f"could not try every effective table: {what}",
            "record again with 'kvmprobe record' to retry",
        )  # fmt: skip
    return passed(
        cid, title,
        f"a vCPU accepted the effective table of each irqchip set-up that differs from KVM's "
        f"own ({', '.join(modes)}), with its XCR0 mask",
    )  # fmt: skip


def vmm_checks(snap: Snapshot, vmms: tuple[str, ...]) -> list[Check]:
    checks = [_vmm_check(snap, p) for p in VMMS if p.id in vmms]
    if "qemu" in vmms:
        checks.append(_libvirt_check(snap))
    tables = _effective_tables_check(snap)
    if tables is not None:
        checks.append(tables)
    checks.append(_mitigations_check(snap))
    return checks
