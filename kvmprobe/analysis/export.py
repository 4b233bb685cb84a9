"""What each export says, decided from a GuestCpu (kvmprobe.analysis.guest_cpuid). Pure.

QEMU, ``--qemu-base host``: QEMU's host model starts from what KVM offers
(KVM_GET_SUPPORTED_CPUID). The export removes, by QEMU's own property name, every feature KVM
offers that the effective guest lacks (``-x2apic`` without an in-kernel LAPIC,
``-arch-capabilities`` when a vCPU refused the MSR value). Effective features KVM does not
offer (added by a quirk, opt-in) cannot be requested with ``enforce`` (QEMU checks each
requested feature against KVM's list) and are named in a comment; so are features QEMU has
no name for.
"""

from __future__ import annotations

import re
from functools import cache

from kvmprobe.analysis import cpuid as cp
from kvmprobe.analysis.guest_cpuid import GuestCpu
from kvmprobe.errors import ExitStatus, KvmprobeError
from kvmprobe.frozen import frozen

#: where the QEMU property names of kvmprobe.tables.cpuid_data come from (its provenance
#: header says the same; a test keeps the two equal). Older QEMUs lack some of these names
#: (QEMU 7.2 has no kvm-asyncpf-vmexit, for example) and stop with "Property ... not found".
QEMU_NAMES_FROM = "qemu/qemu @ 0048035a870312f2fd0f3dd28115398d26e419bb"


@frozen
class QemuCpu:
    """A QEMU ``-cpu`` value and what it could not say."""

    base: str  # "host", or a QEMU model name
    plus: tuple[str, ...]  # QEMU feature names added to the base
    minus: tuple[str, ...]  # QEMU feature names removed from the base
    #: effective features QEMU (with enforce) would refuse to add: not in KVM's offer
    not_addable: tuple[str, ...]
    #: differences from the base that QEMU has no property name for (Linux names / locations)
    unnamed: tuple[str, ...]
    #: differences from the base whose QEMU name (upstream's) the assumed QEMU version does not
    #: know: asking for them would stop that QEMU ("Property ... not found")
    not_in_version: tuple[str, ...] = ()
    #: the QEMU version whose model list and property names the value assumes
    qemu_version: str = ""
    #: how the base was chosen, in words
    choice: str = ""
    #: features of the base model kvmprobe cannot check (MSR-based; QEMU's enforce does)
    unchecked: tuple[str, ...] = ()
    #: effective bits QEMU has no property for because it derives them from other features
    #: (XSAVE components of leaf 0xD; AMD's copies of leaf 1 EDX in 0x80000001 EDX)
    derived: tuple[str, ...] = ()
    #: effective features left out on purpose: in a baseline, those that stop a guest from
    #: migrating (``QEMU_UNMIGRATABLE``)
    unmigratable: tuple[str, ...] = ()

    @property
    def value(self) -> str:
        parts = [self.base] + [f"+{n}" for n in self.plus] + [f"-{n}" for n in self.minus]
        return ",".join([*parts, "enforce"])


def _name(f: cp.FeatureDef) -> str:
    return f.name if f.known else f.where


#: features QEMU 7.2 counts as supported under KVM although KVM_GET_SUPPORTED_CPUID may not
#: report them, so ``enforce`` accepts them when asked for (QEMU 7.2.22
#: target/i386/kvm/kvm.c kvm_arch_get_supported_cpuid(); tests/peers/qemu_policy.md,
#: section A): by QEMU property name -> (the irqchip modes it holds in, None: every one;
#: whether QEMU's host model also turns it on by itself, section B)
QEMU_ADDS_TO_SUPPORTED: dict[str, tuple[frozenset[str] | None, bool]] = {
    "mtrr": (None, True),
    "pat": (None, True),
    "mce": (None, True),
    "mca": (None, True),
    "hypervisor": (None, True),
    "arat": (None, True),
    "topoext": (None, False),
    "kvm-hint-dedicated": (None, False),
    "kvm-msi-ext-dest-id": (frozenset({"split"}), True),
}

