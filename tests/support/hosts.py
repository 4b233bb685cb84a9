"""Synthetic hosts built from documented CPUID bits: QEMU's builtin CPU models.

Each model lists its features exactly as version 1 of the model in QEMU's ``builtin_x86_defs[]``
(qemu/qemu @ 0048035a870312f2fd0f3dd28115398d26e419bb, target/i386/cpu.c): per QEMU feature
word, the QEMU property name of every CPUID_* macro the model sets. No bit position is typed
here: each name is resolved through kvmprobe's CPUID table (its QEMU-name column), and the
resolved location must lie in the register QEMU's ``feature_word_info[]`` gives that word, so a
name that resolves elsewhere fails loudly.

What QEMU computes rather than lists, we compute the same way and say so:

* leaf 1 EAX from family/model/stepping, encoded as QEMU's x86_cpuid_version_set_family /
  _set_model do (base family 0xF plus extended family above 15; model low nibble in bits 7:4,
  high nibble in 19:16);
* the XCR0 components (leaf 0xD.0 EAX) the model's features enable, listed per model from QEMU's
  rule (x86_cpu_enable_xsave_components: x87 and SSE always, then the component of every
  enabled feature in x86_ext_save_areas[]); component numbers come from kvmprobe.tables.deps_data;
* component sizes (0xD.n EAX) from the Linux state structs in arch/x86/include/asm/fpu/types.h
  (ymmh_struct 16 x 16 bytes, avx_512_opmask_state 8 x 8, avx_512_zmm_uppers_state 16 x 32,
  avx_512_hi16_state 16 x 64, pkru_state 8, xtile_cfg 64, 8 tiles x 1024 for xtile_data);
  offsets (0xD.n EBX) are laid out one after the other from 576, which is synthetic, not a
  real CPU's layout (no check reads them).

The snapshot's KVM_GET_SUPPORTED_CPUID is the model itself (as if KVM passed everything on),
KVM_GET_EMULATED_CPUID holds MOVBE only (what our recorded AMD host reports), and the host CPUID
is the model without the KVM leaves.
"""

from __future__ import annotations

from dataclasses import dataclass

from kvmprobe.analysis import cpuid as cp
from kvmprobe.snapshot import CpuidEntry, Snapshot
from kvmprobe.tables import deps_data
from support.synth import Cpuid, snapshot

QEMU_SOURCE = "qemu/qemu @ 0048035a870312f2fd0f3dd28115398d26e419bb target/i386/cpu.c"

# QEMU feature word -> (leaf, subleaf, register), from feature_word_info[] (cross-check only)
WORDS: dict[str, tuple[int, int, str]] = {
    "FEAT_1_EDX": (0x1, 0, "edx"),
    "FEAT_1_ECX": (0x1, 0, "ecx"),
    "FEAT_6_EAX": (0x6, 0, "eax"),
    "FEAT_7_0_EBX": (0x7, 0, "ebx"),
    "FEAT_7_0_ECX": (0x7, 0, "ecx"),
    "FEAT_7_0_EDX": (0x7, 0, "edx"),
    "FEAT_7_1_EAX": (0x7, 1, "eax"),
    "FEAT_7_1_EDX": (0x7, 1, "edx"),
    "FEAT_7_2_EDX": (0x7, 2, "edx"),
    "FEAT_XSAVE": (0xD, 1, "eax"),
    "FEAT_8000_0001_EDX": (0x80000001, 0, "edx"),
    "FEAT_8000_0001_ECX": (0x80000001, 0, "ecx"),
    "FEAT_8000_0008_EBX": (0x80000008, 0, "ebx"),
}

# Linux struct sizes (bytes) per XCR0 component, see the module docstring
COMPONENT_BYTES: dict[int, int] = {
    deps_data.XFEATURE_YMM: 16 * 16,
    deps_data.XFEATURE_OPMASK: 8 * 8,
    deps_data.XFEATURE_ZMM_HI256: 16 * 32,
    deps_data.XFEATURE_HI16_ZMM: 16 * 64,
    deps_data.XFEATURE_PKRU: 8,
    deps_data.XFEATURE_XTILE_CFG: 64,
    deps_data.XFEATURE_XTILE_DATA: 8 * 1024,
}
LEGACY_AREA_END = 576  # 512-byte FXSAVE area + 64-byte XSAVE header

