"""Raw facts about whether this process can reach a KVM device node, for ``kvmprobe doctor``.

Everything here is I/O and nothing here draws conclusions: stat of the node, who we are
(effective uid/gid, supplementary groups, the groups /etc/group says we belong to), what the
kernel answers to ``access()`` and to a real read-write ``open()`` (closed at once), the POSIX
ACL on the node, the flags of the mount holding it, the cgroup device rules this process runs
under (v1 ``devices.list``; v2 uses BPF programs, which cannot be read back) and the usual
container markers. ``kvmprobe.analysis.doctor`` turns these facts into checks.

Every read that fails is recorded as an error string next to the fact it was meant to give;
none raises.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import stat
import struct
from dataclasses import dataclass, field

from kvmprobe.errors import errno_name
from kvmprobe.kvm import abi

ACL_XATTR = "system.posix_acl_access"
# Only a node with KVM's numbers is opened: opening an arbitrary character device can have
# side effects (a watchdog starts counting, a tape rewinds), and a typo in --device must not.
KVM_RDEV = abi.KVM_RDEV
MISC_SYSFS = "/sys/class/misc/kvm/dev"  # "10:232" when the kernel registered the KVM device
CONTAINER_MARKERS = ("/.dockerenv", "/run/.containerenv", "/run/systemd/container")
_MAX_READ = 1 << 20  # cgroup and mountinfo files are small; never read more than this

# struct posix_acl_xattr_entry tags (include/uapi/linux/posix_acl.h)
ACL_TAGS = {
    0x01: "user_obj",
    0x02: "user",
    0x04: "group_obj",
    0x08: "group",
    0x10: "mask",
    0x20: "other",
}


@dataclass(frozen=True)
class NodeStat:
    """stat() of the device path (following symlinks)."""

    kind: str  # "char", "block", "directory", "regular", "fifo", "socket", "other"
    mode: int  # permission bits only (st_mode & 0o7777)
    uid: int
    gid: int
    owner: str  # user name, or the number as text
    group: str  # group name, or the number as text
    rdev: tuple[int, int] | None  # (major, minor) for device nodes


@dataclass(frozen=True)
class AclEntry:
    tag: str  # one of ACL_TAGS' values, or "tag 0x.." when unknown
    qualifier: int | None  # uid/gid for "user"/"group" entries
    perms: int  # rwx bits: 4 read, 2 write, 1 execute


@dataclass(frozen=True)
class MountFacts:
    """The mount holding the device path, from /proc/self/mountinfo and statvfs()."""

    mount_point: str | None = None
    fs_type: str | None = None
    options: tuple[str, ...] = ()
    readonly: bool | None = None  # statvfs ST_RDONLY
    nodev: bool | None = None  # statvfs ST_NODEV: device nodes there cannot be opened
    error: str | None = None


@dataclass(frozen=True)
class CgroupFacts:
    lines: tuple[str, ...] = ()  # /proc/self/cgroup
    version: str = "unknown"  # "v1", "v2", "hybrid" or "unknown"
    devices_file: str | None = None  # the v1 devices.list read
    devices_list: tuple[str, ...] | None = None  # its lines, e.g. "c 10:232 rwm", "a *:* rwm"
    devices_error: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class ContainerFacts:
    markers: tuple[str, ...] = ()  # marker files that exist (/.dockerenv, ...)
    pid1_container: str | None = None  # value of container= in /proc/1/environ
    pid1_environ_error: str | None = None
    root_fs_type: str | None = None  # file system type of / (overlay in most containers)
    dev_fs_type: str | None = None  # file system type of /dev (devtmpfs on hosts)


@dataclass(frozen=True)
class AccessFacts:
    """What this process found out about reaching ``path``."""

    path: str
    exists: bool
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
        return None if self.open_errno is None else errno_name(self.open_errno)


# --------------------------------------------------------------------------------------------


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read(_MAX_READ)


def _why(e: OSError) -> str:
    return f"{errno_name(e.errno)}: {e.strerror or e}"


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISCHR, "char"),
        (stat.S_ISBLK, "block"),
        (stat.S_ISDIR, "directory"),
        (stat.S_ISREG, "regular"),
        (stat.S_ISFIFO, "fifo"),
        (stat.S_ISSOCK, "socket"),
    ):
        if test(mode):
            return name
    return "other"


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return str(uid)


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except (KeyError, OverflowError):
        return str(gid)


def node_stat(st: os.stat_result) -> NodeStat:
    kind = _kind(st.st_mode)
    rdev = (os.major(st.st_rdev), os.minor(st.st_rdev)) if kind in ("char", "block") else None
    return NodeStat(
        kind=kind,
        mode=stat.S_IMODE(st.st_mode),
        uid=st.st_uid,
        gid=st.st_gid,
        owner=_user_name(st.st_uid),
        group=_group_name(st.st_gid),
        rdev=rdev,
    )


def parse_posix_acl(blob: bytes) -> tuple[AclEntry, ...]:
    """Decode a system.posix_acl_access value (version 2: u32 header, then u16 tag, u16 perm,
    u32 id per entry). Trailing bytes that do not make a whole entry are ignored."""
    if len(blob) < 4 or struct.unpack_from("<I", blob)[0] != 2:
        raise ValueError("not a version-2 POSIX ACL")
    out: list[AclEntry] = []
    for offset in range(4, len(blob) - 7, 8):
        tag, perm, ident = struct.unpack_from("<HHI", blob, offset)
        name = ACL_TAGS.get(tag, f"tag {tag:#x}")
        qualifier = ident if name in ("user", "group") else None
        out.append(AclEntry(tag=name, qualifier=qualifier, perms=perm & 7))
    return tuple(out)


def _acl(path: str) -> tuple[tuple[AclEntry, ...] | None, str | None]:
    try:
        blob = os.getxattr(path, ACL_XATTR)
    except OSError as e:
        if e.errno in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
            return None, None  # no ACL, or a file system without ACLs: the mode bits rule
        return None, _why(e)
    try:
        return parse_posix_acl(blob), None
    except (ValueError, struct.error) as e:
        return None, f"unreadable ACL: {e}"


def _decode_mount_field(text: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo."""
    out, i = [], 0
    while i < len(text):
        code = text[i + 1 : i + 4]
        if text[i] == "\\" and len(code) == 3 and code.isdigit():
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[tuple[str, str, tuple[str, ...]]]:
    """(mount point, fs type, mount options + super options) for each line of mountinfo."""
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        a, b = left.split(), right.split()
        if not sep or len(a) < 6 or len(b) < 1:
            continue
        options = a[5].split(",") + (b[2].split(",") if len(b) > 2 else [])
        mounts.append((_decode_mount_field(a[4]), b[0], tuple(dict.fromkeys(options))))
    return mounts


