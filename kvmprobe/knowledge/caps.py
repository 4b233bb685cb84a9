"""What each KVM capability means to a VMM developer, in our own words.

Hand-written, unlike ``kvmprobe/tables/``: names and numbers are facts and live in the generated
tables; the one-line meanings, units and value kinds here are our reading of the KVM API
(checked against Documentation/virt/kvm/api.rst and KVM's behaviour, never copied from it).

Every generic and x86 capability has an entry in DESCRIPTIONS (a test enforces it). Other
architectures get a short note where we are sure of the meaning; the rest stay empty.
"""

# cap name -> one line, no trailing period
DESCRIPTIONS: dict[str, str] = {
    # -- generic and x86 ------------------------------------------------------------------
    "KVM_CAP_IRQCHIP": "In-kernel interrupt controllers (x86: PIC, IOAPIC and local APICs) via "
    "KVM_CREATE_IRQCHIP",
    "KVM_CAP_HLT": "Guest HLT handling; one of the original, always-present x86 capabilities",
    "KVM_CAP_MMU_SHADOW_CACHE_CONTROL": "KVM_SET_NR_MMU_PAGES / KVM_GET_NR_MMU_PAGES size the "
    "shadow-MMU page cache",
    "KVM_CAP_USER_MEMORY": "Guest RAM comes from userspace mappings via KVM_SET_USER_MEMORY_REGION",
    "KVM_CAP_SET_TSS_ADDR": "KVM_SET_TSS_ADDR places the three-page TSS area Intel VMX needs to "
    "run real-mode code",
    "KVM_CAP_VAPIC": "TPR access reporting and the virtual-APIC page ioctls "
    "(KVM_TPR_ACCESS_REPORTING, KVM_SET_VAPIC_ADDR)",
    "KVM_CAP_EXT_CPUID": "KVM_GET_SUPPORTED_CPUID and KVM_SET_CPUID2 with per-subleaf entries",
    "KVM_CAP_CLOCKSOURCE": "The kvmclock paravirtual clock can be offered to guests",
    "KVM_CAP_NR_VCPUS": "Recommended maximum vCPUs per VM (about the number of online host CPUs)",
    "KVM_CAP_NR_MEMSLOTS": "Maximum user memory slots per VM address space",
    "KVM_CAP_PIT": "In-kernel i8254 timer (KVM_CREATE_PIT)",
    "KVM_CAP_NOP_IO_DELAY": "Guests may skip port-0x80 I/O delays (paravirt no-op io_delay hint)",
    "KVM_CAP_PV_MMU": "Obsolete paravirtual MMU interface; current kernels report 0",
    "KVM_CAP_MP_STATE": "KVM_GET_MP_STATE / KVM_SET_MP_STATE read and set a vCPU's run state "
    "(runnable, halted, waiting for INIT/SIPI)",
    "KVM_CAP_COALESCED_MMIO": "Coalesced MMIO ring for buffered device writes; the value is its "
    "page offset in the vCPU mmap",
    "KVM_CAP_SYNC_MMU": "Changes to host mappings (munmap, migration, swap) reach the guest "
    "through MMU notifiers",
    "KVM_CAP_IOMMU": "Legacy in-kernel device assignment with an IOMMU (removed; use VFIO)",
    "KVM_CAP_DESTROY_MEMORY_REGION_WORKS": "Deleting a memory slot works (an early "
    "KVM_SET_USER_MEMORY_REGION bug is fixed)",
    "KVM_CAP_USER_NMI": "KVM_NMI injects an NMI when the local APIC is emulated in userspace",
    "KVM_CAP_SET_GUEST_DEBUG": "KVM_SET_GUEST_DEBUG: single-stepping and breakpoints for a "
    "guest debugger (gdbstub)",
    "KVM_CAP_REINJECT_CONTROL": "KVM_REINJECT_CONTROL chooses whether missed in-kernel PIT ticks "
    "are re-injected",
    "KVM_CAP_IRQ_ROUTING": "GSI routing table via KVM_SET_GSI_ROUTING; the value is the maximum "
    "number of routes",
    "KVM_CAP_IRQ_INJECT_STATUS": "KVM_IRQ_LINE_STATUS reports whether an interrupt was delivered "
    "or coalesced",
    "KVM_CAP_ASSIGN_DEV_IRQ": "Legacy device-assignment interrupt ioctls (removed; use VFIO)",
    "KVM_CAP_JOIN_MEMORY_REGIONS_WORKS": "A second early KVM_SET_USER_MEMORY_REGION bug is fixed "
    "(QEMU still checks for it)",
    "KVM_CAP_MCE": "Machine-check injection (KVM_X86_SETUP_MCE, KVM_X86_SET_MCE); the value is "
    "the maximum number of MCE banks",
    "KVM_CAP_IRQFD": "KVM_IRQFD: writing an eventfd raises a guest interrupt without a userspace "
    "round trip",
    "KVM_CAP_PIT2": "KVM_CREATE_PIT2 creates the in-kernel PIT with flags",
    "KVM_CAP_SET_BOOT_CPU_ID": "KVM_SET_BOOT_CPU_ID picks the vCPU that is the bootstrap processor",
    "KVM_CAP_PIT_STATE2": "KVM_GET_PIT2 / KVM_SET_PIT2 save and restore the in-kernel PIT "
    "including its flags",
    "KVM_CAP_IOEVENTFD": "KVM_IOEVENTFD: a guest PIO/MMIO write signals an eventfd instead of "
    "exiting to userspace",
    "KVM_CAP_SET_IDENTITY_MAP_ADDR": "KVM_SET_IDENTITY_MAP_ADDR places the identity-mapped page "
    "table Intel VMX uses for real mode",
    "KVM_CAP_XEN_HVM": "Xen HVM guest emulation (KVM_XEN_HVM_CONFIG); the value lists the "
    "Xen features KVM offers",
    "KVM_CAP_ADJUST_CLOCK": "KVM_GET_CLOCK / KVM_SET_CLOCK for the VM clock; the value lists the "
    "KVM_CLOCK_* flags they use",
    "KVM_CAP_INTERNAL_ERROR_DATA": "KVM_EXIT_INTERNAL_ERROR exits carry a suberror code and "
    "extra data words",
    "KVM_CAP_VCPU_EVENTS": "KVM_GET_VCPU_EVENTS / KVM_SET_VCPU_EVENTS save and restore pending "
    "exceptions, interrupts and NMIs",
    "KVM_CAP_HYPERV": "Basic Hyper-V enlightenments (guest OS ID and hypercall page MSRs)",
    "KVM_CAP_HYPERV_VAPIC": "Hyper-V virtual APIC enlightenment: APIC access MSRs and the APIC "
    "assist page",
    "KVM_CAP_HYPERV_SPIN": "Hyper-V long-spin-wait notification for guest spinlocks",
    "KVM_CAP_PCI_SEGMENT": "Legacy device-assignment structures carry a PCI segment number",
    "KVM_CAP_INTR_SHADOW": "The interrupt shadow (after STI or MOV SS) can be saved and restored "
    "with the vCPU events",
    "KVM_CAP_DEBUGREGS": "KVM_GET_DEBUGREGS / KVM_SET_DEBUGREGS save and restore DR0-DR3, DR6 "
    "and DR7",
    "KVM_CAP_X86_ROBUST_SINGLESTEP": "Host-driven single-stepping of the guest is reliable, even "
    "when the guest uses TF itself",
    "KVM_CAP_ENABLE_CAP": "KVM_ENABLE_CAP works on vCPU file descriptors",
    "KVM_CAP_XSAVE": "KVM_GET_XSAVE / KVM_SET_XSAVE save and restore FPU and vector state "
    "(4 KiB buffer)",
    "KVM_CAP_XCRS": "KVM_GET_XCRS / KVM_SET_XCRS save and restore extended control registers "
    "(XCR0)",
    "KVM_CAP_ASYNC_PF": "Asynchronous page faults: the guest runs other tasks while the host "
    "brings a page in",
    "KVM_CAP_TSC_CONTROL": "Per-vCPU guest TSC frequency (KVM_SET_TSC_KHZ) through hardware TSC "
    "scaling",
    "KVM_CAP_GET_TSC_KHZ": "KVM_GET_TSC_KHZ reads a vCPU's TSC frequency",
    "KVM_CAP_MAX_VCPUS": "Hard maximum vCPUs per VM",
    "KVM_CAP_SW_TLB": "PowerPC BookE: the vCPU TLB array is shared with userspace (KVM_DIRTY_TLB)",
    "KVM_CAP_ONE_REG": "KVM_GET_ONE_REG / KVM_SET_ONE_REG access single registers by ID",
    "KVM_CAP_TSC_DEADLINE_TIMER": "The in-kernel local APIC emulates TSC-deadline timer mode, so "
    "the CPUID bit may be set",
    "KVM_CAP_SYNC_REGS": "Register sets shared through kvm_run to save ioctls; the value lists "
    "the sets",
    "KVM_CAP_PCI_2_3": "Legacy device assignment with PCI 2.3 INTx masking (removed; use VFIO)",
    "KVM_CAP_KVMCLOCK_CTRL": "KVM_KVMCLOCK_CTRL tells the guest it was paused, avoiding "
    "soft-lockup warnings",
    "KVM_CAP_SIGNAL_MSI": "KVM_SIGNAL_MSI injects an MSI directly, without a routing entry",
    "KVM_CAP_READONLY_MEM": "Read-only memory slots (KVM_MEM_READONLY): guest writes exit as "
    "MMIO, e.g. for ROM or flash",
    "KVM_CAP_IRQFD_RESAMPLE": "Level-triggered irqfds with a resample eventfd signalled on EOI",
    "KVM_CAP_DEVICE_CTRL": "KVM_CREATE_DEVICE and device attributes for in-kernel devices",
    "KVM_CAP_EXT_EMUL_CPUID": "KVM_GET_EMULATED_CPUID lists CPUID features KVM emulates in "
    "software",
    "KVM_CAP_HYPERV_TIME": "Hyper-V reference time counter and TSC page enlightenment",
    "KVM_CAP_IOAPIC_POLARITY_IGNORED": "The in-kernel IOAPIC ignores the polarity bit, so "
    "userspace passes logical line levels",
    "KVM_CAP_ENABLE_CAP_VM": "KVM_ENABLE_CAP works on VM file descriptors",
    "KVM_CAP_IOEVENTFD_NO_LENGTH": "Zero-length (wildcard) MMIO ioeventfds that match a write of "
    "any size",
    "KVM_CAP_VM_ATTRIBUTES": "Device-attribute ioctls on the VM file descriptor (not reported "
    "on x86)",
    "KVM_CAP_CHECK_EXTENSION_VM": "KVM_CHECK_EXTENSION also works on VM fds, whose answers may "
    "differ from /dev/kvm",
    "KVM_CAP_DISABLE_QUIRKS": "KVM_ENABLE_CAP can turn off x86 quirks (first form; "
    "DISABLE_QUIRKS2 also lists them)",
    "KVM_CAP_X86_SMM": "System Management Mode emulation (KVM_SMI, SMM state in the vCPU events)",
    "KVM_CAP_MULTI_ADDRESS_SPACE": "Memory slots in several address spaces (x86: normal and "
    "SMM); the value is their number",
    "KVM_CAP_GUEST_DEBUG_HW_BPS": "Hardware breakpoints available to guest debugging (arm64)",
    "KVM_CAP_GUEST_DEBUG_HW_WPS": "Hardware watchpoints available to guest debugging (arm64)",
    "KVM_CAP_SPLIT_IRQCHIP": "Split irqchip: local APICs in the kernel, IOAPIC/PIC/PIT in "
    "userspace (enabled per VM)",
    "KVM_CAP_IOEVENTFD_ANY_LENGTH": "Zero-length ioeventfds are accepted and match a write of any "
    "size (QEMU requires this cap)",
    "KVM_CAP_HYPERV_SYNIC": "Hyper-V synthetic interrupt controller (SynIC), enabled per vCPU",
    "KVM_CAP_VCPU_ATTRIBUTES": "Device-attribute ioctls on vCPU fds (x86: per-vCPU TSC offset)",
    "KVM_CAP_MAX_VCPU_ID": "vCPU IDs (on x86 the APIC IDs) must be below this value",
    "KVM_CAP_X2APIC_API": "Flags accepted by KVM_ENABLE_CAP to use 32-bit x2APIC IDs, turn off "
    "the broadcast quirk and set EOI-broadcast suppression",
    "KVM_CAP_MSI_DEVID": "MSI injection and routing carry a device ID (needed by the arm64 ITS)",
    "KVM_CAP_IMMEDIATE_EXIT": "kvm_run.immediate_exit makes KVM_RUN return at once, for "
    "race-free kicks from signal handlers",
    "KVM_CAP_X86_DISABLE_EXITS": "Exits a VM may stop intercepting (HLT, PAUSE, MWAIT, C-states) "
    "via KVM_ENABLE_CAP, for latency",
    "KVM_CAP_HYPERV_SYNIC2": "SynIC variant that leaves the guest's message and event pages "
    "untouched when enabled",
    "KVM_CAP_HYPERV_VP_INDEX": "Userspace can set each vCPU's Hyper-V VP index",
    "KVM_CAP_GET_MSR_FEATURES": "KVM_GET_MSR_FEATURE_INDEX_LIST and /dev/kvm KVM_GET_MSRS read "
    "feature MSRs (e.g. ARCH_CAPABILITIES)",
    "KVM_CAP_HYPERV_EVENTFD": "KVM_HYPERV_EVENTFD: Hyper-V SIGNAL_EVENT hypercalls signal an "
    "eventfd",
    "KVM_CAP_HYPERV_TLBFLUSH": "Hyper-V paravirtual TLB-flush hypercalls handled in the kernel",
    "KVM_CAP_NESTED_STATE": "KVM_GET/SET_NESTED_STATE to migrate nested guests; the value is "
    "the largest state size",
    "KVM_CAP_MSR_PLATFORM_INFO": "Guest access to MSR_PLATFORM_INFO can be switched on or off",
    "KVM_CAP_HYPERV_SEND_IPI": "Hyper-V paravirtual IPI hypercalls handled in the kernel",
    "KVM_CAP_COALESCED_PIO": "Port I/O writes can be buffered in the coalesced ring, like MMIO",
    "KVM_CAP_HYPERV_ENLIGHTENED_VMCS": "Enlightened VMCS, so Hyper-V-aware L1 guests run nested "
    "guests faster (per vCPU)",
    "KVM_CAP_EXCEPTION_PAYLOAD": "Exceptions keep their payload (CR2, DR6) apart until delivery, "
    "for exact nested save/restore",
    "KVM_CAP_MANUAL_DIRTY_LOG_PROTECT": "Obsolete first form of manual dirty-log protection; use "
    "MANUAL_DIRTY_LOG_PROTECT2",
    "KVM_CAP_HYPERV_CPUID": "KVM_GET_SUPPORTED_HV_CPUID on a vCPU fd lists the Hyper-V CPUID "
    "leaves KVM supports",
    "KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2": "Userspace re-protects dirty pages itself with "
    "KVM_CLEAR_DIRTY_LOG; the value lists the modes",
    "KVM_CAP_PMU_EVENT_FILTER": "KVM_SET_PMU_EVENT_FILTER allows or denies guest PMU events",
    "KVM_CAP_HYPERV_DIRECT_TLBFLUSH": "Nested guests' Hyper-V TLB-flush hypercalls go straight "
    "to an underlying Hyper-V host",
    "KVM_CAP_HALT_POLL": "Per-VM maximum halt-polling time via KVM_ENABLE_CAP (overrides "
    "halt_poll_ns)",
    "KVM_CAP_ASYNC_PF_INT": "Async page-fault 'page ready' notices are delivered as an interrupt",
    "KVM_CAP_LAST_CPU": "A failed VM entry reports the host CPU it happened on",
    "KVM_CAP_SMALLER_MAXPHYADDR": "Guests may be given a smaller MAXPHYADDR than the host",
    "KVM_CAP_STEAL_TIME": "Paravirtual steal-time reporting to guests (the cap matters on "
    "arm64/riscv; x86 reports it too)",
    "KVM_CAP_X86_USER_SPACE_MSR": "Unknown, invalid or filtered MSR accesses can exit to "
    "userspace (KVM_EXIT_X86_RDMSR/WRMSR)",
    "KVM_CAP_X86_MSR_FILTER": "KVM_X86_SET_MSR_FILTER restricts which MSRs the guest may read "
    "or write",
    "KVM_CAP_ENFORCE_PV_FEATURE_CPUID": "KVM refuses paravirtual MSRs and hypercalls the guest's "
    "KVM CPUID leaf does not advertise",
    "KVM_CAP_SYS_HYPERV_CPUID": "KVM_GET_SUPPORTED_HV_CPUID also works on /dev/kvm",
    "KVM_CAP_DIRTY_LOG_RING": "Per-vCPU dirty-page rings instead of bitmaps; the value is the "
    "largest ring in bytes",
    "KVM_CAP_X86_BUS_LOCK_EXIT": "Guest bus locks (split locks) can exit to userspace; the "
    "value lists the detection modes",
    "KVM_CAP_SET_GUEST_DEBUG2": "The KVM_SET_GUEST_DEBUG control flags this kernel accepts",
    "KVM_CAP_SGX_ATTRIBUTE": "A VM can be granted restricted SGX attributes (provision key) by "
    "passing an SGX device fd",
    "KVM_CAP_VM_COPY_ENC_CONTEXT_FROM": "A VM can share another VM's SEV encryption context "
    "(mirror VMs)",
    "KVM_CAP_PTP_KVM": "The KVM PTP hypercall service that lets guests sync clocks with the host "
    "(arm64)",
    "KVM_CAP_HYPERV_ENFORCE_CPUID": "Hyper-V features are limited to those in the guest's "
    "Hyper-V CPUID (per vCPU)",
    "KVM_CAP_SREGS2": "KVM_GET_SREGS2 / KVM_SET_SREGS2: special registers plus the PAE PDPTRs",
    "KVM_CAP_EXIT_HYPERCALL": "Hypercalls that can be forwarded to userspace "
    "(KVM_EXIT_HYPERCALL), as a bitmap by hypercall number",
    "KVM_CAP_BINARY_STATS_FD": "KVM_GET_STATS_FD gives a binary statistics fd for a VM or vCPU",
    "KVM_CAP_EXIT_ON_EMULATION_FAILURE": "Every instruction-emulation failure exits to "
    "userspace with the instruction bytes",
    "KVM_CAP_VM_MOVE_ENC_CONTEXT_FROM": "Move another VM's SEV encryption context into this VM "
    "(intra-host migration)",
    "KVM_CAP_VM_GPA_BITS": "Guest physical address width (RISC-V; not reported on x86)",
    "KVM_CAP_XSAVE2": "KVM_GET_XSAVE2 buffer size in bytes (above 4096 when AMX state is enabled)",
    "KVM_CAP_SYS_ATTRIBUTES": "Device-attribute ioctls on /dev/kvm (x86: guest XSAVE features, "
    "SEV attributes)",
    "KVM_CAP_PMU_CAPABILITY": "VM-wide PMU controls for KVM_ENABLE_CAP; DISABLE turns the "
    "virtual PMU off",
    "KVM_CAP_DISABLE_QUIRKS2": "Quirks that KVM_ENABLE_CAP can turn off, as a mask of "
    "KVM_X86_QUIRK_* bits",
    "KVM_CAP_VM_TSC_CONTROL": "KVM_SET_TSC_KHZ on a VM fd sets the default TSC frequency for new "
    "vCPUs",
    "KVM_CAP_SYSTEM_EVENT_DATA": "KVM_EXIT_SYSTEM_EVENT exits carry extra data words",
    "KVM_CAP_X86_TRIPLE_FAULT_EVENT": "A pending triple fault is part of the vCPU events, so it "
    "survives save and restore",
    "KVM_CAP_X86_NOTIFY_VMEXIT": "Notify VM exits catch guests that block event windows "
    "(Intel); the value lists the modes",
    "KVM_CAP_VM_DISABLE_NX_HUGE_PAGES": "A VM can opt out of the NX huge page (iTLB multihit) "
    "mitigation; needs CAP_SYS_BOOT",
    "KVM_CAP_DIRTY_LOG_RING_ACQ_REL": "Dirty rings with acquire/release ordering (needed on "
    "weakly ordered CPUs); value as DIRTY_LOG_RING",
    "KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP": "Dirty rings plus a backup bitmap for pages dirtied "
    "without a running vCPU",
    "KVM_CAP_PMU_EVENT_MASKED_EVENTS": "PMU event filters can use masked-event entries",
    "KVM_CAP_COUNTER_OFFSET": "arm64: KVM_ARM_SET_COUNTER_OFFSET sets a VM-wide offset for the "
    "guest counters",
    "KVM_CAP_USER_MEMORY2": "KVM_SET_USER_MEMORY_REGION2, the memslot ioctl that can attach a "
    "guest_memfd",
    "KVM_CAP_MEMORY_FAULT_INFO": "Unresolved guest memory faults report address, size and flags "
    "in KVM_EXIT_MEMORY_FAULT",
    "KVM_CAP_MEMORY_ATTRIBUTES": "KVM_SET_MEMORY_ATTRIBUTES; the value lists the attributes "
    "(PRIVATE for confidential VMs)",
    "KVM_CAP_GUEST_MEMFD": "KVM_CREATE_GUEST_MEMFD: guest memory that need not be mapped into "
    "userspace",
    "KVM_CAP_VM_TYPES": "VM types KVM_CREATE_VM accepts (default, SEV, SEV-ES, SNP, TDX), as a "
    "bitmap by type number",
    "KVM_CAP_PRE_FAULT_MEMORY": "KVM_PRE_FAULT_MEMORY maps guest memory in ahead of time",
    "KVM_CAP_X86_APIC_BUS_CYCLES_NS": "APIC bus cycle length a VM can set via KVM_ENABLE_CAP; "
    "the value is the default",
    "KVM_CAP_X86_GUEST_MODE": "kvm_run.flags tells whether the vCPU was running a nested (L2) "
    "guest at exit",
    "KVM_CAP_GUEST_MEMFD_FLAGS": "Flags KVM_CREATE_GUEST_MEMFD accepts (mmap support, initially "
    "shared)",
    # -- other architectures (short) --------------------------------------------------------
    "KVM_CAP_S390_PSW": "s390: the PSW is exchanged through kvm_run",
    "KVM_CAP_PPC_SEGSTATE": "PowerPC: segment registers in the special-register ioctls",
    "KVM_CAP_PPC_PAIRED_SINGLES": "PowerPC: paired-single floating point emulation",
    "KVM_CAP_PPC_OSI": "PowerPC: Mac-on-Linux OSI hypercalls can exit to userspace",
    "KVM_CAP_PPC_UNSET_IRQ": "PowerPC: an external interrupt can be de-asserted again",
    "KVM_CAP_PPC_GET_PVINFO": "PowerPC: KVM_PPC_GET_PVINFO describes the paravirt interface",
    "KVM_CAP_PPC_IRQ_LEVEL": "PowerPC: level-triggered external interrupts",
    "KVM_CAP_PPC_BOOKE_SREGS": "PowerPC BookE: BookE special registers in KVM_GET/SET_SREGS",
    "KVM_CAP_SPAPR_TCE": "PowerPC sPAPR: in-kernel TCE tables for virtual I/O",
    "KVM_CAP_PPC_SMT": "PowerPC: vCPUs per virtual core",
    "KVM_CAP_PPC_RMA": "PowerPC: real-mode area allocation",
    "KVM_CAP_PPC_HIOR": "PowerPC: the HIOR register can be set",
    "KVM_CAP_PPC_PAPR": "PowerPC: PAPR hypercalls can exit to userspace",
    "KVM_CAP_S390_GMAP": "s390: guest address space mapping (gmap)",
    "KVM_CAP_S390_UCONTROL": "s390: user-controlled VMs",
    "KVM_CAP_PPC_GET_SMMU_INFO": "PowerPC: KVM_PPC_GET_SMMU_INFO lists supported page sizes",
    "KVM_CAP_S390_COW": "s390: copy-on-write guest memory",
    "KVM_CAP_PPC_ALLOC_HTAB": "PowerPC: KVM_PPC_ALLOCATE_HTAB allocates the hashed page table",
    "KVM_CAP_PPC_BOOKE_WATCHDOG": "PowerPC BookE: watchdog timer emulation",
    "KVM_CAP_PPC_HTAB_FD": "PowerPC: the hashed page table is readable through an fd",
    "KVM_CAP_S390_CSS_SUPPORT": "s390: channel I/O instructions exit to userspace",
    "KVM_CAP_PPC_EPR": "PowerPC: external proxy register exits",
    "KVM_CAP_ARM_PSCI": "arm64: PSCI 0.1 firmware calls emulated in the kernel",
    "KVM_CAP_ARM_SET_DEVICE_ADDR": "arm64: KVM_ARM_SET_DEVICE_ADDR places in-kernel devices",
    "KVM_CAP_IRQ_MPIC": "PowerPC: in-kernel MPIC interrupt controller",
    "KVM_CAP_PPC_RTAS": "PowerPC: RTAS calls handled in the kernel",
    "KVM_CAP_IRQ_XICS": "PowerPC: in-kernel XICS interrupt controller",
    "KVM_CAP_ARM_EL1_32BIT": "arm64: vCPUs can run a 32-bit EL1",
    "KVM_CAP_SPAPR_MULTITCE": "PowerPC sPAPR: multi-entry TCE hypercalls in the kernel",
    "KVM_CAP_S390_IRQCHIP": "s390: in-kernel interrupt controller",
    "KVM_CAP_ARM_PSCI_0_2": "arm64: PSCI 0.2 and later firmware calls",
    "KVM_CAP_PPC_ENABLE_HCALL": "PowerPC: individual in-kernel hypercalls can be enabled",
    "KVM_CAP_S390_USER_SIGP": "s390: SIGP orders handled in userspace",
    "KVM_CAP_S390_VECTOR_REGISTERS": "s390: vector registers",
    "KVM_CAP_S390_MEM_OP": "s390: KVM_S390_MEM_OP guest memory access; the value is the largest "
    "transfer",
    "KVM_CAP_S390_USER_STSI": "s390: STSI instructions handled in userspace",
    "KVM_CAP_S390_SKEYS": "s390: storage keys can be read and set",
    "KVM_CAP_MIPS_FPU": "MIPS: guest FPU",
    "KVM_CAP_MIPS_MSA": "MIPS: guest MSA vector unit",
    "KVM_CAP_S390_INJECT_IRQ": "s390: KVM_S390_IRQ interrupt injection",
    "KVM_CAP_S390_IRQ_STATE": "s390: interrupt state save and restore",
    "KVM_CAP_PPC_HWRNG": "PowerPC: hardware random number hypercall in the kernel",
    "KVM_CAP_S390_RI": "s390: runtime instrumentation",
    "KVM_CAP_SPAPR_TCE_64": "PowerPC sPAPR: 64-bit TCE tables",
    "KVM_CAP_ARM_PMU_V3": "arm64: PMUv3 for guests",
    "KVM_CAP_S390_USER_INSTR0": "s390: instruction 0x0000 exits to userspace",
    "KVM_CAP_PPC_HTM": "PowerPC: hardware transactional memory",
    "KVM_CAP_SPAPR_RESIZE_HPT": "PowerPC sPAPR: the hashed page table can be resized",
    "KVM_CAP_PPC_MMU_RADIX": "PowerPC: radix MMU guests",
    "KVM_CAP_PPC_MMU_HASH_V3": "PowerPC: ISA v3 hash MMU guests",
    "KVM_CAP_MIPS_VZ": "MIPS: hardware-assisted virtualization (VZ)",
    "KVM_CAP_MIPS_TE": "MIPS: trap-and-emulate virtualization",
    "KVM_CAP_MIPS_64BIT": "MIPS: 64-bit guests",
    "KVM_CAP_S390_GS": "s390: guarded storage",
    "KVM_CAP_S390_AIS": "s390: adapter interruption suppression",
    "KVM_CAP_SPAPR_TCE_VFIO": "PowerPC sPAPR: TCE tables for VFIO devices",
    "KVM_CAP_ARM_USER_IRQ": "arm64: timer and PMU interrupts reported to a userspace irqchip",
    "KVM_CAP_S390_CMMA_MIGRATION": "s390: collaborative memory management state migration",
    "KVM_CAP_PPC_FWNMI": "PowerPC: firmware-assisted NMI",
    "KVM_CAP_PPC_SMT_POSSIBLE": "PowerPC: possible SMT modes, as a bitmap",
    "KVM_CAP_S390_AIS_MIGRATION": "s390: adapter interruption suppression state migration",
    "KVM_CAP_PPC_GET_CPU_CHAR": "PowerPC: KVM_PPC_GET_CPU_CHAR reports speculation mitigations",
    "KVM_CAP_S390_BPB": "s390: branch prediction blocking",
    "KVM_CAP_S390_HPAGE_1M": "s390: 1 MiB huge pages back guest memory",
    "KVM_CAP_ARM_INJECT_SERROR_ESR": "arm64: SError injection with a syndrome",
    "KVM_CAP_PPC_NESTED_HV": "PowerPC: nested hypervisor guests",
    "KVM_CAP_ARM_VM_IPA_SIZE": "arm64: largest guest physical address size for KVM_CREATE_VM",
    "KVM_CAP_PPC_IRQ_XIVE": "PowerPC: in-kernel XIVE interrupt controller",
    "KVM_CAP_ARM_SVE": "arm64: SVE for guests",
    "KVM_CAP_ARM_PTRAUTH_ADDRESS": "arm64: address pointer authentication for guests",
    "KVM_CAP_ARM_PTRAUTH_GENERIC": "arm64: generic pointer authentication for guests",
    "KVM_CAP_ARM_IRQ_LINE_LAYOUT_2": "arm64: KVM_IRQ_LINE accepts vCPU numbers above 255",
    "KVM_CAP_PPC_GUEST_DEBUG_SSTEP": "PowerPC: guest single-stepping",
    "KVM_CAP_ARM_NISV_TO_USER": "arm64: data aborts without syndrome can exit to userspace",
    "KVM_CAP_ARM_INJECT_EXT_DABT": "arm64: external data aborts can be injected",
    "KVM_CAP_S390_VCPU_RESETS": "s390: separate normal and clear vCPU resets",
    "KVM_CAP_S390_PROTECTED": "s390: protected virtualization (secure guests)",
    "KVM_CAP_PPC_SECURE_GUEST": "PowerPC: secure guests (ultravisor)",
    "KVM_CAP_S390_DIAG318": "s390: DIAG 318 diagnostic data",
    "KVM_CAP_PPC_DAWR1": "PowerPC: a second data address watchpoint register",
    "KVM_CAP_PPC_RPT_INVALIDATE": "PowerPC: process-scoped TLB invalidation hypercall",
    "KVM_CAP_ARM_MTE": "arm64: memory tagging for guests",
    "KVM_CAP_PPC_AIL_MODE_3": "PowerPC: interrupt address relocation mode 3",
    "KVM_CAP_S390_MEM_OP_EXTENSION": "s390: extended KVM_S390_MEM_OP operations",
    "KVM_CAP_ARM_SYSTEM_SUSPEND": "arm64: guest PSCI SYSTEM_SUSPEND exits to userspace",
    "KVM_CAP_S390_PROTECTED_DUMP": "s390: dumps of protected guests",
    "KVM_CAP_S390_ZPCI_OP": "s390: zPCI interpretation controls",
    "KVM_CAP_S390_CPU_TOPOLOGY": "s390: CPU topology for guests",
    "KVM_CAP_S390_PROTECTED_ASYNC_DISABLE": "s390: protected guests torn down asynchronously",
    "KVM_CAP_ARM_EAGER_SPLIT_CHUNK_SIZE": "arm64: chunk size for eager huge-page splitting",
    "KVM_CAP_ARM_SUPPORTED_BLOCK_SIZES": "arm64: stage-2 block sizes, as a bitmap",
    "KVM_CAP_ARM_SUPPORTED_REG_MASK_RANGES": "arm64: writable ID register masks can be queried",
    "KVM_CAP_ARM_WRITABLE_IMP_ID_REGS": "arm64: implementation ID registers are writable",
    "KVM_CAP_ARM_EL2": "arm64: vCPUs can run at EL2 (nested virtualization)",
    "KVM_CAP_ARM_EL2_E2H0": "arm64: nested EL2 without VHE (E2H=0)",
    "KVM_CAP_RISCV_MP_STATE_RESET": "RISC-V: setting MP state can reset a vCPU",
    "KVM_CAP_ARM_CACHEABLE_PFNMAP_SUPPORTED": "arm64: cacheable mappings of PFN-mapped "
    "device memory",
    "KVM_CAP_ARM_SEA_TO_USER": "arm64: synchronous external aborts can exit to userspace",
    "KVM_CAP_S390_HPAGE_2G": "s390: 2 GiB huge pages back guest memory",
}

