"""``kvmprobe doctor``: an ordered list of checks over raw facts, and a verdict.

Pure: device-access facts (``kvmprobe.kvm.access.AccessFacts``), the probe's Snapshot and
the host facts go in; frozen dataclasses come out. No I/O, no rich.

Every check ends PASS, WARN, FAIL or SKIP with one line of evidence, and a hint (the fix)
when it is not PASS. The verdict's exit status is the one carried by the first FAIL in
order (device, kernel, API, VMMs, nesting), so the root cause decides it: 3 when KVM is not
available, 4 when this user may not open it, 5 when KVM works but a VMM would refuse to
start. CPU flags are information only: KVM can work without vmx/svm (PVM) and fail with
them, so they never decide the verdict.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kvmprobe.analysis.caps import cap_by_name
from kvmprobe.analysis.cpuid import CpuidView, vendor_string
from kvmprobe.errors import ExitStatus
from kvmprobe.knowledge.module_params import KVM_MODULES, params_for_module
from kvmprobe.knowledge.vmm_requirements import VMMS, VmmProfile
from kvmprobe.snapshot import CpuidEntry, HostInfo, Snapshot

if TYPE_CHECKING:
    from kvmprobe.kvm.access import AccessFacts

PASS, WARN, FAIL, SKIP = "PASS", "WARN", "FAIL", "SKIP"
STATUSES = (PASS, WARN, FAIL, SKIP)
KVM_MAJOR_MINOR = (10, 232)
API_VERSION = 12
RECORDED = "recorded snapshot"
VENDOR_MODULES = ("kvm_intel", "kvm_amd", "kvm_pvm")
GROUP_TITLES = {
    "device": "Device",
    "kernel": "Kernel",
    "api": "KVM API",
    "vmm": "VMM readiness",
    "nested": "Nested virtualization",
}
# Signatures hypervisors put in CPUID 0x40000000 EBX:ECX:EDX (NULs stripped).
HYPERVISORS = {
    "KVMKVMKVM": "KVM",
    "Microsoft Hv": "Hyper-V",
    "VMwareVMware": "VMware",
    "XenVMMXenVMM": "Xen",
    "TCGTCGTCGTCG": "QEMU TCG (emulation)",
    "VBoxVBoxVBox": "VirtualBox",
    "bhyve bhyve": "bhyve",
    "ACRNACRNACRN": "ACRN",
    "lrpepyh  vr": "Parallels",
}
_NESTED_HINTS = {
    "KVM": "on the outer host: load kvm_intel/kvm_amd with nested=1 and give this VM a CPU "
    "model with vmx/svm (e.g. QEMU -cpu host)",
    "Hyper-V": "on the Hyper-V host: Set-VMProcessor -VMName <vm> "
    "-ExposeVirtualizationExtensions $true (VM powered off)",
    "VMware": "in the VM's settings: enable 'Virtualize Intel VT-x/EPT or AMD-V/RVI'",
    "Xen": "in the guest's Xen config: nestedhvm=1",
    "QEMU TCG (emulation)": "this host is emulated by QEMU without acceleration; KVM cannot "
    "work inside it: use a KVM-accelerated or bare-metal host",
    "VirtualBox": "on the VirtualBox host: VBoxManage modifyvm <vm> --nested-hw-virt on",
}
_KEY_PARAMS = ("nested", "enable_pmu", "mitigate_smt_rsb", "tdp_mmu", "ept", "npt", "avic")


@dataclass(frozen=True)
class Check:
    id: str  # "device.access"
    title: str
    status: str  # one of STATUSES
    evidence: str  # one line: what was seen
    hint: str = ""  # the fix, for anything not PASS
    details: tuple[str, ...] = ()  # extra lines (parameter meanings, missing caps' uses)
    citation: str | None = None  # where a requirement comes from
    exit_status: int = int(ExitStatus.OK)  # what a FAIL here means for the exit status

    @property
    def group(self) -> str:
        return self.id.partition(".")[0]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "group": self.group,
            "title": self.title,
            "status": self.status,
            "evidence": self.evidence,
            "hint": self.hint or None,
            "details": list(self.details),
            "citation": self.citation,
        }


@dataclass(frozen=True)
class ProbeFailure:
    """Why the live probe could not run (the KvmprobeError it raised, as data)."""

    message: str
    hint: str
    status: int


@dataclass(frozen=True)
class Facts:
    """Everything doctor looks at besides the snapshot."""

    device: str
    host: HostInfo
    access: AccessFacts | None = None  # None: working from a recorded snapshot
    probe_failure: ProbeFailure | None = None


@dataclass(frozen=True)
class DoctorOptions:
    vmms: tuple[str, ...] = tuple(p.id for p in VMMS)


@dataclass(frozen=True)
class Verdict:
    exit_status: int
    status: str  # "ok", "unavailable", "permission", "not-ready"
    message: str
    first_failure: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "exit_status": self.exit_status,
            "message": self.message,
            "first_failure": self.first_failure,
        }


@dataclass(frozen=True)
class DoctorReport:
    checks: tuple[Check, ...]
    verdict: Verdict
    recorded: bool = False
    counts: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "checks": [c.to_json() for c in self.checks],
            "counts": dict(self.counts),
            "verdict": self.verdict.to_json(),
        }


# --------------------------------------------------------------------------------------------
# small helpers


def _pass(cid: str, title: str, evidence: str, **kw: Any) -> Check:
    return Check(cid, title, PASS, evidence, **kw)


def _warn(cid: str, title: str, evidence: str, hint: str, **kw: Any) -> Check:
    return Check(cid, title, WARN, evidence, hint, **kw)


def _fail(cid: str, title: str, evidence: str, hint: str, status: int, **kw: Any) -> Check:
    return Check(cid, title, FAIL, evidence, hint, exit_status=int(status), **kw)


def _skip(cid: str, title: str, evidence: str, **kw: Any) -> Check:
    return Check(cid, title, SKIP, evidence, **kw)


def _mode_text(access: AccessFacts) -> str:
    node = access.node
    assert node is not None
    kind_bits = stat.S_IFCHR if node.kind == "char" else stat.S_IFREG
    if node.kind == "directory":
        kind_bits = stat.S_IFDIR
    return f"{stat.filemode(kind_bits | node.mode)} {node.owner}:{node.group}"


def _group_name(access: AccessFacts, gid: int) -> str:
    return access.group_names.get(gid, str(gid))


def _bit(entries: tuple[CpuidEntry, ...] | None, leaf: int, reg: str, bit: int) -> bool | None:
    """The bit, or None when the leaf is absent (callers fall back to other evidence)."""
    value = CpuidView(entries).reg(leaf, 0, reg)
    return None if value is None else bool((value >> bit) & 1)


def usable(snap: Snapshot | None) -> bool:
    """KVM answered API version 12 and a VM could be created (or creation was not recorded)."""
    if snap is None or snap.api_version != API_VERSION:
        return False
    return snap.creation.get("vm", "ok") == "ok"


# --------------------------------------------------------------------------------------------
# device checks


def _skip_device(reason: str) -> list[Check]:
    return [
        _skip("device.exists", "device node exists", reason),
        _skip("device.node", "KVM character device", reason),
        _skip("device.access", "read-write access", reason),
        _skip("device.cgroup", "cgroup device rules", reason),
        _skip("device.container", "container", reason),
    ]


def in_container(access: AccessFacts) -> list[str]:
    """The container hints found (empty when none)."""
    c = access.container
    hints = list(c.markers)
    if c.pid1_container:
        hints.append(f"container={c.pid1_container} in /proc/1/environ")
    words = ("docker", "kubepods", "containerd", "libpod", "lxc", "crio")
    paths = {line.split(":", 2)[-1] for line in access.cgroup.lines}
    if any(w in p for p in paths for w in words):
        hints.append("container cgroup path in /proc/self/cgroup")
    if c.root_fs_type == "overlay":
        hints.append("overlay root file system")
    return hints


def _container_hint(access: AccessFacts) -> str:
    return (
        "start the container with the device: docker/podman run --device /dev/kvm "
        "(Kubernetes: a KVM device plugin or a privileged pod)"
    )


def _check_exists(access: AccessFacts, modules: dict[str, Any]) -> Check:
    title = "device node exists"
    path = access.path
    if access.exists:
        target = f" (symlink to {access.symlink_target})" if access.symlink_target else ""
        return _pass("device.exists", title, f"{path} exists{target}")
    if access.lstat_error:
        denied = access.lstat_error.startswith(("EACCES", "EPERM"))
        return _fail(
            "device.exists",
            title,
            f"cannot look up {path}: {access.lstat_error}",
            "check the permissions of the directories on the way to the device",
            ExitStatus.PERMISSION if denied else ExitStatus.KVM_UNAVAILABLE,
        )
    if access.sysfs_dev:
        evidence = (
            f"{path} does not exist, but the kernel has a KVM device "
            f"({access.sysfs_dev} in /sys/class/misc/kvm/dev)"
        )
        if in_container(access):
            hint = _container_hint(access)
        else:
            hint = (
                "the node is missing although KVM is loaded: re-run udev "
                "('udevadm trigger --sysname-match=kvm') or create it: "
                "mknod /dev/kvm c 10 232; chgrp kvm /dev/kvm; chmod 660 /dev/kvm"
            )
        return _fail("device.exists", title, evidence, hint, ExitStatus.KVM_UNAVAILABLE)
    evidence = f"{path} does not exist and the kernel has registered no KVM device"
    if not any(m in modules for m in VENDOR_MODULES):
        evidence += " (no KVM vendor module loaded)"
    hint = (
        "load KVM (modprobe kvm_intel or modprobe kvm_amd); if that fails, look at "
        "'dmesg | grep -i kvm' (e.g. 'disabled by bios': enable VT-x/AMD-V in the firmware)"
    )
    if in_container(access):
        hint += "; in a container, KVM must be loaded on the host and the device passed in"
    return _fail("device.exists", title, evidence, hint, ExitStatus.KVM_UNAVAILABLE)


def _check_node(access: AccessFacts, api_ok: bool) -> Check:
    title = "KVM character device"
    node = access.node
    if node is None:
        return _skip("device.node", title, "no device node to look at")
    hint = "pass the KVM device node (normally /dev/kvm, character device 10:232)"
    if node.kind != "char":
        what = {"directory": "a directory", "regular": "a regular file", "fifo": "a FIFO"}
        kind = what.get(node.kind, f"a {node.kind}")
        evidence = f"{access.path} is {kind}, not a character device"
        return _fail("device.node", title, evidence, hint, ExitStatus.KVM_UNAVAILABLE)
    assert node.rdev is not None
    numbers = f"{node.rdev[0]}:{node.rdev[1]}"
    if node.rdev != KVM_MAJOR_MINOR:
        evidence = f"character device {numbers}, not KVM's 10:232 ({_mode_text(access)})"
        if api_ok:
            return _warn("device.node", title, evidence + "; it answers like KVM anyway", hint)
        return _fail("device.node", title, evidence, hint, ExitStatus.KVM_UNAVAILABLE)
    return _pass("device.node", title, f"character device {numbers}, {_mode_text(access)}")


def _perm_class(access: AccessFacts) -> tuple[str, int]:
    """Which part of the mode/ACL applies to this process, and the rwx bits it grants."""
    node = access.node
    assert node is not None
    acl = access.acl or ()
    mask = next((e.perms for e in acl if e.tag == "mask"), 7)
    if access.euid == node.uid:
        return "owner", (node.mode >> 6) & 7
    for e in acl:
        if e.tag == "user" and e.qualifier == access.euid:
            return f"ACL user:{access.user}", e.perms & mask
    # Among the group entries that match, access is granted when one of them grants it all.
    groups = set(access.groups)
    matches: list[tuple[str, int]] = []
    if node.gid in groups:
        bits = next((e.perms for e in acl if e.tag == "group_obj"), (node.mode >> 3) & 7)
        matches.append((f"group {node.group}", bits & mask))
    for e in acl:
        if e.tag == "group" and e.qualifier in groups:
            name = _group_name(access, e.qualifier or 0)
            matches.append((f"ACL group:{name}", e.perms & mask))
    if matches:
        return next((m for m in matches if m[1] & 6 == 6), matches[0])
    return "others", node.mode & 7


def _who_may_open(access: AccessFacts) -> str:
    node = access.node
    assert node is not None
    who = []
    if node.mode & 0o600 == 0o600:
        who.append(f"user {node.owner}")
    if node.mode & 0o060 == 0o060:
        who.append(f"group {node.group}")
    for e in access.acl or ():
        if e.tag in ("user", "group") and e.perms & 6 == 6:
            name = _group_name(access, e.qualifier or 0) if e.tag == "group" else e.qualifier
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
        if e.tag in ("user", "group")
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
    return rules is not None and not cgroup_allows(rules, *KVM_MAJOR_MINOR)


def _denied_check(access: AccessFacts) -> Check:
    """The read-write open failed with EACCES/EPERM: say which rule refuses it."""
    title, cid = "read-write access", "device.access"
    mode = _mode_text(access) + _acl_text(access)
    who = f"{access.user} (uid {access.euid})"
    denied = f"{access.open_error} opening {access.path} as {who}"
    mount = access.mount
    if mount.nodev:
        evidence = f"{denied}: {mount.mount_point or 'its file system'} is mounted nodev"
        hint = "use the node under /dev, or remount that file system without nodev"
        return _fail(cid, title, evidence, hint, ExitStatus.PERMISSION)
    if _cgroup_denies(access):
        evidence = f"{denied}: the devices cgroup does not allow c 10:232 rw"
        hint = (
            _container_hint(access) + ", or add a rule: --device-cgroup-rule='c 10:232 rwm'"
            if in_container(access)
            else "allow the device in this cgroup: echo 'c 10:232 rwm' > "
            f"{_allow_file(access.cgroup.devices_file)}"
        )
        return _fail(cid, title, evidence, hint, ExitStatus.PERMISSION)
    node = access.node
    assert node is not None
    applies, bits = _perm_class(access)
    if bits & 6 != 6:
        return _mode_denied(access, denied, mode, applies)
    evidence = f"{denied}, although the mode ({mode}) allows {applies} read-write"
    hint = (
        "something besides the mode refuses it: a cgroup v2 device program (BPF; it cannot "
        "be read from here) or an LSM policy (SELinux/AppArmor: look for denials in the "
        "audit log or dmesg)"
    )
    if in_container(access):
        hint = _container_hint(access) + "; otherwise " + hint
    return _fail(cid, title, evidence, hint, ExitStatus.PERMISSION)


def _mode_denied(access: AccessFacts, denied: str, mode: str, applies: str) -> Check:
    title, cid = "read-write access", "device.access"
    node = access.node
    assert node is not None
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
        return _fail(cid, title, evidence, hint, ExitStatus.PERMISSION)
    evidence = f"{denied} ({mode}): the mode gives {applies} no read-write access"
    hint = (
        "give the device to a group and join it: chgrp kvm /dev/kvm; chmod 660 /dev/kvm "
        '(keep it with a udev rule: KERNEL=="kvm", GROUP="kvm", MODE="0660"), then '
        f"sudo usermod -aG kvm {user}; or run the VMM as a user that may open it"
    )
    return _fail(cid, title, evidence, hint, ExitStatus.PERMISSION)


def _check_access(access: AccessFacts) -> Check:
    title, cid = "read-write access", "device.access"
    node = access.node
    if node is None or node.kind != "char":
        return _skip(cid, title, "no character device to open")
    if not access.open_tried:
        numbers = f"{node.rdev[0]}:{node.rdev[1]}" if node.rdev else "?"
        evidence = f"not opened: {numbers} is not KVM's 10:232 (other devices may act on open)"
        return _skip(cid, title, evidence)
    mode = _mode_text(access) + _acl_text(access)
    who = f"{access.user} (uid {access.euid})"
    code = access.open_error
    if code is None:
        evidence = f"opened read-write as {who}; {mode} gives read-write to {_who_may_open(access)}"
        if access.euid == 0:
            evidence += " (root is not bound by the mode)"
        return _pass(cid, title, evidence)
    if code in ("EACCES", "EPERM"):
        return _denied_check(access)
    if code == "EROFS" or access.mount.readonly:
        evidence = f"{code} opening {access.path}: {access.mount.mount_point} is read-only"
        hint = "bind-mount the device read-write (docker/podman --device does this)"
        return _fail(cid, title, evidence, hint, ExitStatus.PERMISSION)
    if code in ("ENXIO", "ENODEV"):
        evidence = f"{code} opening {access.path}: the node exists but no driver answers it"
        hint = "load the KVM module for this CPU: modprobe kvm_intel or modprobe kvm_amd"
        return _fail(cid, title, evidence, hint, ExitStatus.KVM_UNAVAILABLE)
    evidence = f"{code} opening {access.path} read-write as {who}"
    hint = "check that the path names the KVM device and that the KVM module is healthy (dmesg)"
    return _fail(cid, title, evidence, hint, ExitStatus.KVM_UNAVAILABLE)


def _check_cgroup(access: AccessFacts) -> Check:
    title, cid = "cgroup device rules", "device.cgroup"
    cg = access.cgroup
    if cg.error:
        return _skip(cid, title, f"cannot read {cg.error}")
    if cg.devices_list is not None:
        shown = "; ".join(cg.devices_list[:3]) + (" ..." if len(cg.devices_list) > 3 else "")
        if cgroup_allows(cg.devices_list, *KVM_MAJOR_MINOR):
            return _pass(cid, title, f"cgroup v1 device rules allow c 10:232 rw ({shown})")
        evidence = f"cgroup v1 device rules do not allow c 10:232 rw ({shown or 'empty'})"
        hint = (
            _container_hint(access)
            if in_container(access)
            else f"allow it: echo 'c 10:232 rwm' > {_allow_file(cg.devices_file)}"
        )
        if access.open_tried and access.open_errno is None:
            return _warn(cid, title, evidence + ", yet the device opened", hint)
        return _fail(cid, title, evidence, hint, ExitStatus.PERMISSION)
    if cg.devices_error:
        return _skip(cid, title, f"cgroup v1 device rules unreadable: {cg.devices_error}")
    if cg.version in ("v2", "hybrid"):
        return _skip(
            cid,
            title,
            "cgroup v2: device access is decided by BPF programs attached to the cgroup, "
            "which cannot be read back from here",
        )
    return _skip(cid, title, "no cgroup device controller found")


def _container_may_be_why(access: AccessFacts) -> bool:
    """Is the container set-up a likely cause: no node, a cgroup rule, or a denial the mode
    does not explain?"""
    if not access.exists:
        return True
    if _cgroup_denies(access):
        return True
    if access.open_error in ("EACCES", "EPERM") and access.node is not None:
        return _perm_class(access)[1] & 6 == 6
    return False


def _check_container(access: AccessFacts) -> Check:
    title, cid = "container", "device.container"
    hints = in_container(access)
    if not hints:
        return _pass(cid, title, "no container markers found (/.dockerenv, container=, ...)")
    evidence = "running in a container (" + ", ".join(hints) + ")"
    if access.open_tried and access.open_errno is None:
        return _pass(cid, title, evidence + " with the KVM device passed in")
    if _container_may_be_why(access):
        evidence += "; the device is not usable here"
        return _warn(cid, title, evidence, _container_hint(access))
    return _pass(cid, title, evidence)


def device_checks(access: AccessFacts, host: HostInfo, api_ok: bool) -> list[Check]:
    return [
        _check_exists(access, host.modules),
        _check_node(access, api_ok),
        _check_access(access),
        _check_cgroup(access),
        _check_container(access),
    ]


# --------------------------------------------------------------------------------------------
# kernel checks


def _module_list(host: HostInfo) -> list[str]:
    return [
        f"{name} ({'built in' if host.modules[name].builtin else 'module'})"
        for name in KVM_MODULES
        if name in host.modules
    ]


def _vendor_suggestion(host: HostInfo) -> str:
    vendor = host.cpu_vendor
    if vendor == "GenuineIntel":
        return "modprobe kvm_intel"
    if vendor in ("AuthenticAMD", "HygonGenuine"):
        return "modprobe kvm_amd"
    return "modprobe kvm_intel (Intel) or modprobe kvm_amd (AMD)"


def _check_modules(host: HostInfo, api_ok: bool) -> Check:
    title, cid = "KVM modules", "kernel.modules"
    present = _module_list(host)
    has_kvm = "kvm" in host.modules
    vendors = [m for m in VENDOR_MODULES if m in host.modules]
    if has_kvm and vendors:
        return _pass(cid, title, ", ".join(present))
    hint = (
        f"{_vendor_suggestion(host)}; if it fails, 'dmesg | grep -i kvm' says why (e.g. "
        "'disabled by bios': enable VT-x/AMD-V in the firmware)"
    )
    if not host.modules:
        evidence = "no KVM module in /sys/module"
    else:
        evidence = (
            f"{', '.join(present)} loaded, but no vendor module ({', '.join(VENDOR_MODULES)})"
        )
    if api_ok:
        return _warn(cid, title, evidence + "; the device answers anyway (/sys not visible?)", hint)
    return _fail(cid, title, evidence, hint, ExitStatus.KVM_UNAVAILABLE)


def _good_values(good: str) -> set[str]:
    out: set[str] = set()
    for part in good.split(","):
        out.update(x.strip() for x in part.split(" or "))
    return {x for x in out if x}


def _shadow_paging(host: HostInfo) -> bool:
    """No EPT/NPT: PVM, or the vendor module's two-level paging turned off."""
    mods = host.modules
    if "kvm_pvm" in mods:
        return True
    ept = mods["kvm_intel"].params.get("ept") if "kvm_intel" in mods else None
    npt = mods["kvm_amd"].params.get("npt") if "kvm_amd" in mods else None
    return ept in ("N", "0") or npt in ("N", "0")


