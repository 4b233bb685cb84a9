"""Decode the Hyper-V CPUID leaves KVM supports and what QEMU's ``hv-*`` properties get of them.

Pure functions over the generated tables (``kvmprobe.tables.hyperv_data``) and the snapshot's
``supported_hv_cpuid`` (system-fd KVM_GET_SUPPORTED_HV_CPUID, asked only when
KVM_CAP_SYS_HYPERV_CPUID is non-zero): ints in, frozen dataclasses out, no I/O.

When there is no answer, the analysis says why with the evidence the snapshot holds (the
capability values, the recorded error) rather than guessing: a kernel built without Hyper-V
emulation answers 0 for KVM_CAP_HYPERV and KVM_CAP_SYS_HYPERV_CPUID (and EINVAL to the ioctl).

A property is supported when KVM reports every CPUID bit QEMU's ``kvm_hyperv_properties[]``
needs for it; ``hv-passthrough`` turns on every supported property except those QEMU marks
``skip_passthrough`` (hv-syndbg).
"""

from __future__ import annotations

import errno
from functools import cache

from kvmprobe.frozen import frozen
from kvmprobe.snapshot import CpuidEntry, ProbeError, Snapshot
from kvmprobe.tables import caps_data
from kvmprobe.tables import hyperv_data as T
from kvmprobe.vocab import HvAvailability, HvRequirement

__all__ = [
    "HvBit",
    "HvField",
    "HvLeaf",
    "HvProperty",
    "HvRegister",
    "HyperVAnalysis",
    "analyse",
    "decode_leaves",
    "hyperv_caps",
    "lookup_property",
]

REGISTERS = ("eax", "ebx", "ecx", "edx")
_STEP = "KVM_GET_SUPPORTED_HV_CPUID"


@frozen
class HvBit:
    leaf: int
    register: str
    bit: int
    kernel_name: str | None
    qemu_macro: str | None
    description: str
    set: bool

    @property
    def name(self) -> str:
        return self.kernel_name or self.qemu_macro or f"bit {self.bit}"


@frozen
class HvField:
    leaf: int
    register: str
    lo: int
    hi: int
    name: str
    description: str
    value: int


@frozen
class HvRegister:
    register: str
    value: int
    bits: tuple[HvBit, ...]
    #: set bits no table names (never dropped)
    remainder: int


@frozen
class HvLeaf:
    leaf: int
    #: HYPERV_CPUID_* name, or None for a leaf the tables don't know
    name: str | None
    description: str
    entry: CpuidEntry
    registers: tuple[HvRegister, ...]
    fields: tuple[HvField, ...]
    #: (name, text, description) for signature registers
    signatures: tuple[tuple[str, str, str], ...]


@frozen
class HvProperty:
    name: str
    aliases: tuple[str, ...]
    feature: str
    description: str
    #: (leaf, register, mask) KVM must report in full
    needs: tuple[tuple[int, str, int], ...]
    #: the part of ``needs`` KVM does not report; empty when supported
    missing: tuple[tuple[int, str, int], ...]
    #: None when KVM gave no Hyper-V answer (unknown)
    supported: bool | None
    dependencies: tuple[str, ...]
    #: dependencies (QEMU's and the synic -> vpindex rule) KVM does not support here
    unmet: tuple[str, ...]
    #: would hv-passthrough turn it on (None when unknown)
    passthrough: bool | None
    skip_passthrough: bool
    #: (requirement, citation, through): own requirements and those of dependencies
    requirements: tuple[tuple[HvRequirement, str, str | None], ...]


@frozen
class HyperVAnalysis:
    availability: HvAvailability
    #: plain sentences saying why, with the evidence
    evidence: tuple[str, ...]
    #: KVM_CAP_*HYPERV* values on /dev/kvm (None when the scope was not probed)
    caps: tuple[tuple[str, int | None], ...]
    error: ProbeError | None
    entries: tuple[CpuidEntry, ...]
    leaves: tuple[HvLeaf, ...]
    properties: tuple[HvProperty, ...]

    @property
    def vendor(self) -> str | None:
        return self._signature("vendor")

    @property
    def interface(self) -> str | None:
        return self._signature("interface")

    def _signature(self, name: str) -> str | None:
        for leaf in self.leaves:
            for n, text, _d in leaf.signatures:
                if n == name:
                    return text
        return None

    @property
    def passthrough(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.properties if p.passthrough)