#: QEMU properties that stop a guest from migrating (QEMU marks them unmigratable: invtsc
#: needs an explicit tsc-frequency; target/i386/cpu.c feature_word_info "unmigratable_flags"
#: of FEAT_8000_0007_EDX): a baseline export, made for moving guests, leaves them out
QEMU_UNMIGRATABLE = frozenset({"invtsc"})


def _qemu_adds(g: GuestCpu, *, host_model: bool) -> set[cp.Loc]:
    out: set[cp.Loc] = set()
    for loc, f in cp.by_loc().items():
        rule = QEMU_ADDS_TO_SUPPORTED.get(f.qemu_name or "")
        if rule is None:
            continue
        modes, auto = rule
        if (modes is None or g.irqchip in modes) and (auto or not host_model):
            out.add(loc)
    return out


def qemu_addable(g: GuestCpu) -> frozenset[cp.Loc]:
    """The feature locations QEMU's ``enforce`` accepts asking for: what KVM offers plus what
    QEMU itself counts as supported in this irqchip set-up (``QEMU_ADDS_TO_SUPPORTED``)."""
    offered = cp.CpuidView(g.offered)
    out = {loc for loc in cp.by_loc() if offered.has_loc(loc)}
    return frozenset(out | _qemu_adds(g, host_model=False))


def qemu_host(g: GuestCpu) -> QemuCpu:
    """``-cpu host`` with explicit removals (see the module text).

    A removal the assumed QEMU version has no property for is not asked for (that QEMU would
    stop): its host model keeps only the bits it names (``migratable=on``), so it leaves
    the bit out anyway; the comment says so."""
    from kvmprobe.tables import qemu_models_data as qm

    offered = cp.CpuidView(g.offered)
    addable = qemu_addable(g)
    host_adds = _qemu_adds(g, host_model=True)
    plus: list[str] = []
    minus: list[str] = []
    not_addable: list[str] = []
    unnamed: list[str] = []
    not_in_version: list[str] = []
    table = cp.by_loc()
    locs = sorted(set(table) | g.features)
    for loc in locs:
        f = table.get(loc)
        kvm_has = offered.has_loc(loc) or loc in host_adds  # what QEMU's host model gives
        want = loc in g.features
        if kvm_has == want:
            continue
        label = _name(f) if f is not None else cp.fmt_loc(*loc)
        sign = "-" if kvm_has else "+"
        if f is None or not f.qemu_name:
            unnamed.append(sign + label)
        elif f.qemu_name not in qm.FEATURE_NAMES:
            not_in_version.append(sign + f.qemu_name)
        elif kvm_has:
            minus.append(f.qemu_name)
        elif loc in addable:  # QEMU counts it as supported: enforce takes it
            plus.append(f.qemu_name)
        else:
            not_addable.append(f.qemu_name)
    for name in msr_bits_off_qemu(g):
        (minus if name in qm.FEATURE_NAMES else not_in_version).append(
            name if name in qm.FEATURE_NAMES else "-" + name
        )
    return QemuCpu(
        "host", tuple(plus), tuple(minus), tuple(not_addable), tuple(unnamed),
        tuple(not_in_version), qm.QEMU_VERSION, "asked for: --qemu-base host",
    )  # fmt: skip


def msr_bits_off_qemu(g: GuestCpu) -> list[str]:
    """QEMU's names of the feature-MSR bits ``-cpu host`` would copy from KVM's advertisement
    but a guest is not given (refused by a vCPU, or unverified), when the CPUID bit that
    announces their MSR stays in the guest: without it QEMU does not set the MSR at all
    (``-arch-capabilities`` already covers every bit)."""
    out: list[str] = []
    for r in g.msr_bits:
        ann = r.announced_by
        if r.effective or not r.bit.qemu_name:
            continue
        if ann is not None and not g.has(ann.feature.loc):
            continue
        if r.bit.qemu_name not in out:
            out.append(r.bit.qemu_name)
    return out


#: a QEMU model version name: NAME-vN (the unversioned names are aliases of one of them)
_VERSIONED = re.compile(r"-v[0-9]+$")

