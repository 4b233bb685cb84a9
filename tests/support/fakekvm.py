"""A stand-in for fcntl.ioctl that answers like /dev/kvm, from a recorded Snapshot.

Used with ``probe(path, ioctl=FakeKvm(snap))`` on a character device that really opens
(/dev/null), so the device layer runs exactly as on a live host: buffer growth on E2BIG,
VM fds that are created and closed, per-scope capability values. ``fail`` injects errors.
"""

from __future__ import annotations

import ctypes
import errno
import os

from kvmprobe.kvm import abi
from kvmprobe.snapshot import CpuidEntry, Snapshot

# typing for type checkers only: tests/test_speed_paths.py runs kvmprobe's --json paths through
# this stand-in and checks that they never import typing
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_ENTRY_FIELDS = ("function", "index", "flags", "eax", "ebx", "ecx", "edx")


class FakeKvm:
    def __init__(self, snap: Snapshot, fail: dict[str, int] | None = None) -> None:
        self.snap = snap
        self.fail = dict(fail or {})  # ioctl name (or "CHECK_EXTENSION:<cap>") -> errno
        self.vm_fds: dict[int, str] = {}  # fd -> scope ("vm" / "vm_split_irqchip")
        self.calls: list[str] = []
        self.opened: list[int] = []
        self.vcpu_vm: dict[int, int] = {}  # vCPU fd -> its VM fd
        self.table = "supported"  # the CPUID table the vCPU being set up was given
        self.mode = "split"  # the irqchip mode of that vCPU's VM

    def _maybe_fail(self, name: str) -> None:
        if name in self.fail:
            raise OSError(self.fail[name], os.strerror(self.fail[name]))

    def __call__(self, fd: int, request: int, arg: Any = 0, mutate: bool = True) -> int:
        name = _NAMES.get(request, hex(request))
        self.calls.append(name)
        self._maybe_fail(name)
        if request == abi.KVM_GET_API_VERSION:
            return self.snap.api_version or 0
        if request == abi.KVM_CHECK_EXTENSION:
            self._maybe_fail(f"CHECK_EXTENSION:{arg}")
            scope = self.vm_fds.get(fd, "system")
            return self.snap.cap(int(arg), scope) or 0
        if request == abi.KVM_CREATE_VM:
            vm = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
            self.opened.append(vm)
            self.vm_fds[vm] = "vm"
            return vm
        if request == abi.KVM_CREATE_VCPU:
            vcpu = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
            self.opened.append(vcpu)
            self.vcpu_vm[vcpu] = fd
            return vcpu
        if request == abi.KVM_CREATE_IRQCHIP:
            self.vm_fds[fd] = "vm_kernel_irqchip"
            return 0
        if request == abi.KVM_ENABLE_CAP:
            if arg.cap == abi.KVM_CAP_SPLIT_IRQCHIP:
                self.vm_fds[fd] = "vm_split_irqchip"
            return 0
        if request == abi.KVM_GET_VCPU_MMAP_SIZE:
            return self.snap.vcpu_mmap_size or 0
        if request in (abi.KVM_GET_SUPPORTED_CPUID, abi.KVM_GET_EMULATED_CPUID,
                       abi.KVM_GET_SUPPORTED_HV_CPUID):  # fmt: skip
            entries = {
                abi.KVM_GET_SUPPORTED_CPUID: self.snap.supported_cpuid,
                abi.KVM_GET_EMULATED_CPUID: self.snap.emulated_cpuid,
                abi.KVM_GET_SUPPORTED_HV_CPUID: self.snap.supported_hv_cpuid,
            }[request]
            if entries is None:
                raise OSError(errno.EINVAL, "not supported")
            if arg.nent < len(entries):
                raise OSError(errno.E2BIG, "too small")
            for i, e in enumerate(entries):
                for k in ("function", "index", "flags", "eax", "ebx", "ecx", "edx"):
                    setattr(arg.entries[i], k, getattr(e, k))
            arg.nent = len(entries)
            return 0
        if request in (abi.KVM_GET_MSR_INDEX_LIST, abi.KVM_GET_MSR_FEATURE_INDEX_LIST):
            values = (
                self.snap.msr_index_list
                if request == abi.KVM_GET_MSR_INDEX_LIST
                else self.snap.msr_feature_index_list
            )
            if values is None:
                raise OSError(errno.EINVAL, "not supported")
            n = arg.nmsrs
            arg.nmsrs = len(values)
            if n < len(values):
                raise OSError(errno.E2BIG, "too small")
            for i, v in enumerate(values):
                arg.indices[i] = v
            return 0
        if request == abi.KVM_GET_MSRS:
            index = arg.entries[0].index
            if index not in self.snap.feature_msrs:
                return 0
            arg.entries[0].data = self.snap.feature_msrs[index]
            return 1
        if request == abi.KVM_GET_DEVICE_ATTR:
            key = f"{arg.group}/{arg.attr}"
            if key not in self.snap.device_attrs:
                raise OSError(errno.ENXIO, "no such attribute")
            ctypes.c_uint64.from_address(arg.addr).value = self.snap.device_attrs[key]
            return 0
        if request == abi.KVM_X86_GET_MCE_CAP_SUPPORTED:
            if self.snap.mce_cap_supported is None:
                raise OSError(errno.EINVAL, "not supported")
            arg.value = self.snap.mce_cap_supported
            return 0
        if request in (abi.KVM_SET_CPUID2, abi.KVM_SET_MSRS, abi.KVM_SET_XCRS,
                       abi.KVM_X86_SETUP_MCE):  # fmt: skip
            return self._vcpu_set(request, arg, self._mode_of(fd))
        raise OSError(errno.ENOTTY, "unexpected ioctl")

    def _mode_of(self, vcpu_fd: int) -> str:
        scope = self.vm_fds.get(self.vcpu_vm.get(vcpu_fd, -1), "vm")
        return {"vm_kernel_irqchip": "kernel", "vm_split_irqchip": "split"}.get(scope, "userspace")

    def _attempt(self, what: str, target: int | None = None):  # type: ignore[no-untyped-def]
        """The recorded answer to this vCPU set-up call; None: accept (not recorded). A vCPU
        given a table other than KVM's own gets the answers recorded for the effective table
        of its VM's irqchip mode."""
        for a in self.snap.verification or ():
            if a.table != self.table or (a.table == "effective" and a.irqchip != self.mode):
                continue
            if a.what == what and (target is None or a.target == target):
                return a
        return None

    def _vcpu_set(self, request: int, arg: Any, mode: str = "split") -> int:
        """Replay the recorded verification: what the host accepted and refused."""
        self.mode = mode
        if request == abi.KVM_SET_CPUID2:
            given = tuple(
                CpuidEntry(*(getattr(arg.entries[i], k) for k in _ENTRY_FIELDS))
                for i in range(arg.nent)
            )
            self.table = "supported" if given == self.snap.supported_cpuid else "effective"
        if request == abi.KVM_SET_MSRS:
            index, value = arg.entries[0].index, int(arg.entries[0].data)
            a = self._attempt("KVM_SET_MSRS", index)
            if a is None or a.accepted:
                return 1
            bits = [b for b in range(64) if value >> b & 1]
            if a.refused_bits:
                return 0 if any(b in a.refused_bits for b in bits) else 1
            return 0 if value == a.value else 1
        what = {abi.KVM_SET_CPUID2: "KVM_SET_CPUID2", abi.KVM_SET_XCRS: "KVM_SET_XCRS",
                abi.KVM_X86_SETUP_MCE: "KVM_X86_SETUP_MCE"}[request]  # fmt: skip
        a = self._attempt(what)
        if a is not None and a.accepted is False:
            if what == "KVM_SET_XCRS" and a.refused_bits:
                mask = int(arg.xcrs[0].value)
                if not any(mask >> b & 1 for b in a.refused_bits):
                    return 0
            raise OSError(a.errno or errno.EINVAL, "refused")
        return 0


_NAMES = {
    getattr(abi, n): n.removeprefix("KVM_")
    for n in dir(abi)
    if n.startswith("KVM_")
    and n.isupper()
    and isinstance(getattr(abi, n), int)
    and getattr(abi, n) > 0xFFFF
}
_NAMES.update({abi.KVM_GET_API_VERSION: "GET_API_VERSION", abi.KVM_CREATE_VM: "CREATE_VM",
               abi.KVM_CHECK_EXTENSION: "CHECK_EXTENSION",
               abi.KVM_GET_VCPU_MMAP_SIZE: "GET_VCPU_MMAP_SIZE",
               abi.KVM_CREATE_VCPU: "CREATE_VCPU",
               abi.KVM_CREATE_IRQCHIP: "CREATE_IRQCHIP"})  # fmt: skip
