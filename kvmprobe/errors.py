"""Exit statuses, the one error type every command turns into a line plus a hint, and the one
table that maps an errno met on a KVM device to a status and a hint. No I/O here: callers that
know more about the node (its mode, owner and group) pass it in as a NodeMode.
"""

from __future__ import annotations

import errno as _errno
import stat as _stat
from enum import IntEnum

from kvmprobe.limits import DEFAULT_DEVICE

TYPE_CHECKING = False
if TYPE_CHECKING:
    from kvmprobe.access_facts import NodeMode


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


if not TYPE_CHECKING:  # to a type checker, a module __getattr__ makes every name exist
    from kvmprobe.lazy import forward

    # NodeMode lives with the other device-access facts and is created only when a device
    # error needs a hint (every command imports this module; a value type costs start-up time)
    __getattr__ = forward(__name__, {"NodeMode": "kvmprobe.access_facts"})


_GROUP_RW = _stat.S_IRGRP | _stat.S_IWGRP
_OTHER_RW = _stat.S_IROTH | _stat.S_IWOTH


def _permission_hint(path: str, node: NodeMode | None) -> str:
    if node is not None and node.mode & _OTHER_RW == _OTHER_RW:
        return (
            "the mode allows everyone, so something else refuses: an ACL, a read-only or nodev "
            "mount, a cgroup device rule or an LSM; 'kvmprobe doctor' names which"
        )
    if node is not None and node.mode & _GROUP_RW == _GROUP_RW:
        if node.group in ("root", "0"):
            from kvmprobe.access_facts import root_group_hint

            return root_group_hint(path, "$USER")
        return (
            f"add your user to the group '{node.group}' that may open it (sudo usermod -aG "
            f"{node.group} $USER, then log in again), or run as a user that can open it"
        )
    return (
        "the node gives no group read-write access: give it a 'kvm' group with mode 0660 (a "
        'udev rule such as KERNEL=="kvm", GROUP="kvm", MODE="0660"), add your user to that '
        "group, or run as root"
    )


class _Advice:
    """One row of the table below. A plain class, not a dataclass: every command imports
    this module, and creating a dataclass costs start-up time."""

    __slots__ = ("hint", "status", "what")

    def __init__(self, status: ExitStatus, what: str, hint: str) -> None:
        self.status = status
        self.what = what  # "{path}" and "{name}" are filled in
        self.hint = hint


# errno met while opening or first talking to a KVM device -> what it means and what to do.
# Every command uses this one table, so the same fault gets the same status and hint.
_DEVICE_ERRNO: dict[int, _Advice] = {
    _errno.ENOENT: _Advice(
        ExitStatus.KVM_UNAVAILABLE,
        "{path} does not exist",
        "load the KVM module (modprobe kvm_intel or kvm_amd), check that the CPU or the host "
        "hypervisor offers virtualization, or pass the device into the container "
        "(e.g. docker --device /dev/kvm)",
    ),
    _errno.ENXIO: _Advice(
        ExitStatus.KVM_UNAVAILABLE,
        "{path} exists but no driver answers it ({name})",
        "the KVM module is not loaded or was unloaded: modprobe kvm_intel or kvm_amd",
    ),
    _errno.ENODEV: _Advice(
        ExitStatus.KVM_UNAVAILABLE,
        "{path} exists but no driver answers it ({name})",
        "the KVM module is not loaded or was unloaded: modprobe kvm_intel or kvm_amd",
    ),
    _errno.EROFS: _Advice(
        ExitStatus.PERMISSION,
        "{path} is on a read-only file system and cannot be opened read-write",
        "bind-mount the device read-write into this environment",
    ),
    _errno.EISDIR: _Advice(
        ExitStatus.ERROR,
        "{path} is a directory, not a KVM device",
        "pass the KVM character device, normally /dev/kvm",
    ),
    _errno.EMFILE: _Advice(
        ExitStatus.ERROR,
        "cannot open {path}: this process has too many open files ({name})",
        "raise the open-file limit (ulimit -n) or close other files first",
    ),
    _errno.ENFILE: _Advice(
        ExitStatus.ERROR,
        "cannot open {path}: the system has too many open files ({name})",
        "close files elsewhere on the system, or raise fs.file-max",
    ),
    _errno.ENOMEM: _Advice(
        ExitStatus.ERROR,
        "out of memory talking to {path} ({name})",
        "free memory or raise the process's memory limit and try again",
    ),
    _errno.EINTR: _Advice(
        ExitStatus.INTERRUPTED,
        "interrupted while talking to {path}",
        "run the command again",
    ),
}