#: the bits of 0x80000001 EDX QEMU copies from leaf 1 EDX for an AMD guest
#: (CPUID_EXT2_AMD_ALIASES in QEMU's target/i386/cpu.h, used by x86_cpu_realizefn())
QEMU_AMD_ALIASES = 0x0183F3FF


def _derived_by_qemu(loc: cp.Loc) -> bool:
    """QEMU sets this bit itself from other features: XSAVE component bits (leaf 0xD, from
    x86_cpu_enable_xsave_components()) and AMD's copies of leaf 1 EDX."""
    if loc[0] == 0xD:
        return True
    return loc[:3] == (0x80000001, 0, "edx") and bool(QEMU_AMD_ALIASES >> loc[3] & 1)


def _qemu_locs() -> dict[str, frozenset[cp.Loc]]:
    """QEMU property name -> the CPUID bits it names (QEMU names two kvmclock bits alike)."""
    out: dict[str, set[cp.Loc]] = {}
    for f in cp.features():
        if f.qemu_name:
            out.setdefault(f.qemu_name, set()).add(f.loc)
    return {k: frozenset(v) for k, v in out.items()}


@cache
def _model_msr_bit(name: str) -> bool:
    """``name`` (a QEMU model feature) is a bit of a plain-bits feature MSR
    (IA32_ARCH_CAPABILITIES, IA32_PERF_CAPABILITIES), whose answers ``GuestCpu.msr_bits``
    carries (VMX controls are not among them: they stay unchecked)."""
    from kvmprobe.analysis.msr_features import lookup
    from kvmprobe.tables import msr_data as T
    from kvmprobe.vocab import MsrLayoutKind

    for ref in lookup(name):
        for index in ref.msrs:
            layout = T.MSR_LAYOUT.get(index)
            if layout is not None and T.LAYOUT_KIND[layout] == MsrLayoutKind.BITS.value:
                return True
    return False


def msr_bits_given_qemu(g: GuestCpu) -> frozenset[str]:
    """QEMU's names of the feature-MSR bits a guest is effectively given (KVM advertises the
    bit, a vCPU takes it; for a baseline: on every host)."""
    return frozenset(r.bit.qemu_name for r in g.msr_bits if r.bit.qemu_name and r.effective)


@frozen
class _Fit:
    name: str
    plus: tuple[str, ...]
    minus: tuple[str, ...]
    unchecked: tuple[str, ...]

    def score(self) -> tuple[int, int, int, int, str]:
        version = int(self.name.rsplit("-v", 1)[1])
        return (len(self.minus), len(self.plus), len(self.unchecked), -version, self.name)


