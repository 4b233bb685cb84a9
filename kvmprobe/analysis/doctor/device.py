"""Device checks: does the node exist, is it KVM's, may this user open it, do the cgroup
device rules allow it, is a container in the way.

Pure: the snapshot's ``AccessFacts`` in, Checks out. KVM's device numbers come from the facts
themselves (what the kernel registered in /sys/class/misc/kvm/dev, else the numbers the
gatherer takes for KVM's), never from a constant here.
"""

from __future__ import annotations

from kvmprobe.access_facts import root_group_hint
from kvmprobe.analysis.doctor.report import Check, failed, passed, skipped, warned
from kvmprobe.limits import DEFAULT_DEVICE
from kvmprobe.snapshot import AccessFacts, ModuleInfo, NodeStat
from kvmprobe.vocab import AclTag, DoctorOutcome, NodeKind

VENDOR_MODULES = ("kvm_intel", "kvm_amd", "kvm_pvm")
_CONTAINER_WORDS = ("docker", "kubepods", "containerd", "libpod", "lxc", "crio")
_KIND_LETTERS = {
    NodeKind.CHAR: "c",
    NodeKind.BLOCK: "b",
    NodeKind.DIRECTORY: "d",
    NodeKind.REGULAR: "-",
    NodeKind.FIFO: "p",
    NodeKind.SOCKET: "s",
    NodeKind.OTHER: "?",
}
_KIND_TEXT = {
    NodeKind.DIRECTORY: "a directory",
    NodeKind.REGULAR: "a regular file",
    NodeKind.FIFO: "a FIFO",
    NodeKind.BLOCK: "a block device",
    NodeKind.SOCKET: "a socket",
}
_DENIED = ("EACCES", "EPERM")
_TITLE_ACCESS = "read-write access"


def kvm_numbers(access: AccessFacts) -> tuple[int, int]:
    """KVM's (major, minor): what the kernel registered, when /sys showed it, else the
    numbers the gatherer takes for KVM's (and the only ones it opens)."""
    major, sep, minor = (access.sysfs_dev or "").strip().partition(":")
    numbers = major + minor
    if sep and major and minor and numbers.isascii() and numbers.isdecimal() and len(numbers) < 16:
        return int(major), int(minor)
    return access.kvm_rdev


def _numbers_text(numbers: tuple[int, int]) -> str:
    return f"{numbers[0]}:{numbers[1]}"


def filemode(kind: NodeKind, mode: int) -> str:
    """'crw-rw----' style text for a file kind and its permission bits (like ls -l)."""
    out = [_KIND_LETTERS.get(kind, "?")]
    for shift, special, letter in ((6, 0o4000, "s"), (3, 0o2000, "s"), (0, 0o1000, "t")):
        bits = (mode >> shift) & 7
        out.append("r" if bits & 4 else "-")
        out.append("w" if bits & 2 else "-")
        if mode & special:
            out.append(letter if bits & 1 else letter.upper())
        else:
            out.append("x" if bits & 1 else "-")
    return "".join(out)


def _mode_text(node: NodeStat) -> str:
    return f"{filemode(node.kind, node.mode)} {node.owner}:{node.group}"


def _group_name(access: AccessFacts, gid: int) -> str:
    return access.group_names.get(gid, str(gid))


def in_container(access: AccessFacts) -> list[str]:
    """The container hints found (empty when none)."""
    c = access.container
    hints = list(c.markers)
    if c.pid1_container:
        hints.append(f"container={c.pid1_container} in /proc/1/environ")
    paths = {line.split(":", 2)[-1] for line in access.cgroup.lines}
    if any(w in p for p in paths for w in _CONTAINER_WORDS):
        hints.append("container cgroup path in /proc/self/cgroup")
    if c.root_fs_type == "overlay":
        hints.append("overlay root file system")
    return hints


