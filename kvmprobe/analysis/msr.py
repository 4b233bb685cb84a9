"""Decode the feature MSRs KVM reports and the MSR index list (what KVM saves and restores).

Pure functions over the generated tables (``kvmprobe.tables.msr_data``): ints in, frozen
dataclasses out, no I/O. Decoding never loses information: every MSR gets a name (unknown
indices get an ``MSR_0x...`` placeholder and are shown with their raw value), bits no table
row explains are kept as a remainder, and the raw value always travels with the decoding.

VMX control MSRs (``MsrLayoutKind.CONTROLS``) are read the way the Intel SDM defines them: the
low 32 bits are the allowed-0 settings (a 1 means the control must be 1), the high 32 bits the
allowed-1 settings (a 1 means the control may be 1). Each known control gets a
``ControlSetting``; QEMU's ``vmx-*`` property for it is usable when the setting is optional
(QEMU turns the TRUE_* MSRs into "can be one and need not be one").
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

from kvmprobe.analysis.msr_layout import MsrBit, _rows, layout_rows, msr_name
from kvmprobe.frozen import frozen, replace
from kvmprobe.snapshot import ProbeError, Snapshot
from kvmprobe.tables import msr_data as T
from kvmprobe.vocab import ControlSetting, MsrLayoutKind, MsrOrigin, Vendor

__all__ = [
    "BitRef",
    "DecodedBit",
    "DecodedMsr",
    "MsrAnalysis",
    "MsrBit",
    "MsrIndexEntry",
    "Selection",
    "analyse",
    "decode_msr",
    "layout_rows",
    "lookup_bit",
    "mitigation_summary",
    "msr_name",
    "select",
    "vendor_of",
]

_LOW32 = 0xFFFF_FFFF


def _origin(index: int) -> MsrOrigin:
    origin = T.MSR_ORIGIN.get(index)
    if origin is None:
        return MsrOrigin.MSR_INDEX if msr_name(index)[2] else MsrOrigin.UNKNOWN
    return MsrOrigin(origin)


@frozen
class DecodedBit:
    """One layout row read out of a value."""

    bit: MsrBit
    #: a bit's 0/1, a field's number; for controls the allowed-1 bit
    value: int
    #: the value's name for fields with a value table (X86_MEMTYPE_WB), else None
    value_name: str | None = None
    #: controls and allowed-1 layouts: what a nested hypervisor may do with it
    setting: ControlSetting | None = None
    #: controls: the allowed-0 bit (1 = must be 1)
    allowed0: int | None = None

    @property
    def is_set(self) -> bool:
        """A bit that is 1, a field that is non-zero, a control that may be 1."""
        if self.setting is not None:
            return self.setting in (ControlSetting.REQUIRED, ControlSetting.OPTIONAL)
        return self.value != 0


@frozen
class DecodedMsr:
    """A feature MSR value, decoded; ``value`` is always the raw 64-bit number."""

    index: int
    name: str
    aliases: tuple[str, ...]
    known: bool
    origin: MsrOrigin
    kind: MsrLayoutKind
    layout: str | None
    description: str
    value: int
    #: every row of the layout (set or not), or the rows a filter kept (``partial``)
    bits: tuple[DecodedBit, ...]
    #: bits no row explains: set bits (bits layouts) or allowed-1 bits (controls)
    remainder: int = 0
    #: controls: allowed-0 bits no row explains (unknown controls that must be 1)
    remainder_must1: int = 0
    #: controls: reserved bits of the default1 class seen in either half
    default1: int = 0
    #: a plain reading of a value-kind MSR (e.g. the microcode revision), else None
    reading: str | None = None
    #: True when a filter kept only some rows
    partial: bool = False

    @property
    def set_bits(self) -> tuple[DecodedBit, ...]:
        return tuple(b for b in self.bits if b.is_set)

    @property
    def hex(self) -> str:
        return f"{self.value:#x}"


def vendor_of(snap: Snapshot) -> Vendor:
    """The host CPU vendor the snapshot recorded (other when unknown)."""
    v = snap.host.cpu_vendor
    if v == "GenuineIntel":
        return Vendor.INTEL
    if v in ("AuthenticAMD", "HygonGenuine"):
        return Vendor.AMD
    return Vendor.OTHER


def _setting(a0: int, a1: int) -> ControlSetting:
    if a0 and a1:
        return ControlSetting.REQUIRED
    if a1:
        return ControlSetting.OPTIONAL
    if a0:
        return ControlSetting.INCONSISTENT
    return ControlSetting.UNAVAILABLE


def _decode_rows(layout: str, kind: MsrLayoutKind, value: int) -> tuple[DecodedBit, ...]:
    out = []
    lo32, hi32 = value & _LOW32, value >> 32
    for row in layout_rows(layout):
        if kind is MsrLayoutKind.CONTROLS:
            a0, a1 = (lo32 >> row.lo) & 1, (hi32 >> row.lo) & 1
            out.append(DecodedBit(row, a1, None, _setting(a0, a1), a0))
        elif kind is MsrLayoutKind.ALLOWED1:
            a1 = (value >> row.lo) & 1
            out.append(DecodedBit(row, a1, None, _setting(0, a1)))
        else:
            v = (value & row.mask) >> row.lo
            name = T.VALUE_NAMES.get(row.value_table or "", {}).get(v) if row.is_field else None
            out.append(DecodedBit(row, v, name))
    return tuple(out)


def _reading(layout: str | None, value: int, vendor: Vendor) -> str | None:
    if layout != "ucode_rev":
        return None
    hi, lo = value >> 32, value & _LOW32
    if vendor is Vendor.INTEL:
        return f"revision {hi:#x} (bits 63:32)"
    if vendor is Vendor.AMD:
        return f"patch level {lo:#x} (bits 31:0)"
    return f"bits 63:32 {hi:#x}, bits 31:0 {lo:#x}"


def decode_msr(index: int, value: int, vendor: Vendor = Vendor.OTHER) -> DecodedMsr:
    """Decode one feature MSR value (any 64-bit number; unknown MSRs keep their raw value)."""
    if not 0 <= value < 1 << 64:
        raise ValueError(f"MSR value {value!r} is not a 64-bit unsigned number")
    name, aliases, known = msr_name(index)
    layout = T.MSR_LAYOUT.get(index)
    kind = MsrLayoutKind(T.LAYOUT_KIND[layout]) if layout else MsrLayoutKind.UNKNOWN
    bits = _decode_rows(layout, kind, value) if layout else ()
    known_mask = 0
    for b in bits:
        known_mask |= b.bit.mask
    remainder = must1 = default1 = 0
    if kind is MsrLayoutKind.CONTROLS:
        d1 = T.DEFAULT1.get(layout or "", 0) & ~known_mask
        lo32, hi32 = value & _LOW32, value >> 32
        default1 = (lo32 | hi32) & d1
        remainder = hi32 & ~known_mask & ~d1
        must1 = lo32 & ~known_mask & ~d1
    elif kind in (MsrLayoutKind.BITS, MsrLayoutKind.ALLOWED1):
        remainder = value & ~known_mask
    return DecodedMsr(
        index=index,
        name=name,
        aliases=aliases,
        known=known,
        origin=_origin(index),
        kind=kind,
        layout=layout,
        description=T.MSR_DESCRIPTIONS.get(index, ""),
        value=value,
        bits=bits,
        remainder=remainder,
        remainder_must1=must1,
        default1=default1,
        reading=_reading(layout, value, vendor),
    )


# ---------------------------------------------------------------------------------------------
# The whole picture of one snapshot


@frozen
class MsrIndexEntry:
    """One index of KVM_GET_MSR_INDEX_LIST (an MSR KVM saves and restores)."""

    index: int
    name: str
    aliases: tuple[str, ...]
    known: bool
    origin: MsrOrigin


@frozen
class MsrAnalysis:
    vendor: Vendor
    #: KVM_GET_MSR_FEATURE_INDEX_LIST as recorded; None when not asked or failed
    feature_list: tuple[int, ...] | None
    #: the feature MSRs whose value system-fd KVM_GET_MSRS returned, in list order
    features: tuple[DecodedMsr, ...]
    #: feature MSRs KVM lists but whose value could not be read: (index, why)
    unread: tuple[tuple[int, str], ...]
    #: KVM_GET_MSR_INDEX_LIST decoded, in KVM's order; None when not asked or failed
    index_list: tuple[MsrIndexEntry, ...] | None
    #: the probe errors of the MSR steps (KVM_GET_MSR_INDEX_LIST, ..._FEATURE_..., GET_MSRS)
    errors: tuple[ProbeError, ...]

    def feature(self, index: int) -> DecodedMsr | None:
        for d in self.features:
            if d.index == index:
                return d
        return None


def _msr_errors(snap: Snapshot) -> tuple[ProbeError, ...]:
    return tuple(e for e in snap.errors if e.step.startswith("KVM_GET_MSR"))


def analyse(snap: Snapshot) -> MsrAnalysis:
    vendor = vendor_of(snap)
    errors = _msr_errors(snap)
    features = []
    unread = []
    order = list(snap.msr_feature_index_list or ())
    order += [i for i in sorted(snap.feature_msrs) if i not in order]
    for index in order:
        value = snap.feature_msrs.get(index)
        if value is None:
            step = f"KVM_GET_MSRS({index:#x})"
            why = next((e.message for e in errors if e.step == step), "no value recorded")
            unread.append((index, why))
            continue
        features.append(decode_msr(index, value, vendor))
    index_list = None
    if snap.msr_index_list is not None:
        index_list = tuple(_index_entry(i) for i in snap.msr_index_list)
    return MsrAnalysis(
        vendor=vendor,
        feature_list=snap.msr_feature_index_list,
        features=tuple(features),
        unread=tuple(unread),
        index_list=index_list,
        errors=errors,
    )


def _index_entry(index: int) -> MsrIndexEntry:
    name, aliases, known = msr_name(index)
    return MsrIndexEntry(index, name, aliases, known, _origin(index))


# ---------------------------------------------------------------------------------------------
# Names and filters


@frozen
class BitRef:
    """A named bit and the MSRs whose layout it belongs to."""

    bit: MsrBit
    msrs: tuple[int, ...]


def _norm(text: str) -> str:
    return text.strip().lower().replace("-", "_")


@cache
def _msrs_of_layout() -> dict[str, tuple[int, ...]]:
    out: dict[str, list[int]] = {}
    for index, layout in sorted(T.MSR_LAYOUT.items()):
        out.setdefault(layout, []).append(index)
    return {k: tuple(v) for k, v in out.items()}


@cache
def _bit_names() -> dict[str, tuple[BitRef, ...]]:
    out: dict[str, list[BitRef]] = {}
    for layout, rows in _rows().items():
        msrs = _msrs_of_layout().get(layout, ())
        for row in rows:
            for n in row.names():
                refs = out.setdefault(_norm(n), [])
                if not any(r.bit == row for r in refs):
                    refs.append(BitRef(row, msrs))
    return {k: tuple(v) for k, v in out.items()}


def lookup_bit(name: str) -> tuple[BitRef, ...]:
    """Every bit called ``name`` by Linux (ARCH_CAP_MDS_NO, MDS_NO), QEMU (mds-no, vmx-ept),
    libvirt (mds-no) or /proc/cpuinfo (ept_x_only); case and -/_ do not matter. QEMU spells
    two EPT/VPID capabilities alike, so a name can find more than one bit."""
    return _bit_names().get(_norm(name), ())


def _parse_index(text: str) -> int | None:
    try:
        value = int(text.strip(), 0)
    except ValueError:
        return None
    return value if 0 <= value <= _LOW32 else None


def _name_matches(needle: str, names: Iterable[str]) -> bool:
    n = _norm(needle)
    return any(n in _norm(x) or n in _norm(x.removeprefix("MSR_")) for x in names)


@frozen
class Selection:
    """What a filter kept: feature MSRs (possibly with only some rows), index-list entries,
    and the MSR indices the filter names that KVM does not report here."""

    features: tuple[DecodedMsr, ...]
    index_list: tuple[MsrIndexEntry, ...] | None
    #: MSRs the filter names (by MSR or bit name) that are in kvmprobe's tables but absent
    known_absent: tuple[int, ...]

    @property
    def empty(self) -> bool:
        return not self.features and not self.index_list


def select(a: MsrAnalysis, text: str | None) -> Selection:
    """Apply ``kvmprobe msr FILTER``: an MSR number (0x10a), part of an MSR name
    (arch_capabilities), or a bit name as Linux, QEMU or libvirt spell it (mds-no, vmx-ept);
    part of a bit name as a last resort."""
    if not text:
        return Selection(a.features, a.index_list, ())
    index = _parse_index(text)
    if index is not None:
        feats = tuple(d for d in a.features if d.index == index)
        idx = tuple(e for e in a.index_list or () if e.index == index)
        absent = () if feats or idx or not msr_name(index)[2] else (index,)
        return Selection(feats, idx if a.index_list is not None else None, absent)
    refs = lookup_bit(text)
    if refs:
        return _select_bits(a, [r.bit for r in refs], {i for r in refs for i in r.msrs})
    feats = tuple(d for d in a.features if _name_matches(text, (d.name, *d.aliases)))
    idx = tuple(e for e in a.index_list or () if _name_matches(text, (e.name, *e.aliases)))
    if feats or idx:
        return Selection(feats, idx if a.index_list is not None else None, ())
    named = [i for i, names in T.MSR_NAMES.items() if _name_matches(text, names)]
    if named:
        return Selection((), (), tuple(sorted(named)))
    rows = [row for rs in _rows().values() for row in rs if _name_matches(text, row.names())]
    if rows:
        layouts = {row.layout for row in rows}
        msrs = {i for lay in layouts for i in _msrs_of_layout().get(lay, ())}
        return _select_bits(a, rows, msrs)
    return Selection((), (), ())


def _select_bits(a: MsrAnalysis, rows: list[MsrBit], msrs: set[int]) -> Selection:
    feats = []
    for d in a.features:
        kept = tuple(b for b in d.bits if b.bit in rows)
        if kept:
            feats.append(replace(d, bits=kept, partial=True))
    present = {d.index for d in feats}
    absent = tuple(sorted(i for i in msrs if i not in present))
    return Selection(tuple(feats), (), absent)


# ---------------------------------------------------------------------------------------------
# The vulnerability picture in one line (for doctor and the bare summary)


@frozen
class MitigationPicture:
    """What a guest is told about speculation: which mitigations it may skip."""

    text: str
    #: False when kvmprobe cannot tell what a guest is told (no vCPU verification, or a
    #: vCPU check that could not be made): the text then says what is unknown
    known: bool


def mitigation_picture(snap: Snapshot) -> MitigationPicture | None:
    """The speculation picture a guest is given: the ARCH_CAPABILITIES immunity bits KVM
    advertises that a vCPU also takes (kvmprobe.kvm.verify). A bit a vCPU refuses is never
    told to a guest; without verification what a guest is told is unknown. None when the
    feature MSRs were not read (unknown is not a guess)."""
    from kvmprobe.analysis.verify import verification

    if snap.msr_feature_index_list is None:
        return None
    index = T.MSR_IA32_ARCH_CAPABILITIES
    if index not in snap.msr_feature_index_list:
        return MitigationPicture(
            "a guest is told of no immunity (KVM offers no ARCH_CAPABILITIES MSR); it applies "
            "every mitigation it knows",
            True,
        )
    value = snap.feature_msrs.get(index)
    if value is None:
        return None
    d = decode_msr(index, value, vendor_of(snap))
    v = verification(snap)
    taken: list[MsrBit] = []
    refused: list[MsrBit] = []
    unsure: list[MsrBit] = []
    for b in d.set_bits:
        if not b.bit.skip:
            continue
        answer = v.refused_msr_bit(index, b.bit.lo)
        (taken if answer is False else refused if answer is True else unsure).append(b.bit)
    tail = f"ARCH_CAPABILITIES {d.hex}"
    if d.remainder:
        tail += f", unknown bits {d.remainder:#x}"
    if not taken and not refused and not unsure:
        return MitigationPicture(
            f"a guest is told of no immunity ({tail}); it applies every mitigation", True
        )
    if unsure:
        names = ", ".join(b.name for b in unsure)
        why = "no vCPU verification in this snapshot" if not v.tried else "a vCPU check failed"
        return MitigationPicture(
            f"unknown: KVM advertises {names} ({tail}), but whether a guest can be told them "
            f"is unknown ({why})",
            False,
        )
    if not taken:
        names = ", ".join(b.name for b in refused)
        return MitigationPicture(
            f"a guest is told of no immunity: KVM advertises {names} ({tail}), but a vCPU "
            "refuses those bits, so the guest applies every mitigation",
            True,
        )
    skips = ", ".join(b.skip or b.name for b in taken)
    text = f"a guest may skip mitigations for: {skips} ({tail})"
    if refused:
        text += f"; a vCPU refuses {', '.join(b.name for b in refused)}"
    return MitigationPicture(text, True)


def mitigation_summary(snap: Snapshot) -> str | None:
    """``mitigation_picture``'s sentence (None when the feature MSRs were not read)."""
    picture = mitigation_picture(snap)
    return None if picture is None else picture.text
