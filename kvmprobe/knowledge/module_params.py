"""KVM module parameters that change what a guest gets, hand-curated with citations.

Parameter names, types and the file that defines them were checked against upstream
Linux sources (``module_param*()`` definitions in arch/x86/kvm and virt/kvm, read through
source search; the files are named in ``source``).  The PVM module (``kvm_pvm``) is an
out-of-tree/RFC module: its public RFC tree defines no module parameters, so its entries
come from ``/sys/module/kvm_pvm/parameters`` on the development host and say so.

``meaning``, ``good`` and ``concern`` are our own words.  Values are compared as the
strings sysfs prints: ``Y``/``N`` for bool parameters, digits for int/uint ones (for
example ``kvm_amd.nested`` is an int and prints ``1``/``0``, ``kvm_intel.nested`` is a
bool and prints ``Y``/``N``).  ``good`` is ``None`` when the parameter is informational
(no single healthy value); ``concern`` is ``None`` when no value is a problem for guests.

Used by ``kvmprobe doctor``.  Stdlib only; plain data.
"""

from __future__ import annotations

from kvmprobe.frozen import frozen

__all__ = ["KVM_MODULES", "MODULE_PARAMS", "ModuleParam", "params_for_module"]


@frozen
class ModuleParam:
    module: str
    name: str
    meaning: str  # our words, one line
    good: str | None  # usual healthy value(s), or None if informational
    concern: str | None  # one line: when/why a value is a problem for guests
    source: str  # where the parameter is defined


KVM_MODULES: tuple[str, ...] = ("kvm", "kvm_intel", "kvm_amd", "kvm_pvm")

_L = "torvalds/linux"
_X86 = f"{_L} arch/x86/kvm/x86.c"
_MMU = f"{_L} arch/x86/kvm/mmu/mmu.c"
_MAIN = f"{_L} virt/kvm/kvm_main.c"
_VMX = f"{_L} arch/x86/kvm/vmx/vmx.c"
_SVM = f"{_L} arch/x86/kvm/svm/svm.c"
_SEV = f"{_L} arch/x86/kvm/svm/sev.c"
_PVM_HOST = (
    "not defined in virt-pvm/linux arch/x86/kvm/pvm/pvm.c @ "
    "02cf70ff4e497427c48a250ef0af50b62b5c5ded (the public PVM RFC has no module "
    "parameters); name taken from /sys/module/kvm_pvm/parameters on the 6.18.44-fc-v657 "
    "development host; meaning not published"
)
_KVM_LOCAL = (
    "not found in upstream torvalds/linux sources; present in /sys/module/kvm/parameters "
    "on the 6.18.44-fc-v657 PVM development host (vendor or PVM-tree addition); meaning "
    "not published"
)


def _p(
    module: str,
    name: str,
    meaning: str,
    good: str | None,
    concern: str | None,
    source: str,
) -> ModuleParam:
    return ModuleParam(module, name, meaning, good, concern, source)