def _container_hint() -> str:
    return (
        "start the container with the device: docker/podman run --device /dev/kvm "
        "(Kubernetes: a KVM device plugin or a privileged pod)"
    )


def _check_exists(access: AccessFacts, modules: dict[str, ModuleInfo]) -> Check:
    cid, title = "device.exists", "device node exists"
    path = access.path
    if access.exists:
        target = f" (symlink to {access.symlink_target})" if access.symlink_target else ""
        return passed(cid, title, f"{path} exists{target}")
    if access.lstat_error:
        denied = access.lstat_error.startswith(_DENIED)
        return failed(
            cid,
            title,
            f"cannot look up {path}: {access.lstat_error}",
            "check the permissions of the directories on the way to the device",
            DoctorOutcome.PERMISSION if denied else DoctorOutcome.UNAVAILABLE,
        )
    if access.sysfs_dev:
        evidence = (
            f"{path} does not exist, but the kernel has a KVM device "
            f"({access.sysfs_dev} in /sys/class/misc/kvm/dev)"
        )
        if path != DEFAULT_DEVICE:
            major, minor = kvm_numbers(access)
            hint = (
                f"check the path: KVM's node is normally {DEFAULT_DEVICE} (character device "
                f"{major}:{minor}); try 'kvmprobe doctor --device {DEFAULT_DEVICE}'"
            )
        elif in_container(access):
            hint = _container_hint()
        else:
            major, minor = kvm_numbers(access)
            hint = (
                "the node is missing although KVM is loaded: re-run udev "
                "('udevadm trigger --sysname-match=kvm') or create it: "
                f"mknod /dev/kvm c {major} {minor}; chgrp kvm /dev/kvm; chmod 660 /dev/kvm"
            )
        return failed(cid, title, evidence, hint, DoctorOutcome.UNAVAILABLE)
    evidence = f"{path} does not exist and the kernel has registered no KVM device"
    if not any(m in modules for m in VENDOR_MODULES):
        evidence += " (no KVM vendor module loaded)"
    hint = (
        "load KVM (modprobe kvm_intel or modprobe kvm_amd); if that fails, look at "
        "'dmesg | grep -i kvm' (e.g. 'disabled by bios': enable VT-x/AMD-V in the firmware)"
    )
    if in_container(access):
        hint += "; in a container, KVM must be loaded on the host and the device passed in"
    if path != DEFAULT_DEVICE:
        hint = f"check the path (KVM's node is normally {DEFAULT_DEVICE}); otherwise " + hint
    return failed(cid, title, evidence, hint, DoctorOutcome.UNAVAILABLE)


def _check_node(access: AccessFacts, api_ok: bool) -> Check:
    cid, title = "device.node", "KVM character device"
    node = access.node
    if node is None:
        return skipped(cid, title, "no device node to look at")
    kvm = _numbers_text(kvm_numbers(access))
    hint = f"pass the KVM device node (normally /dev/kvm, character device {kvm})"
    if node.kind != NodeKind.CHAR:
        kind = _KIND_TEXT.get(node.kind, f"a {node.kind}")
        evidence = f"{access.path} is {kind}, not a character device"
        return failed(cid, title, evidence, hint, DoctorOutcome.UNAVAILABLE)
    if node.rdev is None:
        evidence = f"{access.path} is a character device with no numbers recorded"
        return failed(cid, title, evidence, hint, DoctorOutcome.UNAVAILABLE)
    numbers = _numbers_text(node.rdev)
    if node.rdev != kvm_numbers(access):
        evidence = f"character device {numbers}, not KVM's {kvm} ({_mode_text(node)})"
        if api_ok:
            return warned(cid, title, evidence + "; it answers like KVM anyway", hint)
        return failed(cid, title, evidence, hint, DoctorOutcome.UNAVAILABLE)
    return passed(cid, title, f"character device {numbers}, {_mode_text(node)}")


