"""Kernel checks: the KVM modules, their parameters, and the CPU's virtualization flags
(information only: KVM works without vmx/svm under PVM and fails with them elsewhere).

Pure: the snapshot's HostInfo in, Checks out.
"""

from __future__ import annotations

from kvmprobe.analysis.doctor.device import VENDOR_MODULES
from kvmprobe.analysis.doctor.report import Check, failed, passed, skipped, warned
from kvmprobe.knowledge.module_params import KVM_MODULES, params_for_module
from kvmprobe.snapshot import AccessFacts, HostInfo
from kvmprobe.vocab import DoctorOutcome

_KEY_PARAMS = ("nested", "enable_pmu", "mitigate_smt_rsb", "tdp_mmu", "ept", "npt", "avic")


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
    cid, title = "kernel.modules", "KVM modules"
    present = _module_list(host)
    has_kvm = "kvm" in host.modules
    vendors = [m for m in VENDOR_MODULES if m in host.modules]
    if has_kvm and vendors:
        return passed(cid, title, ", ".join(present))
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
        evidence += "; the device answers anyway (/sys not visible?)"
        return warned(cid, title, evidence, hint)
    return failed(cid, title, evidence, hint, DoctorOutcome.UNAVAILABLE)


def good_values(good: str) -> set[str]:
    """The values a module parameter's 'usual' text allows ('cond, always or not required')."""
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


def _param_lines(host: HostInfo) -> tuple[list[str], list[str], list[str], list[str]]:
    """(flagged 'mod.param=value' items, their detail lines, key 'mod.param=value' items,
    their detail lines). A detail line is the setting, then what the parameter does in
    sentences ("When Y, ..."), then for a flagged one what its value costs guests."""
    flagged: list[str] = []
    flagged_lines: list[str] = []
    key: list[str] = []
    key_lines: list[str] = []
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
            if p.good is not None and value not in good_values(p.good) and not expected:
                flagged.append(name)
                concern = f" {p.concern}" if p.concern else ""
                flagged_lines.append(f"{name} (usual: {p.good}). {p.meaning}{concern}")
            elif p.name in _KEY_PARAMS:
                key.append(name)
                key_lines.append(f"{name}. {p.meaning}")
    return flagged, flagged_lines, key, key_lines


def _check_params(host: HostInfo) -> Check:
    cid, title = "kernel.params", "module parameters"
    if not any(m in host.modules for m in KVM_MODULES):
        return skipped(cid, title, "no KVM module parameters to read")
    flagged, flagged_lines, key, key_lines = _param_lines(host)
    details = tuple(flagged_lines + key_lines)
    if flagged:
        evidence = f"{len(flagged)} differ from the usual value: {', '.join(flagged)}"
        if key_lines:
            evidence += f" (and {len(key_lines)} more worth knowing, listed below)"
        hint = (
            "usually a deliberate choice of whoever set up the host; if guests need it, set "
            "the parameter (modprobe.d 'options <module> <param>=<value>', or kvm.<param>= on "
            "the kernel command line when built in) and reload"
        )
        return warned(cid, title, evidence, hint, details=details)
    evidence = "usual values" + (f": {', '.join(key)}" if key else "")
    return passed(cid, title, evidence, details=details)


def _check_cpu_flags(host: HostInfo, kvm_present: bool) -> Check:
    cid, title = "kernel.cpu_flags", "CPU virtualization flags"
    flags = set(host.cpuinfo_flags)
    if not flags:
        return skipped(cid, title, "no /proc/cpuinfo flags available")
    have = [f for f in ("vmx", "svm") if f in flags]
    if have:
        return passed(cid, title, f"/proc/cpuinfo advertises {', '.join(have)} (information only)")
    evidence = "no vmx or svm flag in /proc/cpuinfo (information only)"
    if kvm_present:
        extra = "; KVM is loaded regardless"
        if "kvm_pvm" in host.modules:
            extra += " (kvm_pvm: PVM needs no hardware virtualization)"
        return passed(cid, title, evidence + extra)
    hint = (
        "enable VT-x/AMD-V in the firmware; inside a VM, ask the outer hypervisor for nested "
        "virtualization (or use a PVM-enabled kernel, which needs neither)"
    )
    return warned(cid, title, evidence, hint)


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
