"""Nested virtualization: can guests be given VMX/SVM, and is this host itself a guest (and
of which hypervisor)? Both are information and warnings, never the verdict. Pure.
"""

from __future__ import annotations

from kvmprobe.analysis.cpuid import CpuidView, FeatureDef, lookup, vendor_string
from kvmprobe.analysis.doctor.report import Check, passed, skipped, warned
from kvmprobe.snapshot import CpuidEntry, HostInfo, Snapshot

# Hypervisors put a signature in EBX:ECX:EDX of leaf 0x40000000 (and, when they offer
# several interfaces, of further leaves 0x100 apart).
HYPERVISOR_LEAVES = range(0x40000000, 0x40010000, 0x100)
# Signatures (NULs stripped) and who writes them.
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


def _feature(name: str) -> FeatureDef:
    f = lookup(name)
    if f is None:  # the generated table always has these; a broken table is a bug here
        raise LookupError(f"CPUID feature {name!r} missing from kvmprobe.tables")
    return f


def _bit(entries: tuple[CpuidEntry, ...] | None, f: FeatureDef) -> bool | None:
    """The feature's bit, or None when its leaf is absent (callers fall back on other
    evidence)."""
    value = CpuidView(entries).reg(f.leaf, f.subleaf, f.register)
    return None if value is None else bool((value >> f.bit) & 1)


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


def _check_guest_virt(snap: Snapshot) -> Check:
    cid, title = "nested.guest_virt", "VMX/SVM for guests"
    if snap.supported_cpuid is None:
        return skipped(cid, title, "no KVM_GET_SUPPORTED_CPUID answer")
    vmx, svm = _feature("vmx"), _feature("svm")
    param = _nested_param(snap.host)
    suffix = f"; {param}" if param else ""
    offered = [
        f"{label} (CPUID {f.where})"
        for label, f in (("VMX", vmx), ("SVM", svm))
        if _bit(snap.supported_cpuid, f)
    ]
    if offered:
        return passed(cid, title, f"guests can be given {' and '.join(offered)}{suffix}")
    evidence = f"KVM offers guests neither VMX ({vmx.where}) nor SVM ({svm.where}){suffix}"
    return warned(cid, title, evidence, _nested_hint(snap.host))


def hypervisor_signatures(entries: tuple[CpuidEntry, ...] | None) -> list[tuple[int, str]]:
    """(leaf, signature) for every 0x400000x0 leaf that names a hypervisor."""
    view = CpuidView(entries)
    out = []
    for leaf in HYPERVISOR_LEAVES:
        text = (vendor_string(view, leaf) or "").strip()
        if text and text.isprintable():
            out.append((leaf, text))
    return out


def _check_host_guest(host: HostInfo, present: bool) -> Check:
    cid, title = "nested.host_is_guest", "host is a guest"
    hypervisor = _feature("hypervisor")
    bit = _bit(host.cpuid, hypervisor)
    source = f"host CPUID {hypervisor.where}"
    if bit is None:
        if not host.cpuinfo_flags:
            return skipped(cid, title, f"host CPUID not readable ({host.cpuid_error or 'none'})")
        bit = hypervisor.name in host.cpuinfo_flags
        source = f"the '{hypervisor.name}' flag in /proc/cpuinfo"
    if not bit:
        return passed(cid, title, f"no hypervisor bit ({source}): bare metal")
    sigs = hypervisor_signatures(host.cpuid)
    if sigs:
        named = [f"'{s}' at {leaf:#x} ({HYPERVISORS.get(s, 'unknown')})" for leaf, s in sigs]
        evidence = f"yes: hypervisor bit set, signature {', '.join(named)}"
    else:
        why = f"; host CPUID unreadable: {host.cpuid_error}" if host.cpuid_error else ""
        evidence = f"yes: hypervisor bit set ({source}), signature unknown{why}"
    if present:
        return passed(cid, title, evidence + "; KVM is available inside it")
    outer = HYPERVISORS.get(sigs[0][1]) if sigs else None
    hint = _NESTED_HINTS.get(
        outer or "",
        "ask the outer hypervisor or cloud for nested virtualization (or a bare-metal host)",
    )
    return warned(cid, title, evidence, hint)


def nested_checks(snap: Snapshot, present: bool) -> list[Check]:
    return [_check_guest_virt(snap), _check_host_guest(snap.host, present)]
