"""The rows of the feature MSRs' layouts and the MSRs' names, from the generated tables
(``kvmprobe.tables.msr_data``); re-exported by kvmprobe.analysis.msr, which decodes values.

Apart from the decoding so that naming the bits of a refused MSR (``analysis.verify``, in
every JSON document of a host whose vCPU refuses one) does not create the decoding's classes.
Pure: no I/O.
"""

from __future__ import annotations

from functools import cache

from kvmprobe.frozen import frozen
from kvmprobe.tables import msr_data as T


@frozen
class MsrBit:
    """One row of a feature MSR's layout: a bit (lo == hi) or a field."""

    layout: str
    lo: int
    hi: int
    #: the Linux macro (ARCH_CAP_MDS_NO, VMX_FEATURE_EPT ...), None when only QEMU names it
    kernel_name: str | None
    #: the /proc/cpuinfo "vmx flags" name, None when hidden or not a VMX control
    cpuinfo_name: str | None
    qemu_name: str | None
    libvirt_name: str | None
    #: short display name (kernel name without its prefix, else QEMU's)
    name: str
    #: what it means for a guest (our words)
    description: str
    #: ARCH_CAPABILITIES immunity bits: the mitigation a guest may skip when set
    skip: str | None
    #: a value-name table for fields (e.g. "x86_memtype"), else None
    value_table: str | None

    @property
    def feature_name(self) -> str:
        """The one name kvmprobe shows a feature-MSR bit by: QEMU's where it names this bit
        alone (mds-no), else the display name in lower case with dashes (its-no); both are
        found by ``analysis.msr.lookup_bit``."""
        from kvmprobe.analysis.msr import lookup_bit

        if self.qemu_name and len(lookup_bit(self.qemu_name)) == 1:
            return self.qemu_name
        return self.name.lower().replace("_", "-")

    @property
    def is_field(self) -> bool:
        return self.hi != self.lo

    @property
    def mask(self) -> int:
        return ((1 << (self.hi - self.lo + 1)) - 1) << self.lo

    @property
    def position(self) -> str:
        return f"{self.lo}" if self.lo == self.hi else f"{self.hi}:{self.lo}"

    def names(self) -> tuple[str, ...]:
        """Every spelling: display, kernel, QEMU, libvirt and cpuinfo names."""
        return tuple(
            n
            for n in (self.name, self.kernel_name, self.qemu_name, self.libvirt_name,
                      self.cpuinfo_name)
            if n
        )  # fmt: skip


@cache
def _rows() -> dict[str, tuple[MsrBit, ...]]:
    out: dict[str, list[MsrBit]] = {}
    for row in T.ROWS:
        bit = MsrBit(*row)
        out.setdefault(bit.layout, []).append(bit)
    return {k: tuple(sorted(v, key=lambda b: b.lo)) for k, v in out.items()}


def layout_rows(layout: str) -> tuple[MsrBit, ...]:
    return _rows().get(layout, ())


def msr_name(index: int) -> tuple[str, tuple[str, ...], bool]:
    """(name, aliases, known): the tables' names, an indexed family member such as
    ``MSR_IA32_MCx_CTL(3)``, or an ``MSR_0x...`` placeholder."""
    names = T.MSR_NAMES.get(index)
    if names:
        return names[0], tuple(names[1:]), True
    for family, base, stride, count in T.MSR_RANGES:
        offset = index - base
        if 0 <= offset < stride * count and offset % stride == 0:
            return f"{family}({offset // stride})", (), True
    return f"MSR_{index:#x}", (), False