def _text(values: list[int]) -> str:
    raw = b"".join(v.to_bytes(4, "little") for v in values)
    text = raw.split(b"\0", 1)[0].decode("ascii", "replace")
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def decode_leaves(entries: tuple[CpuidEntry, ...]) -> tuple[HvLeaf, ...]:
    """Decode KVM_GET_SUPPORTED_HV_CPUID entries, in the order KVM returned them."""
    out = []
    for e in entries:
        leaf = e.function
        sigs = tuple(
            (name, _text([e.reg(r) for r in regs]), desc)
            for sleaf, regs, name, desc in T.HV_SIGNATURES
            if sleaf == leaf
        )
        text_regs = {r for sleaf, regs, _n, _d in T.HV_SIGNATURES if sleaf == leaf for r in regs}
        fields = tuple(
            HvField(fl, reg, lo, hi, name, desc, (e.reg(reg) >> lo) & ((1 << (hi - lo + 1)) - 1))
            for fl, reg, lo, hi, name, desc in T.HV_FIELDS
            if fl == leaf
        )
        regs = []
        for reg in REGISTERS:
            value = e.reg(reg)
            known = 0
            bits = []
            for bl, breg, bit, kname, qname, desc in T.HV_BITS:
                if bl == leaf and breg == reg:
                    known |= 1 << bit
                    bits.append(HvBit(bl, breg, bit, kname, qname, desc, bool(value >> bit & 1)))
            for f in fields:
                if f.register == reg:
                    known |= ((1 << (f.hi - f.lo + 1)) - 1) << f.lo
            if reg in text_regs:
                known = 0xFFFF_FFFF
            if bits or value & ~known:
                regs.append(HvRegister(reg, value, tuple(bits), value & ~known))
        out.append(
            HvLeaf(
                leaf,
                T.HV_LEAVES.get(leaf),
                T.HV_LEAF_DESCRIPTIONS.get(leaf, ""),
                e,
                tuple(regs),
                fields,
                sigs,
            )
        )
    return tuple(out)


def hyperv_caps(snap: Snapshot) -> tuple[tuple[str, int | None], ...]:
    """Every KVM_CAP_* with HYPERV in its name, as /dev/kvm answered (None: not probed)."""
    return tuple(
        (name, snap.cap(number))
        for number, (name, _arch) in sorted(caps_data.CAPS.items())
        if "HYPERV" in name
    )


@cache
def _by_name() -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for name, aliases, *_rest in T.HV_PROPERTIES:
        for n in (name, *aliases):
            out[n] = (name,)
    return out


def lookup_property(name: str) -> str | None:
    """QEMU's property name for ``name`` (an alias such as hv-apicv finds hv-avic)."""
    hit = _by_name().get(name.strip().lower())
    return hit[0] if hit else None


def _requirements(
    name: str, deps: dict[str, tuple[str, ...]], seen: frozenset[str] = frozenset()
) -> list[tuple[HvRequirement, str, str | None]]:
    out: list[tuple[HvRequirement, str, str | None]] = [
        (HvRequirement(needs), cite, None) for prop, needs, cite in T.HV_REQUIREMENTS
        if prop == name
    ]  # fmt: skip
    for dep in deps.get(name, ()):
        if dep in seen:
            continue
        for req, cite, via in _requirements(dep, deps, seen | {name}):
            entry = (req, cite, via or dep)
            if not any(r == req for r, _c, _v in out):
                out.append(entry)
    return out