def perm_class(access: AccessFacts, node: NodeStat) -> tuple[str, int]:
    """Which part of the mode/ACL applies to this process, and the rwx bits it grants."""
    acl = access.acl or ()
    mask = next((e.perms for e in acl if e.tag == AclTag.MASK), 7)
    if access.euid == node.uid:
        return "owner", (node.mode >> 6) & 7
    for e in acl:
        if e.tag == AclTag.USER and e.qualifier == access.euid:
            return f"ACL user:{access.user}", e.perms & mask
    # Among the group entries that match, access is granted when one of them grants it all.
    groups = set(access.groups)
    matches: list[tuple[str, int]] = []
    if node.gid in groups:
        bits = next((e.perms for e in acl if e.tag == AclTag.GROUP_OBJ), (node.mode >> 3) & 7)
        matches.append((f"group {node.group}", bits & mask))
    for e in acl:
        if e.tag == AclTag.GROUP and e.qualifier in groups:
            name = _group_name(access, e.qualifier or 0)
            matches.append((f"ACL group:{name}", e.perms & mask))
    if matches:
        return next((m for m in matches if m[1] & 6 == 6), matches[0])
    return "others", node.mode & 7


def _who_may_open(access: AccessFacts, node: NodeStat) -> str:
    who = []
    if node.mode & 0o600 == 0o600:
        who.append(f"user {node.owner}")
    if node.mode & 0o060 == 0o060:
        who.append(f"group {node.group}")
    for e in access.acl or ():
        if e.tag in (AclTag.USER, AclTag.GROUP) and e.perms & 6 == 6:
            q = e.qualifier or 0
            name = _group_name(access, q) if e.tag == AclTag.GROUP else str(e.qualifier)
            who.append(f"ACL {e.tag} {name}")
    if node.mode & 0o006 == 0o006:
        who.append("everyone")
    return ", ".join(who) if who else "nobody but root"


def _acl_text(access: AccessFacts) -> str:
    if not access.acl:
        return ""
    named = [
        f"{e.tag}:{e.qualifier}:{'r' if e.perms & 4 else '-'}{'w' if e.perms & 2 else '-'}"
        for e in access.acl
        if e.tag in (AclTag.USER, AclTag.GROUP)
    ]
    return f"; ACL {', '.join(named)}" if named else ""


def cgroup_allows(rules: tuple[str, ...], major: int, minor: int) -> bool:
    """Does a cgroup v1 devices.list allow read-write use of char device major:minor?"""
    for rule in rules:
        parts = rule.split()
        if len(parts) != 3 or parts[0] not in ("a", "c"):
            continue
        if parts[0] == "a":
            if "r" in parts[2] and "w" in parts[2]:
                return True
            continue
        rmajor, _, rminor = parts[1].partition(":")
        if rmajor not in ("*", str(major)) or rminor not in ("*", str(minor)):
            continue
        if "r" in parts[2] and "w" in parts[2]:
            return True
    return False


def _allow_file(devices_list: str | None) -> str:
    """The devices.allow file next to the devices.list that was read."""
    if not devices_list:
        return "devices.allow"
    return devices_list.removesuffix("devices.list") + "devices.allow"


def _cgroup_denies(access: AccessFacts) -> bool:
    rules = access.cgroup.devices_list
    return rules is not None and not cgroup_allows(rules, *kvm_numbers(access))