def _param_lines(host: HostInfo) -> tuple[list[str], list[str], list[str]]:
    """(flagged 'mod.param=value' items, flagged detail lines, key-parameter detail lines)."""
    flagged, flagged_lines, key_lines = [], [], []
    for module in KVM_MODULES:
        info = host.modules.get(module)
        if info is None:
            continue
        for p in params_for_module(module):
            value = info.params.get(p.name)
            if value is None or value.startswith("<unreadable"):
                continue
            name = f"{module}.{p.name}={value}"
            expected = p.name == "tdp_mmu" and value == "N" and _shadow_paging(host)
            if p.good is not None and value not in _good_values(p.good) and not expected:
                flagged.append(name)
                concern = f" {p.concern}" if p.concern else ""
                flagged_lines.append(f"{name} (usual: {p.good}): {p.meaning}{concern}")
            elif p.name in _KEY_PARAMS:
                key_lines.append(f"{name}: {p.meaning}")
    return flagged, flagged_lines, key_lines


def _check_params(host: HostInfo) -> Check:
    title, cid = "module parameters", "kernel.params"
    if not any(m in host.modules for m in KVM_MODULES):
        return _skip(cid, title, "no KVM module parameters to read")
    flagged, flagged_lines, key_lines = _param_lines(host)
    details = tuple(flagged_lines + key_lines)
    if flagged:
        evidence = f"{len(flagged)} differ from the usual value: {', '.join(flagged)}"
        hint = (
            "usually a deliberate choice of whoever set up the host; if guests need it, set "
            "the parameter (modprobe.d 'options <module> <param>=<value>', or kvm.<param>= on "
            "the kernel command line when built in) and reload"
        )
        return _warn(cid, title, evidence, hint, details=details)
    shown = [line.split(":", 1)[0] for line in key_lines]
    evidence = "usual values" + (f": {', '.join(shown)}" if shown else "")
    return _pass(cid, title, evidence, details=details)


