"""Raw facts about whether this process can reach a KVM device node (I/O only).

Everything here is I/O and nothing here draws conclusions: stat of the node, who we are
(effective uid/gid, supplementary groups, the groups /etc/group says we belong to), what the
kernel answers to ``access()`` and to a real read-write ``open()`` (closed at once), the POSIX
ACL on the node, the flags of the mount holding it, the cgroup device rules this process runs
under (v1 ``devices.list``; v2 uses BPF programs, which cannot be read back) and the usual
container markers. The answer is a ``kvmprobe.snapshot.AccessFacts``, saved in every snapshot
``kvmprobe record`` writes; ``kvmprobe.analysis.doctor`` turns it into checks.

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

from kvmprobe.errors import errno_name
from kvmprobe.frozen import replace
from kvmprobe.kvm import abi
from kvmprobe.snapshot import (
    AccessFacts,
    AclEntry,
    CgroupFacts,
    ContainerFacts,
    MountFacts,
    NodeStat,
)
from kvmprobe.vocab import AclTag, CgroupVersion, NodeKind

ACL_XATTR = "system.posix_acl_access"
MISC_SYSFS = "/sys/class/misc/kvm/dev"  # "10:232" when the kernel registered the KVM device
CONTAINER_MARKERS = ("/.dockerenv", "/run/.containerenv", "/run/systemd/container")
_MAX_READ = 1 << 20  # cgroup and mountinfo files are small; never read more than this

# struct posix_acl_xattr_entry tags (include/uapi/linux/posix_acl.h)
ACL_TAGS = {
    0x01: AclTag.USER_OBJ,
    0x02: AclTag.USER,
    0x04: AclTag.GROUP_OBJ,
    0x08: AclTag.GROUP,
    0x10: AclTag.MASK,
    0x20: AclTag.OTHER,
}

Mount = tuple[str, str, tuple[str, ...]]  # (mount point, fs type, options)


# --------------------------------------------------------------------------------------------


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read(_MAX_READ)


def _why(e: OSError) -> str:
    return f"{errno_name(e.errno)}: {e.strerror or e}"


def _kind(mode: int) -> NodeKind:
    for test, kind in (
        (stat.S_ISCHR, NodeKind.CHAR),
        (stat.S_ISBLK, NodeKind.BLOCK),
        (stat.S_ISDIR, NodeKind.DIRECTORY),
        (stat.S_ISREG, NodeKind.REGULAR),
        (stat.S_ISFIFO, NodeKind.FIFO),
        (stat.S_ISSOCK, NodeKind.SOCKET),
    ):
        if test(mode):
            return kind
    return NodeKind.OTHER


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
    is_device = kind in (NodeKind.CHAR, NodeKind.BLOCK)
    rdev = (os.major(st.st_rdev), os.minor(st.st_rdev)) if is_device else None
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
        name: str = ACL_TAGS.get(tag, f"tag {tag:#x}")
        qualifier = ident if name in (AclTag.USER, AclTag.GROUP) else None
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


def parse_mountinfo(text: str) -> list[Mount]:
    """(mount point, fs type, mount options + super options) for each line of mountinfo."""
    mounts: list[Mount] = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        a, b = left.split(), right.split()
        if not sep or len(a) < 6 or len(b) < 1:
            continue
        options = a[5].split(",") + (b[2].split(",") if len(b) > 2 else [])
        mounts.append((_decode_mount_field(a[4]), b[0], tuple(dict.fromkeys(options))))
    return mounts


def _mount_of(path: str, mounts: list[Mount]) -> Mount | None:
    best: Mount | None = None
    for mount in mounts:  # later lines win: they are mounted on top
        point = mount[0]
        prefix = point.rstrip("/") + "/"
        if (path == point or path.startswith(prefix)) and (
            best is None or len(point) >= len(best[0])
        ):
            best = mount
    return best


def _mount(path: str, mounts: list[Mount] | None) -> MountFacts:
    target = os.path.realpath(path)
    found = _mount_of(target, mounts) if mounts else None
    readonly: bool | None = None
    nodev: bool | None = None
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


def _read_mountinfo() -> list[Mount] | None:
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
    version = (
        CgroupVersion.HYBRID
        if has_v1 and has_v2
        else CgroupVersion.V1
        if has_v1
        else CgroupVersion.V2
        if has_v2
        else CgroupVersion.UNKNOWN
    )
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


def _container(mounts: list[Mount] | None) -> ContainerFacts:
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
    it is a character device with KVM's numbers (kvmprobe.kvm.abi.KVM_RDEV: opening another
    device can have side effects, such as a watchdog starting its countdown) and closes it
    before returning."""
    kvm_rdev = abi.KVM_RDEV
    euid, egid, user, groups, configured = _identity()
    mounts = _read_mountinfo()
    sysfs_dev, sysfs_error = _sysfs()
    group_names = {g: _group_name(g) for g in {*groups, *configured}}
    mount = _mount(path, mounts) if "\0" not in path else MountFacts()
    cgroup = _cgroup()
    container = _container(mounts)

    base = AccessFacts(
        path=path,
        exists=False,
        kvm_rdev=kvm_rdev,
        euid=euid,
        egid=egid,
        user=user,
        groups=groups,
        group_names=group_names,
        configured_groups=configured,
        mount=mount,
        sysfs_dev=sysfs_dev,
        sysfs_error=sysfs_error,
        cgroup=cgroup,
        container=container,
    )
    symlink = None
    try:
        if os.path.islink(path):
            symlink = os.readlink(path)
        st = os.stat(path)
    except OSError as e:
        error = None if e.errno in (errno.ENOENT, errno.ENOTDIR) else _why(e)
        return replace(base, lstat_error=error, symlink_target=symlink)
    except ValueError as e:  # an embedded NUL: no such path can exist
        return replace(base, lstat_error=f"invalid path ({e})")
    node = node_stat(st)
    effective = os.access in os.supports_effective_ids
    access_rw = os.access(path, os.R_OK | os.W_OK, effective_ids=effective)
    open_tried = node.kind == NodeKind.CHAR and node.rdev == kvm_rdev
    open_errno = _try_open(path) if open_tried else None
    acl, acl_error = _acl(path)
    return replace(
        base,
        exists=True,
        group_names={**group_names, node.gid: node.group},
        symlink_target=symlink,
        node=node,
        access_rw=access_rw,
        open_tried=open_tried,
        open_errno=open_errno,
        acl=acl,
        acl_error=acl_error,
    )