def qemu_model(g: GuestCpu) -> QemuCpu:
    """The closest named QEMU model of the guest's vendor, plus and minus features.

    Candidates: every versioned model (``NAME-vN``) of the assumed QEMU version
    (kvmprobe.tables.qemu_models_data) whose vendor is the guest's, with the features QEMU's
    KVM defaults give it in this irqchip mode. Preferred: a model whose features the guest
    all has, with the fewest additions (``+f``); when none is, the one with the fewest
    removals (``-f``), then the fewest additions. Ties go to the newer version, then the
    name. Only features KVM offers are added (``enforce`` refuses the rest: named in a
    comment); ``runtime`` bits are left to KVM; differences QEMU (or the assumed version)
    has no name for are named in comments, never dropped. A feature-MSR bit of the model
    (``mds-no``...) stays only when the guest is given it (``GuestCpu.msr_bits``); the others
    are removed by name."""
    from kvmprobe.tables import qemu_models_data as qm

    if not g.vendor:
        raise KvmprobeError(
            "no QEMU model fits a guest without a CPUID vendor",
            "export with --qemu-base host",
            ExitStatus.USAGE,
        )
    addable = qemu_addable(g)
    qlocs = _qemu_locs()
    table = cp.by_loc()
    known = qm.FEATURE_NAMES

    def has(name: str) -> bool:
        return all(loc in g.features for loc in qlocs[name])

    # what the guest has that a model could lack: by QEMU name where the version has one
    wanted: dict[str, bool] = {}  # QEMU name -> addable (KVM offers every bit)
    for name, locs in qlocs.items():
        if name in known and not locs & g.runtime and has(name):
            wanted[name] = all(loc in addable for loc in locs)
    unmigratable = sorted(n for n in wanted if n in QEMU_UNMIGRATABLE) if g.is_baseline else []
    for name in unmigratable:
        del wanted[name]
    given = msr_bits_given_qemu(g)
    fits: list[_Fit] = []
    for m in qm.MODELS.values():
        if m.vendor != g.vendor or not _VERSIONED.search(m.name):
            continue
        add, remove = m.modes.get(g.irqchip, (frozenset(), frozenset()))
        feats = (m.features | add) - remove
        placed = {n for n in feats if n in qlocs}
        minus = sorted(n for n in placed if not qlocs[n] & g.runtime and not has(n))
        plus = sorted(n for n, ok in wanted.items() if ok and n not in feats)
        msr_bits = {n for n in feats - placed if _model_msr_bit(n)}
        # a feature-MSR bit of the model the guest is not given (not advertised, refused,
        # unverified): removed by name (QEMU would copy it into the MSR)
        minus += sorted(n for n in msr_bits if n not in given)
        unchecked = sorted(
            n for n in feats - placed - msr_bits
            if not (n.startswith("vmx-") and "vmx" in minus)  # QEMU drops them without vmx
        )  # fmt: skip
        fits.append(_Fit(m.name, tuple(plus), tuple(minus), tuple(unchecked)))
    if not fits:
        raise KvmprobeError(
            f"{qm.QEMU_VERSION} has no CPU model of the vendor {g.vendor!r}",
            "export with --qemu-base host",
        )
    best = min(fits, key=_Fit.score)
    model = qm.MODELS[best.name]
    add, remove = model.modes.get(g.irqchip, (frozenset(), frozenset()))
    base_feats = (model.features | add) - remove
    base_locs = {loc for n in base_feats if n in qlocs for loc in qlocs[n]}
    not_addable = sorted(n for n, ok in wanted.items() if not ok and n not in base_feats)
    unnamed: list[str] = []
    not_in_version: list[str] = []
    derived: list[str] = []
    for loc in sorted(g.features - base_locs - g.runtime):
        f = table.get(loc)
        if f is None or not f.qemu_name:
            label = _name(f) if f is not None else cp.fmt_loc(*loc)
            (derived if _derived_by_qemu(loc) else unnamed).append("+" + label)
        elif f.qemu_name not in known:
            not_in_version.append("+" + f.qemu_name)
    if best.minus:
        choice = (
            f"no {g.vendor} model of this QEMU has only features this guest has; "
            f"this one needs the fewest removals ({len(best.minus)})"
        )
    else:
        choice = (
            f"of the {g.vendor} models of this QEMU whose features this guest all has, the "
            f"one needing the fewest additions ({len(best.plus)})"
        )
    return QemuCpu(
        best.name, best.plus, best.minus, tuple(not_addable), tuple(unnamed),
        tuple(not_in_version), qm.QEMU_VERSION, choice, best.unchecked, tuple(derived),
        tuple(unmigratable),
    )  # fmt: skip


# -- Firecracker -----------------------------------------------------------------------------

#: where the custom CPU template format comes from (docs/cpu_templates/schema.json and
#: cpu-templates.md); tests/peers/firecracker-cpu-template.schema.json holds its facts
FIRECRACKER_FORMAT_FROM = (
    "firecracker-microvm/firecracker @ c34ed6c8a27bd699a82cc6cf2d1f07b5c9f5b7ce"
)


@frozen
class FirecrackerLeaf:
    """One ``cpuid_modifiers`` item: a bitmap (MSB first, ``0``/``1``/``x``) per register."""

    leaf: int
    subleaf: int
    flags: int
    bitmaps: tuple[tuple[str, str], ...]  # (register, 32-character bitmap), eax..edx order


@frozen
class FirecrackerMsr:
    """One ``msr_modifiers`` item: a 64-character bitmap (MSB first) for one MSR."""

    addr: int
    bitmap: str