# cap name -> unit of its KVM_CHECK_EXTENSION value, for caps that return a number
UNITS: dict[str, str] = {
    "KVM_CAP_NR_VCPUS": "vCPUs (recommended)",
    "KVM_CAP_NR_MEMSLOTS": "memslots",
    "KVM_CAP_COALESCED_MMIO": "page offset",
    "KVM_CAP_IRQ_ROUTING": "routes",
    "KVM_CAP_MCE": "banks",
    "KVM_CAP_PPC_SMT": "vCPUs per core",
    "KVM_CAP_MAX_VCPUS": "vCPUs",
    "KVM_CAP_S390_MEM_OP": "bytes",
    "KVM_CAP_MULTI_ADDRESS_SPACE": "address spaces",
    "KVM_CAP_GUEST_DEBUG_HW_BPS": "breakpoints",
    "KVM_CAP_GUEST_DEBUG_HW_WPS": "watchpoints",
    "KVM_CAP_MAX_VCPU_ID": "vCPU IDs",
    "KVM_CAP_NESTED_STATE": "bytes",
    "KVM_CAP_ARM_VM_IPA_SIZE": "bits",
    "KVM_CAP_DIRTY_LOG_RING": "bytes",
    "KVM_CAP_VM_GPA_BITS": "bits",
    "KVM_CAP_XSAVE2": "bytes",
    "KVM_CAP_DIRTY_LOG_RING_ACQ_REL": "bytes",
    "KVM_CAP_ARM_EAGER_SPLIT_CHUNK_SIZE": "bytes",
    "KVM_CAP_X86_APIC_BUS_CYCLES_NS": "ns",
}

