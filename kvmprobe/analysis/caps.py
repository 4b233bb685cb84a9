"""Decode KVM capability numbers and the values KVM_CHECK_EXTENSION returns for them.

Pure functions over the generated tables (``kvmprobe.tables.caps_data``) and our hand-written
meanings (``kvmprobe.knowledge.caps``): ints in, frozen dataclasses out, no I/O.

Decoding never loses information: every number gets a CapInfo (unknown numbers get a
``KVM_CAP_<n>`` placeholder), bits no known constant explains are kept as ``remainder``, and the
raw value always travels in ``DecodedValue.value``.
"""

from __future__ import annotations

from kvmprobe.frozen import field, frozen
from kvmprobe.knowledge.caps import DESCRIPTIONS, SCALAR_KINDS, UNITS
from kvmprobe.limits import CAP_LIMIT
from kvmprobe.snapshot import Snapshot
from kvmprobe.tables.caps_data import CAP_VALUE_KIND, CAPS, GROUP_PREFIX, GROUPS
from kvmprobe.vocab import Scope

__all__ = [
    "KINDS",
    "PROBE_LIMIT",
    "CapInfo",
    "CapRow",
    "DecodedValue",
    "cap_by_name",
    "cap_info",
    "cap_rows",
    "decode",
    "known_caps",
    "matches",
    "short_flag",
]

#: Capability numbers 0..PROBE_LIMIT-1 are probed live (the tables end far below this).
PROBE_LIMIT = CAP_LIMIT

#: Every value CapInfo.kind can take.
KINDS = ("boolean", "bitmask", "values", "count", "size", "scalar", "unknown")

_PREFIX = "KVM_CAP_"

# Display only: the first two KVM_X2APIC flags carry an extra "API_" the later two lack.
_EXTRA_PREFIXES: dict[str, tuple[str, ...]] = {"KVM_X2APIC": ("KVM_X2APIC_API_",)}

_NUMBER_BY_NAME: dict[str, int] = {name: number for number, (name, _arch) in CAPS.items()}


@frozen
class CapInfo:
    """What kvmprobe knows about one capability number."""

    number: int
    #: "KVM_CAP_X2APIC_API"; numbers the tables don't know get "KVM_CAP_<n>"
    name: str
    known: bool
    #: "generic", "x86", "s390", "powerpc", "arm64", "riscv", "mips", "loongarch"; "unknown"
    arch: str
    #: our one-line meaning; "" when we have none
    description: str
    #: one of KINDS: how to read the value KVM_CHECK_EXTENSION returns
    kind: str
    #: unit of a count/size/scalar value ("bytes", "vCPUs", ...), else None
    unit: str | None
    #: the constant group a bitmask/values cap decodes with (e.g. "KVM_X2APIC"), else None
    group: str | None = field(default=None, compare=False)


@frozen
class DecodedValue:
    """A capability value, decoded; ``value`` is always the raw number."""

    value: int
    #: full constant names set in the value, in bit order
    names: tuple[str, ...]
    #: bits no known constant explains (0 when none); never dropped
    remainder: int
    #: short human text: "HLT | PAUSE | CSTATE", "DEFAULT_VM", "4096 bytes", "yes", "no"
    text: str
    #: the CapInfo.kind the value was decoded as ("" when built by hand)
    kind: str = field(default="", compare=False)


def _kind_of(name: str) -> tuple[str, str | None]:
    value_kind = CAP_VALUE_KIND.get(name)
    if value_kind is not None:
        kind, group = value_kind
        if kind == "scalar":
            return SCALAR_KINDS.get(name, "scalar"), None
        return kind, group
    if name in SCALAR_KINDS:
        return SCALAR_KINDS[name], None
    # Every other cap answers 0 or 1 (or, rarely, another "yes" number; decode shows it).
    return "boolean", None


_INFO_CACHE: dict[int, CapInfo] = {}


