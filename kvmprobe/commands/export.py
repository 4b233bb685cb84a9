"""``kvmprobe export``: the effective guest CPU in a format a VMM takes."""

from __future__ import annotations

import os

from kvmprobe.commands.common import (
    Invocation,
    get_snapshot,
    load_snapshot,
    parse_exits,
    say,
    stdin_twice,
    warn,
    warn_refused_exits,
)
from kvmprobe.errors import ExitStatus, KvmprobeError
from kvmprobe.limits import DEFAULT_DEVICE
from kvmprobe.render.output import emit
from kvmprobe.vocab import Irqchip

TYPE_CHECKING = False
if TYPE_CHECKING:
    from kvmprobe.analysis.guest_cpuid import GuestCpu
    from kvmprobe.analysis.quirks import Options
    from kvmprobe.snapshot import Snapshot

#: the formats FORMAT takes
EXPORT_FORMATS = ("cpuid2", "qemu", "firecracker", "libvirt")


def export(
    inv: Invocation,
    fmt: str,
    irqchip: str = Irqchip.KERNEL.value,
    disable_exits: str | None = None,
    with_opt_in: bool = False,
    cpuid_r: bool = False,
    as_json: bool = False,
    qemu_base: str = "model",
    output: str | None = None,
    force: bool = False,
    from_files: tuple[str, ...] = (),
    device: str = DEFAULT_DEVICE,
) -> None:
    """The effective guest CPU in a format a VMM takes.

    FORMAT cpuid2: the KVM_SET_CPUID2 table as JSON (--cpuid-r: as 'cpuid -r' text).
    qemu: a '-cpu' argument QEMU accepts with enforce (comment lines say what it cannot, and
    which QEMU version's model list it assumes).
    firecracker: a Firecracker custom CPU template (JSON, Firecracker's own format).
    libvirt: a libvirt <cpu mode='custom' match='exact'> element (XML comments say what it
    cannot). --json: qemu and libvirt as a kvmprobe JSON document.

    With several --from: the baseline of those snapshots, in every format.
    """
    from kvmprobe.analysis import effective
    from kvmprobe.analysis.guest_cpuid import guest_cpu_from_analysis
    from kvmprobe.analysis.quirks import Options

    if from_files.count("-") > 1:
        raise stdin_twice()
    if len(from_files) > 1 and qemu_base == "host":
        raise KvmprobeError(
            "--qemu-base host cannot export a baseline: QEMU's host model differs per host",
            "drop --qemu-base host (a named model, plus and minus features, fits every host)",
            ExitStatus.USAGE,
        )
    if cpuid_r and fmt != "cpuid2":
        raise KvmprobeError(
            "--cpuid-r applies to the cpuid2 format only", "drop --cpuid-r", ExitStatus.USAGE
        )
    if as_json and (fmt == "firecracker" or cpuid_r):
        raise KvmprobeError(
            "--json applies to qemu, libvirt and cpuid2 (without --cpuid-r)",
            "a Firecracker template is Firecracker's own JSON already; drop --json",
            ExitStatus.USAGE,
        )
    if force and not output:
        warn("--force has no effect without -o FILE")
    unused = (
        {"device": "with --from (the snapshots are read instead)"} if len(from_files) > 1 else {}
    )
    if fmt != "qemu":
        unused["qemu_base"] = f"on the {fmt} format"
    inv.warn_unused(unused)
    seen: set[str] = set()
    for f in from_files:
        key = os.path.realpath(f) if f != "-" else f
        if key in seen:
            warn(f"{f} is given more than once (the baseline is the same, its host count not)")
        seen.add(key)
    opts = Options(irqchip=Irqchip(irqchip), disable_exits=parse_exits(disable_exits))
    if len(from_files) > 1:
        from kvmprobe.analysis.baseline import BaselineBuilder
        from kvmprobe.analysis.guest_cpuid import guest_cpu_from_baseline
        from kvmprobe.analysis.profile import build

        builder = BaselineBuilder()
        guests = []
        snaps = [load_snapshot(f) for f in from_files]
        for one in snaps:
            builder.add(build(one, opts))
            g = guest_cpu_from_analysis(effective.analyse(one, opts), with_opt_in=with_opt_in)
            _try_exported_table(one, g, opts, live=False, device=device)
            guests.append(g)
        snap = snaps[0]
        guest = guest_cpu_from_baseline(builder.finish(), guests)
    else:
        snap = get_snapshot(inv, from_files[0] if from_files else None, device)
        warn_refused_exits(snap, opts)
        guest = guest_cpu_from_analysis(effective.analyse(snap, opts), with_opt_in=with_opt_in)
        snap = _try_exported_table(snap, guest, opts, live=not from_files, device=device)
    if fmt == "qemu":
        from kvmprobe.analysis.export import qemu_host, qemu_model
        from kvmprobe.render.export_qemu import qemu_text

        q = qemu_host(guest) if qemu_base == "host" else qemu_model(guest)
        if as_json:
            from kvmprobe.render.export_qemu import qemu_json

            text = qemu_json(snap, guest, q)
        else:
            text = qemu_text(guest, q, from_files)
    elif fmt == "firecracker":
        from kvmprobe.analysis.export import firecracker_cpuid, firecracker_msrs
        from kvmprobe.render.export_firecracker import firecracker_json

        text = firecracker_json(firecracker_cpuid(guest), firecracker_msrs(guest))
    elif fmt == "libvirt":
        from kvmprobe.analysis.export import libvirt_custom
        from kvmprobe.render.export_libvirt import libvirt_json, libvirt_xml

        lc = libvirt_custom(guest)
        text = libvirt_json(snap, guest, lc) if as_json else libvirt_xml(guest, lc)
    else:
        from kvmprobe.render import export_cpuid2 as ec

        text = ec.cpuid_r_text(guest) if cpuid_r else ec.cpuid2_json(snap, guest)
    if fmt == "firecracker" or cpuid_r:  # formats with no room for comments
        from kvmprobe.analysis.guest_cpuid import baseline_notes

        for note in baseline_notes(guest):
            say(f"kvmprobe: note: {note}")
    if not output or output == "-":
        emit(text)
        return
    from kvmprobe.render.output import write_new_file

    write_new_file(output, text, force=force)
    say(f"kvmprobe: wrote {output}")


def _try_exported_table(
    snap: Snapshot, guest: GuestCpu, opts: Options, *, live: bool, device: str
) -> Snapshot:
    """Never hand out a table a vCPU refuses: live, the exported table itself is tried on a vCPU
    of a VM set up for its irqchip mode; from a snapshot, what ``record`` tried for that mode
    counts when the export asks for the plain table it tried (``guest_cpuid.vcpu_calls``)."""
    from kvmprobe.analysis.guest_cpuid import vcpu_calls
    from kvmprobe.analysis.verify import Refusal

    if live:
        from kvmprobe.kvm.probe import try_tables

        snap = try_tables(snap, {opts.irqchip: guest.entries}, device)
    refused = next((a for a in vcpu_calls(snap, guest) if a.accepted is False), None)
    if refused is not None:
        err = refused.errno_name or "refused"
        raise KvmprobeError(
            f"a vCPU refused the table this export would give: {Refusal(refused, ()).what}: {err}",
            "see 'kvmprobe doctor' and 'kvmprobe cpuid --json' (verification) for what KVM refused",
            ExitStatus.CHECK_FAILED,
        )
    return snap
