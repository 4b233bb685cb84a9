"""``kvmprobe caps``: every KVM capability with its decoded value."""

from __future__ import annotations

from kvmprobe.commands.common import Invocation, get_snapshot
from kvmprobe.errors import ExitStatus, KvmprobeError
from kvmprobe.limits import DEFAULT_DEVICE
from kvmprobe.render.output import emit


def caps(
    inv: Invocation,
    name_filter: str | None = None,
    include_zero: bool = False,
    arch: str | None = None,
    as_json: bool = False,
    from_file: str | None = None,
    device: str = DEFAULT_DEVICE,
) -> None:
    """Every KVM capability (KVM_CHECK_EXTENSION) with its decoded value.

    Values are shown for the /dev/kvm fd, a fresh VM fd, and a VM fd with a split irqchip.
    NAME-FILTER is a case-insensitive substring of the name (with or without KVM_CAP_), or a
    capability number; the capabilities it names are listed whatever they answered (0 too).
    Capabilities answered non-zero are always listed; --all adds the known ones answered 0 for
    this host's architecture (JSON: for every architecture, unless --arch names one).
    """
    from kvmprobe.analysis.caps import cap_rows

    named = bool(name_filter)  # the capabilities named are the answer, zeros included
    if not (include_zero or named):
        inv.warn_unused({"arch": "without --all or a NAME-FILTER (only they list zeros)"})
        arch = None
    snap = get_snapshot(inv, from_file, device, full=False)
    rows = cap_rows(snap, name_filter, include_zero or named)
    if name_filter and not rows:
        raise KvmprobeError(
            f"no capability matches {name_filter!r}",
            "give part of a KVM_CAP_* name (e.g. x2apic) or a number; "
            "'kvmprobe caps --all' lists them all",
            ExitStatus.USAGE,
        )
    if as_json:
        from kvmprobe.render import json as rj

        if arch not in (None, "all"):
            from kvmprobe.render.caps_report import arch_shown
            from kvmprobe.vocab import CapArch

            rows = [r for r in rows if arch_shown(r, CapArch(arch))]
        emit(rj.dumps(rj.document("caps", snap, rj.caps_body(rows, include_zero))))
    elif rows:
        from kvmprobe.render.caps_report import caps_lines

        lines = caps_lines(snap, rows, inv.term(), include_zero=include_zero or named,
                           arch=arch, filtered=named)  # fmt: skip
        inv.emit_lines(lines)
