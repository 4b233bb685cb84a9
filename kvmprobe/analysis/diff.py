"""Can a guest started on host A run on host B, and the reverse? (``kvmprobe diff``)

Both hosts are HostProfiles analysed for the same VMM set-up. Compared:

* every effective CPUID feature (named or not): "a guest from A loses it on B" (blocks A -> B)
  or "B adds it" (blocks B -> A);
* the vendor (must match), the fields of ``compare.FIELD_RULES`` (leaf maxima, MAXPHYADDR,
  GuestPhysBits, linear width, PMU counters must not shrink; family/model/stepping are
  informational), the XCR0 mask (must keep every component) and every XSAVE state component
  (present at the same size and offset);
* the capabilities of ``knowledge.migration.CAPS`` and the MSR index list (what KVM saves and
  restores);
* the IA32_ARCH_CAPABILITIES bits (immunities a guest was told of).

Unknown evidence on either side is never treated as equal: the item is listed as unknown, and
it blocks the direction(s) in which it could be a loss.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

from kvmprobe.analysis import compare as cmpr
from kvmprobe.analysis.answers import Answer
from kvmprobe.analysis.profile import HostProfile, XsaveComponent, feature_space, positions
from kvmprobe.frozen import frozen
from kvmprobe.vocab import Change, CompareRule, Offered


@frozen
class DiffItem:
    """One difference (or unknown) between A and B."""

    #: "feature", "field", "vendor", "xcr0", "xsave-component", "capability", "msr-list",
    #: "msr-bit"
    kind: str
    name: str
    where: str
    change: Change
    rule: CompareRule
    a: str
    b: str
    #: why it differs (for features: why the side without it lacks it) or why it matters
    reason: str
    #: a guest from A cannot run on B because of it / a guest from B cannot run on A
    blocks: bool
    blocks_reverse: bool


def _verdict(blocking: list[DiffItem]) -> bool | None:
    if not blocking:
        return True
    return None if all(i.change is Change.UNKNOWN for i in blocking) else False


@frozen
class DiffResult:
    a: HostProfile
    b: HostProfile
    items: tuple[DiffItem, ...]

    @property
    def can_take(self) -> bool | None:
        """B can take A's guests: True when nothing blocks A -> B, False when a known
        difference does, None when only unknown evidence stands in the way (kvmprobe cannot
        tell; unknown is never taken as equal, nor as different)."""
        return _verdict([i for i in self.items if i.blocks])

    @property
    def reverse(self) -> bool | None:
        """A can take B's guests (True, False, or None: only unknown evidence blocks)."""
        return _verdict([i for i in self.items if i.blocks_reverse])

    def group(self, change: Change) -> tuple[DiffItem, ...]:
        return tuple(i for i in self.items if i.change is change)


def _answer_text(a: Answer) -> str:
    return a.label()


def _feature_items(a: HostProfile, b: HostProfile) -> list[DiffItem]:
    space = feature_space()
    out: list[DiffItem] = []
    # unnamed positions matter only when some side sets them (KVM reported them)
    relevant = a.effective | b.effective | ((a.unknown | b.unknown) & space.named_mask)
    for pos in positions(relevant):
        aa, ba = a.answer(pos), b.answer(pos)
        if aa.offered is ba.offered and aa.offered is not Offered.UNKNOWN:
            continue
        f = space.feature(pos)
        a_may = aa.offered is not Offered.NO
        b_may = ba.offered is not Offered.NO
        blocks = a_may and not ba.yes
        blocks_rev = b_may and not aa.yes
        if aa.offered is Offered.UNKNOWN or ba.offered is Offered.UNKNOWN:
            change = Change.UNKNOWN
            why = "; ".join(
                f"{side}: {p.unknown_why(pos)}"
                for side, p, ans in (("A", a, aa), ("B", b, ba))
                if ans.offered is Offered.UNKNOWN
            )
        elif aa.yes:
            change, why = Change.LOST, f"B: {_answer_text(ba)}"
        else:
            change, why = Change.ADDED, f"A: {_answer_text(aa)}"
        out.append(
            DiffItem(
                "feature", f.name, f.where, change, CompareRule.SUPERSET,
                _answer_text(aa), _answer_text(ba), why, blocks, blocks_rev,
            )
        )  # fmt: skip
    return out