def _denied_check(access: AccessFacts, node: NodeStat) -> Check:
    """The read-write open failed with EACCES/EPERM: say which rule refuses it."""
    cid, title = "device.access", _TITLE_ACCESS
    mode = _mode_text(node) + _acl_text(access)
    who = f"{access.user} (uid {access.euid})"
    denied = f"{access.open_error} opening {access.path} as {who}"
    mount = access.mount
    if mount.nodev:
        evidence = f"{denied}: {mount.mount_point or 'its file system'} is mounted nodev"
        hint = "use the node under /dev, or remount that file system without nodev"
        return failed(cid, title, evidence, hint, DoctorOutcome.PERMISSION)
    if _cgroup_denies(access):
        kvm = _numbers_text(kvm_numbers(access))
        evidence = f"{denied}: the devices cgroup does not allow c {kvm} rw"
        hint = (
            _container_hint() + f", or add a rule: --device-cgroup-rule='c {kvm} rwm'"
            if in_container(access)
            else f"allow the device in this cgroup: echo 'c {kvm} rwm' > "
            f"{_allow_file(access.cgroup.devices_file)}"
        )
        return failed(cid, title, evidence, hint, DoctorOutcome.PERMISSION)
    applies, bits = perm_class(access, node)
    if bits & 6 != 6:
        return _mode_denied(access, node, denied, mode, applies)
    evidence = f"{denied}, although the mode ({mode}) allows {applies} read-write"
    hint = (
        "something besides the mode refuses it: a cgroup v2 device program (BPF; it cannot "
        "be read from here) or an LSM policy (SELinux/AppArmor: look for denials in the "
        "audit log or dmesg)"
    )
    if in_container(access):
        hint = _container_hint() + "; otherwise " + hint
    return failed(cid, title, evidence, hint, DoctorOutcome.PERMISSION)


def _mode_denied(
    access: AccessFacts, node: NodeStat, denied: str, mode: str, applies: str
) -> Check:
    cid, title = "device.access", _TITLE_ACCESS
    group = node.group
    user = access.user
    if node.mode & 0o060 == 0o060 and node.gid not in access.groups:
        if node.gid in access.configured_groups:
            evidence = f"{denied} ({mode}): {user} is in group {group}, but this session is not"
            hint = f"log out and back in (or run 'newgrp {group}') so the new group applies"
        else:
            mine = ", ".join(_group_name(access, g) for g in access.groups) or "none"
            evidence = f"{denied} ({mode}): {user} is not in group {group} (groups: {mine})"
            hint = f"sudo usermod -aG {group} {user}, then log in again"
            if node.gid == 0:  # root's group: joining it is no fix
                hint = root_group_hint(access.path, user)
        return failed(cid, title, evidence, hint, DoctorOutcome.PERMISSION)
    evidence = f"{denied} ({mode}): the mode gives {applies} no read-write access"
    hint = (
        "give the device to a group and join it: chgrp kvm /dev/kvm; chmod 660 /dev/kvm "
        '(keep it with a udev rule: KERNEL=="kvm", GROUP="kvm", MODE="0660"), then '
        f"sudo usermod -aG kvm {user}; or run the VMM as a user that may open it"
    )
    return failed(cid, title, evidence, hint, DoctorOutcome.PERMISSION)


def _check_access(access: AccessFacts) -> Check:
    cid, title = "device.access", _TITLE_ACCESS
    node = access.node
    if node is None or node.kind != NodeKind.CHAR:
        return skipped(cid, title, "no character device to open")
    if not access.open_tried:
        numbers = _numbers_text(node.rdev) if node.rdev else "?"
        kvm = _numbers_text(kvm_numbers(access))
        evidence = f"not opened: {numbers} is not KVM's {kvm} (other devices may act on open)"
        return skipped(cid, title, evidence)
    mode = _mode_text(node) + _acl_text(access)
    who = f"{access.user} (uid {access.euid})"
    code = access.open_error
    if code is None:
        evidence = (
            f"opened read-write as {who}; {mode} gives read-write to {_who_may_open(access, node)}"
        )
        if access.euid == 0:
            evidence += " (root is not bound by the mode)"
        return passed(cid, title, evidence)
    if code in _DENIED:
        return _denied_check(access, node)
    if code == "EROFS" or access.mount.readonly:
        evidence = f"{code} opening {access.path}: {access.mount.mount_point} is read-only"
        hint = "bind-mount the device read-write (docker/podman --device does this)"
        return failed(cid, title, evidence, hint, DoctorOutcome.PERMISSION)
    if code in ("ENXIO", "ENODEV"):
        evidence = f"{code} opening {access.path}: the node exists but no driver answers it"
        hint = "load the KVM module for this CPU: modprobe kvm_intel or modprobe kvm_amd"
        return failed(cid, title, evidence, hint, DoctorOutcome.UNAVAILABLE)
    evidence = f"{code} opening {access.path} read-write as {who}"
    hint = "check that the path names the KVM device and that the KVM module is healthy (dmesg)"
    return failed(cid, title, evidence, hint, DoctorOutcome.UNAVAILABLE)


