"""Talking to a KVM device node: open it, ask it everything, close every fd on every path.

This module and kvm/host.py are the only places that touch file descriptors. ``probe()``
returns a Snapshot; an ioctl that fails along the way is recorded in ``errors`` with its errno
and the rest of the probe goes on. Only failing to open the device or to get the API version
is fatal (there is nothing to probe then).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from kvmprobe.errors import device_open_error, errno_name, not_kvm_error
from kvmprobe.kvm import abi
from kvmprobe.snapshot import CpuidEntry, ProbeError, Snapshot

DEFAULT_DEVICE = "/dev/kvm"
CAP_LIMIT = 512  # KVM_CHECK_EXTENSION is asked for 0..CAP_LIMIT-1 in every scope
MAX_GROW = 1 << 16  # buffer growth stops here (far beyond any kernel's KVM_MAX_CPUID_ENTRIES)

IoctlFn = Callable[..., int]


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


def _refuse_non_kvm(path: str) -> None:
    """Look before opening: opening some character devices has effects (a watchdog starts
    its countdown), so only KVM's own device numbers are ever opened read-write."""
    try:
        st = os.stat(path)
    except OSError:
        return  # open() below reports it (ENOENT, EACCES on a parent, ...)
    if stat.S_ISDIR(st.st_mode):
        raise not_kvm_error(path, "a directory")
    if stat.S_ISREG(st.st_mode):
        raise not_kvm_error(path, "a regular file")
    if not stat.S_ISCHR(st.st_mode):
        raise not_kvm_error(path, "not a character device")
    rdev = (os.major(st.st_rdev), os.minor(st.st_rdev))
    if rdev != abi.KVM_RDEV:
        raise not_kvm_error(
            path, f"character device {rdev[0]}:{rdev[1]}, not KVM's 10:232; not opened"
        )


