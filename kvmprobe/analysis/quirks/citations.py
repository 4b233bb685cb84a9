"""Where the quirk records' facts come from, in the fixed citation forms of the design:
``api.rst "<section>"``, a source file with the function read, or
``Linux commit <12 hex> ("<subject>") (<first release>)``."""

from __future__ import annotations

API_PROBLEMS = 'api.rst "Known KVM API problems"'
API_4_46 = "api.rst 4.46 KVM_GET_SUPPORTED_CPUID"
API_4_88 = "api.rst 4.88 KVM_GET_EMULATED_CPUID"
API_7_13 = "api.rst 7.13 KVM_CAP_X86_DISABLE_EXITS"
API_7_31 = "api.rst 7.31 KVM_CAP_DISABLE_QUIRKS2"
API_EXIT_HC = "api.rst 8.34 KVM_CAP_EXIT_HYPERCALL"
CPUID_RST = "Documentation/virt/kvm/x86/cpuid.rst"
ERRATA_RST = 'Documentation/virt/kvm/x86/errata.rst "KVM_GET_SUPPORTED_CPUID issues"'
QEMU_KVM = "QEMU target/i386/kvm/kvm.c kvm_arch_get_supported_cpuid()"
QEMU_KVM_CPU = "QEMU target/i386/kvm/kvm-cpu.c"
QEMU_TSX = "QEMU target/i386/kvm/kvm.c host_tsx_broken()"
QEMU_CPU_H = "QEMU target/i386/cpu.h CPUID_EXT2_AMD_ALIASES"
FC_NORMALIZE = "Firecracker src/vmm/src/cpu_config/x86_64/cpuid/normalize.rs"
FC_INTEL = "Firecracker src/vmm/src/cpu_config/x86_64/cpuid/intel/normalize.rs"
FC_XSTATE = "Firecracker src/vmm/src/arch/x86_64/xstate.rs"
CH_ARCH = "cloud-hypervisor arch/src/x86_64/mod.rs"
LINUX_ASYNC_PF = (
    "Linux arch/x86/kvm/x86.c kvm_pv_enable_async_pf(), kvm_pv_enable_async_pf_int() "
    "(both refuse to enable without an in-kernel LAPIC)"
)
COMMIT_TSC = (
    'Linux commit 9be4ec35d668 ("KVM: x86: Advertise TSC_DEADLINE_TIMER in '
    'KVM_GET_SUPPORTED_CPUID") (v6.14)'
)
COMMIT_HYPERVISOR = (
    'Linux commit 9aa470f5ddb2 ("KVM: x86: Advertise HYPERVISOR in '
    'KVM_GET_SUPPORTED_CPUID") (v6.14)'
)
COMMIT_TOPOLOGY = (
    'Linux commit 45e966fcca03 ("KVM: x86: Do not return host topology information from '
    'KVM_GET_SUPPORTED_CPUID") (v6.2)'
)
COMMIT_ARCH_CAP = (
    'Linux commit 0cf9135b773b ("KVM: x86: Emulate MSR_IA32_ARCH_CAPABILITIES on AMD hosts") (v5.1)'
)
COMMIT_ARCH_CAP_ALWAYS = (
    'Linux commit 1eaafe91a0df ("kvm: x86: IA32_ARCH_CAPABILITIES is always supported") (v4.17)'
)
#: kvmprobe's own evidence: the advertised value applied to a fresh vCPU during the probe
VERIFY = (
    "kvmprobe's own vCPU check during the probe: KVM_SET_CPUID2 with the supported table, then "
    "KVM_SET_MSRS with each advertised feature-MSR value, bit by bit on refusal"
)