# cap name -> how to read its number: "count" (how many of something), "size" (bytes) or
# "scalar" (any other quantity: an offset, a width, a duration). Every UNITS cap is here.
SCALAR_KINDS: dict[str, str] = {
    "KVM_CAP_NR_VCPUS": "count",
    "KVM_CAP_NR_MEMSLOTS": "count",
    "KVM_CAP_COALESCED_MMIO": "scalar",
    "KVM_CAP_IRQ_ROUTING": "count",
    "KVM_CAP_MCE": "count",
    "KVM_CAP_PPC_SMT": "count",
    "KVM_CAP_MAX_VCPUS": "count",
    "KVM_CAP_S390_MEM_OP": "size",
    "KVM_CAP_MULTI_ADDRESS_SPACE": "count",
    "KVM_CAP_GUEST_DEBUG_HW_BPS": "count",
    "KVM_CAP_GUEST_DEBUG_HW_WPS": "count",
    "KVM_CAP_MAX_VCPU_ID": "count",
    "KVM_CAP_NESTED_STATE": "size",
    "KVM_CAP_ARM_VM_IPA_SIZE": "scalar",
    "KVM_CAP_DIRTY_LOG_RING": "size",
    "KVM_CAP_VM_GPA_BITS": "scalar",
    "KVM_CAP_XSAVE2": "size",
    "KVM_CAP_DIRTY_LOG_RING_ACQ_REL": "size",
    "KVM_CAP_ARM_EAGER_SPLIT_CHUNK_SIZE": "size",
    "KVM_CAP_X86_APIC_BUS_CYCLES_NS": "scalar",
}
