"""An open KVM device node: one documented wrapper per ioctl, every fd closed on every path.

Each wrapper names the uapi ioctl it issues and the capability that gates it; variable-size
answers grow their buffer on E2BIG up to kvmprobe.limits.MAX_BUFFER. kvmprobe.kvm.probe asks
these wrappers everything and builds the Snapshot.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from kvmprobe.errors import KvmprobeError, device_error, not_kvm_error
from kvmprobe.kvm import abi
from kvmprobe.limits import DEFAULT_DEVICE, FIRST_BUFFER, MAX_BUFFER
from kvmprobe.snapshot import CpuidEntry

TYPE_CHECKING = False
if TYPE_CHECKING:
    from kvmprobe.access_facts import NodeMode

IoctlFn = Callable[..., int]


def _not_kvm(path: str, detail: str) -> KvmprobeError:
    return not_kvm_error(path, detail, abi.KVM_RDEV)


def node_mode(path: str) -> NodeMode | None:
    """Mode, owner and group of ``path`` for error hints; None when stat fails."""
    import grp
    import pwd

    from kvmprobe.access_facts import NodeMode

    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return NodeMode(st.st_mode, owner, group)


def _usual_node_exists(path: str, exc: OSError) -> bool | None:
    """For a path that does not exist: does the usual node (/dev/kvm) exist? None when the
    question does not arise (another error, or the path is the usual node)."""
    if exc.errno != errno.ENOENT or path == DEFAULT_DEVICE:
        return None
    return os.path.exists(DEFAULT_DEVICE)


def _refuse_non_kvm(path: str) -> None:
    """Look before opening: opening some character devices has effects (a watchdog starts
    its countdown), so only KVM's own device numbers are ever opened read-write."""
    try:
        st = os.stat(path)
    except OSError:
        return  # open() below reports it (ENOENT, EACCES on a parent, ...)
    if stat.S_ISDIR(st.st_mode):
        raise _not_kvm(path, "a directory")
    if stat.S_ISREG(st.st_mode):
        raise _not_kvm(path, "a regular file")
    if not stat.S_ISCHR(st.st_mode):
        raise _not_kvm(path, "not a character device")
    rdev = (os.major(st.st_rdev), os.minor(st.st_rdev))
    if rdev != abi.KVM_RDEV:
        kvm = f"{abi.KVM_RDEV[0]}:{abi.KVM_RDEV[1]}"
        raise _not_kvm(path, f"character device {rdev[0]}:{rdev[1]}, not KVM's {kvm}; not opened")