def _check_cpu_flags(host: HostInfo, kvm_present: bool) -> Check:
    title, cid = "CPU virtualization flags", "kernel.cpu_flags"
    flags = set(host.cpuinfo_flags)
    if not flags:
        return _skip(cid, title, "no /proc/cpuinfo flags available")
    have = [f for f in ("vmx", "svm") if f in flags]
    if have:
        return _pass(cid, title, f"/proc/cpuinfo advertises {', '.join(have)} (information only)")
    evidence = "no vmx or svm flag in /proc/cpuinfo (information only)"
    if kvm_present:
        extra = "; KVM is loaded regardless"
        if "kvm_pvm" in host.modules:
            extra += " (kvm_pvm: PVM needs no hardware virtualization)"
        return _pass(cid, title, evidence + extra)
    hint = (
        "enable VT-x/AMD-V in the firmware; inside a VM, ask the outer hypervisor for nested "
        "virtualization (or use a PVM-enabled kernel, which needs neither)"
    )
    return _warn(cid, title, evidence, hint)


def kvm_present(host: HostInfo, access: AccessFacts | None, api_ok: bool) -> bool:
    """KVM is in the kernel: it answered, a vendor module is loaded, or sysfs has its device."""
    if api_ok or any(m in host.modules for m in VENDOR_MODULES):
        return True
    return access is not None and bool(access.sysfs_dev)