_KVM: tuple[ModuleParam, ...] = (
    _p(
        "kvm",
        "ignore_msrs",
        "When Y, guest reads of MSRs KVM does not handle return 0 and writes are dropped, "
        "instead of injecting #GP.",
        "N",
        "Y hides missing MSR emulation (guests may misbehave silently); some set it only "
        "to boot Windows/macOS guests.",
        f"{_X86} (module_param ignore_msrs, bool, 0644)",
    ),
    _p(
        "kvm",
        "report_ignored_msrs",
        "When Y, each MSR access ignored because of ignore_msrs is logged to the host kernel log.",
        None,
        None,
        f"{_X86} (module_param report_ignored_msrs, bool, 0644)",
    ),
    _p(
        "kvm",
        "halt_poll_ns",
        "Longest time (ns) a halted vCPU busy-polls for a wake-up before sleeping; 0 turns "
        "halt polling off (x86 default 200000).",
        None,
        "0 adds wake-up latency to idle guests; large values burn host CPU while guests idle.",
        f"{_MAIN} (module_param halt_poll_ns, uint, 0644)",
    ),
    _p(
        "kvm",
        "halt_poll_ns_grow",
        "Factor by which a vCPU's polling window grows after a successful poll; 0 keeps it fixed.",
        None,
        None,
        f"{_MAIN} (module_param halt_poll_ns_grow, uint, 0644)",
    ),
    _p(
        "kvm",
        "halt_poll_ns_shrink",
        "Divisor applied to a vCPU's polling window after a failed poll; 0 resets it to zero.",
        None,
        None,
        f"{_MAIN} (module_param halt_poll_ns_shrink, uint, 0644)",
    ),
    _p(
        "kvm",
        "kvmclock_periodic_sync",
        "When Y, KVM periodically refreshes every guest's kvmclock from the host clock.",
        "Y",
        "N lets kvmclock drift from the host's NTP-disciplined time on long-running guests.",
        f"{_X86} (module_param kvmclock_periodic_sync, bool, 0444)",
    ),
    _p(
        "kvm",
        "tsc_tolerance_ppm",
        "How far (ppm) a requested guest TSC rate may differ from the host's before KVM "
        "scales or catches up the TSC (default 250).",
        None,
        None,
        f"{_X86} (module_param tsc_tolerance_ppm, uint, 0644)",
    ),
    _p(
        "kvm",
        "min_timer_period_us",
        "Shortest periodic LAPIC/PIT timer period (us) a guest may program; shorter ones are "
        "clamped (default 200).",
        None,
        "Large values slow guests that rely on fast periodic timers.",
        f"{_X86} (module_param min_timer_period_us, uint, 0644)",
    ),
    _p(
        "kvm",
        "lapic_timer_advance",
        "When Y, KVM fires guest TSC-deadline timers slightly early, by a self-tuned amount, to "
        "cut timer latency.",
        "Y",
        None,
        f"{_L} arch/x86/kvm/lapic.c (module_param lapic_timer_advance, bool, 0444); older "
        "kernels had an int lapic_timer_advance_ns in arch/x86/kvm/x86.c instead",
    ),
    _p(
        "kvm",
        "vector_hashing",
        "When Y, lowest-priority interrupts pick their target vCPU by hashing the vector.",
        None,
        None,
        f"{_X86} (module_param vector_hashing, bool, 0444)",
    ),
    _p(
        "kvm",
        "enable_vmware_backdoor",
        "When Y, KVM emulates VMware's backdoor I/O port and pseudo performance counters for "
        "guests.",
        "N",
        "Y makes KVM intercept #GP for every guest; only guests expecting VMware's "
        "backdoor need it.",
        f"{_X86} (module_param enable_vmware_backdoor, bool, 0444)",
    ),
    _p(
        "kvm",
        "force_emulation_prefix",
        "When non-zero, a guest can force KVM's instruction emulator with a magic prefix "
        "(a testing aid).",
        "0",
        "Non-zero is meant for selftests; production guests get an extra emulator entry point.",
        f"{_X86} (module_param force_emulation_prefix, int, 0644)",
    ),
    _p(
        "kvm",
        "pi_inject_timer",
        "Deliver guest LAPIC timer interrupts as posted interrupts from another CPU; -1 "
        "means decide at load (on when timer isolation is configured).",
        None,
        None,
        f"{_X86} (module_param pi_inject_timer, bint, 0644)",
    ),
    _p(
        "kvm",
        "enable_pmu",
        "When Y, guests can get a virtual PMU; when N, no vPMU at all: CPUID leaf 0xA reads as "
        "zero "
        "and KVM_CAP_PMU_CAPABILITY reports nothing.",
        "Y",
        "With N, perf, profilers and PMU-based features in guests see no counters.",
        f"{_X86} (module_param enable_pmu, bool, 0444)",
    ),
    _p(
        "kvm",
        "eager_page_split",
        "When Y, huge pages are split up front when dirty logging starts (smoother live "
        "migration).",
        "Y",
        None,
        f"{_X86} (module_param eager_page_split, bool, 0644)",
    ),
    _p(
        "kvm",
        "mitigate_smt_rsb",
        "When Y, on CPUs with the SMT return-stack-buffer bug and SMT possible, userspace cannot "
        "disable HLT, MWAIT or CSTATE exits (KVM_CAP_X86_DISABLE_EXITS offers only PAUSE).",
        "N",
        "With Y, VMMs that pass idle states through (e.g. QEMU -overcommit cpu-pm=on) lose that "
        "option.",
        f"{_X86} (module_param mitigate_smt_rsb, bool, 0444)",
    ),
    _p(
        "kvm",
        "nx_huge_pages",
        "When Y, the iTLB-multihit mitigation maps executable guest huge pages as 4K; when N, no "
        "mitigation; when 'never', it is turned off for good. Writes accept off/force/auto/never.",
        None,
        "Y on unaffected CPUs costs guest performance; N on affected Intel CPUs lets a guest "
        "crash the host with a machine check.",
        f"{_MMU} (module_param_cb nx_huge_pages)",
    ),
    _p(
        "kvm",
        "nx_huge_pages_recovery_ratio",
        "How aggressively split executable huge pages are reassembled (1/N per period; 0 "
        "disables recovery).",
        None,
        None,
        f"{_MMU} (module_param_cb nx_huge_pages_recovery_ratio)",
    ),
    _p(
        "kvm",
        "nx_huge_pages_recovery_period_ms",
        "Period (ms) of the huge-page recovery worker; 0 lets KVM derive it from the ratio.",
        None,
        None,
        f"{_MMU} (module_param_cb nx_huge_pages_recovery_period_ms)",
    ),
    _p(
        "kvm",
        "tdp_mmu",
        "When Y, the TDP MMU (built for many vCPUs on EPT/NPT) handles guest memory; when N, the "
        "older MMU code does.",
        "Y",
        "N on an EPT/NPT host slows page faults on large guests; N is normal with shadow "
        "paging (ept/npt off, PVM).",
        f"{_MMU} (module_param_named tdp_mmu, tdp_mmu_enabled, bool, 0444; older kernels: "
        "arch/x86/kvm/mmu/tdp_mmu.c, 0644)",
    ),
    _p(
        "kvm",
        "flush_on_reuse",
        "When Y, KVM flushes and resyncs whenever it reuses a shadow page (debugging aid).",
        "N",
        "Y costs guest performance.",
        f"{_MMU} (module_param_named flush_on_reuse, force_flush_and_sync_on_reuse, bool, 0644)",
    ),
    _p(
        "kvm",
        "mmio_caching",
        "When Y, KVM caches emulated-MMIO translations in page-table entries so MMIO exits take "
        "a fast path; KVM forces it N when the hardware leaves no spare bits.",
        "Y",
        "With N, every guest MMIO access goes through the slow page-fault path.",
        f"{_L} arch/x86/kvm/mmu/spte.c (module_param_named mmio_caching, "
        "enable_mmio_caching, bool, 0444)",
    ),
    _p(
        "kvm",
        "allow_unsafe_mappings",
        "When Y, KVM may map host memory that is not protected by MMU notifiers into guests.",
        "N",
        "Y can leave guests with access to freed host pages; a security risk.",
        f"{_MAIN} (module_param allow_unsafe_mappings, bool, 0444)",
    ),
    _p(
        "kvm",
        "enable_virt_at_load",
        "When Y, hardware virtualization is switched on on all CPUs when KVM loads, not when "
        "the first VM starts.",
        None,
        None,
        f"{_MAIN} (module_param enable_virt_at_load, bool, 0444)",
    ),
    _p(
        "kvm",
        "debugctl_per_entry",
        "Not an upstream parameter; seen on the PVM development host (likely DEBUGCTL "
        "handling on guest entry, by its name).",
        None,
        None,
        _KVM_LOCAL,
    ),
    _p(
        "kvm",
        "eager_zap_unsync_children",
        "Not an upstream parameter; seen on the PVM development host (shadow-MMU tuning, by "
        "its name).",
        None,
        None,
        _KVM_LOCAL,
    ),
    _p(
        "kvm",
        "parent_ptes_recycle_threshold",
        "Not an upstream parameter; seen on the PVM development host (shadow-MMU tuning, by "
        "its name).",
        None,
        None,
        _KVM_LOCAL,
    ),
)