class KvmDevice:
    """An open KVM device node. Use as a context manager; closes its fd on exit."""

    def __init__(self, path: str = DEFAULT_DEVICE, ioctl: IoctlFn | None = None) -> None:
        self.path = path
        self._ioctl: IoctlFn = ioctl or fcntl.ioctl
        if ioctl is None:
            _refuse_non_kvm(path)
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except OSError as e:
            raise device_error(
                path, e, node=node_mode(path), usual_exists=_usual_node_exists(path, e)
            ) from None
        try:
            st = os.fstat(self.fd)
            if stat.S_ISDIR(st.st_mode):
                raise _not_kvm(path, "a directory")
            if not stat.S_ISCHR(st.st_mode):
                kind = "a regular file" if stat.S_ISREG(st.st_mode) else "not a character device"
                raise _not_kvm(path, kind)
            self.rdev = (os.major(st.st_rdev), os.minor(st.st_rdev))
            try:
                self.api_version = self._ioctl(self.fd, abi.KVM_GET_API_VERSION, 0)
            except OSError as e:
                if e.errno in (errno.ENOTTY, errno.EINVAL):
                    raise _not_kvm(
                        path, f"KVM_GET_API_VERSION failed with {errno.errorcode[e.errno]}"
                    ) from None
                raise device_error(path, e, step="KVM_GET_API_VERSION") from None
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
    def ioctl(self, fd: int, request: int, arg: object = 0) -> int:
        """One ioctl on ``fd`` (this device's, or a VM or vCPU fd made from it)."""
        return int(self._ioctl(fd, request, arg))

    def check_extension(self, fd: int, cap: int) -> int:
        """KVM_CHECK_EXTENSION on /dev/kvm or, with KVM_CAP_CHECK_EXTENSION_VM, on a VM fd."""
        return int(self._ioctl(fd, abi.KVM_CHECK_EXTENSION, cap))

    def check_extensions(self, fd: int, count: int) -> tuple[dict[int, int], dict[int, OSError]]:
        """``check_extension`` for capabilities 0..count-1 (a scope's whole table, asked in one
        tight loop): the non-zero answers, and the errors by capability."""
        ioctl, request = self._ioctl, abi.KVM_CHECK_EXTENSION
        values: dict[int, int] = {}
        errors: dict[int, OSError] = {}
        for cap in range(count):
            try:
                v = ioctl(fd, request, cap)
            except OSError as e:
                errors[cap] = e
                continue
            if v:
                values[cap] = int(v)
        return values, errors

    @contextmanager
    def vm(self, vm_type: int = abi.KVM_X86_DEFAULT_VM) -> Iterator[int]:
        """KVM_CREATE_VM: a fresh VM fd, closed when the block ends (whatever happens in it).
        Other VM types than the default are gated by KVM_CAP_VM_TYPES."""
        vm_fd = int(self._ioctl(self.fd, abi.KVM_CREATE_VM, vm_type))
        try:
            yield vm_fd
        finally:
            os.close(vm_fd)

    def enable_cap(self, fd: int, cap: int, *args: int) -> None:
        """KVM_ENABLE_CAP on a VM or vCPU fd (KVM_CAP_ENABLE_CAP_VM on VMs); ``cap`` is the
        capability being enabled, ``args`` its arguments."""
        req = abi.kvm_enable_cap()
        req.cap = cap
        for i, a in enumerate(args):
            req.args[i] = a
        self._ioctl(fd, abi.KVM_ENABLE_CAP, req)

    def create_irqchip(self, vm_fd: int) -> None:
        """KVM_CREATE_IRQCHIP: the LAPIC, IOAPIC and PIC all in the kernel (``-machine
        kernel-irqchip=on`` in QEMU); must come before the first vCPU."""
        self._ioctl(vm_fd, abi.KVM_CREATE_IRQCHIP, 0)

    def _cpuid(self, request: int, zero_padding: bool = True) -> tuple[CpuidEntry, ...]:
        # buffer: starts at FIRST_BUFFER entries and doubles on E2BIG up to MAX_BUFFER; the
        # kernel writes at most nent entries and sets nent to the count it wrote.
        n = FIRST_BUFFER
        while True:
            buf = abi.kvm_cpuid2_with(n)()  # ctypes zero-fills, padding included
            buf.nent = n
            try:
                self._ioctl(self.fd, request, buf, True)
            except OSError as e:
                if e.errno == errno.E2BIG and n < MAX_BUFFER:
                    n *= 2
                    continue
                raise
            count = min(int(buf.nent), n)
            if count == n and n < MAX_BUFFER:  # may be truncated on old kernels: ask again
                n *= 2
                continue
            return tuple(
                CpuidEntry(e.function, e.index, e.flags, e.eax, e.ebx, e.ecx, e.edx)
                for e in buf.entries[:count]
            )

    def supported_cpuid(self) -> tuple[CpuidEntry, ...]:
        """KVM_GET_SUPPORTED_CPUID on /dev/kvm (KVM_CAP_EXT_CPUID; always present on x86)."""
        return self._cpuid(abi.KVM_GET_SUPPORTED_CPUID)

    def emulated_cpuid(self) -> tuple[CpuidEntry, ...]:
        """KVM_GET_EMULATED_CPUID on /dev/kvm (gated by KVM_CAP_EXT_EMUL_CPUID)."""
        return self._cpuid(abi.KVM_GET_EMULATED_CPUID)

    def supported_hv_cpuid(self) -> tuple[CpuidEntry, ...]:
        """KVM_GET_SUPPORTED_HV_CPUID on /dev/kvm (gated by KVM_CAP_SYS_HYPERV_CPUID)."""
        return self._cpuid(abi.KVM_GET_SUPPORTED_HV_CPUID)

    def _msr_list(self, request: int) -> tuple[int, ...]:
        # buffer: FIRST_BUFFER indices, then what the kernel asks for on E2BIG (nmsrs), never
        # more than MAX_BUFFER; the kernel sets nmsrs to the count.
        n = FIRST_BUFFER
        while True:
            buf = abi.kvm_msr_list_with(n)()
            buf.nmsrs = n
            try:
                self._ioctl(self.fd, request, buf, True)
            except OSError as e:
                if e.errno == errno.E2BIG and n < MAX_BUFFER:
                    # The kernel says how many it needs; never trust that beyond MAX_BUFFER.
                    n = min(max(n * 2, int(buf.nmsrs)), MAX_BUFFER)
                    continue
                if e.errno == errno.E2BIG:
                    raise OSError(
                        errno.E2BIG,
                        f"the kernel asks for {int(buf.nmsrs)} entries, more than kvmprobe "
                        f"accepts ({MAX_BUFFER})",
                    ) from None
                raise
            return tuple(int(x) for x in buf.indices[: min(int(buf.nmsrs), n)])

    def msr_index_list(self) -> tuple[int, ...]:
        """KVM_GET_MSR_INDEX_LIST on /dev/kvm: the MSRs KVM saves and restores (basic KVM)."""
        return self._msr_list(abi.KVM_GET_MSR_INDEX_LIST)

    def msr_feature_index_list(self) -> tuple[int, ...]:
        """KVM_GET_MSR_FEATURE_INDEX_LIST on /dev/kvm (gated by KVM_CAP_GET_MSR_FEATURES)."""
        return self._msr_list(abi.KVM_GET_MSR_FEATURE_INDEX_LIST)

    def get_feature_msr(self, index: int) -> int | None:
        """KVM_GET_MSRS on /dev/kvm for one feature MSR (KVM_CAP_GET_MSR_FEATURES); None if
        KVM read none."""
        buf = abi.kvm_msrs_with(1)()
        buf.nmsrs = 1
        buf.entries[0].index = index
        done = self._ioctl(self.fd, abi.KVM_GET_MSRS, buf, True)
        return int(buf.entries[0].data) if done == 1 else None

    def get_device_attr(self, fd: int, group: int, attr: int) -> int:
        """KVM_GET_DEVICE_ATTR (on /dev/kvm gated by KVM_CAP_SYS_ATTRIBUTES); a u64 value."""
        value = ctypes.c_uint64(0)
        req = abi.kvm_device_attr()
        req.group = group
        req.attr = attr
        req.addr = ctypes.addressof(value)
        self._ioctl(fd, abi.KVM_GET_DEVICE_ATTR, req)
        return int(value.value)

    def set_cpuid2(self, vcpu_fd: int, entries: tuple[CpuidEntry, ...]) -> None:
        """KVM_SET_CPUID2 on a vCPU (basic KVM; no capability gates it on x86).
        buffer: exactly len(entries) entries, padding zeroed by ctypes."""
        buf = abi.kvm_cpuid2_with(max(len(entries), 1))()
        buf.nent = len(entries)
        for slot, e in zip(buf.entries, entries, strict=False):
            slot.function, slot.index, slot.flags = e.function, e.index, e.flags
            slot.eax, slot.ebx, slot.ecx, slot.edx = e.eax, e.ebx, e.ecx, e.edx
        self._ioctl(vcpu_fd, abi.KVM_SET_CPUID2, buf)

    def setup_mce(self, vcpu_fd: int, mcg_cap: int) -> None:
        """KVM_X86_SETUP_MCE on a vCPU (gated by KVM_CAP_MCE)."""
        value = ctypes.c_uint64(mcg_cap)
        self._ioctl(vcpu_fd, abi.KVM_X86_SETUP_MCE, value)

    def mce_cap_supported(self) -> int:
        """KVM_X86_GET_MCE_CAP_SUPPORTED on /dev/kvm (gated by KVM_CAP_MCE)."""
        value = ctypes.c_uint64(0)
        self._ioctl(self.fd, abi.KVM_X86_GET_MCE_CAP_SUPPORTED, value, True)
        return int(value.value)

    def vcpu_mmap_size(self) -> int:
        """KVM_GET_VCPU_MMAP_SIZE on /dev/kvm (basic KVM)."""
        return int(self._ioctl(self.fd, abi.KVM_GET_VCPU_MMAP_SIZE, 0))