def kernel_checks(host: HostInfo, api_ok: bool, present: bool) -> list[Check]:
    return [
        _check_modules(host, api_ok),
        _check_params(host),
        _check_cpu_flags(host, present),
    ]


# --------------------------------------------------------------------------------------------
# API checks

_CREATE_HINTS = {
    "EBUSY": "another hypervisor holds the CPU's virtualization extensions (VirtualBox, "
    "VMware Workstation/Player, or an out-of-tree hypervisor module): stop it and retry",
    "ENOMEM": "the host is short of memory (or of memory a VM needs): free some and retry",
    "EMFILE": "this process ran out of file descriptors: raise 'ulimit -n'",
    "ENFILE": "the system ran out of file descriptors",
    "EINVAL": "KVM refused the default VM type; look at 'dmesg | grep -i kvm'",
    "EPERM": "a security policy (seccomp, SELinux, AppArmor) refuses creating VMs here",
    "EACCES": "a security policy (seccomp, SELinux, AppArmor) refuses creating VMs here",
}


# Failures another check already reports (or, for host CPUID, that only root avoids).
_STEPS_WITH_OWN_CHECK = frozenset(
    {"KVM_CREATE_VM", "KVM_CREATE_VCPU", "KVM_ENABLE_CAP(KVM_CAP_SPLIT_IRQCHIP)",
     "KVM_GET_VCPU_MMAP_SIZE", "host CPUID"}
)  # fmt: skip