_KVM_INTEL: tuple[ModuleParam, ...] = (
    _p(
        "kvm_intel",
        "nested",
        "When Y, guests may use VMX themselves (nested virtualization; the vmx flag can be "
        "offered to guests).",
        None,
        "With N, guests cannot run their own hypervisors.",
        f"{_VMX} (module_param nested, bool, 0444)",
    ),
    _p(
        "kvm_intel",
        "ept",
        "When Y, guest memory uses hardware two-level paging (EPT); when N, shadow paging.",
        "Y",
        "N makes memory-heavy guests much slower and disables features that depend on EPT.",
        f"{_VMX} (module_param_named ept, enable_ept, bool, 0444)",
    ),
    _p(
        "kvm_intel",
        "unrestricted_guest",
        "When Y, real-mode and big-real-mode guest code runs in hardware instead of being "
        "emulated (needs EPT).",
        "Y",
        "With N, firmware and boot loaders run slowly under emulation, some fail.",
        f"{_VMX} (module_param_named unrestricted_guest, enable_unrestricted_guest, bool, 0444)",
    ),
    _p(
        "kvm_intel",
        "eptad",
        "When Y, EPT accessed/dirty bits are used (dirty logging with PML, aging).",
        "Y",
        None,
        f"{_VMX} (module_param_named eptad, enable_ept_ad_bits, bool, 0444)",
    ),
    _p(
        "kvm_intel",
        "vpid",
        "When Y, TLB entries are tagged per vCPU, so fewer flushes on VM entry/exit.",
        "Y",
        "N costs guest performance.",
        f"{_VMX} (module_param_named vpid, enable_vpid, bool, 0444)",
    ),
    _p(
        "kvm_intel",
        "flexpriority",
        "When Y, guests get TPR shadowing and APIC-access virtualization.",
        "Y",
        None,
        f"{_VMX} (module_param_named flexpriority, flexpriority_enabled, bool, 0444)",
    ),
    _p(
        "kvm_intel",
        "enable_apicv",
        "When Y, guests get APIC virtualization and posted interrupts (fewer exits for interrupts "
        "and EOIs).",
        "Y",
        "With N, guest interrupt delivery and EOIs cause VM exits.",
        f"{_VMX} (module_param enable_apicv, bool, 0444)",
    ),
    _p(
        "kvm_intel",
        "enable_ipiv",
        "When Y, guests get IPI virtualization on CPUs that have it (IPIs without exits); needs "
        "APICv.",
        "Y",
        None,
        f"{_VMX} (module_param enable_ipiv, bool, 0444)",
    ),
    _p(
        "kvm_intel",
        "pml",
        "When Y, page-modification logging tracks dirty pages in hardware (cheaper migration).",
        "Y",
        None,
        f"{_VMX} (module_param_named pml, enable_pml, bool, 0444)",
    ),
    _p(
        "kvm_intel",
        "vnmi",
        "When Y, guests get virtual NMIs (NMI blocking tracked by hardware).",
        "Y",
        None,
        f"{_VMX} (module_param_named vnmi, enable_vnmi, bool, 0444)",
    ),
    _p(
        "kvm_intel",
        "preemption_timer",
        "When Y, the VMX preemption timer backs the guest LAPIC timer (fewer host timer "
        "interrupts).",
        "Y",
        None,
        f"{_VMX} (module_param_named preemption_timer, enable_preemption_timer, bool, 0444)",
    ),
    _p(
        "kvm_intel",
        "enable_shadow_vmcs",
        "When Y, shadow VMCS speeds up VMREAD/VMWRITE in nested guests.",
        "Y",
        None,
        f"{_VMX} (module_param_named enable_shadow_vmcs, enable_shadow_vmcs, bool, 0444)",
    ),
    _p(
        "kvm_intel",
        "vmentry_l1d_flush",
        "L1TF mitigation on VM entry: always, cond (only after risky exits), never; "
        "'not required' on unaffected CPUs, 'EPT disabled' without EPT.",
        "cond, always or not required",
        "never on an L1TF-affected CPU lets a guest read host data from the L1 cache.",
        f"{_VMX} (module_param_cb vmentry_l1d_flush)",
    ),
    _p(
        "kvm_intel",
        "allow_smaller_maxphyaddr",
        "When Y, guests may be given fewer physical address bits than the host has.",
        None,
        None,
        f"{_VMX} (module_param allow_smaller_maxphyaddr, bool, 0444)",
    ),
    _p(
        "kvm_intel",
        "ple_gap",
        "Pause-loop exiting gap; 0 turns PAUSE-loop exits off (spinning guests keep their CPU).",
        None,
        None,
        f"{_VMX} (module_param ple_gap, uint, 0444)",
    ),
    _p(
        "kvm_intel",
        "pt_mode",
        "Intel Processor Trace: 0 (system) PT stays with the host, 1 (host-guest) guests "
        "get their own PT.",
        None,
        None,
        f"{_VMX} (module_param pt_mode, int, 0444; may be hidden on newer kernels)",
    ),
    _p(
        "kvm_intel",
        "sgx",
        "When Y, SGX enclaves can be offered to guests (needs host SGX with launch control).",
        None,
        None,
        f"{_L} arch/x86/kvm/vmx/sgx.c (module_param_named sgx, enable_sgx, bool, 0444)",
    ),
    _p(
        "kvm_intel",
        "tdx",
        "When Y, TDX confidential guests can be created (KVM_X86_TDX_VM appears in "
        "KVM_CAP_VM_TYPES).",
        None,
        None,
        f"{_L} arch/x86/kvm/vmx/tdx.c (module_param_named tdx, enable_tdx, bool, 0444)",
    ),
)