BASE_XCR0 = (deps_data.XFEATURE_FP, deps_data.XFEATURE_SSE)
AVX512_XCR0 = (deps_data.XFEATURE_OPMASK, deps_data.XFEATURE_ZMM_HI256, deps_data.XFEATURE_HI16_ZMM)
AMX_XCR0 = (deps_data.XFEATURE_XTILE_CFG, deps_data.XFEATURE_XTILE_DATA)

# The 22 FEAT_1_EDX bits every model below lists
EDX1 = (
    "fpu", "vme", "de", "pse", "tsc", "msr", "pae", "mce", "cx8", "apic", "sep", "mtrr", "pge",
    "mca", "cmov", "pat", "pse36", "clflush", "mmx", "fxsr", "sse", "sse2",
)  # fmt: skip


@dataclass(frozen=True)
class HostModel:
    name: str
    vendor: str
    family: int
    model: int
    stepping: int
    level: int
    xlevel: int
    words: dict[str, tuple[str, ...]]
    xcr0: tuple[int, ...]
    note: str = ""


HASWELL = HostModel(
    "Haswell", "intel", 6, 60, 4, 0xD, 0x80000008,
    {
        "FEAT_1_EDX": EDX1,
        "FEAT_1_ECX": (
            "avx", "xsave", "aes", "popcnt", "x2apic", "sse4.2", "sse4.1", "cx16", "ssse3",
            "pclmulqdq", "pni", "tsc-deadline", "fma", "movbe", "pcid", "f16c", "rdrand",
        ),
        "FEAT_8000_0001_EDX": ("lm", "rdtscp", "nx", "syscall"),
        "FEAT_8000_0001_ECX": ("abm", "lahf-lm"),
        "FEAT_7_0_EBX": (
            "fsgsbase", "bmi1", "hle", "avx2", "smep", "bmi2", "erms", "invpcid", "rtm",
        ),
        "FEAT_XSAVE": ("xsaveopt",),
        "FEAT_6_EAX": ("arat",),
    },
    xcr0=(*BASE_XCR0, deps_data.XFEATURE_YMM),
    note="Intel Core Processor (Haswell)",
)  # fmt: skip

SKYLAKE_SERVER = HostModel(
    "Skylake-Server", "intel", 6, 85, 4, 0xD, 0x80000008,
    {
        "FEAT_1_EDX": EDX1,
        "FEAT_1_ECX": (
            "avx", "xsave", "aes", "popcnt", "x2apic", "sse4.2", "sse4.1", "cx16", "ssse3",
            "pclmulqdq", "pni", "tsc-deadline", "fma", "movbe", "pcid", "f16c", "rdrand",
        ),
        "FEAT_8000_0001_EDX": ("lm", "pdpe1gb", "rdtscp", "nx", "syscall"),
        "FEAT_8000_0001_ECX": ("abm", "lahf-lm", "3dnowprefetch"),
        "FEAT_7_0_EBX": (
            "fsgsbase", "bmi1", "hle", "avx2", "smep", "bmi2", "erms", "invpcid", "rtm",
            "rdseed", "adx", "smap", "clwb", "avx512f", "avx512dq", "avx512bw", "avx512cd",
            "avx512vl", "clflushopt",
        ),
        "FEAT_7_0_ECX": ("pku",),
        "FEAT_XSAVE": ("xsaveopt", "xsavec", "xgetbv1"),
        "FEAT_6_EAX": ("arat",),
    },
    xcr0=(*BASE_XCR0, deps_data.XFEATURE_YMM, *AVX512_XCR0, deps_data.XFEATURE_PKRU),
    note="Intel Xeon Processor (Skylake)",
)  # fmt: skip

