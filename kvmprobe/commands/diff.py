"""``kvmprobe diff``: can a guest started on host A run on host B?"""

from __future__ import annotations

from kvmprobe.commands.common import (
    Invocation,
    exit_with,
    get_snapshot,
    load_snapshot,
    parse_exits,
    parse_require,
    print_require,
    require_exit,
    stdin_twice,
)
from kvmprobe.errors import ExitStatus
from kvmprobe.limits import DEFAULT_DEVICE
from kvmprobe.render.output import emit
from kvmprobe.vocab import Irqchip


def diff(
    inv: Invocation,
    a_file: str,
    b_file: str | None = None,
    irqchip: str = Irqchip.KERNEL.value,
    disable_exits: str | None = None,
    require: str | None = None,
    as_json: bool = False,
    device: str = DEFAULT_DEVICE,
) -> None:
    """Can a guest started on host A run on host B? A and B are recorded snapshots; without B,
    B is this host's live device.

    Compares everything a guest sees or a migration needs, in the set-up named by --irqchip
    and --disable-exits: the effective CPUID features (what a guest from A loses on B, what B
    adds), the vendor, leaf maxima, MAXPHYADDR and GuestPhysBits, PMU counters, the XCR0 mask
    and every XSAVE component's size and offset, the capabilities VMMs use to save and restore
    a guest (TSC scaling, X2APIC_API, XSAVE2...), the MSR index list and the ARCH_CAPABILITIES
    bits. Unknown evidence is never taken as equal. Exit status: 0 when B can take A's
    guests, 5 when not (or when --require is not met on A or B).
    """
    from kvmprobe.analysis.diff import diff as compare
    from kvmprobe.analysis.profile import build
    from kvmprobe.analysis.quirks import Options

    reqs = parse_require(require)
    opts = Options(irqchip=Irqchip(irqchip), disable_exits=parse_exits(disable_exits))
    if a_file == b_file == "-":
        raise stdin_twice()
    if b_file:
        inv.warn_unused({"device": "when B is given (both sides are snapshots)"})
    a_snap = load_snapshot(a_file, "diff")
    b_snap = load_snapshot(b_file, "diff") if b_file else get_snapshot(inv, None, device)
    pa, pb = build(a_snap, opts), build(b_snap, opts)
    result = compare(pa, pb)
    required = None
    if reqs is not None:
        from kvmprobe.analysis.guest import profile_subject
        from kvmprobe.analysis.require import check

        required = [check(reqs, profile_subject(pa)), check(reqs, profile_subject(pb))]
    if as_json:
        from kvmprobe.render import json as rj

        emit(rj.dumps(rj.diff_document(result, (a_snap, b_snap), required)))
    else:
        from kvmprobe.render.diff_report import diff_lines

        inv.emit_lines(diff_lines(inv.term(), result))
        print_require(inv, required)
    require_exit(required, as_json, ("A", "B"))
    if not result.can_take:
        exit_with(int(ExitStatus.CHECK_FAILED))