def cap_info(number: int) -> CapInfo:
    """Describe capability ``number``; unknown numbers get a placeholder, never an error."""
    info = _INFO_CACHE.get(number)
    if info is not None:
        return info
    entry = CAPS.get(number)
    if entry is None:
        info = CapInfo(
            number=number,
            name=f"{_PREFIX}{number}",
            known=False,
            arch="unknown",
            description="",
            kind="unknown",
            unit=None,
        )
    else:
        name, arch = entry
        kind, group = _kind_of(name)
        info = CapInfo(
            number=number,
            name=name,
            known=True,
            arch=arch,
            description=DESCRIPTIONS.get(name, ""),
            kind=kind,
            unit=UNITS.get(name),
            group=group,
        )
    _INFO_CACHE[number] = info
    return info


def _normalise(name: str) -> str:
    name = name.strip().upper().replace("-", "_")
    return name if name.startswith(_PREFIX) else _PREFIX + name


def cap_by_name(name: str) -> CapInfo | None:
    """Exact, case-insensitive lookup, with or without the ``KVM_CAP_`` prefix.

    ``"x2apic_api"``, ``"KVM_CAP_X2APIC_API"`` and ``"kvm_cap_x2apic_api"`` all find cap 129.
    A placeholder name such as ``"KVM_CAP_300"`` finds the placeholder for a number the tables
    don't know; ``None`` when nothing has that name.
    """
    full = _normalise(name)
    number = _NUMBER_BY_NAME.get(full)
    if number is not None:
        return cap_info(number)
    digits = full[len(_PREFIX) :]
    if digits.isdecimal() and digits.isascii():
        info = cap_info(int(digits))
        if info.name == full:  # "KVM_CAP_129" is not a name: 129 is KVM_CAP_X2APIC_API
            return info
    return None


def known_caps() -> list[CapInfo]:
    """Every capability in the tables, sorted by number."""
    return [cap_info(number) for number in sorted(CAPS)]


def _parse_number(text: str) -> int | None:
    text = text.strip().lower()
    if text.isdecimal() and text.isascii():
        return int(text)
    if text.startswith("0x") and len(text) > 2:
        try:
            return int(text, 16)
        except ValueError:
            return None
    return None


def matches(info: CapInfo, needle: str) -> bool:
    """Does ``needle`` select this capability?

    A number (``"129"``, ``"0x81"``) matches that cap number only. Anything else is a
    case-insensitive substring of the name, with or without the ``KVM_CAP_`` prefix ("-" may stand
    for "_"). An empty needle matches everything.
    """
    number = _parse_number(needle)
    if number is not None:
        return info.number == number
    return needle.strip().upper().replace("-", "_") in info.name.upper()


def short_flag(name: str, group: str) -> str:
    """The readable tail of a constant: ``KVM_X86_DISABLE_EXITS_HLT`` -> ``HLT``."""
    prefixes = (*_EXTRA_PREFIXES.get(group, ()), GROUP_PREFIX.get(group, ""), group + "_")
    for prefix in prefixes:
        if prefix and name.startswith(prefix) and len(name) > len(prefix):
            return name[len(prefix) :]
    return name


def _format_number(value: int, kind: str, unit: str | None) -> str:
    if value == 0 or unit is None:
        return str(value)
    if kind == "scalar" and " " in unit:  # a label such as "page offset", not a unit
        return f"{value} ({unit})"
    return f"{value} {unit}"


def _decode_bits(value: int, group: str, kind: str) -> DecodedValue:
    names: list[str] = []
    known = 0
    for const, position in GROUPS[group]:
        bit = 1 << position
        known |= bit
        if value & bit:
            names.append(const)
    remainder = value & ~known
    parts = [short_flag(const, group) for const in names]
    if remainder:
        parts.append(f"+{remainder:#x} unknown")
    return DecodedValue(value, tuple(names), remainder, " | ".join(parts) or "0", kind)