def _check_cgroup(access: AccessFacts) -> Check:
    cid, title = "device.cgroup", "cgroup device rules"
    cg = access.cgroup
    if cg.error:
        return skipped(cid, title, f"cannot read {cg.error}")
    kvm = _numbers_text(kvm_numbers(access))
    if cg.devices_list is not None:
        shown = "; ".join(cg.devices_list[:3]) + (" ..." if len(cg.devices_list) > 3 else "")
        if cgroup_allows(cg.devices_list, *kvm_numbers(access)):
            return passed(cid, title, f"cgroup v1 device rules allow c {kvm} rw ({shown})")
        evidence = f"cgroup v1 device rules do not allow c {kvm} rw ({shown or 'empty'})"
        hint = (
            _container_hint()
            if in_container(access)
            else f"allow it: echo 'c {kvm} rwm' > {_allow_file(cg.devices_file)}"
        )
        if access.opened:
            return warned(cid, title, evidence + ", yet the device opened", hint)
        return failed(cid, title, evidence, hint, DoctorOutcome.PERMISSION)
    if cg.devices_error:
        return skipped(cid, title, f"cgroup v1 device rules unreadable: {cg.devices_error}")
    if cg.version in ("v2", "hybrid"):
        return skipped(
            cid,
            title,
            "cgroup v2: device access is decided by BPF programs attached to the cgroup, "
            "which cannot be read back from here",
        )
    return skipped(cid, title, "no cgroup device controller found")


def _container_may_be_why(access: AccessFacts) -> bool:
    """Is the container set-up a likely cause: no node, a cgroup rule, or a denial the mode
    does not explain?"""
    if not access.exists:
        # a path other than the usual node that is missing is a wrong path, not a
        # container that lacks the device
        return access.path == DEFAULT_DEVICE
    if _cgroup_denies(access):
        return True
    if access.open_error in _DENIED and access.node is not None:
        return perm_class(access, access.node)[1] & 6 == 6
    return False


def _check_container(access: AccessFacts) -> Check:
    cid, title = "device.container", "container"
    hints = in_container(access)
    if not hints:
        return passed(cid, title, "no container markers found (/.dockerenv, container=, ...)")
    evidence = "running in a container (" + ", ".join(hints) + ")"
    if access.opened:
        return passed(cid, title, evidence + " with the KVM device passed in")
    if _container_may_be_why(access):
        evidence += "; the device is not usable here"
        return warned(cid, title, evidence, _container_hint())
    return passed(cid, title, evidence)


CHECKS = (
    ("device.exists", "device node exists"),
    ("device.node", "KVM character device"),
    ("device.access", _TITLE_ACCESS),
    ("device.cgroup", "cgroup device rules"),
    ("device.container", "container"),
)


def device_checks(
    access: AccessFacts | None, modules: dict[str, ModuleInfo], api_ok: bool, missing: str
) -> list[Check]:
    """The device group; every check SKIPs with ``missing`` when there are no access facts."""
    if access is None:
        return [skipped(cid, title, missing) for cid, title in CHECKS]
    return [
        _check_exists(access, modules),
        _check_node(access, api_ok),
        _check_access(access),
        _check_cgroup(access),
        _check_container(access),
    ]