def _fmt(v: int | None) -> str:
    if v is None:
        return "unknown"
    return str(v) if v < 1024 else f"{v:#x}"


def _value_item(
    kind: str,
    name: str,
    where: str,
    rule: CompareRule,
    va: int | None,
    vb: int | None,
    why: str,
    fmt: object = _fmt,
) -> DiffItem | None:
    """Compare one value under a rule; None when nothing is to be said."""
    f = fmt if callable(fmt) else _fmt
    ta, tb = str(f(va)), str(f(vb))
    if va is None or vb is None:
        if va is None and vb is None and rule is CompareRule.INFO:
            return None
        blocking = rule is not CompareRule.INFO
        return DiffItem(kind, name, where, Change.UNKNOWN, rule, ta, tb,
                        f"unknown on {'A' if va is None else 'B'}"
                        + (" and B" if va is None and vb is None else "") + f": {why}",
                        blocking, blocking)  # fmt: skip
    if va == vb:
        return None
    if rule is CompareRule.INFO:
        return DiffItem(kind, name, where, Change.NOTE, rule, ta, tb, why, False, False)
    if rule is CompareRule.NOT_LESS:
        return DiffItem(kind, name, where, Change.DIFFERS, rule, ta, tb, why, vb < va, va < vb)
    if rule is CompareRule.SUPERSET:
        return DiffItem(
            kind, name, where, Change.DIFFERS, rule, ta, tb, why,
            bool(va & ~vb), bool(vb & ~va),
        )  # fmt: skip
    return DiffItem(kind, name, where, Change.DIFFERS, rule, ta, tb, why, True, True)


def _fields(a: HostProfile, b: HostProfile) -> list[DiffItem]:
    out: list[DiffItem] = []
    if a.vendor != b.vendor or a.vendor is None:
        unknown = a.vendor is None or b.vendor is None
        out.append(
            DiffItem(
                "vendor", "vendor", "0x0.0.ebx/edx/ecx",
                Change.UNKNOWN if unknown else Change.DIFFERS, CompareRule.MATCH,
                a.vendor or "unknown", b.vendor or "unknown", cmpr.VENDOR_WHY, True, True,
            )
        )  # fmt: skip
    for fr in cmpr.FIELD_RULES:
        va, vb = cmpr.field_value(a, fr.name), cmpr.field_value(b, fr.name)
        item = _value_item("field", fr.name, cmpr.field_where(fr.name), fr.rule, va, vb, fr.why)
        if item is not None:
            out.append(item)
    item = _value_item(
        "xcr0", "XCR0 mask", "0xd.0.eax/edx", CompareRule.SUPERSET, a.xcr0, b.xcr0,
        "the XSAVE state components a guest may enable", fmt=_hex,
    )  # fmt: skip
    if item is not None:
        out.append(item)
    out += _xsave(a.xsave_components, b.xsave_components, a.cpuid_known and b.cpuid_known)
    return out


def _hex(v: int | None) -> str:
    return "unknown" if v is None else f"{v:#x}"


def _comp_text(c: XsaveComponent | None) -> str:
    return "absent" if c is None else f"{c.size} bytes at {c.offset}"


def _xsave(
    ca: Iterable[XsaveComponent], cb: Iterable[XsaveComponent], known: bool
) -> list[DiffItem]:
    if not known:
        return []
    da = {c.number: c for c in ca}
    db = {c.number: c for c in cb}
    out: list[DiffItem] = []
    for n in sorted(set(da) | set(db)):
        x, y = da.get(n), db.get(n)
        if x is not None and y is not None and (x.size, x.offset) == (y.size, y.offset):
            continue
        where = f"0xd.{n}.eax/ebx"
        if x is not None and y is not None:
            change, blocks, rev = Change.DIFFERS, True, True
        elif x is not None:
            change, blocks, rev = Change.LOST, True, False
        else:
            change, blocks, rev = Change.ADDED, False, True
        out.append(
            DiffItem(
                "xsave-component", f"XSAVE component {n}", where, change, CompareRule.MATCH,
                _comp_text(x), _comp_text(y), cmpr.XSAVE_WHY, blocks, rev,
            )
        )  # fmt: skip
    return out