def _error_for(snap: Snapshot, step: str) -> str | None:
    for e in snap.errors:
        if e.step == step:
            return e.message
    return None


def _check_api_version(snap: Snapshot | None, facts: Facts) -> Check:
    title, cid = "KVM API version", "api.version"
    if snap is None:
        f = facts.probe_failure
        if f is not None:
            status = f.status if f.status in (3, 4) else ExitStatus.KVM_UNAVAILABLE
            return _fail(cid, title, f.message, f.hint, status)
        return _skip(cid, title, "the device could not be opened")
    if snap.api_version == API_VERSION:
        return _pass(cid, title, f"KVM_GET_API_VERSION answered {API_VERSION}")
    got = "no answer" if snap.api_version is None else f"{snap.api_version}"
    evidence = f"KVM_GET_API_VERSION: {got}; every VMM requires {API_VERSION}"
    hint = "this is not a working KVM device; check the path and the kernel's KVM"
    return _fail(cid, title, evidence, hint, ExitStatus.KVM_UNAVAILABLE)


def _check_create(snap: Snapshot | None, key: str, cid: str, title: str, ioctl: str) -> Check:
    if snap is None or snap.api_version != API_VERSION:
        return _skip(cid, title, "KVM did not answer (see above)")
    if key == "vcpu" and snap.creation.get("vm", "ok") != "ok":
        return _skip(cid, title, "no VM to create it in")
    result = snap.creation.get(key)
    if result is None:
        return _skip(cid, title, f"{ioctl} not recorded")
    if result == "ok":
        return _pass(cid, title, f"{ioctl} worked")
    evidence = f"{ioctl} failed with {result}"
    hint = _CREATE_HINTS.get(result, "look at 'dmesg | grep -i kvm' for the reason")
    status = ExitStatus.PERMISSION if result in ("EPERM", "EACCES") else ExitStatus.KVM_UNAVAILABLE
    return _fail(cid, title, evidence, hint, status)


