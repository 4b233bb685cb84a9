"""The largest guest definition every host of a fleet can give (``kvmprobe baseline``).

Hosts are folded in one at a time (``BaselineBuilder.add``), so memory grows by a few hundred
bytes per host, not by a snapshot; ``finish()`` gives the ``Baseline``:

* features: every feature every host gives (an unknown answer on any host leaves it out),
  then without (in this order) the XCR0 components whose size or offset differs between hosts,
  the features of leaves beyond the common maximum leaf, and every feature whose dependencies
  are no longer all there (``deps.close_under_deps``, XSAVE-state dependencies included). A
  dependency that no host offers at all is not a reason to drop a feature every host gives (each
  host's own answer already lacks it, and ``cpuid`` warns about it): the baseline of one host is
  that host's effective set;
* left out: for each feature some host gives (or whose answer is unknown somewhere) but the
  baseline does not, how many hosts lack it, which, and why (each host's reason), or the
  dependency/field reason that dropped it;
* fields: the vendor (must be common), the values of ``compare.FIELD_RULES`` at their minimum
  where smaller is safe (leaf maxima, address widths, PMU counters) or their common value, and
  every CPUID table field whose value all hosts share; XSAVE components kept with their common
  size and offset; the XCR0 mask of the kept components;
* the migration capabilities (the smallest value / the common flags), the MSR index list all
  hosts share and the ARCH_CAPABILITIES bits all hosts set.

``Baseline.registers()`` gives the CPUID register values of the baseline guest (feature bits
and common fields), the starting point for an exporter (QEMU -cpu, libvirt XML, a Firecracker
template, KVM_SET_CPUID2 entries).

Pure: no I/O.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

from kvmprobe.analysis import compare as cmpr
from kvmprobe.analysis import cpuid as cp
from kvmprobe.analysis.answers import UNKNOWN, YES, Answer, no
from kvmprobe.analysis.deps import close_under_deps
from kvmprobe.analysis.profile import (
    HostProfile,
    MsrFacts,
    XsaveComponent,
    feature_space,
    field_slots,
    positions,
)
from kvmprobe.frozen import field, frozen
from kvmprobe.snapshot import CpuidEntry, ProbeError
from kvmprobe.vocab import CompareRule, NotOfferedReason, Offered


class _Host:
    """What the builder keeps of one host: its name, its answers as masks and its errors.
    Equal to another with the same values (a Baseline compares its hosts); not frozen, as
    ``merge()`` points ``msr`` at the merging builder's copy of an equal value."""

    __slots__ = ("cpuid_error", "effective", "errors", "msr", "name", "reasons", "unknown")

    def __init__(
        self,
        name: str,
        effective: int,
        unknown: int,
        reasons: dict[NotOfferedReason, int],
        errors: tuple[ProbeError, ...],
        cpuid_error: str | None,
        msr: MsrFacts,
    ) -> None:
        self.name = name
        self.effective = effective
        self.unknown = unknown
        self.reasons = reasons
        self.errors = errors
        self.cpuid_error = cpuid_error
        self.msr = msr

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in _HOST_FIELDS)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Host):
            return NotImplemented
        return self._values() == other._values()

    __hash__ = None  # type: ignore[assignment]  # mutable, as the dataclass it replaces

    def __repr__(self) -> str:
        return "_Host(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in _HOST_FIELDS) + ")"


_HOST_FIELDS = ("name", "effective", "unknown", "reasons", "errors", "cpuid_error", "msr")


@frozen
class Lacking:
    """One host that does not give a left-out feature, and why."""

    host: str
    answer: Answer
    detail: str = ""


@frozen
class LeftOut:
    """A feature some host gives (or whose answer is unknown somewhere) that the baseline
    does not have."""

    feature: cp.FeatureDef
    #: hosts that give it
    giving: int
    #: hosts that do not (no or unknown), each with its reason
    lacking: tuple[Lacking, ...]
    #: set when every host gives it but a rule dropped it (dependency, XSAVE size, max leaf)
    dropped: str | None = None

    @property
    def name(self) -> str:
        return self.feature.name