def _caps(a: HostProfile, b: HostProfile) -> list[DiffItem]:
    from kvmprobe.knowledge.migration import CAPS

    out: list[DiffItem] = []
    for c in CAPS:
        if c.irqchip is not None and c.irqchip != a.irqchip:
            continue
        used = ", ".join(c.used_by)
        why = f"{c.why} (used by {used})"
        item = _value_item(
            "capability", c.name, f"{c.scope} fd", c.rule, a.caps.get(c.name), b.caps.get(c.name),
            why,
        )  # fmt: skip
        if item is not None:
            out.append(item)
    return out


def _msr_list(a: HostProfile, b: HostProfile) -> list[DiffItem]:
    from kvmprobe.analysis.msr import msr_name
    from kvmprobe.knowledge.migration import MSR_LIST_USED_BY, MSR_LIST_WHY

    why = f"{MSR_LIST_WHY} (used by {', '.join(MSR_LIST_USED_BY)})"
    la, lb = a.msr_index_list, b.msr_index_list
    if la is None or lb is None:
        return [
            DiffItem(
                "msr-list", "KVM_GET_MSR_INDEX_LIST", "msr index list", Change.UNKNOWN,
                CompareRule.SUPERSET, "unknown" if la is None else f"{len(la)} MSRs",
                "unknown" if lb is None else f"{len(lb)} MSRs", why, True, True,
            )
        ]  # fmt: skip
    out: list[DiffItem] = []
    for index in sorted(la ^ lb):
        name = msr_name(index)[0]
        lost = index in la
        out.append(
            DiffItem(
                "msr-list", name, f"MSR {index:#x}", Change.LOST if lost else Change.ADDED,
                CompareRule.SUPERSET, "listed" if lost else "not listed",
                "not listed" if lost else "listed", why, lost, not lost,
            )
        )  # fmt: skip
    return out


def _arch_caps(a: HostProfile, b: HostProfile) -> list[DiffItem]:
    va, vb = cmpr.arch_caps_value(a), cmpr.arch_caps_value(b)
    index = cmpr.arch_caps_index()
    why = (
        "an immunity bit a guest was told of lets it skip a mitigation it would need on a "
        "host without it"
    )
    where = f"MSR {index:#x}"
    if va is None or vb is None:
        if va == vb == 0:
            return []
        return [
            DiffItem(
                "msr-bit", "IA32_ARCH_CAPABILITIES", where, Change.UNKNOWN, CompareRule.SUPERSET,
                _hex(va), _hex(vb),
                "; ".join(f"{side}: {cmpr.arch_caps_unknown_why(p)}"
                          for side, p, v in (("A", a, va), ("B", b, vb)) if v is None)
                + f" ({why})",
                # a side told of nothing (0) has nothing to lose: only the other way blocks
                va != 0, vb != 0,
            )
        ]  # fmt: skip
    out: list[DiffItem] = []
    for row in cmpr.arch_cap_rows():
        ha, hb = bool(va >> row.lo & 1), bool(vb >> row.lo & 1)
        if ha == hb:
            continue
        name = row.qemu_name or row.name.lower()
        out.append(
            DiffItem(
                "msr-bit", name, f"{where} bit {row.lo}", Change.LOST if ha else Change.ADDED,
                CompareRule.SUPERSET, "set" if ha else "clear", "set" if hb else "clear", why,
                ha, hb,
            )
        )  # fmt: skip
    return out


def diff(a: HostProfile, b: HostProfile) -> DiffResult:
    """Every difference that matters to a guest moving from A to B (or back)."""
    items = [*_fields(a, b), *_feature_items(a, b), *_caps(a, b), *_msr_list(a, b)]
    items += _arch_caps(a, b)
    return DiffResult(a, b, tuple(items))