def firecracker_msrs(g: GuestCpu) -> tuple[FirecrackerMsr, ...]:
    """The MSR part of a Firecracker custom CPU template: for each feature MSR with a bit KVM
    advertises that a guest is not given (a vCPU refused it, or no verification vouches for
    it), ``0`` at each such bit and ``x`` elsewhere (left as Firecracker sets it)."""
    off: dict[int, int] = {}
    for r in g.msr_bits:
        if r.effective or r.index is None:
            continue
        off[r.index] = off.get(r.index, 0) | r.bit.mask
    return tuple(
        FirecrackerMsr(index, "".join("0" if mask >> b & 1 else "x" for b in range(63, -1, -1)))
        for index, mask in sorted(off.items())
    )


def firecracker_cpuid(g: GuestCpu) -> tuple[FirecrackerLeaf, ...]:
    """The CPUID part of a Firecracker custom CPU template.

    Firecracker starts every vCPU from KVM_GET_SUPPORTED_CPUID, applies the template, then its
    own normalization. For every feature bit kvmprobe knows (the feature table, plus any bit
    the export changed): ``0`` where the effective guest lacks it, ``1`` where the guest has
    it and KVM's offer does not (set by a quirk, or opt-in with --with-opt-in), ``x`` where
    KVM's offer already matches, and ``x`` for ``runtime`` bits (KVM keeps those itself).
    Every other bit (counts, sizes, topology, unnamed bits) is ``x``: left as KVM gives it,
    except, for a baseline, the fields whose value differs between some host's KVM and the
    baseline (``GuestCpu.pinned``: the smallest leaf maxima and address widths...), written
    as ``0``/``1``. For a baseline ``offered`` is what every host's KVM offers, so ``x`` on a
    feature bit means every host gives it. A bit whose leaf KVM's table does not carry is
    left out (Firecracker cannot modify it).
    """
    final = cp.CpuidView(g.entries)
    offered = cp.CpuidView(g.offered)
    locs = set(cp.by_loc()) | set(g.features)
    locs |= {c.loc for c in g.changes if c.action in ("set", "cleared")}
    marks: dict[tuple[int, int], dict[str, list[str]]] = {}
    flags: dict[tuple[int, int], int] = {}
    for loc in sorted(locs):
        if loc in g.runtime:
            continue
        e = final.entry(loc[0], loc[1])
        if e is None:
            continue
        want = final.has_loc(loc)
        if want and offered.has_loc(loc):
            continue
        key = (e.function, e.index)
        flags[key] = e.flags
        regs = marks.setdefault(key, {})
        bits = regs.setdefault(loc[2], ["x"] * 32)
        bits[31 - loc[3]] = "1" if want else "0"
    for (leaf, sub, reg), mask in sorted(g.pinned.items()):  # a baseline's fields
        e = final.entry(leaf, sub)
        if e is None:
            continue
        key = (e.function, e.index)
        flags[key] = e.flags
        bits = marks.setdefault(key, {}).setdefault(reg, ["x"] * 32)
        value = getattr(e, reg)
        for b in range(32):
            if mask >> b & 1:
                bits[31 - b] = "1" if value >> b & 1 else "0"
    out: list[FirecrackerLeaf] = []
    for key in sorted(marks):
        regs = marks[key]
        out.append(
            FirecrackerLeaf(
                key[0],
                key[1],
                flags[key],
                tuple((r, "".join(regs[r])) for r in cp.REGISTERS if r in regs),
            )
        )
    return tuple(out)


# -- libvirt ---------------------------------------------------------------------------------

#: the libvirt CPU model the export starts from: small, and every x86-64 host has most of it
#: (what the guest lacks of it is disabled by name)
LIBVIRT_BASE = "qemu64"
#: where the libvirt names come from (kvmprobe.tables.libvirt_data.SOURCE says it in full)
LIBVIRT_NAMES_FROM = "libvirt 9.0.0 src/cpu_map (x86_features.xml, x86_qemu64.xml)"


