"""What the common VMMs ask of KVM at start-up (x86_64), hand-curated with citations.

Facts (which KVM_CAP_* a VMM checks, where, and what it does when a check fails) were
read from the VMMs' own sources at the commits named in each profile's ``source``.
The notes are our own words; nothing here is copied from those projects.

``required=True`` means the VMM refuses to start when ``KVM_CHECK_EXTENSION`` returns 0
for that capability on its default x86_64 configuration.  ``required=False`` covers
capabilities the VMM probes and uses when present, or needs only for an opt-in feature;
the note says which, and on which file descriptor the VMM asks when it is not the
system fd (``/dev/kvm``).  Checks that are not capabilities go in ``other_checks``.

Used by ``kvmprobe doctor``.  Stdlib only; plain data.
"""

from __future__ import annotations

from kvmprobe.frozen import frozen

__all__ = ["VMMS", "VmmProfile", "VmmRequirement", "vmm_by_id"]


@frozen
class VmmRequirement:
    cap: str  # exact KVM_CAP_* constant name, e.g. "KVM_CAP_IRQCHIP"
    required: bool  # True = the VMM refuses to start without it
    note: str  # our own words: what the VMM uses it for


@frozen
class VmmProfile:
    id: str  # "qemu", "firecracker", "cloud-hypervisor"
    name: str  # display name
    source: str  # repository @ 40-hex commit, path, symbol
    requirements: tuple[VmmRequirement, ...]
    other_checks: tuple[str, ...]  # non-capability start-up checks, our words
    #: where the VMM's default start-up writes the feature MSRs KVM advertises to each vCPU
    #: and stops when KVM_SET_MSRS sets fewer than asked ("" when it does not)
    sets_feature_msrs: str = ""


def _req(cap: str, note: str) -> VmmRequirement:
    return VmmRequirement(cap=cap, required=True, note=note)


def _opt(cap: str, note: str) -> VmmRequirement:
    return VmmRequirement(cap=cap, required=False, note=note)


# --------------------------------------------------------------------------------------
# QEMU
# --------------------------------------------------------------------------------------

