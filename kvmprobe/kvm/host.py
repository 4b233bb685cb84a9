"""Facts about the host around the KVM device: kernel, KVM modules, the host's own CPUID.

Reads /proc, /sys and /dev/cpu/N/cpuid. Every failure is recorded, none is fatal.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import struct
from collections.abc import Iterator

from kvmprobe.kvm import abi
from kvmprobe.snapshot import CpuidEntry, HostInfo, ModuleInfo

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol

    class _Rec(Protocol):
        def add(self, step: str, exc: OSError | str) -> None: ...


KVM_MODULE_PREFIXES = ("kvm",)
# Leaves whose ECX subleaf matters, and how far to walk them on the host.
_HOST_SUBLEAVES_FIXED = {0xD: 64, 0x10: 4, 0x12: 8, 0xF: 4, 0x1B: 4, 0x23: 4, 0x80000020: 4}
_HOST_SUBLEAVES_BY_EAX = (0x7, 0x14, 0x17, 0x18, 0x1D, 0x20, 0x24)
_HOST_SUBLEAVES_UNTIL_TYPE0 = (0x4, 0x8000001D)
_HOST_SUBLEAVES_TOPOLOGY = (0xB, 0x1F)


def _read_attribute(path: str) -> str:
    """A sysfs attribute file's text: one read (the kernel hands out at most a page), without
    a buffered text stream (a probe reads some forty of them)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, 65536)
    finally:
        os.close(fd)
    return data.decode("utf-8", "replace")


def _first_cpu_block(path: str = "/proc/cpuinfo") -> str:
    """/proc/cpuinfo up to the end of its first CPU's block. The kernel writes the file one
    CPU at a time as it is read, so on a host with hundreds of CPUs reading only the first
    block saves composing all the others (the fields kvmprobe uses are the same on every CPU
    of a host it supports: one vendor, one model)."""
    data = b""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        while b"\n\n" not in data:
            chunk = os.read(fd, 16384)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(fd)
    text = data.decode("utf-8", "replace")
    return text.split("\n\n", 1)[0]


def _cpuinfo() -> tuple[str, str, tuple[str, ...]]:
    vendor = model = ""
    flags: tuple[str, ...] = ()
    try:
        text = _first_cpu_block()
    except OSError:
        return vendor, model, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "vendor_id" and not vendor:
            vendor = value.strip()
        elif key == "model name" and not model:
            model = value.strip()
        elif key == "flags" and not flags:
            flags = tuple(sorted(value.split()))
        if vendor and model and flags:
            break
    return vendor, model, flags


def kvm_modules(sys_module: str = "/sys/module") -> dict[str, ModuleInfo]:
    """KVM modules known to the kernel, with their readable parameters."""
    out: dict[str, ModuleInfo] = {}
    try:
        names = sorted(os.listdir(sys_module))
    except OSError:
        return out
    for name in names:
        if not name.startswith(KVM_MODULE_PREFIXES):
            continue
        base = os.path.join(sys_module, name)
        params: dict[str, str] = {}
        pdir = os.path.join(base, "parameters")
        try:
            pnames = sorted(os.listdir(pdir))
        except OSError:
            pnames = []
        for p in pnames:
            try:
                params[p] = _read_attribute(os.path.join(pdir, p)).strip()
            except OSError as e:
                params[p] = f"<unreadable: {e.strerror}>"
        builtin = not os.path.exists(os.path.join(base, "initstate"))
        out[name] = ModuleInfo(name=name, builtin=builtin, params=params)
    return out