def _properties(
    regs: dict[tuple[int, str], int] | None,
) -> tuple[HvProperty, ...]:
    deps = {name: (*d, *extra) for name, _a, _f, _n, d, extra, _s, _desc in T.HV_PROPERTIES}
    supported: dict[str, bool | None] = {}
    missing_of: dict[str, tuple[tuple[int, str, int], ...]] = {}
    for name, _a, _f, needs, _d, _e, _s, _desc in T.HV_PROPERTIES:
        if regs is None:
            supported[name] = None
            missing_of[name] = ()
            continue
        missing = tuple(
            (leaf, reg, mask & ~regs.get((leaf, reg), 0))
            for leaf, reg, mask in needs
            if mask & ~regs.get((leaf, reg), 0)
        )
        missing_of[name] = missing
        supported[name] = not missing
    out = []
    for name, aliases, feature, needs, d, extra, skip, desc in T.HV_PROPERTIES:
        sup = supported[name]
        # only a supported property can be held back by a dependency KVM lacks
        unmet = tuple(x for x in (*d, *extra) if sup and supported.get(x) is False)
        out.append(
            HvProperty(
                name=name,
                aliases=aliases,
                feature=feature,
                description=desc,
                needs=needs,
                missing=missing_of[name],
                supported=sup,
                dependencies=(*d, *extra),
                unmet=unmet,
                passthrough=None if sup is None else (sup and not skip),
                skip_passthrough=skip,
                requirements=tuple(_requirements(name, deps)),
            )
        )
    return tuple(out)


def analyse(snap: Snapshot) -> HyperVAnalysis:
    caps = hyperv_caps(snap)
    error = next((e for e in snap.errors if e.step == _STEP), None)
    sys_cap = snap.cap(caps_data.KVM_CAP_SYS_HYPERV_CPUID)
    hv_cap = snap.cap(caps_data.KVM_CAP_HYPERV)
    entries = snap.supported_hv_cpuid
    evidence: list[str] = []
    sys_text = f"KVM_CAP_SYS_HYPERV_CPUID ({caps_data.KVM_CAP_SYS_HYPERV_CPUID})"
    hv_text = f"KVM_CAP_HYPERV ({caps_data.KVM_CAP_HYPERV})"
    if entries is not None:
        availability = HvAvailability.AVAILABLE
        evidence.append(
            f"{_STEP} on /dev/kvm returned {len(entries)} leaves ({sys_text} = {sys_cap})"
        )
    elif error is not None:
        not_built = error.errno == errno.EINVAL and not hv_cap
        availability = HvAvailability.NOT_BUILT if not_built else HvAvailability.FAILED
        evidence.append(f"{_STEP} on /dev/kvm failed: {error.message}")
        evidence.append(f"{sys_text} = {sys_cap}, {hv_text} = {hv_cap}")
        if not_built:
            evidence.append("EINVAL with no Hyper-V capability: KVM has no Hyper-V emulation")
    elif sys_cap is None:
        availability = HvAvailability.UNKNOWN
        evidence.append("the capabilities of /dev/kvm could not be probed (see 'errors')")
    elif sys_cap == 0 and not hv_cap:
        availability = HvAvailability.NOT_BUILT
        evidence.append(
            f"{sys_text} and {hv_text} answered 0: this KVM was built without Hyper-V "
            "emulation (CONFIG_KVM_HYPERV=n), so Hyper-V enlightenments cannot be offered"
        )
    elif sys_cap == 0:
        availability = HvAvailability.UNKNOWN
        evidence.append(
            f"{hv_text} = {hv_cap} but {sys_text} = 0: this kernel lists Hyper-V support "
            "only per vCPU, which kvmprobe does not ask"
        )
    else:
        availability = HvAvailability.UNKNOWN
        evidence.append(
            f"{sys_text} = {sys_cap}, but the snapshot holds no {_STEP} answer "
            "(recorded without it?)"
        )
    leaves = decode_leaves(entries or ())
    regs: dict[tuple[int, str], int] | None = None
    if entries is not None:
        regs = {(e.function, r): e.reg(r) for e in entries for r in REGISTERS}
    elif availability is HvAvailability.NOT_BUILT:
        regs = {}  # KVM says it has no Hyper-V emulation: nothing is supported
    return HyperVAnalysis(
        availability=availability,
        evidence=tuple(evidence),
        caps=caps,
        error=error,
        entries=entries or (),
        leaves=leaves,
        properties=_properties(regs),
    )
