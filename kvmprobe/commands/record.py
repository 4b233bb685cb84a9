"""``kvmprobe record``: a snapshot of everything the live probe reads."""

from __future__ import annotations

from kvmprobe.commands.common import Invocation, say
from kvmprobe.limits import DEFAULT_DEVICE
from kvmprobe.render.output import emit
from kvmprobe.words import count


def record(
    inv: Invocation, output: str | None = None, force: bool = False, device: str = DEFAULT_DEVICE
) -> None:
    """Record a snapshot of everything the live probe reads (for --from and bug reports)."""
    from kvmprobe.analysis.guest_cpuid import effective_tables
    from kvmprobe.kvm.probe import record as record_snapshot

    if not output or output == "-":
        inv.warn_unused({"force": "without -o FILE"})
    snap = record_snapshot(device, effective_tables)
    text = snap.dumps()
    if not output or output == "-":
        emit(text)
        return
    from kvmprobe.render.output import write_new_file

    write_new_file(output, text, force=force)
    _warn_errors = len(snap.errors)
    msg = f"kvmprobe: wrote {output}"
    if _warn_errors:
        msg += f" ({count(_warn_errors, 'probe step')} failed; listed under 'errors')"
    say(msg)