def _mount_of(path: str, mounts: list[tuple[str, str, tuple[str, ...]]]):
    best = None
    for mount in mounts:  # later lines win: they are mounted on top
        point = mount[0]
        prefix = point.rstrip("/") + "/"
        if (path == point or path.startswith(prefix)) and (
            best is None or len(point) >= len(best[0])
        ):
            best = mount
    return best


def _mount(path: str, mounts: list[tuple[str, str, tuple[str, ...]]] | None) -> MountFacts:
    target = os.path.realpath(path)
    found = _mount_of(target, mounts) if mounts else None
    readonly = nodev = None
    error = None
    probe_at = target
    while not os.path.exists(probe_at) and probe_at != "/":
        probe_at = os.path.dirname(probe_at) or "/"
    try:
        sv = os.statvfs(probe_at)
        readonly = bool(sv.f_flag & os.ST_RDONLY)
        nodev = bool(sv.f_flag & os.ST_NODEV)
    except OSError as e:
        error = f"statvfs({probe_at}): {_why(e)}"
    return MountFacts(
        mount_point=found[0] if found else None,
        fs_type=found[1] if found else None,
        options=found[2] if found else (),
        readonly=readonly,
        nodev=nodev,
        error=error,
    )


def _read_mountinfo() -> list[tuple[str, str, tuple[str, ...]]] | None:
    try:
        return parse_mountinfo(_read_text("/proc/self/mountinfo"))
    except OSError:
        return None


def _cgroup(root: str = "/sys/fs/cgroup") -> CgroupFacts:
    try:
        lines = tuple(_read_text("/proc/self/cgroup").splitlines())
    except OSError as e:
        return CgroupFacts(error=f"/proc/self/cgroup: {_why(e)}")
    has_v2 = any(line.startswith("0::") for line in lines)
    has_v1 = any(not line.startswith("0::") for line in lines if line)
    version = "hybrid" if has_v1 and has_v2 else "v1" if has_v1 else "v2" if has_v2 else "unknown"
    devices_path = None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) == 3 and "devices" in parts[1].split(","):
            devices_path = parts[2]
    if devices_path is None:
        return CgroupFacts(lines=lines, version=version)
    candidates = [os.path.join(root, "devices", devices_path.lstrip("/"), "devices.list")]
    candidates.append(os.path.join(root, "devices", "devices.list"))  # cgroup namespace view
    error = None
    for candidate in candidates:
        try:
            text = _read_text(candidate)
        except OSError as e:
            error = error or f"{candidate}: {_why(e)}"
            continue
        return CgroupFacts(
            lines=lines,
            version=version,
            devices_file=candidate,
            devices_list=tuple(x for x in text.splitlines() if x.strip()),
        )
    return CgroupFacts(lines=lines, version=version, devices_error=error)