QEMU = VmmProfile(
    sets_feature_msrs=(
        "QEMU target/i386/kvm/kvm.c kvm_put_msrs() (IA32_ARCH_CAPABILITIES, "
        "IA32_PERF_CAPABILITIES from the -cpu host feature words) and kvm_buf_set_msrs(), "
        "which asserts that KVM_SET_MSRS set every entry"
    ),
    id="qemu",
    name="QEMU",
    source=(
        "qemu/qemu @ 02e16ab9f4f19c4bdd17c51952d70e2ded74c6bf (v9.0.0-rc3, read from the "
        "NVIDIA/QEMU mirror that carries this upstream commit), accel/kvm/kvm-all.c "
        "kvm_required_capabilites[] checked by kvm_check_extension_list() in kvm_init(); "
        "qemu/qemu @ 00001a22d183ce96c110690987bf9dd6a8548552, target/i386/kvm/kvm.c "
        "kvm_arch_required_capabilities[] and kvm_arch_init() (the x86 list is identical "
        "at both commits)"
    ),
    requirements=(
        # accel/kvm/kvm-all.c kvm_required_capabilites[] (all architectures)
        _req(
            "KVM_CAP_USER_MEMORY",
            "Guest RAM is registered as userspace-backed memslots. Only the classic "
            "ioctl is required; KVM_CAP_USER_MEMORY2 is optional (see below).",
        ),
        _req(
            "KVM_CAP_DESTROY_MEMORY_REGION_WORKS",
            "Deleting a memslot (size 0) must be reliable; QEMU remaps regions often.",
        ),
        _req(
            "KVM_CAP_JOIN_MEMORY_REGIONS_WORKS",
            "Adjacent memslots may be replaced by a merged one without breakage.",
        ),
        _req(
            "KVM_CAP_INTERNAL_ERROR_DATA",
            "KVM_EXIT_INTERNAL_ERROR carries extra data that QEMU prints when a vCPU dies.",
        ),
        _req("KVM_CAP_IOEVENTFD", "Device doorbells (virtio) signal an eventfd in-kernel."),
        _req(
            "KVM_CAP_IOEVENTFD_ANY_LENGTH",
            "Zero-length ioeventfds (match any access width), used for virtio notifications.",
        ),
        # target/i386/kvm/kvm.c kvm_arch_required_capabilities[]
        _req("KVM_CAP_SET_TSS_ADDR", "Places the real-mode TSS pages below the BIOS."),
        _req("KVM_CAP_EXT_CPUID", "KVM_GET_SUPPORTED_CPUID / KVM_SET_CPUID2 for the guest CPU."),
        _req("KVM_CAP_MP_STATE", "Reads/writes vCPU run state (INIT/SIPI, halted) for SMP."),
        _req("KVM_CAP_SIGNAL_MSI", "Injects MSIs directly by address/data."),
        _req("KVM_CAP_IRQ_ROUTING", "GSI routing table for the in-kernel irqchip and MSI."),
        _req("KVM_CAP_DEBUGREGS", "Saves and restores DR0-DR7 (migration, gdbstub)."),
        _req("KVM_CAP_XSAVE", "Saves and restores extended FPU/vector state."),
        _req("KVM_CAP_VCPU_EVENTS", "Saves and restores pending exceptions/interrupts/NMIs."),
        _req(
            "KVM_CAP_X86_ROBUST_SINGLESTEP",
            "Single-stepping under the gdbstub behaves correctly across exits.",
        ),
        _req("KVM_CAP_MCE", "Machine-check banks for the guest (also the bank count)."),
        _req("KVM_CAP_ADJUST_CLOCK", "Reads/sets the kvmclock base across migration and pause."),
        _req(
            "KVM_CAP_SET_IDENTITY_MAP_ADDR",
            "Places the EPT identity-map page used for real mode on older Intel CPUs.",
        ),
        # Probed in kvm_init() / kvm_arch_init() / vCPU set-up, used when present.
        _opt(
            "KVM_CAP_IRQCHIP",
            "In-kernel PIC/IOAPIC/LAPIC (kernel-irqchip=on). Without it QEMU falls back "
            "to a userspace irqchip instead of failing.",
        ),
        _opt(
            "KVM_CAP_IRQFD",
            "Conditional: once an in-kernel irqchip is created, QEMU exits if irqfd is missing.",
        ),
        _opt(
            "KVM_CAP_SPLIT_IRQCHIP",
            "kernel-irqchip=split (LAPIC in kernel, IOAPIC/PIC in QEMU); enabled on the VM "
            "fd with 24 IOAPIC pins. QEMU exits if split mode is selected and enabling fails.",
        ),
        _opt("KVM_CAP_IMMEDIATE_EXIT", "Cheap vCPU kick without signals when present."),
        _opt(
            "KVM_CAP_NR_MEMSLOTS",
            "Number of memslots per address space; a 0 answer is treated as 32.",
        ),
        _opt("KVM_CAP_MULTI_ADDRESS_SPACE", "Second memslot address space for SMM."),
        _opt(
            "KVM_CAP_NR_VCPUS",
            "Recommended vCPU count (asked on the VM fd); exceeding it only warns.",
        ),
        _opt(
            "KVM_CAP_MAX_VCPUS",
            "Hard vCPU limit; QEMU exits when -smp asks for more.",
        ),
        _opt("KVM_CAP_MAX_VCPU_ID", "Largest vCPU id (APIC id) QEMU may create."),
        _opt("KVM_CAP_COALESCED_MMIO", "Batches writes to some MMIO regions in a ring."),
        _opt("KVM_CAP_COALESCED_PIO", "Same batching for port I/O (used only with MMIO one)."),
        _opt(
            "KVM_CAP_DIRTY_LOG_RING",
            "Only with the accel's dirty-ring-size option (asked on the VM fd): per-vCPU "
            "dirty-page rings; if neither ring flavour is offered QEMU warns and keeps "
            "the dirty bitmap.",
        ),
        _opt(
            "KVM_CAP_DIRTY_LOG_RING_ACQ_REL",
            "Ring flavour with acquire/release ordering, tried when KVM_CAP_DIRTY_LOG_RING "
            "answers 0 (VM fd).",
        ),
        _opt(
            "KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2",
            "Enabled on the VM fd for cheaper dirty logging during migration.",
        ),
        _opt("KVM_CAP_NESTED_STATE", "Saves nested-virtualization state for migration."),
        _opt("KVM_CAP_IRQ_INJECT_STATUS", "Uses KVM_IRQ_LINE_STATUS to learn if an IRQ landed."),
        _opt(
            "KVM_CAP_READONLY_MEM",
            "Read-only memslots for ROM/flash. Asked on /dev/kvm at v9.0.0-rc3; later QEMU "
            "asks the VM fd because confidential VM types do not offer it.",
        ),
        _opt("KVM_CAP_IRQFD_RESAMPLE", "Level-triggered irqfds with a resample eventfd (VFIO)."),
        _opt("KVM_CAP_VM_ATTRIBUTES", "Device-attribute ioctls on the VM fd."),
        _opt("KVM_CAP_SET_GUEST_DEBUG", "gdbstub breakpoints and single-step."),
        _opt("KVM_CAP_SET_GUEST_DEBUG2", "Extra guest-debug flags (single-step with IRQs off)."),
        _opt(
            "KVM_CAP_SYNC_MMU",
            "Asked on the VM fd; without it QEMU disables RAM discard (ballooning, virtio-mem).",
        ),
        _opt("KVM_CAP_BINARY_STATS_FD", "Exposes KVM statistics through query-stats."),
        _opt("KVM_CAP_XCRS", "Saves and restores XCR0."),
        _opt("KVM_CAP_SREGS2", "Saves PDPTRs with the segment registers."),
        _opt("KVM_CAP_HYPERV_VP_INDEX", "Hyper-V enlightenment: settable VP index."),
        _opt(
            "KVM_CAP_EXCEPTION_PAYLOAD",
            "Enabled on the VM fd when present; a failure to enable it is fatal.",
        ),
        _opt(
            "KVM_CAP_X86_TRIPLE_FAULT_EVENT",
            "Enabled on the VM fd when present; a failure to enable it is fatal.",
        ),
        _opt(
            "KVM_CAP_X86_SMM",
            "System Management Mode for firmware (OVMF secure boot); asked on the VM fd.",
        ),
        _opt(
            "KVM_CAP_X86_DISABLE_EXITS",
            "Only with -overcommit cpu-pm=on: lets the guest HLT/MWAIT/PAUSE without "
            "exits. Newer QEMU exits if enabling fails.",
        ),
        _opt(
            "KVM_CAP_X86_BUS_LOCK_EXIT",
            "Required only when the bus-lock-ratelimit machine option is set.",
        ),
        _opt("KVM_CAP_X86_NOTIFY_VMEXIT", "Notify-window VM exits (notify-vmexit option)."),
        _opt(
            "KVM_CAP_X86_USER_SPACE_MSR",
            "Asked on the VM fd; QEMU then filters some MSRs to userspace and exits if "
            "enabling that fails.",
        ),
        _opt(
            "KVM_CAP_TSC_DEADLINE_TIMER",
            "QEMU adds the TSC-deadline CPUID bit only when this is set and the irqchip "
            "is in the kernel.",
        ),
        _opt(
            "KVM_CAP_SYS_ATTRIBUTES",
            "Reads KVM_X86_XCOMP_GUEST_SUPP (full XSAVE feature set, e.g. AMX).",
        ),
        _opt("KVM_CAP_X2APIC_API", "Enabled for 32-bit APIC ids (more than 255 vCPUs)."),
        _opt(
            "KVM_CAP_VM_TYPES",
            "Needed only for confidential guests (SEV, SEV-ES, SNP, TDX): QEMU exits when "
            "the requested VM type is not in the bitmap.",
        ),
        _opt("KVM_CAP_EXIT_HYPERCALL", "Confidential guests: hypercalls forwarded to QEMU."),
        _opt("KVM_CAP_XSAVE2", "Size of the XSAVE buffer when it exceeds 4 KiB (AMX)."),
        _opt("KVM_CAP_TSC_CONTROL", "Sets the guest TSC frequency (tsc-frequency property)."),
        _opt("KVM_CAP_GET_TSC_KHZ", "Reads the vCPU TSC frequency for migration."),
        _opt(
            "KVM_CAP_ENFORCE_PV_FEATURE_CPUID",
            "Enabled per vCPU with kvm-pv-enforce-cpuid=on.",
        ),
        _opt(
            "KVM_CAP_USER_MEMORY2",
            "Newer QEMU (not in the v9.0.0-rc3 tree): memslots with a guest_memfd for "
            "confidential guests; asked on the VM fd together with KVM_CAP_GUEST_MEMFD. "
            "Ordinary guests keep using KVM_CAP_USER_MEMORY.",
        ),
        _opt(
            "KVM_CAP_GUEST_MEMFD",
            "Newer QEMU: private guest memory for SNP/TDX; asked on the VM fd.",
        ),
        _opt(
            "KVM_CAP_MEMORY_ATTRIBUTES",
            "Newer QEMU: private/shared page attributes for confidential guests (VM fd).",
        ),
        _opt("KVM_CAP_PRE_FAULT_MEMORY", "Newer QEMU: pre-populates guest memory (VM fd)."),
    ),
    other_checks=(
        "Opens /dev/kvm (or the accelerator's device property) read-write; failure is fatal.",
        "KVM_GET_API_VERSION must be exactly 12: older is reported as too old, newer as "
        "unsupported.",
        "KVM_CREATE_VM with the machine's VM type, retried while it returns EINTR; any other "
        "error is fatal.",
        "The required capability lists are checked with KVM_CHECK_EXTENSION on the /dev/kvm "
        "fd (not the VM fd), after KVM_CREATE_VM; the first missing one is named and QEMU "
        "stops.",
        "Requested vCPUs are compared with KVM_CAP_NR_VCPUS (warning) and KVM_CAP_MAX_VCPUS "
        "(fatal).",
        "No minimum memslot count: KVM_CAP_NR_MEMSLOTS sizes the slot table (0 means 32); "
        "running out of slots later aborts.",
        "KVM_GET_VCPU_MMAP_SIZE and the mmap of kvm_run must succeed for every vCPU.",
        "x86: KVM_GET_MSR_INDEX_LIST must succeed (first call may return E2BIG).",
        "x86: KVM_SET_IDENTITY_MAP_ADDR and KVM_SET_TSS_ADDR on the VM fd must succeed.",
        "x86: KVM_GET_SUPPORTED_CPUID must succeed (buffer grown on E2BIG); any other error exits.",
    ),
)