EPYC_MILAN = HostModel(
    "EPYC-Milan", "amd", 25, 1, 1, 0xD, 0x8000001E,
    {
        "FEAT_1_EDX": EDX1,
        "FEAT_1_ECX": (
            "rdrand", "f16c", "avx", "xsave", "aes", "popcnt", "movbe", "sse4.2", "sse4.1",
            "cx16", "fma", "ssse3", "monitor", "pclmulqdq", "pni", "pcid",
        ),
        "FEAT_8000_0001_EDX": ("lm", "rdtscp", "pdpe1gb", "fxsr-opt", "mmxext", "nx", "syscall"),
        "FEAT_8000_0001_ECX": (
            "osvw", "3dnowprefetch", "misalignsse", "sse4a", "abm", "cr8legacy", "svm",
            "lahf-lm", "topoext", "perfctr-core",
        ),
        "FEAT_8000_0008_EBX": (
            "clzero", "xsaveerptr", "wbnoinvd", "ibpb", "ibrs", "amd-stibp", "amd-ssbd",
        ),
        "FEAT_7_0_EBX": (
            "fsgsbase", "bmi1", "avx2", "smep", "bmi2", "rdseed", "adx", "smap", "clflushopt",
            "sha-ni", "clwb", "erms", "invpcid",
        ),
        "FEAT_7_0_ECX": ("umip", "rdpid", "pku"),
        "FEAT_7_0_EDX": ("fsrm",),
        "FEAT_XSAVE": ("xsaveopt", "xsavec", "xgetbv1", "xsaves"),
        "FEAT_6_EAX": ("arat",),
    },
    xcr0=(*BASE_XCR0, deps_data.XFEATURE_YMM, deps_data.XFEATURE_PKRU),
    note="AMD EPYC-Milan Processor",
)  # fmt: skip

GRANITE_RAPIDS = HostModel(
    "GraniteRapids", "intel", 6, 173, 0, 0x20, 0x80000008,
    {
        "FEAT_1_EDX": EDX1,
        "FEAT_1_ECX": (
            "pni", "pclmulqdq", "ssse3", "fma", "cx16", "pcid", "sse4.1", "sse4.2", "x2apic",
            "movbe", "popcnt", "tsc-deadline", "aes", "xsave", "avx", "f16c", "rdrand",
        ),
        "FEAT_8000_0001_EDX": ("syscall", "nx", "pdpe1gb", "rdtscp", "lm"),
        "FEAT_8000_0001_ECX": ("lahf-lm", "abm", "3dnowprefetch"),
        "FEAT_8000_0008_EBX": ("wbnoinvd",),
        "FEAT_7_0_EBX": (
            "fsgsbase", "bmi1", "hle", "avx2", "smep", "bmi2", "erms", "invpcid", "rtm",
            "avx512f", "avx512dq", "rdseed", "adx", "smap", "avx512ifma", "clflushopt", "clwb",
            "avx512cd", "sha-ni", "avx512bw", "avx512vl",
        ),
        "FEAT_7_0_ECX": (
            "avx512vbmi", "umip", "pku", "avx512vbmi2", "gfni", "vaes", "vpclmulqdq",
            "avx512vnni", "avx512bitalg", "avx512-vpopcntdq", "la57", "rdpid", "bus-lock-detect",
        ),
        "FEAT_7_0_EDX": (
            "fsrm", "serialize", "tsx-ldtrk", "amx-bf16", "avx512-fp16", "amx-tile", "amx-int8",
            "spec-ctrl", "arch-capabilities", "ssbd",
        ),
        "FEAT_XSAVE": ("xsaveopt", "xsavec", "xgetbv1", "xsaves", "xfd"),
        "FEAT_6_EAX": ("arat",),
        "FEAT_7_1_EAX": ("avx-vnni", "avx512-bf16", "fzrm", "fsrs", "fsrc", "amx-fp16"),
        "FEAT_7_1_EDX": ("prefetchiti",),
        "FEAT_7_2_EDX": ("mcdt-no",),
    },
    xcr0=(
        *BASE_XCR0, deps_data.XFEATURE_YMM, *AVX512_XCR0, deps_data.XFEATURE_PKRU, *AMX_XCR0,
    ),
    note="Intel Xeon Processor (GraniteRapids)",
)  # fmt: skip