def _check_mmap_size(snap: Snapshot | None) -> Check:
    title, cid = "vCPU mmap size", "api.vcpu_mmap_size"
    if snap is None or snap.api_version != API_VERSION:
        return _skip(cid, title, "KVM did not answer (see above)")
    size = snap.vcpu_mmap_size
    if size is None:
        error = _error_for(snap, "KVM_GET_VCPU_MMAP_SIZE")
        if error is None:
            return _skip(cid, title, "KVM_GET_VCPU_MMAP_SIZE not recorded")
        hint = "VMMs map struct kvm_run with this size and cannot run vCPUs without it"
        evidence = f"KVM_GET_VCPU_MMAP_SIZE failed: {error}"
        return _fail(cid, title, evidence, hint, ExitStatus.KVM_UNAVAILABLE)
    if size < 4096:
        evidence = f"KVM_GET_VCPU_MMAP_SIZE answered {size}, less than one page"
        hint = "VMMs cannot map struct kvm_run; the kernel's KVM looks broken"
        return _fail(cid, title, evidence, hint, ExitStatus.KVM_UNAVAILABLE)
    pages = f" ({size // 4096} pages)" if size % 4096 == 0 else ""
    return _pass(cid, title, f"{size} bytes{pages} per vCPU for kvm_run and its rings")