_KVM_AMD: tuple[ModuleParam, ...] = (
    _p(
        "kvm_amd",
        "nested",
        "When 1, guests may use SVM themselves (nested virtualization; the svm flag can be "
        "offered to guests).",
        None,
        "With 0, guests cannot run their own hypervisors.",
        f"{_SVM} (module_param nested, int, 0444)",
    ),
    _p(
        "kvm_amd",
        "npt",
        "When Y, guest memory uses hardware nested paging (NPT); when N, shadow paging.",
        "Y",
        "N makes memory-heavy guests much slower.",
        f"{_SVM} (module_param_named npt, npt_enabled, bool, 0444)",
    ),
    _p(
        "kvm_amd",
        "avic",
        "When Y, AVIC (APIC virtualization) delivers interrupts to running guests without exits.",
        None,
        "With N, guest interrupt delivery causes VM exits (often the default on older kernels).",
        f"{_SVM} (module_param avic, bool, 0444); newer kernels: "
        "arch/x86/kvm/svm/avic.c (module_param_cb avic, auto mode)",
    ),
    _p(
        "kvm_amd",
        "nrips",
        "When 1, KVM uses the CPU's next-RIP save on exits and can offer it to nested guests.",
        "1",
        None,
        f"{_SVM} (module_param nrips, int, 0444)",
    ),
    _p(
        "kvm_amd",
        "vls",
        "When 1, virtual VMLOAD/VMSAVE speeds up nested guests.",
        "1",
        None,
        f"{_SVM} (module_param vls, int, 0444)",
    ),
    _p(
        "kvm_amd",
        "vgif",
        "When 1, nested guests get a virtual GIF (fewer exits).",
        "1",
        None,
        f"{_SVM} (module_param vgif, int, 0444)",
    ),
    _p(
        "kvm_amd",
        "lbrv",
        "When 1, guests get last-branch-record virtualization.",
        None,
        None,
        f"{_SVM} (module_param lbrv, int, 0444)",
    ),
    _p(
        "kvm_amd",
        "tsc_scaling",
        "When 1, guests can run at a TSC frequency different from the host's "
        "(KVM_CAP_TSC_CONTROL).",
        "1",
        "With 0, migration between hosts with different TSC rates cannot keep the guest TSC rate.",
        f"{_SVM} (module_param tsc_scaling, int, 0444)",
    ),
    _p(
        "kvm_amd",
        "vnmi",
        "When Y, guests get virtual NMIs on CPUs that support them.",
        "Y",
        None,
        f"{_SVM} (module_param vnmi, bool, 0444)",
    ),
    _p(
        "kvm_amd",
        "pause_filter_count",
        "PAUSE count before a pause-loop exit; 0 turns pause filtering off.",
        None,
        None,
        f"{_SVM} (module_param pause_filter_count, ushort, 0444)",
    ),
    _p(
        "kvm_amd",
        "sev",
        "When Y, SEV encrypted guests can be created (also needs firmware support and ASIDs).",
        None,
        None,
        f"{_SEV} (module_param_named sev, sev_enabled, bool, 0444)",
    ),
    _p(
        "kvm_amd",
        "sev_es",
        "When Y, SEV-ES guests (encrypted register state) can be created.",
        None,
        None,
        f"{_SEV} (module_param_named sev_es, sev_es_enabled, bool, 0444)",
    ),
    _p(
        "kvm_amd",
        "sev_snp",
        "When Y, SEV-SNP guests (integrity-protected memory) can be created.",
        None,
        None,
        f"{_SEV} (module_param_named sev_snp, sev_snp_enabled, bool, 0444)",
    ),
    _p(
        "kvm_amd",
        "debug_swap",
        "When Y, SEV-ES guests may use debug registers (DebugSwap).",
        None,
        None,
        f"{_SEV} (module_param_named debug_swap, sev_es_debug_swap_enabled, bool, 0444)",
    ),
)