def _pid1_container() -> tuple[str | None, str | None]:
    try:
        with open("/proc/1/environ", "rb") as f:
            data = f.read(_MAX_READ)
    except OSError as e:
        return None, f"/proc/1/environ: {_why(e)}"
    for item in data.split(b"\0"):
        if item.startswith(b"container="):
            return item[len(b"container=") :].decode("utf-8", "replace"), None
    return None, None


def _container(mounts: list[tuple[str, str, tuple[str, ...]]] | None) -> ContainerFacts:
    markers = tuple(m for m in CONTAINER_MARKERS if os.path.exists(m))
    pid1, pid1_error = _pid1_container()
    root_fs = dev_fs = None
    for point, fs_type, _options in mounts or ():  # later lines are mounted on top
        if point == "/":
            root_fs = fs_type
        elif point == "/dev":
            dev_fs = fs_type
    return ContainerFacts(
        markers=markers,
        pid1_container=pid1,
        pid1_environ_error=pid1_error,
        root_fs_type=root_fs,
        dev_fs_type=dev_fs,
    )


def _identity() -> tuple[int, int, str, tuple[int, ...], tuple[int, ...]]:
    euid, egid = os.geteuid(), os.getegid()
    groups = tuple(sorted({*os.getgroups(), egid}))
    user = _user_name(euid)
    configured: set[int] = set()
    try:
        pw = pwd.getpwuid(euid)
        configured.add(pw.pw_gid)
        configured.update(os.getgrouplist(pw.pw_name, pw.pw_gid))
    except (KeyError, OSError):
        pass
    return euid, egid, user, groups, tuple(sorted(configured))


def _try_open(path: str) -> int | None:
    """errno of a read-write open of the node, or None when it opened (closed at once)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as e:
        return e.errno
    os.close(fd)
    return None


def _sysfs() -> tuple[str | None, str | None]:
    try:
        return _read_text(MISC_SYSFS).strip(), None
    except FileNotFoundError:
        return None, None
    except OSError as e:
        return None, f"{MISC_SYSFS}: {_why(e)}"


def gather(path: str) -> AccessFacts:
    """Everything doctor's device checks need, read now. Opens the node read-write only when
    it is a character device with KVM's numbers (and closes it before returning)."""
    euid, egid, user, groups, configured = _identity()
    mounts = _read_mountinfo()
    sysfs_dev, sysfs_error = _sysfs()
    common = {
        "path": path,
        "euid": euid,
        "egid": egid,
        "user": user,
        "groups": groups,
        "group_names": {g: _group_name(g) for g in {*groups, *configured}},
        "configured_groups": configured,
        "mount": _mount(path, mounts) if "\0" not in path else MountFacts(),
        "sysfs_dev": sysfs_dev,
        "sysfs_error": sysfs_error,
        "cgroup": _cgroup(),
        "container": _container(mounts),
    }
    symlink = None
    try:
        if os.path.islink(path):
            symlink = os.readlink(path)
        st = os.stat(path)
    except OSError as e:
        error = None if e.errno in (errno.ENOENT, errno.ENOTDIR) else _why(e)
        return AccessFacts(exists=False, lstat_error=error, symlink_target=symlink, **common)
    except ValueError as e:  # an embedded NUL: no such path can exist
        return AccessFacts(exists=False, lstat_error=f"invalid path ({e})", **common)
    node = node_stat(st)
    effective = os.access in os.supports_effective_ids
    access_rw = os.access(path, os.R_OK | os.W_OK, effective_ids=effective)
    open_tried = node.kind == "char" and node.rdev == KVM_RDEV
    open_errno = _try_open(path) if open_tried else None
    acl, acl_error = _acl(path)
    common["group_names"] = {**common["group_names"], node.gid: node.group}
    return AccessFacts(
        exists=True,
        symlink_target=symlink,
        node=node,
        access_rw=access_rw,
        open_tried=open_tried,
        open_errno=open_errno,
        acl=acl,
        acl_error=acl_error,
        **common,
    )