class KvmDevice:
    """An open KVM device node. Use as a context manager; closes its fd on exit."""

    def __init__(self, path: str = DEFAULT_DEVICE, ioctl: IoctlFn | None = None) -> None:
        self.path = path
        self._ioctl = ioctl or fcntl.ioctl
        if ioctl is None:
            _refuse_non_kvm(path)
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except OSError as e:
            raise device_open_error(path, e) from None
        try:
            st = os.fstat(self.fd)
            if stat.S_ISDIR(st.st_mode):
                raise not_kvm_error(path, "a directory")
            if not stat.S_ISCHR(st.st_mode):
                kind = "a regular file" if stat.S_ISREG(st.st_mode) else "not a character device"
                raise not_kvm_error(path, kind)
            self.rdev = (os.major(st.st_rdev), os.minor(st.st_rdev))
            try:
                self.api_version = self._ioctl(self.fd, abi.KVM_GET_API_VERSION, 0)
            except OSError as e:
                if e.errno in (errno.ENOTTY, errno.EINVAL):
                    raise not_kvm_error(
                        path, f"KVM_GET_API_VERSION failed with {errno_name(e.errno)}"
                    ) from None
                raise device_open_error(path, e) from None
        except BaseException:
            os.close(self.fd)
            raise

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> KvmDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- primitives --------------------------------------------------------------------------
    def check_extension(self, fd: int, cap: int) -> int:
        return int(self._ioctl(fd, abi.KVM_CHECK_EXTENSION, cap))

    @contextmanager
    def vm(self, vm_type: int = abi.KVM_X86_DEFAULT_VM) -> Iterator[int]:
        """A fresh VM fd, closed when the block ends (whatever happens in it)."""
        vm_fd = int(self._ioctl(self.fd, abi.KVM_CREATE_VM, vm_type))
        try:
            yield vm_fd
        finally:
            os.close(vm_fd)

    def enable_cap(self, fd: int, cap: int, *args: int) -> None:
        req = abi.kvm_enable_cap()
        req.cap = cap
        for i, a in enumerate(args):
            req.args[i] = a
        self._ioctl(fd, abi.KVM_ENABLE_CAP, req)

    def _cpuid(self, request: int, zero_padding: bool = True) -> tuple[CpuidEntry, ...]:
        n = 64
        while True:
            buf = abi.kvm_cpuid2_with(n)()  # ctypes zero-fills, padding included
            buf.nent = n
            try:
                self._ioctl(self.fd, request, buf, True)
            except OSError as e:
                if e.errno == errno.E2BIG and n < MAX_GROW:
                    n *= 2
                    continue
                raise
            count = min(int(buf.nent), n)
            if count == n and n < MAX_GROW:  # may be truncated on old kernels: ask again
                n *= 2
                continue
            return tuple(
                CpuidEntry(e.function, e.index, e.flags, e.eax, e.ebx, e.ecx, e.edx)
                for e in buf.entries[:count]
            )

    def supported_cpuid(self) -> tuple[CpuidEntry, ...]:
        return self._cpuid(abi.KVM_GET_SUPPORTED_CPUID)

    def emulated_cpuid(self) -> tuple[CpuidEntry, ...]:
        return self._cpuid(abi.KVM_GET_EMULATED_CPUID)

    def supported_hv_cpuid(self) -> tuple[CpuidEntry, ...]:
        return self._cpuid(abi.KVM_GET_SUPPORTED_HV_CPUID)

    def _msr_list(self, request: int) -> tuple[int, ...]:
        n = 64
        while True:
            buf = abi.kvm_msr_list_with(n)()
            buf.nmsrs = n
            try:
                self._ioctl(self.fd, request, buf, True)
            except OSError as e:
                if e.errno == errno.E2BIG and n < MAX_GROW:
                    n = max(n * 2, int(buf.nmsrs))
                    continue
                raise
            return tuple(int(x) for x in buf.indices[: min(int(buf.nmsrs), n)])

    def msr_index_list(self) -> tuple[int, ...]:
        return self._msr_list(abi.KVM_GET_MSR_INDEX_LIST)

    def msr_feature_index_list(self) -> tuple[int, ...]:
        return self._msr_list(abi.KVM_GET_MSR_FEATURE_INDEX_LIST)

    def get_feature_msr(self, index: int) -> int | None:
        """Value of one feature MSR via system-fd KVM_GET_MSRS; None if KVM would not read it."""
        buf = abi.kvm_msrs_with(1)()
        buf.nmsrs = 1
        buf.entries[0].index = index
        done = self._ioctl(self.fd, abi.KVM_GET_MSRS, buf, True)
        return int(buf.entries[0].data) if done == 1 else None

    def get_device_attr(self, fd: int, group: int, attr: int) -> int:
        value = ctypes.c_uint64(0)
        req = abi.kvm_device_attr()
        req.group = group
        req.attr = attr
        req.addr = ctypes.addressof(value)
        self._ioctl(fd, abi.KVM_GET_DEVICE_ATTR, req)
        return int(value.value)

    def mce_cap_supported(self) -> int:
        value = ctypes.c_uint64(0)
        self._ioctl(self.fd, abi.KVM_X86_GET_MCE_CAP_SUPPORTED, value, True)
        return int(value.value)

    def vcpu_mmap_size(self) -> int:
        return int(self._ioctl(self.fd, abi.KVM_GET_VCPU_MMAP_SIZE, 0))


# --------------------------------------------------------------------------------------------


def _caps_in(dev: KvmDevice, fd: int, rec: Recorder, scope: str) -> dict[int, int]:
    values: dict[int, int] = {}
    for cap in range(CAP_LIMIT):
        try:
            v = dev.check_extension(fd, cap)
        except OSError as e:
            rec.add(f"KVM_CHECK_EXTENSION({cap}) on {scope}", e)
            continue
        if v:
            values[cap] = v
    return values


def _probe_vms(dev: KvmDevice, rec: Recorder) -> tuple[dict[str, dict[int, int] | None], dict]:
    """Capability values on a fresh VM fd and on one with a split irqchip, plus what could be
    created (VM, vCPU, split irqchip)."""
    caps: dict[str, dict[int, int] | None] = {"vm": None, "vm_split_irqchip": None}
    creation: dict[str, str] = {}
    try:
        per_vm = dev.check_extension(dev.fd, abi.KVM_CAP_CHECK_EXTENSION_VM) > 0
    except OSError as e:
        rec.add("KVM_CHECK_EXTENSION(KVM_CAP_CHECK_EXTENSION_VM)", e)
        per_vm = False
    try:
        with dev.vm() as vm_fd:
            creation["vm"] = "ok"
            if per_vm:
                caps["vm"] = _caps_in(dev, vm_fd, rec, "vm")
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
                    caps["vm_split_irqchip"] = _caps_in(dev, vm_fd, rec, "vm_split_irqchip")
    except OSError as e:
        rec.add("KVM_CREATE_VM (split irqchip)", e)
    return caps, creation


