"""Exit statuses and the one error type every command turns into a one-line message plus a hint."""

from __future__ import annotations

import errno as _errno
import os
from enum import IntEnum


class ExitStatus(IntEnum):
    """Fixed exit statuses (DESIGN.md)."""

    OK = 0
    ERROR = 1
    USAGE = 2
    KVM_UNAVAILABLE = 3
    PERMISSION = 4
    CHECK_FAILED = 5
    INTERRUPTED = 130


class KvmprobeError(Exception):
    """An error the user can act on: what went wrong, how to fix it, and the exit status."""

    def __init__(self, message: str, hint: str = "", status: ExitStatus = ExitStatus.ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.status = status


def errno_name(code: int | None) -> str:
    """ENOENT-style name for an errno value ('E?' plus the number when unknown)."""
    if code is None:
        return "?"
    return _errno.errorcode.get(code, f"E{code}")


def _describe_mode(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return ""
    import grp
    import stat

    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return f"{stat.filemode(st.st_mode)} group '{group}'"


def device_open_error(path: str, exc: OSError) -> KvmprobeError:
    """Turn a failed open() of a KVM device node into a message, a hint and an exit status."""
    code = exc.errno
    if code == _errno.ENOENT:
        return KvmprobeError(
            f"{path} does not exist",
            "load the KVM module (modprobe kvm_intel or kvm_amd), check that the CPU or the "
            "host hypervisor offers virtualization, or pass the device into the container "
            "(e.g. docker --device /dev/kvm)",
            ExitStatus.KVM_UNAVAILABLE,
        )
    if code in (_errno.EACCES, _errno.EPERM):
        mode = _describe_mode(path)
        return KvmprobeError(
            f"permission denied opening {path}" + (f" ({mode})" if mode else ""),
            "add your user to the device's group (e.g. sudo usermod -aG kvm $USER, then log in "
            "again) or run as a user that can open it read-write",
            ExitStatus.PERMISSION,
        )
    if code == _errno.EROFS:
        return KvmprobeError(
            f"{path} is on a read-only file system and cannot be opened read-write",
            "bind-mount the device read-write into this environment",
            ExitStatus.PERMISSION,
        )
    if code in (_errno.ENXIO, _errno.ENODEV):
        return KvmprobeError(
            f"{path} exists but no driver answers it ({errno_name(code)})",
            "the KVM module is not loaded or was unloaded: modprobe kvm_intel or kvm_amd",
            ExitStatus.KVM_UNAVAILABLE,
        )
    if code == _errno.EISDIR:
        return KvmprobeError(
            f"{path} is a directory, not a KVM device",
            "pass the KVM character device, normally /dev/kvm",
            ExitStatus.ERROR,
        )
    return KvmprobeError(
        f"cannot open {path}: {exc.strerror or errno_name(code)}",
        "check that the path names the KVM character device, normally /dev/kvm",
        ExitStatus.ERROR,
    )


def not_kvm_error(path: str, detail: str) -> KvmprobeError:
    return KvmprobeError(
        f"{path} is not a KVM device ({detail})",
        "pass the KVM character device, normally /dev/kvm (char 10:232)",
        ExitStatus.ERROR,
    )