@frozen
class LibvirtCpu:
    """A libvirt ``<cpu mode='custom' match='exact'>`` and what it could not say."""

    model: str
    vendor: str | None  # libvirt's vendor name, None when the CPUID vendor has none
    require: tuple[str, ...]  # libvirt names added to the model
    disable: tuple[str, ...]  # libvirt names of the model the guest must not have
    #: effective features libvirt names but KVM does not offer: requiring them would make
    #: libvirt refuse the CPU (QEMU cannot give what KVM does not offer)
    not_addable: tuple[str, ...]
    #: effective features libvirt has no CPUID name for (Linux names / locations)
    unnamed: tuple[str, ...]
    #: feature-MSR bits by libvirt's names: effective ones (required) and ones KVM
    #: advertises that a guest is not given (refused by a vCPU, or unverified: disabled)
    msr_require: tuple[str, ...] = ()
    msr_disable: tuple[str, ...] = ()
    #: advertised feature-MSR bits a guest is not given that libvirt has no name for
    msr_unnamed: tuple[str, ...] = ()
    #: in a baseline: effective features left out because QEMU will not migrate a guest that
    #: has them (``QEMU_UNMIGRATABLE``; libvirt's names are the same)
    unmigratable: tuple[str, ...] = ()
    #: effective features left out because QEMU's host model does not turn them on by itself
    #: (``QEMU_ADDS_TO_SUPPORTED``, not automatic): libvirt judges a CPU against that host
    #: model, so a CPU requiring them is "incompatible" to it (compare, migration)
    host_model_lacks: tuple[str, ...] = ()


def libvirt_custom(g: GuestCpu) -> LibvirtCpu:
    """libvirt's ``qemu64`` model plus, by libvirt's names, every effective feature KVM offers
    and minus every model feature the guest lacks. With ``match='exact'`` the guest gets no
    other named feature. ``runtime`` bits are neither required nor disabled (KVM keeps them,
    the APIC bit for one)."""
    from kvmprobe.tables import libvirt_data as lv

    final = cp.CpuidView(g.entries)
    offered = cp.CpuidView(g.offered)
    model = lv.MODELS[LIBVIRT_BASE]
    require: list[str] = []
    disable: list[str] = []
    not_addable: list[str] = []
    for loc, name in sorted(lv.FEATURES.items()):
        if loc in g.runtime:
            continue  # KVM sets these itself while the guest runs: the model's say stands
        eff = final.has_loc(loc)
        if name in model:
            if not eff:
                disable.append(name)
        elif eff:
            (require if offered.has_loc(loc) else not_addable).append(name)
    unmigratable = [n for n in require if n in QEMU_UNMIGRATABLE] if g.is_baseline else []
    not_auto = {
        lv.FEATURES[loc]
        for loc, f in cp.by_loc().items()
        if loc in lv.FEATURES
        and QEMU_ADDS_TO_SUPPORTED.get(f.qemu_name or "", (None, True))[1] is False
    }
    host_model_lacks = [n for n in require if n in not_auto]
    require = [n for n in require if n not in unmigratable and n not in host_model_lacks]
    table = cp.by_loc()
    unnamed = [
        table[loc].name if loc in table else cp.fmt_loc(*loc)
        for loc in sorted(g.features)
        if loc not in lv.FEATURES and loc not in g.runtime
    ]
    msr_require: list[str] = []
    msr_disable: list[str] = []
    msr_unnamed: list[str] = []
    for r in g.msr_bits:
        lv_name = r.bit.libvirt_name
        if lv_name is None:
            if not r.effective:
                msr_unnamed.append(r.bit.feature_name)
        elif r.effective:
            msr_require.append(lv_name)
        else:
            msr_disable.append(lv_name)
    return LibvirtCpu(
        LIBVIRT_BASE,
        lv.VENDORS.get(g.vendor or ""),
        tuple(sorted(require)),
        tuple(sorted(disable)),
        tuple(sorted(not_addable)),
        tuple(unnamed),
        tuple(dict.fromkeys(msr_require)),
        tuple(dict.fromkeys(msr_disable)),
        tuple(dict.fromkeys(msr_unnamed)),
        tuple(unmigratable),
        tuple(host_model_lacks),
    )
