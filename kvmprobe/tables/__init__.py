"""Generated tables only; never edit them by hand (regenerating: scripts/README.md).

``caps_data.py`` is written by scripts/gen_cap_tables.py from the pinned KVM ABI facts in
scripts/data/kvm-abi/; ``cpuid_data.py`` by scripts/gen_cpuid_tables.py from the facts in
scripts/data/cpuid_facts.tsv and our overlay; ``deps_data.py`` by scripts/gen_deps_tables.py
from the feature dependencies, x86-64 psABI levels and XSAVE components in scripts/data/;
``msr_data.py`` and ``hyperv_data.py`` by scripts/gen_msr_tables.py from the MSR and Hyper-V
facts in scripts/data/msr_facts.json and our overlay scripts/data/msr_overlay.tsv;
``libvirt_data.py`` by scripts/gen_libvirt_tables.py from libvirt's CPU feature names in
scripts/data/libvirt_cpuid.tsv; ``qemu_models_data.py`` by scripts/gen_qemu_models.py from
QEMU 7.2's own answers about its CPU models in scripts/data/qemu_models.json. Each
module's header names its generator, its inputs and their sha256; every generator's
``--check`` runs in CI.
"""