_KVM_PVM: tuple[ModuleParam, ...] = (
    _p(
        "kvm_pvm",
        "force",
        "Presumably forces the PVM module to load despite failed host checks (inferred "
        "from the name only).",
        None,
        None,
        _PVM_HOST,
    ),
    _p(
        "kvm_pvm",
        "no_x2apic",
        "Presumably withholds x2APIC from PVM guests (inferred from the name only).",
        None,
        None,
        _PVM_HOST,
    ),
    _p(
        "kvm_pvm",
        "pvm_native",
        "PVM mode switch; semantics not published.",
        None,
        None,
        _PVM_HOST,
    ),
    _p(
        "kvm_pvm",
        "pvf_deny",
        "Mask of PVM features refused to guests, by its name; semantics not published.",
        None,
        None,
        _PVM_HOST,
    ),
    _p(
        "kvm_pvm",
        "hb_mask",
        "Bit mask; semantics not published.",
        None,
        None,
        _PVM_HOST,
    ),
    _p(
        "kvm_pvm",
        "pvm_emul_batch",
        "Batch size for PVM instruction emulation, by its name; semantics not published.",
        None,
        None,
        _PVM_HOST,
    ),
    _p(
        "kvm_pvm",
        "pvm_wrap_single",
        "Boolean PVM switcher option; semantics not published.",
        None,
        None,
        _PVM_HOST,
    ),
    _p(
        "kvm_pvm",
        "refault_assert",
        "Debug assertion on page refaults, by its name; semantics not published.",
        None,
        None,
        _PVM_HOST,
    ),
    _p(
        "kvm_pvm",
        "pvm_debug",
        "Debug level of the PVM module, by its name.",
        None,
        None,
        _PVM_HOST,
    ),
    _p(
        "kvm_pvm",
        "stats",
        "When Y, the PVM module collects statistics, by its name.",
        None,
        None,
        _PVM_HOST,
    ),
    _p(
        "kvm_pvm",
        "verbose",
        "When Y, the PVM module logs extra messages, by its name.",
        None,
        None,
        _PVM_HOST,
    ),
)

MODULE_PARAMS: tuple[ModuleParam, ...] = _KVM + _KVM_INTEL + _KVM_AMD + _KVM_PVM


def params_for_module(module: str) -> tuple[ModuleParam, ...]:
    """The curated parameters of one module ('kvm-intel' is accepted for 'kvm_intel')."""
    wanted = module.replace("-", "_")
    return tuple(p for p in MODULE_PARAMS if p.module == wanted)