class _CpuidReader:
    """CPUID of one CPU through its /dev/cpu/N/cpuid node. Every read runs the instruction
    on that CPU (a cross-CPU call when this thread runs elsewhere), so each (leaf, subleaf)
    is read once: the walk asks for some twice (a leaf's subleaf 0 decides its subleaves)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._read: dict[int, tuple[int, int, int, int]] = {}

    def __call__(self, leaf: int, subleaf: int = 0) -> tuple[int, int, int, int]:
        offset = (subleaf << 32) | leaf
        got = self._read.get(offset)
        if got is None:
            a, b, c, d = struct.unpack("<4I", os.pread(self.fd, 16, offset))
            got = self._read[offset] = (int(a), int(b), int(c), int(d))
        return got


@contextlib.contextmanager
def on_first_cpu() -> Iterator[None]:
    """This thread on the lowest-numbered CPU it may run on while the block runs. For
    KVM_GET_SUPPORTED_CPUID: KVM fills a few per-CPU fields (the initial APIC ID in leaf 1
    EBX[31:24], the x2APIC ID of leaf 0xB/0x1F EDX) from the CPU the ioctl ran on, so without
    this two probes of one host could differ in them."""
    try:
        first = min(os.sched_getaffinity(0))
    except (OSError, ValueError):
        yield
        return
    with _running_on(first):
        yield


@contextlib.contextmanager
def _running_on(cpu: int) -> Iterator[None]:
    """This thread on ``cpu`` while the block runs, when its affinity allows it (then each
    read of that CPU's cpuid node is a local call, not an interrupt of another CPU: about
    six times faster in a VM); otherwise where it was. The affinity is restored after."""
    try:
        before = os.sched_getaffinity(0)
        if cpu not in before or len(before) == 1:
            before = set()
        else:
            os.sched_setaffinity(0, {cpu})
    except OSError:
        before = set()
    try:
        yield
    finally:
        if before:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, before)


def _walk(read: _CpuidReader, first: int) -> list[CpuidEntry]:
    entries: list[CpuidEntry] = []
    top = read(first)[0]
    if first and not first <= top < first + 0x1000:
        top = first
    if first == 0:
        top = min(top, 0xFF)
    for leaf in range(first, top + 1):
        subleaves: list[int]
        eax0 = read(leaf, 0)
        if leaf in _HOST_SUBLEAVES_FIXED:
            subleaves = list(range(_HOST_SUBLEAVES_FIXED[leaf]))
        elif leaf in _HOST_SUBLEAVES_BY_EAX:
            subleaves = list(range(min(eax0[0], 63) + 1))
        elif leaf in _HOST_SUBLEAVES_UNTIL_TYPE0:
            subleaves = []
            for s in range(64):
                subleaves.append(s)
                if read(leaf, s)[0] & 0x1F == 0:
                    break
        elif leaf in _HOST_SUBLEAVES_TOPOLOGY:
            subleaves = []
            for s in range(64):
                subleaves.append(s)
                if (read(leaf, s)[2] >> 8) & 0xFF == 0:
                    break
        else:
            subleaves = [0]
        flags = 0 if subleaves == [0] and leaf not in _HOST_SUBLEAVES_BY_EAX else 1
        for s in subleaves:
            a, b, c, d = read(leaf, s)
            entries.append(CpuidEntry(leaf, s, flags, a, b, c, d))
    return entries


def host_cpuid(cpu: int = 0) -> tuple[tuple[CpuidEntry, ...] | None, str | None, str | None]:
    """(entries, source, error) for the host's own CPUID as seen from ``cpu``."""
    path = f"/dev/cpu/{cpu}/cpuid"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        why = e.strerror or str(e)
        if e.errno == 2:
            why += " (load the 'cpuid' module: modprobe cpuid)"
        elif e.errno in (1, 13):
            why += " (reading host CPUID needs root or CAP_SYS_RAWIO)"
        return None, None, f"{path}: {why}"
    try:
        read = _CpuidReader(fd)
        with _running_on(cpu):
            entries = _walk(read, 0)
            entries += _walk(read, 0x40000000) if _hypervisor_present(read) else []
            entries += _walk(read, 0x80000000)
        return tuple(entries), path, None
    except OSError as e:
        return None, None, f"{path}: {e.strerror or e}"
    finally:
        os.close(fd)


def _hypervisor_present(read: _CpuidReader) -> bool:
    return bool(read(1)[2] & (1 << 31))


def minimal(device_major_minor: tuple[int, int] | None = None) -> HostInfo:
    """Kernel identity only (what every JSON source object names); no files read."""
    uname = os.uname()
    return HostInfo(
        kernel_release=uname.release,
        kernel_version=uname.version,
        machine=uname.machine,
        device_major_minor=device_major_minor,
    )


def collect(rec: _Rec, device_major_minor: tuple[int, int] | None = None) -> HostInfo:
    uname = os.uname()
    vendor, model, flags = _cpuinfo()
    entries, source, error = host_cpuid()
    if error:
        rec.add("host CPUID", error)
    try:
        online = len(os.sched_getaffinity(0))
    except OSError:
        online = os.cpu_count() or 0
    return HostInfo(
        kernel_release=uname.release,
        kernel_version=uname.version,
        machine=uname.machine,
        cpu_vendor=vendor,
        cpu_model_name=model,
        online_cpus=online,
        cpuinfo_flags=flags,
        cpuid_source=source,
        cpuid_error=error,
        cpuid=entries,
        modules=kvm_modules(),
        device_major_minor=device_major_minor,
    )


def _arch_prctl(code: int, arg: int) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    ret = libc.syscall(ctypes.c_long(abi.SYS_arch_prctl), ctypes.c_long(code), ctypes.c_ulong(arg))
    if ret < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return int(ret)


def request_xcomp_guest_perm(rec: _Rec) -> dict[str, int]:
    """Ask for permission to give guests dynamically-enabled XSAVE features (AMX TILEDATA),
    as VMMs do, and record the masks before and after."""
    if os.uname().machine != "x86_64":
        return {}
    out: dict[str, int] = {}
    value = ctypes.c_uint64(0)
    try:
        _arch_prctl(abi.ARCH_GET_XCOMP_SUPP, ctypes.addressof(value))
        out["supp"] = int(value.value)
        _arch_prctl(abi.ARCH_GET_XCOMP_GUEST_PERM, ctypes.addressof(value))
        out["guest_perm_before"] = int(value.value)
    except OSError as e:
        rec.add("arch_prctl(ARCH_GET_XCOMP_SUPP/GUEST_PERM)", e)
        return out
    if out["supp"] & (1 << abi.XFEATURE_XTILEDATA):
        try:
            _arch_prctl(abi.ARCH_REQ_XCOMP_GUEST_PERM, abi.XFEATURE_XTILEDATA)
        except OSError as e:
            rec.add("arch_prctl(ARCH_REQ_XCOMP_GUEST_PERM, XTILEDATA)", e)
    try:
        _arch_prctl(abi.ARCH_GET_XCOMP_GUEST_PERM, ctypes.addressof(value))
        out["guest_perm_after"] = int(value.value)
    except OSError as e:
        rec.add("arch_prctl(ARCH_GET_XCOMP_GUEST_PERM)", e)
    return out
