"""Device-access facts: what the recording process found out about reaching the device node
(gathered by kvmprobe.kvm.access, judged by kvmprobe.analysis.doctor), saved in a snapshot's
``access``. Raw facts, like the rest of a snapshot (kvmprobe.snapshot, which loads them and
re-exports these types).

Kept out of kvmprobe.snapshot so that the commands that never read them (every one but
``record`` and ``doctor``, and a load of a snapshot without them) do not pay for creating
their classes at start-up.
"""

from __future__ import annotations

import stat as _stat

from kvmprobe.errors import errno_name
from kvmprobe.frozen import field, frozen
from kvmprobe.vocab import CgroupVersion, NodeKind

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def root_group_hint(path: str, user: str) -> str:
    """The fix when a node's group read-write access belongs to root's group: no ordinary
    user should join that group, so the node needs a group of its own. The one wording for
    every command's permission error and for doctor."""
    return (
        "the node's group is root, and root's group is no group to add users to: give the node "
        f"a dedicated 'kvm' group (sudo groupadd -f --system kvm; sudo chgrp kvm {path}; keep "
        'it with a udev rule: KERNEL=="kvm", GROUP="kvm", MODE="0660"), then sudo usermod -aG '
        f"kvm {user} and log in again; or run as root"
    )


@frozen
class NodeMode:
    """What stat() said about a device node, for hints that fit the node at hand (created
    only on the way to a device error: kvmprobe.errors re-exports it)."""

    mode: int  # st_mode (type and permission bits)
    owner: str
    group: str

    @property
    def text(self) -> str:
        return f"{_stat.filemode(self.mode)} {self.owner}:{self.group}"


@frozen
class NodeStat:
    """stat() of the device path (following symlinks)."""

    kind: NodeKind
    mode: int  # permission bits only (st_mode & 0o7777)
    uid: int
    gid: int
    owner: str  # user name, or the number as text
    group: str  # group name, or the number as text
    rdev: tuple[int, int] | None  # (major, minor) for device nodes

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "mode": self.mode,
            "uid": self.uid,
            "gid": self.gid,
            "owner": self.owner,
            "group": self.group,
            "rdev": None if self.rdev is None else list(self.rdev),
        }


@frozen
class AclEntry:
    """One entry of the node's POSIX ACL (system.posix_acl_access)."""

    tag: str  # an AclTag value, or "tag 0x.." for a tag this kvmprobe does not know
    qualifier: int | None  # uid/gid for "user"/"group" entries
    perms: int  # rwx bits: 4 read, 2 write, 1 execute

    def to_json(self) -> dict[str, Any]:
        return {"tag": self.tag, "qualifier": self.qualifier, "perms": self.perms}


@frozen
class MountFacts:
    """The mount holding the device path, from /proc/self/mountinfo and statvfs()."""

    mount_point: str | None = None
    fs_type: str | None = None
    options: tuple[str, ...] = ()
    readonly: bool | None = None  # statvfs ST_RDONLY
    nodev: bool | None = None  # statvfs ST_NODEV: device nodes there cannot be opened
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "mount_point": self.mount_point,
            "fs_type": self.fs_type,
            "options": list(self.options),
            "readonly": self.readonly,
            "nodev": self.nodev,
            "error": self.error,
        }


@frozen
class CgroupFacts:
    """The cgroups of the recording process and, under cgroup v1, its device rules."""

    lines: tuple[str, ...] = ()  # /proc/self/cgroup
    version: CgroupVersion = CgroupVersion.UNKNOWN
    devices_file: str | None = None  # the v1 devices.list read
    devices_list: tuple[str, ...] | None = None  # its lines, e.g. "c 10:232 rwm", "a *:* rwm"
    devices_error: str | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "lines": list(self.lines),
            "version": str(self.version),
            "devices_file": self.devices_file,
            "devices_list": None if self.devices_list is None else list(self.devices_list),
            "devices_error": self.devices_error,
            "error": self.error,
        }


@frozen
class ContainerFacts:
    """The usual signs of running in a container."""

    markers: tuple[str, ...] = ()  # marker files that exist (/.dockerenv, ...)
    pid1_container: str | None = None  # value of container= in /proc/1/environ
    pid1_environ_error: str | None = None
    root_fs_type: str | None = None  # file system type of / (overlay in most containers)
    dev_fs_type: str | None = None  # file system type of /dev (devtmpfs on hosts)

    def to_json(self) -> dict[str, Any]:
        return {
            "markers": list(self.markers),
            "pid1_container": self.pid1_container,
            "pid1_environ_error": self.pid1_environ_error,
            "root_fs_type": self.root_fs_type,
            "dev_fs_type": self.dev_fs_type,
        }


@frozen
class AccessFacts:
    """What the recording process found out about reaching the device node at ``path``."""

    path: str
    exists: bool
    # the (major, minor) numbers kvmprobe takes for KVM's device node (kvmprobe.kvm.abi) and
    # the only ones it opens: a node with other numbers is looked at, never opened
    kvm_rdev: tuple[int, int]
    lstat_error: str | None = None  # why stat failed, for reasons besides ENOENT/ENOTDIR
    symlink_target: str | None = None
    node: NodeStat | None = None
    euid: int = 0
    egid: int = 0
    user: str = ""
    groups: tuple[int, ...] = ()  # os.getgroups() plus the effective gid, sorted
    group_names: dict[int, str] = field(default_factory=dict)
    # gids /etc/group (or the passwd entry) gives this user; may include groups this process
    # does not have yet (added to a group without logging in again)
    configured_groups: tuple[int, ...] = ()
    access_rw: bool | None = None  # access(R_OK|W_OK) with the effective ids
    open_tried: bool = False
    open_errno: int | None = None  # None: the read-write open worked (or was not tried)
    acl: tuple[AclEntry, ...] | None = None  # None: no ACL beyond the mode bits
    acl_error: str | None = None
    mount: MountFacts = field(default_factory=MountFacts)
    sysfs_dev: str | None = None  # contents of /sys/class/misc/kvm/dev ("10:232")
    sysfs_error: str | None = None
    cgroup: CgroupFacts = field(default_factory=CgroupFacts)
    container: ContainerFacts = field(default_factory=ContainerFacts)

    @property
    def open_error(self) -> str | None:
        """ENOENT-style name of ``open_errno``."""
        return None if self.open_errno is None else errno_name(self.open_errno)

    @property
    def opened(self) -> bool:
        """The node was opened read-write (and closed at once)."""
        return self.open_tried and self.open_errno is None

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "exists": self.exists,
            "kvm_rdev": list(self.kvm_rdev),
            "lstat_error": self.lstat_error,
            "symlink_target": self.symlink_target,
            "node": None if self.node is None else self.node.to_json(),
            "euid": self.euid,
            "egid": self.egid,
            "user": self.user,
            "groups": list(self.groups),
            "group_names": {str(k): v for k, v in sorted(self.group_names.items())},
            "configured_groups": list(self.configured_groups),
            "access_rw": self.access_rw,
            "open_tried": self.open_tried,
            "open_errno": self.open_errno,
            "acl": None if self.acl is None else [e.to_json() for e in self.acl],
            "acl_error": self.acl_error,
            "mount": self.mount.to_json(),
            "sysfs_dev": self.sysfs_dev,
            "sysfs_error": self.sysfs_error,
            "cgroup": self.cgroup.to_json(),
            "container": self.container.to_json(),
        }