# --------------------------------------------------------------------------------------
# Firecracker
# --------------------------------------------------------------------------------------

FIRECRACKER = VmmProfile(
    id="firecracker",
    name="Firecracker",
    source=(
        "firecracker-microvm/firecracker @ 81b38b9dad6056d7a48073e95ac5a9aed51cb2ab, "
        "src/vmm/src/arch/x86_64/kvm.rs Kvm::DEFAULT_CAPABILITIES (14 caps), checked by "
        "Kvm::check_capabilities() from Kvm::new() in src/vmm/src/vstate/kvm.rs; optional "
        "probes in src/vmm/src/arch/x86_64/vm.rs KvmVm::new() and src/vmm/src/vstate/vm.rs"
    ),
    requirements=(
        _req("KVM_CAP_IRQCHIP", "In-kernel PIC/IOAPIC/LAPIC; Firecracker has no userspace one."),
        _req("KVM_CAP_IOEVENTFD", "virtio-mmio/PCI queue notifications go to eventfds."),
        _req("KVM_CAP_IRQFD", "Devices raise guest interrupts through eventfds."),
        _req("KVM_CAP_USER_MEMORY", "Guest RAM is registered as userspace-backed memslots."),
        _req("KVM_CAP_SET_TSS_ADDR", "The TSS pages are placed at a fixed guest address."),
        _req("KVM_CAP_PIT2", "In-kernel PIT (created with the dummy speaker port)."),
        _req("KVM_CAP_PIT_STATE2", "Saves and restores the PIT in snapshots."),
        _req("KVM_CAP_ADJUST_CLOCK", "Saves and restores kvmclock in snapshots."),
        _req("KVM_CAP_DEBUGREGS", "Saves and restores debug registers in snapshots."),
        _req("KVM_CAP_MP_STATE", "Saves and restores vCPU run state in snapshots."),
        _req("KVM_CAP_VCPU_EVENTS", "Saves and restores pending events in snapshots."),
        _req("KVM_CAP_XCRS", "Saves and restores XCR0 in snapshots."),
        _req("KVM_CAP_XSAVE", "Saves and restores extended FPU state in snapshots."),
        _req("KVM_CAP_EXT_CPUID", "Reads supported CPUID, then writes the normalized guest CPUID."),
        _opt(
            "KVM_CAP_XSAVE2",
            "Asked on the VM fd: a non-zero answer sizes the KVM_GET_XSAVE2 buffer (AMX); "
            "0 means the 4 KiB KVM_GET_XSAVE is used. An ioctl error is fatal.",
        ),
        _opt(
            "KVM_CAP_MSI_DEVID",
            "Asked on the VM fd when routing PCI MSIs: adds the device id if offered.",
        ),
        _opt(
            "KVM_CAP_GET_TSC_KHZ",
            "Not probed as a capability: KVM_GET_TSC_KHZ is tried when snapshotting; on "
            "failure the snapshot lacks the TSC frequency and a warning is logged.",
        ),
        _opt(
            "KVM_CAP_TSC_CONTROL",
            "Not probed as a capability: KVM_SET_TSC_KHZ is called on snapshot restore when "
            "the host TSC frequency differs by more than 250 ppm.",
        ),
    ),
    other_checks=(
        "Opens /dev/kvm read-write; a failure points at the /dev/kvm ACL for the user.",
        "KVM_GET_API_VERSION must equal 12 (KVM_API_VERSION).",
        "The capability list can be changed by a custom CPU template (kvm_capabilities: "
        "numbers to add, '!' plus a number to remove); the check runs on the combined list "
        "and reports the first missing capability as a number.",
        "Capabilities are checked with KVM_CHECK_EXTENSION on the /dev/kvm fd; any 0 answer "
        "stops start-up.",
        "Requests permission for AMX tile data with arch_prctl(ARCH_REQ_XCOMP_GUEST_PERM) when "
        "the host kernel supports it; a refusal is fatal.",
        "KVM_GET_SUPPORTED_CPUID must succeed.",
        "KVM_GET_MSR_INDEX_LIST must succeed when the VM is created (MSRs saved in snapshots).",
        "KVM_CREATE_VM is retried up to 5 times on EINTR with a short back-off.",
        "KVM_SET_TSS_ADDR, KVM_CREATE_IRQCHIP and KVM_CREATE_PIT2 on the VM fd must succeed.",
        "Guest memory regions may not exceed KVM_CAP_NR_MEMSLOTS; more regions are refused.",
    ),
)