def _check_probe_errors(snap: Snapshot | None) -> Check:
    title, cid = "probe steps", "api.probe_errors"
    if snap is None:
        return _skip(cid, title, "nothing was probed")
    errors = [e for e in snap.errors if e.step not in _STEPS_WITH_OWN_CHECK]
    if not errors:
        return _pass(cid, title, "every other ioctl kvmprobe asked was answered")
    shown = ", ".join(e.step for e in errors[:4]) + (" ..." if len(errors) > 4 else "")
    evidence = f"{len(errors)} probe step(s) failed: {shown}"
    hint = "the affected answers are missing from this report; the details say why"
    details = tuple(f"{e.step}: {e.message}" for e in errors)
    return _warn(cid, title, evidence, hint, details=details)


def api_checks(snap: Snapshot | None, facts: Facts) -> list[Check]:
    return [
        _check_api_version(snap, facts),
        _check_create(snap, "vm", "api.create_vm", "create a VM", "KVM_CREATE_VM"),
        _check_create(snap, "vcpu", "api.create_vcpu", "create a vCPU", "KVM_CREATE_VCPU"),
        _check_mmap_size(snap),
        _check_probe_errors(snap),
    ]


# --------------------------------------------------------------------------------------------
# VMM readiness


def missing_caps(snap: Snapshot, profile: VmmProfile) -> list[str]:
    """Required capabilities of ``profile`` that answered 0 on the /dev/kvm fd."""
    missing = []
    for req in profile.requirements:
        if not req.required:
            continue
        info = cap_by_name(req.cap)
        if info is None or not snap.cap(info.number, "system"):
            missing.append(req.cap)
    return missing


def short_citation(source: str) -> str:
    """'owner/repo @ 0123456789ab' from a profile's source text."""
    repo, _, rest = source.partition(" @ ")
    return f"{repo.split()[-1] if repo else '?'} @ {rest[:12]}" if rest else source[:40]


def _vmm_check(snap: Snapshot | None, profile: VmmProfile) -> Check:
    cid, title = f"vmm.{profile.id}", f"{profile.name} start-up"
    required = [r for r in profile.requirements if r.required]
    if not usable(snap):
        return _skip(cid, title, "KVM is not usable here (see above)", citation=profile.source)
    assert snap is not None
    if snap.caps.get("system") is None:
        return _skip(cid, title, "no capability values", citation=profile.source)
    missing = missing_caps(snap, profile)
    problems = list(missing)
    split = snap.creation.get("split_irqchip")
    needs_split = any(r.cap == "KVM_CAP_SPLIT_IRQCHIP" and r.required for r in required)
    if needs_split and split not in (None, "ok"):
        problems.append(f"KVM_ENABLE_CAP(KVM_CAP_SPLIT_IRQCHIP) failed with {split}")
    if not problems:
        evidence = (
            f"all {len(required)} capabilities it requires at start-up are present "
            f"(as of {short_citation(profile.source)})"
        )
        return _pass(cid, title, evidence, citation=profile.source)
    notes = {r.cap: r.note for r in required}
    details = tuple(f"{name}: {notes[name]}" for name in missing if name in notes)
    evidence = f"missing: {', '.join(problems)} (as of {short_citation(profile.source)})"
    hint = (
        f"{profile.name} checks these on /dev/kvm and refuses to start without them; they "
        "come with a newer or differently configured host kernel"
    )
    return _fail(
        cid, title, evidence, hint, ExitStatus.CHECK_FAILED, details=details,
        citation=profile.source,
    )  # fmt: skip


def vmm_checks(snap: Snapshot | None, options: DoctorOptions) -> list[Check]:
    return [_vmm_check(snap, p) for p in VMMS if p.id in options.vmms]


# --------------------------------------------------------------------------------------------
# nested virtualization


def _nested_param(host: HostInfo) -> str | None:
    for module in ("kvm_intel", "kvm_amd"):
        if module in host.modules and "nested" in host.modules[module].params:
            return f"{module}.nested={host.modules[module].params['nested']}"
    return None


def _nested_hint(host: HostInfo) -> str:
    for module in ("kvm_intel", "kvm_amd"):
        value = host.modules[module].params.get("nested") if module in host.modules else None
        if value in ("N", "0"):
            return (
                f"reload with nesting on (all VMs stopped): modprobe -r {module} && modprobe "
                f"{module} nested=1; keep it with 'options {module} nested=1' in "
                "/etc/modprobe.d/kvm.conf"
            )
    if "kvm_pvm" in host.modules and not {"kvm_intel", "kvm_amd"} & set(host.modules):
        return (
            "this host runs KVM through PVM (no hardware virtualization), which offers its "
            "guests no VMX/SVM; nested hypervisors need a host with VT-x/AMD-V"
        )
    if not {"vmx", "svm"} & set(host.cpuinfo_flags):
        return "the host CPU shows no vmx/svm itself, so KVM has none to pass on"
    return "this kernel's KVM offers no nesting on this CPU"


