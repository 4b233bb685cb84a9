"""What fleet tools expect of kvmprobe's output, hand-curated and cited.

* ``FLEET_CAPS``: the capabilities whose values a fleet operator watches (``kvmprobe
  metrics``): limits that decide how large a guest can be, and the abilities that decide
  whether a guest can be moved between hosts. ``why`` is our own words.
* Kubernetes label syntax (``LABEL_*``): the rules of "Labels and Selectors", section "Syntax
  and character set" (kubernetes.io/docs/concepts/overview/working-with-objects/labels/),
  enforced by k8s.io/apimachinery pkg/util/validation (IsQualifiedName, IsValidLabelValue).
* node-feature-discovery's local feature source (``NFD_*``): the "Local feature source"
  section of NFD's customization guide (docs/usage/customization-guide.md) and
  source/local/local.go (MaxFeatureFileSize, DirectivePrefix; dot files are skipped), and
  the label rules of nfd-master (pkg/apis/nfd/validate Label(): a qualified name with a
  namespace, never ``kubernetes.io`` or a subdomain of it unless under the feature or profile
  namespace; docs/reference/master-commandline-reference.md ``-deny-label-ns`` and
  ``-extra-label-ns``).

Stdlib only; plain data.
"""

from __future__ import annotations

from kvmprobe.frozen import frozen
from kvmprobe.vocab import Scope

__all__ = [
    "FLEET_CAPS",
    "LABEL_NAME_MAX",
    "LABEL_PREFIX_MAX",
    "LABEL_VALUE_MAX",
    "NFD_ALWAYS_ALLOWED",
    "NFD_DEFAULT_DIR",
    "NFD_DENIED",
    "NFD_DIRECTIVE_PREFIX",
    "NFD_MAX_FILE_BYTES",
    "FleetCap",
]


@frozen
class FleetCap:
    name: str  # exact KVM_CAP_* name (kvmprobe.tables.caps_data)
    scope: Scope  # the fd a VMM asks on
    why: str  # our words


FLEET_CAPS: tuple[FleetCap, ...] = (
    FleetCap("KVM_CAP_NR_VCPUS", Scope.SYSTEM,
             "vCPUs per VM that KVM recommends; more work but may run slower"),
    FleetCap("KVM_CAP_MAX_VCPUS", Scope.SYSTEM, "the most vCPUs one VM may have"),
    FleetCap("KVM_CAP_MAX_VCPU_ID", Scope.SYSTEM, "one more than the largest vCPU id"),
    FleetCap("KVM_CAP_NR_MEMSLOTS", Scope.SYSTEM,
             "memory slots per address space: bounds hot-plugged memory devices"),
    FleetCap("KVM_CAP_NESTED_STATE", Scope.SYSTEM,
             "bytes of nested-virtualization state; 0: a guest running guests cannot migrate"),
    FleetCap("KVM_CAP_X86_DISABLE_EXITS", Scope.SYSTEM,
             "exits a VMM may turn off (bit flags: mwait, hlt, pause, cstate)"),
    FleetCap("KVM_CAP_TSC_CONTROL", Scope.SYSTEM,
             "TSC scaling: a guest keeps its TSC frequency on a host with another one"),
    FleetCap("KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2", Scope.SYSTEM,
             "dirty-page tracking modes live migration uses (bit flags)"),
    FleetCap("KVM_CAP_PMU_CAPABILITY", Scope.SYSTEM,
             "what a VMM may change about the guest PMU (bit flags)"),
    FleetCap("KVM_CAP_VM_TYPES", Scope.SYSTEM,
             "VM types KVM can create (bitmap: default, SEV, SEV-ES, SEV-SNP, TDX...)"),
    FleetCap("KVM_CAP_SYS_HYPERV_CPUID", Scope.SYSTEM,
             "Hyper-V enlightenments can be listed (Windows guests)"),
    FleetCap("KVM_CAP_X2APIC_API", Scope.VM, "x2APIC API flags a VM fd accepts"),
    FleetCap("KVM_CAP_SPLIT_IRQCHIP", Scope.VM, "a split irqchip (LAPIC in KVM) works"),
    FleetCap("KVM_CAP_XSAVE2", Scope.VM, "bytes of XSAVE state per vCPU"),
    FleetCap("KVM_CAP_DIRTY_LOG_RING", Scope.VM,
             "largest dirty-ring size in bytes (0: no dirty ring)"),
)  # fmt: skip

#: a label name (the part after the slash) has 1..63 characters
LABEL_NAME_MAX = 63
#: a label prefix is a DNS subdomain of at most 253 characters
LABEL_PREFIX_MAX = 253
#: a label value has 0..63 characters
LABEL_VALUE_MAX = 63
#: a DNS label inside the prefix has 1..63 characters
DNS_LABEL_MAX = 63

#: where nfd-worker reads feature files
NFD_DEFAULT_DIR = "/etc/kubernetes/node-feature-discovery/features.d"
#: nfd-worker ignores a feature file larger than this many bytes
NFD_MAX_FILE_BYTES = 65536
#: a comment line starting with this is an NFD directive (an unknown one is logged as an error)
NFD_DIRECTIVE_PREFIX = "# +"
#: namespaces (and their subdomains) nfd-master never publishes labels in ...
NFD_DENIED = ("kubernetes.io",)
#: ... except these and their subdomains, which it always allows (every NFD version, whatever
#: -deny-label-ns says; older versions allowed only these without -extra-label-ns)
NFD_ALWAYS_ALLOWED = ("feature.node.kubernetes.io", "profile.node.kubernetes.io")