@frozen
class FieldValue:
    name: str
    where: str
    rule: CompareRule
    #: the baseline's value (minimum or common); None when hosts differ (MATCH/INFO) or unknown
    value: int | None
    lowest: int | None
    highest: int | None
    #: hosts where it is unknown
    unknown: tuple[str, ...]
    why: str

    @property
    def differs(self) -> bool:
        return self.lowest != self.highest


@frozen
class CapValue:
    name: str
    rule: CompareRule
    #: the baseline's value (the smallest, or the flags all hosts share); None when unknown
    value: int | None
    lowest: int | None
    highest: int | None
    unknown: tuple[str, ...]
    why: str


@frozen
class Baseline:
    hosts: tuple[str, ...]
    irqchip: str
    disable_exits: tuple[str, ...]
    #: feature positions of the baseline guest (feature_space())
    features: int
    #: positions every host gives before any rule dropped some
    common: int
    left_out: tuple[LeftOut, ...]
    #: kvmprobe name -> why the rule dropped it (dependency, XSAVE, max leaf)
    dropped: Mapping[str, str]
    #: features kept although a dependency is missing, because no host offers that dependency
    inconsistent: Mapping[str, str]
    vendor: str | None
    vendors: Mapping[str, int]
    fields: tuple[FieldValue, ...]
    #: every CPUID table field all hosts share: name -> value
    common_fields: Mapping[str, int]
    xcr0: int | None
    xsave_components: tuple[XsaveComponent, ...]
    caps: tuple[CapValue, ...]
    msr_index_list: frozenset[int] | None
    msr_unknown: tuple[str, ...]
    arch_capabilities: int | None
    arch_caps_unknown: tuple[str, ...]
    #: per host with failed probe steps: its errors
    errors: Mapping[str, tuple[ProbeError, ...]]
    #: register values of the common fields: (leaf, subleaf, register) -> (mask, value)
    field_bits: Mapping[tuple[int, int, str], tuple[int, int]] = field(default_factory=dict)
    #: positions some host gives only through KVM's instruction emulator
    emulated_any: int = 0
    #: per reason: the positions every host lacks for that reason
    reason_all: Mapping[NotOfferedReason, int] = field(default_factory=dict)
    _hosts: tuple[_Host, ...] = ()

    # -- answers --------------------------------------------------------------------------
    def answer(self, pos: int) -> Answer:
        if self.features >> pos & 1:
            return YES
        for lo in self.left_out:
            if feature_space().position(lo.feature.loc) == pos:
                if any(x.answer.offered is Offered.UNKNOWN for x in lo.lacking):
                    return UNKNOWN
                return no(lo.lacking[0].answer.why or NotOfferedReason.UNKNOWN if lo.lacking
                          else NotOfferedReason.UNKNOWN)  # fmt: skip
        return no(NotOfferedReason.UNSUPPORTED)

    def answers(self, *, level: bool = False) -> dict[str, Answer]:
        """Feature name -> Answer for the baseline guest (``level``: a feature some host gives
        only through KVM's emulator is "no (emulated)", as the x86-64 level counts it)."""
        space = feature_space()
        out = {n: no(NotOfferedReason.UNSUPPORTED) for n in space.by_name}
        for pos in positions(self.features):
            if pos in space.named:
                emulated = level and self.emulated_any >> pos & 1
                out[space.named[pos].name] = no(NotOfferedReason.EMULATED) if emulated else YES
        for pos in positions(self.named_absent()):
            out[space.named[pos].name] = no(self._common_reason(pos))
        for lo in self.left_out:
            unknown = any(x.answer.offered is Offered.UNKNOWN for x in lo.lacking)
            if unknown:
                out[lo.name] = UNKNOWN
            else:
                why = lo.lacking[0].answer.why if lo.lacking else NotOfferedReason.UNKNOWN
                out[lo.name] = no(why or NotOfferedReason.UNKNOWN)
        return out

    def named_absent(self) -> int:
        """Named positions no host gives (and none answers unknown)."""
        given = 0
        for lo in self.left_out:
            p = feature_space().position(lo.feature.loc)
            if p is not None:
                given |= 1 << p
        return feature_space().named_mask & ~self.features & ~given

    def _common_reason(self, pos: int) -> NotOfferedReason:
        """The reason every host gives for lacking a feature none gives (UNKNOWN when the
        hosts' reasons differ)."""
        for reason, mask in self.reason_all.items():
            if mask >> pos & 1:
                return reason
        return NotOfferedReason.UNKNOWN

    def why_not(self, pos: int) -> str:
        """Why the baseline lacks a feature, in words."""
        for lo in self.left_out:
            if feature_space().position(lo.feature.loc) == pos:
                if lo.dropped:
                    return lo.dropped
                n = len(lo.lacking)
                names = ", ".join(f"{x.host} ({x.answer.label()})" for x in lo.lacking[:3])
                more = f" and {n - 3} more" if n > 3 else ""
                return f"{n} of {len(self.hosts)} hosts lack it: {names}{more}"
        common = self._common_reason(pos)
        if common is not NotOfferedReason.UNKNOWN:
            return f"no host of the {len(self.hosts)} gives it (on every one: {common})"
        counts: dict[str, int] = {}
        for h in self._hosts:
            label = _lacking(h, pos).answer.label()
            counts[label] = counts.get(label, 0) + 1
        how = ", ".join(f"{label} on {k}" for label, k in counts.items())
        return f"no host of the {len(self.hosts)} gives it ({how})"

    def msr_hosts(self) -> Iterator[tuple[str, MsrFacts]]:
        """(host, its feature MSRs and what a vCPU took of them) of every host."""
        for h in self._hosts:
            yield h.name, h.msr

    # -- the baseline guest's CPUID -------------------------------------------------------
    def registers(self) -> tuple[CpuidEntry, ...]:
        """The CPUID entries of the baseline guest: every baseline feature bit, every common
        field value, and leaf 0xD's component subleaves at their common size and offset.

        Only what kvmprobe's tables name is filled in; every other bit is 0 (topology and
        cache leaves are for the VMM to build). Leaves whose subleaf is significant carry
        KVM_CPUID_FLAG_SIGNIFCANT_INDEX, as in KVM_SET_CPUID2."""
        regs: dict[tuple[int, int], dict[str, int]] = {}
        space = feature_space()
        for (leaf, sub, reg), value in space.register_values(self.features).items():
            regs.setdefault((leaf, sub), dict.fromkeys(cp.REGISTERS, 0))[reg] |= value
        for (leaf, sub, reg), (mask, value) in self.field_bits.items():
            r = regs.setdefault((leaf, sub), dict.fromkeys(cp.REGISTERS, 0))
            r[reg] = (r[reg] & ~mask) | value
        if self.vendor is not None and len(self.vendor) == 12:
            raw = self.vendor.encode("ascii", "replace")
            ebx, edx, ecx = (int.from_bytes(raw[i : i + 4], "little") for i in (0, 4, 8))
            r = regs.setdefault((0, 0), dict.fromkeys(cp.REGISTERS, 0))
            r.update(ebx=ebx, ecx=ecx, edx=edx)
        if self.xcr0 is not None:
            r = regs.setdefault((0xD, 0), dict.fromkeys(cp.REGISTERS, 0))
            r["eax"] = self.xcr0 & 0xFFFF_FFFF
            r["edx"] = self.xcr0 >> 32
            for c in self.xsave_components:
                regs[(0xD, c.number)] = {"eax": c.size, "ebx": c.offset,
                                         "ecx": int(c.supervisor), "edx": 0}  # fmt: skip
        indexed = cp.indexed_leaves()
        return tuple(
            CpuidEntry(leaf, sub, cp.SIGNIFICANT_INDEX if leaf in indexed else 0, **r)
            for (leaf, sub), r in sorted(regs.items())
        )