# --------------------------------------------------------------------------------------
# cloud-hypervisor
# --------------------------------------------------------------------------------------

CLOUD_HYPERVISOR = VmmProfile(
    id="cloud-hypervisor",
    name="Cloud Hypervisor",
    source=(
        "cloud-hypervisor/cloud-hypervisor @ ae44c2971c83dd2b1bd704fa81102ec0dec4e7d4, "
        "hypervisor/src/kvm/x86_64/mod.rs check_required_kvm_extensions() (17 caps), called "
        "through KvmHypervisor::check_required_extensions() (hypervisor/src/kvm/mod.rs) "
        "from Vm::create_hypervisor_vm() in vmm/src/vm.rs; optional probes in "
        "hypervisor/src/kvm/mod.rs"
    ),
    requirements=(
        _req("KVM_CAP_ADJUST_CLOCK", "Saves and restores the guest clock across snapshots."),
        _req("KVM_CAP_EXT_CPUID", "Reads supported CPUID and sets each vCPU's CPUID."),
        _req(
            "KVM_CAP_GET_TSC_KHZ",
            "Reads the vCPU TSC frequency; on invariant-TSC hosts (without kvm_hyperv) it "
            "is published to the guest in CPUID leaf 0x40000010.",
        ),
        _req("KVM_CAP_IMMEDIATE_EXIT", "Kicks vCPUs out of KVM_RUN without signals."),
        _req("KVM_CAP_IOEVENTFD", "Device notifications go to eventfds."),
        _req("KVM_CAP_IRQCHIP", "In-kernel interrupt controller support."),
        _req("KVM_CAP_IRQFD", "Devices raise guest interrupts through eventfds."),
        _req("KVM_CAP_IRQ_ROUTING", "GSI routing for the IOAPIC pins and MSI/MSI-X."),
        _req("KVM_CAP_MP_STATE", "Saves and restores vCPU run state."),
        _req("KVM_CAP_SET_IDENTITY_MAP_ADDR", "Places the EPT identity-map page."),
        _req("KVM_CAP_SET_TSS_ADDR", "Places the real-mode TSS pages."),
        _req(
            "KVM_CAP_SPLIT_IRQCHIP",
            "Always runs split: LAPIC in the kernel, IOAPIC emulated in userspace.",
        ),
        _req("KVM_CAP_TSC_DEADLINE_TIMER", "The guest LAPIC timer is used in TSC-deadline mode."),
        _req("KVM_CAP_USER_MEMORY", "Guest RAM is registered as userspace-backed memslots."),
        _req("KVM_CAP_USER_NMI", "Injects NMIs into vCPUs."),
        _req("KVM_CAP_VCPU_EVENTS", "Saves and restores pending events."),
        _req("KVM_CAP_XSAVE", "Saves and restores extended FPU state."),
        _opt(
            "KVM_CAP_XSAVE2",
            "Asked on the VM fd at vCPU creation: sizes the KVM_GET_XSAVE2 buffer (AMX).",
        ),
        _opt("KVM_CAP_XCRS", "Asked on the VM fd: XCR0 is saved and restored only if offered."),
        _opt("KVM_CAP_MSI_DEVID", "Asked on the VM fd when routing MSIs: adds the device id."),
        _opt(
            "KVM_CAP_X2APIC_API",
            "Enabled on the VM fd when the highest APIC id exceeds 254 (32-bit ids); a "
            "failure to enable it aborts.",
        ),
        _opt(
            "KVM_CAP_HYPERV_SYNIC",
            "Enabled per vCPU only with kvm_hyperv=on; a failure aborts.",
        ),
        _opt(
            "KVM_CAP_GUEST_MEMFD",
            "Only in sev_snp builds with an SNP guest: private memory slots (VM fd).",
        ),
        _opt(
            "KVM_CAP_EXIT_HYPERCALL",
            "Only for SNP guests: the offered hypercall mask is enabled on the VM fd; "
            "failure is fatal.",
        ),
    ),
    other_checks=(
        "Picks KVM only if /dev/kvm exists, then opens it.",
        "KVM_GET_API_VERSION must equal 12, else start-up fails with an incompatible API "
        "version error.",
        "Capabilities are checked with KVM_CHECK_EXTENSION on the /dev/kvm fd; the first "
        "missing one is named, and the check's failure aborts the process (unwrap) rather "
        "than returning a clean error.",
        "KVM_CAP_DEVICE_CTRL, KVM_CAP_ENABLE_CAP and KVM_CAP_SET_GUEST_DEBUG functionality is "
        "used but deliberately not checked, because some kernels implement it without "
        "advertising the capability.",
        "KVM_CREATE_VM (type KVM_X86_DEFAULT_VM, or the SNP / software-protected type in "
        "those builds) is retried while it returns EINTR.",
        "KVM_GET_MSR_INDEX_LIST must succeed when the VM is created.",
        "KVM_SET_IDENTITY_MAP_ADDR, KVM_SET_TSS_ADDR and KVM_ENABLE_CAP(KVM_CAP_SPLIT_IRQCHIP, "
        "24 pins) on the VM fd must succeed (failures abort).",
        "KVM_GET_SUPPORTED_CPUID must succeed.",
    ),
)


VMMS: tuple[VmmProfile, ...] = (QEMU, FIRECRACKER, CLOUD_HYPERVISOR)


def vmm_by_id(vmm_id: str) -> VmmProfile | None:
    """The profile with this id ("qemu", "firecracker", "cloud-hypervisor"), or None."""
    for profile in VMMS:
        if profile.id == vmm_id:
            return profile
    return None
