"""Capability rows for a snapshot: which caps to show, their values per fd scope, decoded."""

from __future__ import annotations

from dataclasses import dataclass

from kvmprobe import caps as capdec
from kvmprobe.snapshot import SCOPES, Snapshot


@dataclass(frozen=True)
class CapRow:
    info: capdec.CapInfo
    values: dict[str, int | None]  # scope -> value (None: scope not probed)
    decoded: dict[str, capdec.DecodedValue]  # scope -> decoded value (probed scopes only)

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
    that answered non-zero always appear, under a placeholder name."""
    numbers: set[int] = set()
    for values in snap.caps.values():
        if values:
            numbers.update(values)
    if include_zero:
        numbers.update(c.number for c in capdec.known_caps())
    rows: list[CapRow] = []
    for number in sorted(numbers):
        info = capdec.cap_info(number)
        if needle and not capdec.matches(info, needle):
            continue
        values = {scope: snap.cap(number, scope) for scope in SCOPES}
        decoded = {scope: capdec.decode(number, v) for scope, v in values.items() if v is not None}
        rows.append(CapRow(info=info, values=values, decoded=decoded))
    return rows