class BaselineBuilder:
    """Fold hosts in one by one; ``finish()`` computes the baseline."""

    def __init__(self) -> None:
        self._hosts: list[_Host] = []
        self._space = feature_space()
        self._all = (1 << (len(self._space.slots) * 32)) - 1
        self._common = self._all
        self._union = 0
        self._unknown_any = 0
        self._emulated_any = 0
        self._reason_all: dict[NotOfferedReason, int] | None = None
        self._irqchip: str | None = None
        self._exits: tuple[str, ...] = ()
        self._vendors: dict[str, int] = {}
        nslots = len(field_slots())
        self._and = [0xFFFF_FFFF] * nslots
        self._or = [0] * nslots
        self._absent: list[list[str]] = [[] for _ in range(nslots)]
        self._rule_lo: dict[str, int | None] = {}
        self._rule_hi: dict[str, int | None] = {}
        self._rule_unknown: dict[str, list[str]] = {}
        self._xcr0: int | None = None
        self._xcr0_unknown: list[str] = []
        self._comps: dict[int, dict[tuple[int, int, bool], list[str]]] = {}
        self._cap_lo: dict[str, int] = {}
        self._cap_hi: dict[str, int] = {}
        self._cap_and: dict[str, int] = {}
        self._cap_unknown: dict[str, list[str]] = {}
        self._msr: frozenset[int] | None = None
        self._msr_unknown: list[str] = []
        self._arch: int | None = None
        self._arch_unknown: list[str] = []
        self._errors: dict[str, tuple[ProbeError, ...]] = {}
        self._msr_intern: dict[MsrFacts, MsrFacts] = {}

    def add(self, p: HostProfile) -> None:
        from kvmprobe.knowledge.migration import CAPS

        if self._irqchip is None:
            self._irqchip, self._exits = p.irqchip, p.disable_exits
        name = p.name
        eff, unk = p.effective, p.unknown
        self._common &= eff
        self._union |= eff
        self._unknown_any |= unk
        self._emulated_any |= p.emulated_offered
        reasons = cmpr.reason_masks(p)
        if self._reason_all is None:
            self._reason_all = dict(reasons)
        else:
            self._reason_all = {
                r: m & reasons.get(r, 0)
                for r, m in self._reason_all.items()
                if m & reasons.get(r, 0)
            }
        msr = self._msr_intern.setdefault(p.msr, p.msr)
        self._hosts.append(_Host(name, eff, unk, reasons, p.errors, _unknown_text(p), msr))
        if p.errors:
            self._errors[name] = p.errors
        vendor = p.vendor if p.cpuid_known else None
        self._vendors[vendor or "unknown"] = self._vendors.get(vendor or "unknown", 0) + 1
        # fields: common bits (AND == OR) and absent registers
        for i, v in enumerate(p.field_regs):
            if v is None or not p.cpuid_known:
                self._absent[i].append(name)
            else:
                self._and[i] &= v
                self._or[i] |= v
        for fr in cmpr.FIELD_RULES:
            v = cmpr.field_value(p, fr.name) if p.cpuid_known else None
            if v is None:
                self._rule_unknown.setdefault(fr.name, []).append(name)
                continue
            lo, hi = self._rule_lo.get(fr.name), self._rule_hi.get(fr.name)
            self._rule_lo[fr.name] = v if lo is None else min(lo, v)
            self._rule_hi[fr.name] = v if hi is None else max(hi, v)
        # XSAVE
        if p.xcr0 is None or not p.cpuid_known:
            self._xcr0_unknown.append(name)
        else:
            self._xcr0 = p.xcr0 if self._xcr0 is None else self._xcr0 & p.xcr0
        for xc in p.xsave_components:
            key = (xc.size, xc.offset, xc.supervisor)
            self._comps.setdefault(xc.number, {}).setdefault(key, []).append(name)
        # capabilities
        for c in CAPS:
            v = p.caps.get(c.name)
            if v is None:
                self._cap_unknown.setdefault(c.name, []).append(name)
                continue
            self._cap_lo[c.name] = min(self._cap_lo.get(c.name, v), v)
            self._cap_hi[c.name] = max(self._cap_hi.get(c.name, v), v)
            self._cap_and[c.name] = self._cap_and.get(c.name, v) & v
        if p.msr_index_list is None:
            self._msr_unknown.append(name)
        else:
            self._msr = p.msr_index_list if self._msr is None else self._msr & p.msr_index_list
        arch = cmpr.arch_caps_value(p)
        if arch is None:
            self._arch_unknown.append(name)
        else:
            self._arch = arch if self._arch is None else self._arch & arch

    def __len__(self) -> int:
        return len(self._hosts)

    def merge(self, other: BaselineBuilder) -> None:
        """Fold in the hosts another builder saw (after this one's): a fleet can be read in
        chunks, each by its own worker."""
        if not other._hosts:
            return
        if self._irqchip is None:
            self._irqchip, self._exits = other._irqchip, other._exits
        for h in other._hosts:
            h.msr = self._msr_intern.setdefault(h.msr, h.msr)
        self._hosts += other._hosts
        self._common &= other._common
        self._union |= other._union
        self._unknown_any |= other._unknown_any
        self._emulated_any |= other._emulated_any
        if other._reason_all is not None:
            if self._reason_all is None:
                self._reason_all = dict(other._reason_all)
            else:
                self._reason_all = {
                    r: m & other._reason_all.get(r, 0)
                    for r, m in self._reason_all.items()
                    if m & other._reason_all.get(r, 0)
                }
        for vendor, count in other._vendors.items():
            self._vendors[vendor] = self._vendors.get(vendor, 0) + count
        for i in range(len(self._and)):
            self._and[i] &= other._and[i]
            self._or[i] |= other._or[i]
            self._absent[i] += other._absent[i]
        for name, lo in other._rule_lo.items():
            mine = self._rule_lo.get(name)
            self._rule_lo[name] = lo if mine is None or lo is None else min(mine, lo)
        for name, hi in other._rule_hi.items():
            mine = self._rule_hi.get(name)
            self._rule_hi[name] = hi if mine is None or hi is None else max(mine, hi)
        for name, hosts in other._rule_unknown.items():
            self._rule_unknown.setdefault(name, []).extend(hosts)
        if other._xcr0 is not None:
            self._xcr0 = other._xcr0 if self._xcr0 is None else self._xcr0 & other._xcr0
        self._xcr0_unknown += other._xcr0_unknown
        for number, variants in other._comps.items():
            mine_v = self._comps.setdefault(number, {})
            for key, hosts in variants.items():
                mine_v.setdefault(key, []).extend(hosts)
        for cap, value in other._cap_lo.items():
            self._cap_lo[cap] = min(self._cap_lo.get(cap, value), value)
        for cap, value in other._cap_hi.items():
            self._cap_hi[cap] = max(self._cap_hi.get(cap, value), value)
        for cap, value in other._cap_and.items():
            self._cap_and[cap] = self._cap_and.get(cap, value) & value
        for name, hosts in other._cap_unknown.items():
            self._cap_unknown.setdefault(name, []).extend(hosts)
        if other._msr is not None:
            self._msr = other._msr if self._msr is None else self._msr & other._msr
        self._msr_unknown += other._msr_unknown
        if other._arch is not None:
            self._arch = other._arch if self._arch is None else self._arch & other._arch
        self._arch_unknown += other._arch_unknown
        self._errors.update(other._errors)

    def finish(self) -> Baseline:
        from kvmprobe.knowledge.migration import CAPS

        if not self._hosts:
            raise ValueError("a baseline needs at least one host")
        space = self._space
        names = tuple(h.name for h in self._hosts)
        n = len(names)
        common = self._common & ~self._unknown_any
        kept = common
        dropped: dict[str, str] = {}

        # XSAVE components: same size and offset on every host that has them
        comps: list[XsaveComponent] = []
        for number, variants in sorted(self._comps.items()):
            if len(variants) == 1:
                (size, offset, sup), hosts = next(iter(variants.items()))
                if len(hosts) == n:
                    comps.append(XsaveComponent(number, size, offset, sup))
                continue
            text = "; ".join(
                f"{size} bytes at {offset} on {len(h)} hosts ({h[0]}...)"
                if len(h) > 1
                else f"{size} bytes at {offset} on {h[0]}"
                for (size, offset, _s), h in sorted(variants.items())
            )
            for pos in positions(kept):
                f = space.named.get(pos)
                if (
                    f is not None
                    and (f.leaf, f.subleaf) == (0xD, 0)
                    and f.register in ("eax", "edx")
                    and cp.xcr0_component(f.name) == number
                ):
                    kept &= ~(1 << pos)
                    dropped[f.name] = (
                        f"{f.name} dropped: XSAVE component {number}'s size or offset differs "
                        f"between hosts ({text})"
                    )
        kept_comp_numbers = set()
        for pos in positions(kept):
            f = space.named.get(pos)
            if f is not None and f.name.startswith("xcr0_"):
                with contextlib.suppress(LookupError):
                    kept_comp_numbers.add(cp.xcr0_component(f.name))
        comps = [c for c in comps if c.number in kept_comp_numbers or c.supervisor]

        # fields
        fields: list[FieldValue] = []
        rule_values: dict[str, int | None] = {}
        for fr in cmpr.FIELD_RULES:
            lo, hi = self._rule_lo.get(fr.name), self._rule_hi.get(fr.name)
            unknown = tuple(self._rule_unknown.get(fr.name, ()))
            if unknown:
                value = None
            elif fr.rule is CompareRule.NOT_LESS:
                value = lo
            else:
                value = lo if lo == hi else None
            rule_values[fr.name] = value
            fields.append(FieldValue(fr.name, cmpr.field_where(fr.name), fr.rule, value, lo, hi,
                                     unknown, fr.why))  # fmt: skip

        # features beyond the common maximum leaves
        max_basic, max_ext = rule_values.get("max_basic_leaf"), rule_values.get("max_ext_leaf")
        for pos in positions(kept):
            f = space.feature(pos)
            if f.leaf < 0x40000000:
                limit, top = max_basic, self._rule_hi.get("max_basic_leaf")
            elif f.leaf >= 0x80000000:
                limit, top = max_ext, self._rule_hi.get("max_ext_leaf")
            else:
                continue
            # beyond every host's own maximum: each host reports it so; kept, like a
            # dependency no host offers
            if limit is not None and top is not None and limit < f.leaf <= top:
                kept &= ~(1 << pos)
                dropped[f.name] = (
                    f"{f.name} dropped: leaf {f.leaf:#x} is beyond the common maximum "
                    f"{limit:#x} (some host's KVM stops below it)"
                )

        # dependencies
        kept_named = {space.named[p].name: p for p in positions(kept) if p in space.named}
        union_names = {space.named[p].name for p in positions(self._union) if p in space.named}
        closure = close_under_deps(kept_named)
        inconsistent: dict[str, str] = {}
        for d in closure.dropped:
            if d.missing not in union_names:
                inconsistent[d.feature] = (
                    f"{d.feature} kept: it needs {d.missing}"
                    + ("" if len(d.chain) == 2 else f" (through {' -> '.join(d.chain[1:-1])})")
                    + ", which no host offers (each host's own answer lacks it)"
                )
                continue
            lacking = [h.name for h in self._hosts if not h.effective >> space.by_name.get(
                d.missing, 0) & 1] if d.missing in space.by_name else []  # fmt: skip
            who = (
                f"{lacking[0]} lacks" if len(lacking) == 1
                else f"{len(lacking)} hosts lack ({lacking[0]}, ...)" if lacking
                else "the baseline lacks"
            )  # fmt: skip
            dropped.setdefault(d.feature, d.reason(who))
            kept &= ~(1 << kept_named[d.feature])
        # a feature kept only as "inconsistent" may itself have lost a kept requirement
        # through the closure's other drops: close again without the dropped ones
        if inconsistent:
            again = close_under_deps(
                {space.named[p].name for p in positions(kept) if p in space.named}
            )
            for d in again.dropped:
                if d.feature not in inconsistent and d.feature not in dropped:
                    dropped[d.feature] = d.reason("the baseline lacks")
                    kept &= ~(1 << kept_named[d.feature])

        # left out: offered or unknown somewhere, not in the baseline
        relevant = (self._union | (self._unknown_any & space.named_mask)) & ~kept
        lacking_map: dict[int, list[Lacking]] = {}
        for h in self._hosts:
            missing = relevant & ~h.effective
            for pos in positions(missing):
                lacking_map.setdefault(pos, []).append(_lacking(h, pos))
        left: list[LeftOut] = []
        for pos in positions(relevant):
            f = space.feature(pos)
            lk = tuple(lacking_map.get(pos, ()))
            giving = sum(1 for h in self._hosts if h.effective >> pos & 1)
            left.append(LeftOut(f, giving, lk, dropped.get(f.name)))

        # common fields: registers whose bits all hosts share
        field_bits: dict[tuple[int, int, str], tuple[int, int]] = {}
        common_fields: dict[str, int] = {}
        slot_index = {r: i for i, r in enumerate(field_slots())}
        for fd in cp.fields():
            i = slot_index[(fd.leaf, fd.subleaf, fd.register)]
            if self._absent[i]:
                continue
            mask = ((1 << (fd.hi - fd.lo + 1)) - 1) << fd.lo
            if self._and[i] & mask == self._or[i] & mask:
                common_fields[fd.name] = fd.extract(self._and[i])
                key = (fd.leaf, fd.subleaf, fd.register)
                m, v = field_bits.get(key, (0, 0))
                field_bits[key] = (m | mask, v | (self._and[i] & mask))
        for fv in fields:  # minimum-where-safe values replace the (absent) common value
            if fv.value is None:
                continue
            fd = next(x for x in cp.fields() if x.name == fv.name)
            mask = ((1 << (fd.hi - fd.lo + 1)) - 1) << fd.lo
            key = (fd.leaf, fd.subleaf, fd.register)
            m, v = field_bits.get(key, (0, 0))
            field_bits[key] = (m | mask, (v & ~mask) | (fv.value << fd.lo & mask))
            common_fields[fv.name] = fv.value

        caps: list[CapValue] = []
        for mc in CAPS:
            unknown = tuple(self._cap_unknown.get(mc.name, ()))
            lo, hi = self._cap_lo.get(mc.name), self._cap_hi.get(mc.name)
            if unknown:
                value = None
            elif mc.rule is CompareRule.SUPERSET:
                value = self._cap_and.get(mc.name)
            else:
                value = lo
            caps.append(CapValue(mc.name, mc.rule, value, lo, hi, unknown, mc.why))

        vendors = dict(sorted(self._vendors.items(), key=lambda kv: -kv[1]))
        vendor = next(iter(vendors)) if len(vendors) == 1 else None
        if vendor == "unknown":
            vendor = None
        xcr0 = None
        if not self._xcr0_unknown and self._xcr0 is not None:
            xcr0 = self._xcr0
            for number in range(2, 64):
                if xcr0 >> number & 1 and number not in kept_comp_numbers:
                    xcr0 &= ~(1 << number)
        return Baseline(
            hosts=names,
            irqchip=self._irqchip or "kernel",
            disable_exits=self._exits,
            features=kept,
            common=common,
            left_out=tuple(left),
            dropped=dropped,
            inconsistent=inconsistent,
            vendor=vendor,
            vendors=vendors,
            fields=tuple(fields),
            common_fields=common_fields,
            xcr0=xcr0,
            xsave_components=tuple(comps),
            caps=tuple(caps),
            msr_index_list=None if self._msr_unknown else self._msr,
            msr_unknown=tuple(self._msr_unknown),
            arch_capabilities=None if self._arch_unknown else self._arch,
            arch_caps_unknown=tuple(self._arch_unknown),
            errors=dict(self._errors),
            field_bits=field_bits,
            emulated_any=self._emulated_any,
            reason_all=dict(self._reason_all or {}),
            _hosts=tuple(self._hosts),
        )


def _unknown_text(p: HostProfile) -> str | None:
    """The failed steps behind a host's unknown answers, in one line (None: none unknown)."""
    if not p.unknown:
        return None
    texts = dict.fromkeys(w for o in p.overrides.values() for w in o.unknowns)
    return p.cpuid_error() or "; ".join(texts) or "a probe step failed"


def _lacking(h: _Host, pos: int) -> Lacking:
    if h.unknown >> pos & 1:
        return Lacking(h.name, UNKNOWN, h.cpuid_error or "")
    for reason, mask in h.reasons.items():
        if mask >> pos & 1:
            return Lacking(h.name, no(reason))
    return Lacking(h.name, no(NotOfferedReason.UNSUPPORTED))


def baseline(profiles: list[HostProfile]) -> Baseline:
    """The baseline of a list of profiles (``BaselineBuilder`` for a stream)."""
    b = BaselineBuilder()
    for p in profiles:
        b.add(p)
    return b.finish()