def _try(rec: Recorder, step: str, fn: Callable[[], object]) -> object | None:
    try:
        return fn()
    except OSError as e:
        rec.add(step, e)
        return None


def probe(
    path: str = DEFAULT_DEVICE, *, ioctl: IoctlFn | None = None, full: bool = True
) -> Snapshot:
    """Ask the device everything kvmprobe knows to ask. Raises KvmprobeError only when the
    device cannot be opened or is not KVM; everything else is recorded in ``errors``.

    ``full=False`` asks only what ``kvmprobe caps`` shows (API version and capabilities in the
    three fd scopes) and reads no host CPUID or module parameters."""
    from kvmprobe.kvm import host as hostmod

    rec = Recorder()
    xcomp: dict[str, int] = {}
    if full:
        # Ask for AMX guest permission first, as a VMM would: without it
        # KVM_GET_SUPPORTED_CPUID hides dynamically-enabled XSAVE features (api.rst 4.46).
        xcomp = hostmod.request_xcomp_guest_perm(rec)
    with KvmDevice(path, ioctl) as dev:
        sys_caps = _caps_in(dev, dev.fd, rec, "system")
        vm_caps, creation = _probe_vms(dev, rec)
        if not full:
            return Snapshot(
                device=path,
                api_version=dev.api_version,
                cap_limit=CAP_LIMIT,
                caps={"system": sys_caps, **vm_caps},
                creation=creation,
                host=hostmod.minimal(dev.rdev),
                errors=tuple(rec.errors),
                recorded_at=_now(),
            )
        mmap_size = _try(rec, "KVM_GET_VCPU_MMAP_SIZE", dev.vcpu_mmap_size)
        supported = _try(rec, "KVM_GET_SUPPORTED_CPUID", dev.supported_cpuid)
        emulated = None
        if sys_caps.get(abi.KVM_CAP_EXT_EMUL_CPUID):
            emulated = _try(rec, "KVM_GET_EMULATED_CPUID", dev.emulated_cpuid)
        hv = None
        if sys_caps.get(abi.KVM_CAP_SYS_HYPERV_CPUID):
            hv = _try(rec, "KVM_GET_SUPPORTED_HV_CPUID", dev.supported_hv_cpuid)
        msrs = _try(rec, "KVM_GET_MSR_INDEX_LIST", dev.msr_index_list)
        feat_list = None
        feature_msrs: dict[int, int] = {}
        if sys_caps.get(abi.KVM_CAP_GET_MSR_FEATURES):
            feat_list = _try(rec, "KVM_GET_MSR_FEATURE_INDEX_LIST", dev.msr_feature_index_list)
            for index in feat_list or ():
                try:
                    value = dev.get_feature_msr(index)
                except OSError as e:
                    rec.add(f"KVM_GET_MSRS({index:#x})", e)
                    continue
                if value is None:
                    rec.add(f"KVM_GET_MSRS({index:#x})", "KVM read 0 of 1 MSRs")
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
                        rec.add(f"KVM_GET_DEVICE_ATTR({group}/{attr})", e)
        mce = None
        if sys_caps.get(abi.KVM_CAP_MCE):
            mce = _try(rec, "KVM_X86_GET_MCE_CAP_SUPPORTED", dev.mce_cap_supported)
        api_version = dev.api_version
        rdev = dev.rdev
    host_info = hostmod.collect(rec, rdev)
    return Snapshot(
        device=path,
        api_version=api_version,
        vcpu_mmap_size=mmap_size,  # type: ignore[arg-type]
        cap_limit=CAP_LIMIT,
        caps={"system": sys_caps, **vm_caps},
        supported_cpuid=supported,  # type: ignore[arg-type]
        emulated_cpuid=emulated,  # type: ignore[arg-type]
        supported_hv_cpuid=hv,  # type: ignore[arg-type]
        msr_index_list=msrs,  # type: ignore[arg-type]
        msr_feature_index_list=feat_list,  # type: ignore[arg-type]
        feature_msrs=feature_msrs,
        device_attrs=attrs,
        mce_cap_supported=mce,  # type: ignore[arg-type]
        xcomp=xcomp,
        creation=creation,
        host=host_info,
        errors=tuple(rec.errors),
        recorded_at=_now(),
        source="live",
    )


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