MODELS: tuple[HostModel, ...] = (HASWELL, SKYLAKE_SERVER, EPYC_MILAN, GRANITE_RAPIDS)


def resolve(word: str, qemu_name: str) -> cp.FeatureDef:
    """The table row for a QEMU property name, checked against the QEMU feature word."""
    f = cp.lookup(qemu_name)
    if f is None:
        raise LookupError(f"{qemu_name!r} ({word}) is not in kvmprobe's CPUID table")
    if (f.leaf, f.subleaf, f.register) != WORDS[word]:
        raise LookupError(f"{qemu_name!r} resolves to {f.where}, outside {word}")
    return f


def signature(model: HostModel) -> int:
    """Leaf 1 EAX as QEMU encodes family/model/stepping."""
    eax = model.stepping & 0xF
    eax |= (model.model & 0xF) << 4 | (model.model >> 4) << 16
    if model.family > 0xF:
        eax |= 0xF << 8 | (model.family - 0xF) << 20
    else:
        eax |= model.family << 8
    return eax


def cpuid(model: HostModel, *, kvm_leaves: bool = True) -> Cpuid:
    """The model's CPUID as a mutable synth.Cpuid (tests may change bits before use)."""
    c = Cpuid(model.vendor)
    if not kvm_leaves:
        for key in [k for k in c.regs if 0x40000000 <= k[0] < 0x50000000]:
            del c.regs[key]
            c.flags.pop(key, None)
    c.put(0x0, 0, eax=model.level)
    c.put(0x1, 0, eax=signature(model))
    c.put(0x80000000, 0, eax=model.xlevel)
    for word, names in model.words.items():
        for name in names:
            f = resolve(word, name)
            c.set(f.leaf, f.subleaf, f.register, f.bit)
    set_xcr0(c, model.xcr0)
    return c


def set_xcr0(c: Cpuid, components: tuple[int, ...] | list[int]) -> None:
    """Leaf 0xD.0 EAX/EDX and one 0xD.n subleaf per component >= 2 (size and offset)."""
    leaf, subleaf, low, high = deps_data.XCR0_ENUMERATION
    mask = 0
    for b in components:
        mask |= 1 << b
    offset = LEGACY_AREA_END
    for key in [k for k in c.regs if k[0] == leaf and k[1] >= deps_data.XFEATURE_YMM]:
        del c.regs[key]
        c.flags.pop(key, None)
    size_leaf, size_reg = deps_data.COMPONENT_SIZE
    for b in sorted(components):
        if b < deps_data.XFEATURE_YMM:
            continue
        size = COMPONENT_BYTES[b]
        c.put(size_leaf, b, flags=1, **{size_reg: size, "ebx": offset})
        offset += size
    c.put(leaf, subleaf, flags=1, **{low: mask & 0xFFFFFFFF, high: mask >> 32})
    c.put(leaf, subleaf, ebx=offset, ecx=offset)


def entries(model: HostModel) -> tuple[CpuidEntry, ...]:
    """KVM_GET_SUPPORTED_CPUID of a host that passes the whole model on."""
    return cpuid(model).entries()


def emulated() -> Cpuid:
    """KVM_GET_EMULATED_CPUID as our recorded host reports it: MOVBE only."""
    c = Cpuid()
    c.regs.clear()
    c.flags.clear()
    f = cp.lookup("movbe")
    assert f is not None
    c.put(0x0, 0, eax=f.leaf)
    c.set(f.leaf, f.subleaf, f.register, f.bit)
    return c


def host_snapshot(model: HostModel, kgsc: Cpuid | None = None) -> Snapshot:
    """A Snapshot of a host running ``model``: KVM offers ``kgsc`` (default: the whole model)."""
    return snapshot(
        kgsc if kgsc is not None else cpuid(model),
        kgec=emulated(),
        host=cpuid(model, kvm_leaves=False),
        kernel=f"6.12.0-synthetic-{model.name.lower()}",
    )
