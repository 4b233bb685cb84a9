"""The live probe: ask a KVM device everything kvmprobe knows to ask, as a Snapshot.

An ioctl that fails along the way is recorded in ``errors`` with its errno and the rest of the
probe goes on. Only failing to open the device or to get the API version is fatal for
``probe()`` (there is nothing to probe then).

Three entry points: ``probe()`` (what ``caps`` and ``cpuid`` ask), ``record()`` (the same plus
device-access facts: what ``kvmprobe record`` saves) and ``examine()`` (what ``doctor`` looks
at: never raises for a device that cannot be used, because that is what it diagnoses).
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable

from kvmprobe.errors import KvmprobeError, errno_name
from kvmprobe.frozen import replace
from kvmprobe.kvm import abi
from kvmprobe.kvm.device import IoctlFn, KvmDevice
from kvmprobe.limits import CAP_LIMIT, DEFAULT_DEVICE
from kvmprobe.snapshot import PROBE_STEP, CpuidEntry, ProbeError, Snapshot, Steps
from kvmprobe.tables.caps_data import CAPS
from kvmprobe.vocab import Irqchip, Scope

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TypeVar

    from kvmprobe.verification_facts import SetAttempt

    T = TypeVar("T")


class Recorder:
    """Collects non-fatal probe failures."""

    def __init__(self) -> None:
        self.errors: list[ProbeError] = []

    def add(self, step: str, exc: OSError | str) -> None:
        if isinstance(exc, OSError):
            code = exc.errno
            msg = f"{errno_name(code)}: {exc.strerror or exc}"
            self.errors.append(ProbeError(step, code, msg))
        else:
            self.errors.append(ProbeError(step, None, exc))


#: every capability number kvmprobe's tables name, and none above: what a command asks for
#: that reads named capabilities only (cpuid); listing or counting every answer needs CAP_LIMIT
NAMED_CAP_LIMIT = max(CAPS) + 1


def _caps_in(
    dev: KvmDevice, fd: int, rec: Recorder, scope: str, limit: int = CAP_LIMIT
) -> dict[int, int]:
    values, errors = dev.check_extensions(fd, limit)
    for cap, e in errors.items():
        rec.add(Steps.cap(cap, scope), e)
    return values


def _probe_vms(
    dev: KvmDevice,
    rec: Recorder,
    on_split_vcpu: Callable[[int], None] | None = None,
    cap_limit: int = CAP_LIMIT,
) -> tuple[dict[str, dict[int, int] | None], dict[str, str]]:
    """Capability values on a fresh VM fd and on one with a split irqchip, plus what could be
    created (VM, vCPU, split irqchip). ``on_split_vcpu`` is called with a vCPU of the split
    irqchip VM (where the verification runs; its failures are its own to record)."""
    caps: dict[str, dict[int, int] | None] = {"vm": None, "vm_split_irqchip": None}
    creation: dict[str, str] = {}
    try:
        per_vm = dev.check_extension(dev.fd, abi.KVM_CAP_CHECK_EXTENSION_VM) > 0
    except OSError as e:
        rec.add(Steps.cap(abi.KVM_CAP_CHECK_EXTENSION_VM, Scope.SYSTEM), e)
        per_vm = False
    try:
        with dev.vm() as vm_fd:
            creation["vm"] = "ok"
            if per_vm:
                caps["vm"] = _caps_in(dev, vm_fd, rec, "vm", cap_limit)
            else:
                rec.add("vm caps", "KVM_CAP_CHECK_EXTENSION_VM is 0: per-VM values unavailable")
            try:
                vcpu_fd = int(dev._ioctl(vm_fd, abi.KVM_CREATE_VCPU, 0))
                os.close(vcpu_fd)
                creation["vcpu"] = "ok"
            except OSError as e:
                creation["vcpu"] = errno_name(e.errno)
                rec.add("KVM_CREATE_VCPU", e)
    except OSError as e:
        creation["vm"] = errno_name(e.errno)
        rec.add("KVM_CREATE_VM", e)
        return caps, creation
    try:
        with dev.vm() as vm_fd:
            try:
                dev.enable_cap(vm_fd, abi.KVM_CAP_SPLIT_IRQCHIP, abi.SPLIT_IRQCHIP_IOAPIC_PINS)
                creation["split_irqchip"] = "ok"
            except OSError as e:
                creation["split_irqchip"] = errno_name(e.errno)
                rec.add("KVM_ENABLE_CAP(KVM_CAP_SPLIT_IRQCHIP)", e)
            else:
                if per_vm:
                    caps["vm_split_irqchip"] = _caps_in(
                        dev, vm_fd, rec, "vm_split_irqchip", cap_limit
                    )
                if on_split_vcpu is not None:
                    on_split_vcpu(vm_fd)
    except OSError as e:
        rec.add("KVM_CREATE_VM (split irqchip)", e)
    return caps, creation


def _try(rec: Recorder, step: str, fn: Callable[[], T]) -> T | None:
    try:
        return fn()
    except OSError as e:
        rec.add(step, e)
        return None


def _record_failed(rec: Recorder, attempts: tuple[SetAttempt, ...]) -> None:
    """An attempt that could not be made is a failed step like any other."""
    for a in attempts:
        if a.accepted is None:
            target = "" if a.target is None else f"({a.target:#x})"
            code = a.errno or 0
            rec.add(f"{Steps.VERIFY}: {a.what}{target}", OSError(code, os.strerror(code)))


def _verify(
    dev: KvmDevice,
    rec: Recorder,
    vm_fd: int,
    supported: tuple[CpuidEntry, ...] | None,
    feature_msrs: dict[int, int],
    mce: int | None,
    mce_banks: int,
) -> tuple[SetAttempt, ...] | None:
    """Apply what KVM advertised to real vCPUs (kvmprobe.kvm.verify); a failure of the whole
    step is recorded like any other, and its answers are then unknown (None)."""
    from kvmprobe.kvm import verify

    if supported is None:
        return None
    try:
        xcr0 = verify.xcr0_of(supported)
        attempts = verify.verify(dev, vm_fd, supported, feature_msrs, xcr0, mce, mce_banks)
    except OSError as e:
        rec.add(Steps.VERIFY, e)
        return None
    _record_failed(rec, attempts)
    return attempts


def probe(
    path: str = DEFAULT_DEVICE,
    *,
    ioctl: IoctlFn | None = None,
    full: bool = True,
    verify: bool = True,
    cap_limit: int = CAP_LIMIT,
) -> Snapshot:
    """Ask the device everything kvmprobe knows to ask. Raises KvmprobeError only when the
    device cannot be opened or is not KVM; everything else is recorded in ``errors``.

    ``cap_limit``: KVM_CHECK_EXTENSION is asked for 0..cap_limit-1 in each scope (the
    snapshot says so: a capability above it is unknown, never 0). NAMED_CAP_LIMIT suffices
    for a command that reads named capabilities only.

    ``full=False`` asks only what ``kvmprobe caps`` shows (API version and capabilities in the
    three fd scopes) and reads no host CPUID or module parameters. ``verify`` (with ``full``)
    also applies the advertised CPUID, feature MSRs, XCR0 and MCE capabilities to real vCPUs
    and records what KVM accepted."""
    from kvmprobe.kvm import host as hostmod

    rec = Recorder()
    xcomp: dict[str, int] = {}
    if full:
        # Ask for AMX guest permission first, as a VMM would: without it
        # KVM_GET_SUPPORTED_CPUID hides dynamically-enabled XSAVE features (api.rst 4.46).
        xcomp = hostmod.request_xcomp_guest_perm(rec)
    with KvmDevice(path, ioctl) as dev:
        sys_caps = _caps_in(dev, dev.fd, rec, "system", cap_limit)
        if not full:
            vm_caps, creation = _probe_vms(dev, rec, cap_limit=cap_limit)
            return Snapshot(
                device=path,
                api_version=dev.api_version,
                cap_limit=cap_limit,
                caps={"system": sys_caps, **vm_caps},
                creation=creation,
                host=hostmod.minimal(dev.rdev),
                errors=tuple(rec.errors),
                recorded_at=_now(),
            )
        mmap_size = _try(rec, Steps.VCPU_MMAP_SIZE, dev.vcpu_mmap_size)
        with hostmod.on_first_cpu():  # per-CPU fields (APIC IDs) the same on every run
            supported = _try(rec, Steps.SUPPORTED_CPUID, dev.supported_cpuid)
        emulated = None
        if sys_caps.get(abi.KVM_CAP_EXT_EMUL_CPUID):
            emulated = _try(rec, Steps.EMULATED_CPUID, dev.emulated_cpuid)
        hv = None
        if sys_caps.get(abi.KVM_CAP_SYS_HYPERV_CPUID):
            hv = _try(rec, Steps.HV_CPUID, dev.supported_hv_cpuid)
        msrs = _try(rec, Steps.MSR_INDEX_LIST, dev.msr_index_list)
        feat_list = None
        feature_msrs: dict[int, int] = {}
        if sys_caps.get(abi.KVM_CAP_GET_MSR_FEATURES):
            feat_list = _try(rec, Steps.MSR_FEATURE_INDEX_LIST, dev.msr_feature_index_list)
            for index in feat_list or ():
                try:
                    value = dev.get_feature_msr(index)
                except OSError as e:
                    rec.add(Steps.feature_msr(index), e)
                    continue
                if value is None:
                    rec.add(Steps.feature_msr(index), "KVM read 0 of 1 MSRs")
                else:
                    feature_msrs[index] = value
        attrs: dict[str, int] = {}
        if sys_caps.get(abi.KVM_CAP_SYS_ATTRIBUTES):
            for group, attr in (
                (abi.KVM_X86_GRP_SYSTEM, abi.KVM_X86_XCOMP_GUEST_SUPP),
                (abi.KVM_X86_GRP_SEV, abi.KVM_X86_SEV_VMSA_FEATURES),
                (abi.KVM_X86_GRP_SEV, abi.KVM_X86_SNP_POLICY_BITS),
            ):
                try:
                    attrs[f"{group}/{attr}"] = dev.get_device_attr(dev.fd, group, attr)
                except OSError as e:
                    if e.errno != errno.ENXIO:  # ENXIO: this kernel has no such attribute
                        rec.add(Steps.attr(group, attr), e)
        mce = None
        if sys_caps.get(abi.KVM_CAP_MCE):
            mce = _try(rec, Steps.MCE_CAP, dev.mce_cap_supported)
        found: list[tuple[SetAttempt, ...] | None] = []

        def on_split_vm(vm_fd: int) -> None:
            banks = sys_caps.get(abi.KVM_CAP_MCE, 0)
            found.append(_verify(dev, rec, vm_fd, supported, feature_msrs, mce, banks))

        vm_caps, creation = _probe_vms(dev, rec, on_split_vm if verify else None, cap_limit)
        verification = found[0] if found else None
        api_version = dev.api_version
        rdev = dev.rdev
    host_info = hostmod.collect(rec, rdev)
    return Snapshot(
        device=path,
        api_version=api_version,
        vcpu_mmap_size=mmap_size,
        cap_limit=cap_limit,
        caps={"system": sys_caps, **vm_caps},
        supported_cpuid=supported,
        emulated_cpuid=emulated,
        supported_hv_cpuid=hv,
        msr_index_list=msrs,
        msr_feature_index_list=feat_list,
        feature_msrs=feature_msrs,
        device_attrs=attrs,
        mce_cap_supported=mce,
        xcomp=xcomp,
        verification=verification,
        creation=creation,
        host=host_info,
        errors=tuple(rec.errors),
        recorded_at=_now(),
        source="live",
    )


#: builds kvmprobe's effective KVM_SET_CPUID2 table of each irqchip mode from a snapshot (the
#: analysis owns that; the caller passes it in, so this layer never imports the analysis)
EffectiveTables = Callable[[Snapshot], dict[Irqchip, tuple[CpuidEntry, ...]]]


def try_tables(
    snap: Snapshot,
    tables: dict[Irqchip, tuple[CpuidEntry, ...]],
    path: str | None = None,
    *,
    ioctl: IoctlFn | None = None,
) -> Snapshot:
    """``snap`` with each given effective table tried on a vCPU of a VM set up for its irqchip
    mode (kvmprobe.kvm.verify.try_effective_tables) added to its verification. Tables equal to
    KVM's own answer are not tried again. Needs the live device; the snapshot's failures and
    verification grow, nothing else changes."""
    from kvmprobe.kvm import verify

    todo = {m: t for m, t in tables.items() if t != snap.supported_cpuid}
    if not todo or snap.verification is None:
        return snap
    rec = Recorder()
    try:
        with KvmDevice(path or snap.device, ioctl) as dev:
            attempts = verify.try_effective_tables(dev, todo)
    except OSError as e:
        rec.add(Steps.VERIFY, e)
        attempts = ()
    except KvmprobeError as e:  # the device went away since the probe
        rec.add(Steps.VERIFY, e.message)
        attempts = ()
    _record_failed(rec, attempts)
    return replace(
        snap,
        verification=snap.verification + attempts,
        errors=snap.errors + tuple(rec.errors),
    )


def record(path: str = DEFAULT_DEVICE, effective_tables: EffectiveTables | None = None) -> Snapshot:
    """What ``kvmprobe record`` saves: device-access facts, then the full probe, then (given
    ``effective_tables``) each irqchip mode's effective table tried on a vCPU. Raises
    KvmprobeError, as ``probe()`` does, when the device cannot be probed."""
    from kvmprobe.kvm import access

    facts = access.gather(path)
    snap = replace(probe(path), access=facts)
    if effective_tables is not None and snap.supported_cpuid is not None:
        snap = try_tables(snap, effective_tables(snap), path)
    return snap


def _errno_behind(exc: BaseException) -> int | None:
    """The errno of the OSError a KvmprobeError was raised for (its cause or context)."""
    seen: set[int] = set()
    inner = exc.__cause__ or exc.__context__
    while inner is not None and id(inner) not in seen:
        if isinstance(inner, OSError):
            return inner.errno
        seen.add(id(inner))
        inner = inner.__cause__ or inner.__context__
    return None


def examine(
    path: str = DEFAULT_DEVICE, effective_tables: EffectiveTables | None = None
) -> Snapshot:
    """What ``kvmprobe doctor`` looks at, never raising for a device it cannot use: what
    ``record`` saves (``effective_tables`` as there).

    Device-access facts first; the full probe only when the node opened read-write for them;
    otherwise (and when the probe could not run) the host facts alone, with ``api_version``
    None. A probe that could not run is recorded as a ProbeError with step PROBE_STEP."""
    from kvmprobe.kvm import access
    from kvmprobe.kvm import host as hostmod

    facts = access.gather(path)
    rec = Recorder()
    if facts.opened:
        try:
            snap = replace(probe(path), access=facts)
            if effective_tables is not None and snap.supported_cpuid is not None:
                snap = try_tables(snap, effective_tables(snap), path)
            return snap
        except KvmprobeError as e:
            rec.errors.append(ProbeError(PROBE_STEP, _errno_behind(e), e.message))
        except OSError as e:  # an ioctl the device layer does not guard
            message = f"probing {path} failed: {errno_name(e.errno)}: {e.strerror or e}"
            rec.errors.append(ProbeError(PROBE_STEP, e.errno, message))
    rdev = facts.node.rdev if facts.node is not None else None
    return Snapshot(
        device=path,
        api_version=None,
        cap_limit=CAP_LIMIT,
        host=hostmod.collect(rec, rdev),
        access=facts,
        errors=tuple(rec.errors),
        recorded_at=_now(),
        source="live",
    )


def _now() -> str:
    """The time now, UTC, to the second (``2026-01-31T12:00:00Z``); time, not datetime,
    which a ``--json`` command would import for this one line."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