def _check_guest_virt(snap: Snapshot | None, host: HostInfo) -> Check:
    title, cid = "VMX/SVM for guests", "nested.guest_virt"
    if snap is None or snap.supported_cpuid is None:
        return _skip(cid, title, "no KVM_GET_SUPPORTED_CPUID answer")
    vmx = _bit(snap.supported_cpuid, 0x1, "ecx", 5)
    svm = _bit(snap.supported_cpuid, 0x80000001, "ecx", 2)
    param = _nested_param(host)
    suffix = f"; {param}" if param else ""
    offered = [f"{n} (CPUID {w})" for n, on, w in (("VMX", vmx, "1.ECX[5]"),
               ("SVM", svm, "0x80000001.ECX[2]")) if on]  # fmt: skip
    if offered:
        return _pass(cid, title, f"guests can be given {' and '.join(offered)}{suffix}")
    evidence = f"KVM offers guests neither VMX (1.ECX[5]) nor SVM (0x80000001.ECX[2]){suffix}"
    return _warn(cid, title, evidence, _nested_hint(host))


def hypervisor_signatures(entries: tuple[CpuidEntry, ...] | None) -> list[tuple[int, str]]:
    """(leaf, signature) for every 0x400000x0 leaf that names a hypervisor."""
    view = CpuidView(entries)
    out = []
    for leaf in range(0x40000000, 0x40010000, 0x100):
        text = (vendor_string(view, leaf) or "").strip()
        if text and text.isprintable():
            out.append((leaf, text))
    return out


def _check_host_guest(host: HostInfo, present: bool) -> Check:
    title, cid = "host is a guest", "nested.host_is_guest"
    bit = _bit(host.cpuid, 0x1, "ecx", 31)
    source = "host CPUID 1.ECX[31]"
    if bit is None:
        if not host.cpuinfo_flags:
            return _skip(cid, title, f"host CPUID not readable ({host.cpuid_error or 'none'})")
        bit, source = "hypervisor" in host.cpuinfo_flags, "the 'hypervisor' flag in /proc/cpuinfo"
    if not bit:
        return _pass(cid, title, f"no hypervisor bit ({source}): bare metal")
    sigs = hypervisor_signatures(host.cpuid)
    if sigs:
        named = [f"'{s}' at {leaf:#x} ({HYPERVISORS.get(s, 'unknown')})" for leaf, s in sigs]
        evidence = f"yes: hypervisor bit set, signature {', '.join(named)}"
    else:
        why = f"; host CPUID unreadable: {host.cpuid_error}" if host.cpuid_error else ""
        evidence = f"yes: hypervisor bit set ({source}), signature unknown{why}"
    if present:
        return _pass(cid, title, evidence + "; KVM is available inside it")
    outer = HYPERVISORS.get(sigs[0][1]) if sigs else None
    hint = _NESTED_HINTS.get(
        outer or "",
        "ask the outer hypervisor or cloud for nested virtualization (or a bare-metal host)",
    )
    return _warn(cid, title, evidence, hint)


def nested_checks(snap: Snapshot | None, host: HostInfo, present: bool) -> list[Check]:
    return [_check_guest_virt(snap, host), _check_host_guest(host, present)]


# --------------------------------------------------------------------------------------------
# verdict


def verdict(checks: list[Check]) -> Verdict:
    fails = [c for c in checks if c.status == FAIL]
    warns = sum(1 for c in checks if c.status == WARN)
    if not fails:
        extra = f" ({warns} warning{'s' if warns != 1 else ''})" if warns else ""
        return Verdict(int(ExitStatus.OK), "ok", f"KVM is usable here{extra}", None)
    first = fails[0]
    status = first.exit_status or int(ExitStatus.KVM_UNAVAILABLE)
    if status == ExitStatus.CHECK_FAILED:
        names = [c.title.removesuffix(" start-up") for c in fails if c.group == "vmm"]
        message = f"KVM works, but {', '.join(names)} would refuse to start"
        return Verdict(status, "not-ready", message, first.id)
    if status == ExitStatus.PERMISSION:
        return Verdict(status, "permission", f"permission denied: {first.evidence}", first.id)
    return Verdict(status, "unavailable", f"KVM is not available: {first.evidence}", first.id)


def diagnose(
    facts: Facts, snap: Snapshot | None, options: DoctorOptions | None = None
) -> DoctorReport:
    """Run every check in order and reach a verdict."""
    options = options or DoctorOptions()
    host = facts.host
    api_ok = usable(snap)
    present = kvm_present(host, facts.access, api_ok)
    checks: list[Check] = []
    if facts.access is None:
        checks += _skip_device(RECORDED)
    else:
        checks += device_checks(facts.access, host, api_ok)
    checks += kernel_checks(host, api_ok, present)
    checks += api_checks(snap, facts)
    checks += vmm_checks(snap, options)
    checks += nested_checks(snap, host, present)
    counts = {s: sum(1 for c in checks if c.status == s) for s in STATUSES}
    return DoctorReport(
        checks=tuple(checks),
        verdict=verdict(checks),
        recorded=facts.access is None,
        counts=counts,
    )