def _missing_node_hint(path: str, usual_exists: bool | None) -> str:
    """A path that does not exist: KVM missing, or (another path than the usual node) a
    wrong path, the more likely when the usual node exists (``usual_exists``)."""
    advice = _DEVICE_ERRNO[_errno.ENOENT].hint
    if path == DEFAULT_DEVICE:
        return advice
    if usual_exists:
        return (
            f"check the path: KVM's node is normally {DEFAULT_DEVICE}, which exists here; try "
            f"--device {DEFAULT_DEVICE} (the default)"
        )
    return f"check the path (KVM's node is normally {DEFAULT_DEVICE}); otherwise {advice}"


def device_error(
    path: str,
    exc: OSError,
    *,
    step: str = "open",
    node: NodeMode | None = None,
    usual_exists: bool | None = None,
) -> KvmprobeError:
    """The error for ``exc`` met at ``step`` ("open" or an ioctl name such as
    KVM_GET_API_VERSION) on the KVM device ``path``: one table for every command.
    ``usual_exists``: whether the usual node (/dev/kvm) exists, when the caller looked."""
    code = exc.errno
    name = errno_name(code)
    if code in (_errno.EACCES, _errno.EPERM):
        where = f" ({node.text})" if node is not None else ""
        doing = "opening" if step == "open" else f"{step} on"
        return KvmprobeError(
            f"permission denied {doing} {path}{where}",
            _permission_hint(path, node),
            ExitStatus.PERMISSION,
        )
    advice = _DEVICE_ERRNO.get(code) if code is not None else None
    if advice is not None:
        what = advice.what.format(path=path, name=name)
        if step != "open" and code not in (_errno.EMFILE, _errno.ENFILE, _errno.ENOMEM):
            what += f" ({step} failed)"
        hint = advice.hint
        if code == _errno.ENOENT and step == "open":
            hint = _missing_node_hint(path, usual_exists)
        return KvmprobeError(what, hint, advice.status)
    if step == "open":
        return KvmprobeError(
            f"cannot open {path}: {name}: {exc.strerror or exc}",
            "check that the path names the KVM character device, normally /dev/kvm",
            ExitStatus.ERROR,
        )
    return KvmprobeError(
        f"{step} on {path} failed: {name}: {exc.strerror or exc}",
        "the device opened but does not answer as KVM should; look at 'dmesg | grep -i kvm' "
        "and run 'kvmprobe doctor'",
        ExitStatus.KVM_UNAVAILABLE,
    )


def device_open_error(path: str, exc: OSError, node: NodeMode | None = None) -> KvmprobeError:
    """Turn a failed open() of a KVM device node into a message, a hint and an exit status."""
    return device_error(path, exc, step="open", node=node)


def not_kvm_error(path: str, detail: str, kvm_rdev: tuple[int, int] | None = None) -> KvmprobeError:
    numbers = f" (char {kvm_rdev[0]}:{kvm_rdev[1]})" if kvm_rdev else ""
    return KvmprobeError(
        f"{path} is not a KVM device ({detail})",
        f"pass the KVM character device, normally /dev/kvm{numbers}",
        ExitStatus.ERROR,
    )