def decode(number: int, value: int) -> DecodedValue:
    """Decode what KVM_CHECK_EXTENSION(``number``) returned.

    - bitmask / values caps: the constants whose bits are set, in bit order, plus any unexplained
      bits as ``remainder`` (text ``"HLT | PAUSE | +0x40 unknown"``); 0 gives ``"0"``.
    - booleans: ``"no"`` / ``"yes"``; any other positive answer keeps its number as the text.
    - count / size / scalar: the number with its unit (``"4096 bytes"``); 0 gives ``"0"``.
    - unknown numbers: the number itself.

    A negative value (the kernel never returns one) is kept as a raw number.
    """
    info = cap_info(number)
    kind = info.kind
    if value < 0:
        return DecodedValue(value, (), 0, str(value), kind)
    if kind in ("bitmask", "values") and info.group is not None:
        return _decode_bits(value, info.group, kind)
    if kind == "boolean":
        text = "no" if value == 0 else "yes" if value == 1 else str(value)
        return DecodedValue(value, (), 0, text, kind)
    return DecodedValue(value, (), 0, _format_number(value, kind, info.unit), kind)


@frozen
class CapRow:
    """One capability with its value and decoding in each scope probed."""

    info: CapInfo
    values: dict[Scope, int | None]  # scope -> value (None: scope not probed, or check failed)
    decoded: dict[Scope, DecodedValue]  # scope -> decoded value (probed scopes only)
    #: scope -> why the value is unknown there ("EIO: Input/output error"), for checks that
    #: failed (a scope that could not be probed at all is a probe error of its own)
    failures: dict[Scope, str] = field(default_factory=dict)

    @property
    def differs(self) -> bool:
        """True when the probed scopes disagree (e.g. X2APIC_API 15 on /dev/kvm, 11 on a VM)."""
        seen = {v for v in self.values.values() if v is not None}
        return len(seen) > 1

    @property
    def supported(self) -> bool:
        return any(v for v in self.values.values())


def cap_rows(snap: Snapshot, needle: str | None = None, include_zero: bool = False) -> list[CapRow]:
    """Rows for every cap answered non-zero in some scope (or every known cap with
    ``include_zero``), filtered by a name/number needle, in cap-number order. Unknown numbers
    that answered non-zero always appear, under a placeholder name; so does a number the needle
    names within the probed range, whatever it answered (the row is the answer)."""
    numbers: set[int] = set()
    for answered in snap.caps.values():
        if answered:
            numbers.update(answered)
    named = _parse_number(needle) if needle else None
    if named is not None and named < snap.cap_limit:
        numbers.add(named)
    if snap.errors:  # a failed check is listed too (1,536 look-ups: only when one failed)
        numbers.update(
            n for n in range(snap.cap_limit) for scope in Scope if snap.cap_failure(n, scope)
        )
    if include_zero:
        numbers.update(c.number for c in known_caps())
    rows: list[CapRow] = []
    scopes = tuple(Scope)
    per_scope = [(scope, snap.caps.get(scope)) for scope in scopes]
    for number in sorted(numbers):
        info = cap_info(number)
        if needle and not matches(info, needle):
            continue
        failures: dict[Scope, str] = {}
        if number >= snap.cap_limit:  # never asked: unknown, not 0 (as snap.cap says)
            values = dict.fromkeys(scopes, None)
            failures = {
                scope: f"not asked: the probe asked capabilities 0..{snap.cap_limit - 1}"
                for scope, v in per_scope
                if v is not None
            }
        elif snap.errors:
            values = {scope: snap.cap(number, scope) for scope in scopes}
            failures = {
                scope: f"{e.errno_name or 'failed'}: {e.message}"
                for scope in scopes
                if (e := snap.cap_failure(number, scope)) is not None
            }
        else:  # no check failed: snap.cap's answer without looking for a failure each time
            values = {s: None if v is None else v.get(number, 0) for s, v in per_scope}
        # scopes mostly answer alike: one decoding per distinct value (they are immutable)
        by_value: dict[int, DecodedValue] = {}
        decoded: dict[Scope, DecodedValue] = {}
        for scope, v in values.items():
            if v is not None:
                d = by_value.get(v)
                if d is None:
                    d = by_value[v] = decode(number, v)
                decoded[scope] = d
        rows.append(CapRow(info=info, values=values, decoded=decoded, failures=failures))
    return rows
