"""What the command bodies share: how a command was called (Invocation), its messages on
stderr, the snapshot it works on, and the --require and --disable-exits plumbing."""

from __future__ import annotations

import sys

from kvmprobe.errors import ExitStatus, KvmprobeError
from kvmprobe.render.output import emit
from kvmprobe.words import count, plural

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from kvmprobe.analysis.quirks import Options
    from kvmprobe.render.term import Term
    from kvmprobe.snapshot import Snapshot
    from kvmprobe.vocab import DisableExit


class Invocation:
    """How a command was called: the parameters given on its command line (the others have
    their defaults), each as the user would write it in a message (``--raw``,
    ``FEATURE-FILTER``), and the colour and --debug choices. Made by ``kvmprobe.cli`` from
    click's context, or by ``kvmprobe.quick`` from a plain command line."""

    __slots__ = ("_term", "debug", "given", "no_color")

    def __init__(self, given: dict[str, str], *, no_color: bool, debug: bool) -> None:
        self.given = given  # parameter name -> its spelling, for what the user gave
        self.no_color = no_color
        self.debug = debug
        self._term: Term | None = None

    def term(self) -> Term:
        """The terminal a text report is laid out for (width, colour), once per command."""
        if self._term is None:
            from kvmprobe.render.term import terminal

            self._term = terminal(no_color=self.no_color)
        return self._term

    def emit_lines(self, lines: Any) -> None:
        emit(self.term().render(lines))

    def warn_unused(self, why: dict[str, str]) -> None:
        """Name each option the user gave that has no effect here (``why``: parameter name ->
        the reason), so nothing is silently ignored."""
        for name, spelling in self.given.items():
            if name in why:
                warn(f"{spelling} has no effect {why[name]}")


def say(line: str) -> None:
    """One line on standard error; nothing when there is none (``2>&-``: Python then has no
    sys.stderr), so that a message cannot change a command's output or exit status."""
    err = sys.stderr
    if err is None:
        return
    err.write(line + "\n")
    err.flush()


def warn(message: str) -> None:
    say(f"kvmprobe: warning: {message}")


def report_error(e: KvmprobeError) -> int:
    """A KvmprobeError as every command ends with one: the line, the hint, the status."""
    from kvmprobe.render.text import safe

    say(f"kvmprobe: error: {safe(e.message)}")
    if e.hint:
        say(f"hint: {safe(e.hint)}")
    return int(e.status)


def exit_with(status: int) -> None:
    """End the command with ``status`` (its output is out)."""
    raise SystemExit(int(status))


def get_snapshot(
    inv: Invocation,
    from_file: str | None,
    device: str,
    full: bool = True,
    *,
    named_caps: bool = False,
) -> Snapshot:
    """The snapshot a command works on: a recorded file, or a live probe of the device. Failed
    probe steps are named on stderr: what depends on them is reported as unknown. The vCPU
    verification is part of every full probe: quirks read it (arch-capabilities-refused).
    ``named_caps``: the command reads capabilities by name only, so the live probe asks for
    the numbers the tables name and not the rest (about half of the capability ioctls)."""
    if from_file:
        from kvmprobe.snapshot import load

        inv.warn_unused({"device": "with --from (the snapshot is read instead)"})
        snap, warnings = load(from_file)  # a newer format's error already says "upgrade"
        for w in warnings:
            warn(f"{from_file}: {w}")
    else:
        from kvmprobe.kvm.probe import NAMED_CAP_LIMIT, probe

        if named_caps:
            snap = probe(device, full=full, cap_limit=NAMED_CAP_LIMIT)
        else:
            snap = probe(device, full=full)
    if snap.errors:
        from kvmprobe.render.text import failed_steps_line

        warn(failed_steps_line(snap.errors))
    return snap


def load_snapshot(path: str, reader: str = "--from") -> Snapshot:
    from kvmprobe.snapshot import load

    snap, warnings = load(path, reader)
    for w in warnings:
        warn(f"{path}: {w}")
    return snap


def stdin_twice() -> KvmprobeError:
    return KvmprobeError(
        "'-' (standard input) is given more than once: it can be read only once",
        "save all but one snapshot to files first",
        ExitStatus.USAGE,
    )


def parse_exits(value: str | None) -> frozenset[DisableExit]:
    """The exits --disable-exits names (a usage error for a name KVM does not have)."""
    from kvmprobe.vocab import DisableExit

    if not value:
        return frozenset()
    names = {v.strip().lower() for v in value.split(",") if v.strip()}
    unknown = names - set(DisableExit)
    if unknown:
        raise KvmprobeError(
            f"unknown exit {plural(len(unknown), 'name')}: {', '.join(sorted(unknown))}",
            f"choose from {', '.join(DisableExit)} (comma-separated)",
            ExitStatus.USAGE,
        )
    return frozenset(DisableExit(n) for n in names)


def warn_refused_exits(snap: Snapshot, opts: Options) -> tuple[tuple[DisableExit, ...], bool]:
    """Say where the set-up asked for cannot be had: exits KVM will not let a VMM disable.
    Returns them, and whether KVM_CAP_X86_DISABLE_EXITS could be read."""
    from kvmprobe.analysis import cpuid_query as cq

    refused, exits_known = cq.refused_exits(snap, opts.disable_exits)
    for x in refused:
        warn(
            f"--disable-exits {x}: "
            + (
                f"KVM_CAP_X86_DISABLE_EXITS does not allow disabling {x.upper()} exits here; "
                "analysed as if they stay enabled"
                if exits_known
                else "KVM_CAP_X86_DISABLE_EXITS could not be read; this exit may stay enabled"
            )
        )
    return tuple(refused), exits_known


def unknown_feature(name: str) -> KvmprobeError:
    """The usage error for a feature name or location kvmprobe cannot place, with the closest
    thing it knows as the hint."""
    from kvmprobe.analysis import cpuid_query as cq
    from kvmprobe.analysis.msr import lookup_bit, msr_name

    refs = lookup_bit(name)
    if refs:  # a feature-MSR bit (mds-no, vmx-ept): it has its own command
        ref = refs[0]
        where = ", ".join(f"{i:#x} {msr_name(i)[0]}" for i in ref.msrs) or "a feature MSR"
        return KvmprobeError(
            f"{name!r} is bit {ref.bit.position} of MSR {where}, not a CPUID feature",
            f"see 'kvmprobe msr {name}'",
            ExitStatus.USAGE,
        )
    problem = cq.location_problem(name)
    if problem is not None:
        return KvmprobeError(
            f"{name.strip()!r}: {problem}",
            "give a bit or a range within 0..31, such as 0x7.0.edx[29] or 0x80000008.0.eax[7:0]",
            ExitStatus.USAGE,
        )
    loc = cq.parse_location(name)
    if loc is not None and loc.subleaf is None:  # a bare number: an MSR's, perhaps
        from kvmprobe.analysis import cpuid as cp

        msr, _aliases, known = msr_name(loc.leaf)
        if known and not any(f.leaf == loc.leaf for f in cp.by_loc().values()):
            return KvmprobeError(
                f"{name.strip()!r} is not a CPUID leaf kvmprobe knows, but it is MSR {msr}",
                f"see 'kvmprobe msr {name.strip()}'",
                ExitStatus.USAGE,
            )
    if loc is not None:  # a well-formed location: what is there, never names "close" to it
        from kvmprobe.analysis import cpuid as cp

        where = name.strip()
        if any(loc.covers(f.leaf, f.subleaf, f.register, f.bit, f.bit) for f in cp.features()):
            return KvmprobeError(
                f"{where!r} holds several features; one is asked for here",
                f"'kvmprobe cpuid {where}' lists them; give one, e.g. by its name",
                ExitStatus.USAGE,
            )
        return KvmprobeError(
            f"kvmprobe knows no CPUID feature or value at {where}",
            "'kvmprobe cpuid --raw' lists the leaves KVM answers",
            ExitStatus.USAGE,
        )
    close = cq.suggestions(name)
    hint = (
        f"did you mean: {', '.join(close)}?"
        if close
        else "use a Linux name (x2apic), a QEMU or libvirt name (tsc-deadline, pclmuldq), a "
        "kernel name (X86_FEATURE_..., KVM_FEATURE_...), a feature-MSR bit (mds-no), a value "
        "(phys_addr_bits) or a location such as 0x1.0.ecx[24] or 0x40000001"
    )
    return KvmprobeError(f"unknown CPUID feature {name!r}", hint, ExitStatus.USAGE)


# -- --require -----------------------------------------------------------------------------------


def parse_require(text: str | None) -> Any:
    """The parsed --require LIST (None without it); an unknown name is a usage error."""
    if text is None:
        return None
    from kvmprobe.analysis.require import parse

    reqs, bad = parse(text)
    if bad:
        first = bad[0]
        names = ", ".join(repr(b.text) for b in bad)
        hint = (
            f"did you mean: {', '.join(first.suggestions)}?"
            if first.suggestions
            else "use a CPUID feature name (avx2, tsc-deadline, 0x7.0.ebx[5]), a feature-MSR bit "
            "(mds-no) or an x86-64 level (x86-64-v2)"
        )
        raise KvmprobeError(
            f"--require: unknown {plural(len(bad), 'name')} {names}", hint, ExitStatus.USAGE
        )
    if not reqs:
        raise KvmprobeError(
            "--require: the list is empty", "name at least one item, e.g. avx2", ExitStatus.USAGE
        )
    return reqs


def print_require(inv: Invocation, results: Any) -> None:
    if results is None:
        return
    from kvmprobe.render.guest_report import require_report

    inv.emit_lines(require_report(results, inv.term()))


def require_exit(results: Any, as_json: bool, sides: tuple[str, ...] = ()) -> None:
    """Exit status 5 when a requirement is not met, with one short line on stderr naming what
    is missing; why is in the report's Requirements section (with --json: in "require").
    ``sides`` names the subjects when there are several (diff: A and B)."""
    if results is None or all(r.met for r in results):
        return
    from kvmprobe.render.text import safe

    lacking: dict[str, list[str]] = {}
    for i, r in enumerate(results):
        for o in r.unmet:
            who = sides[i] if i < len(sides) else safe(r.subject)
            lacking.setdefault(o.requirement.label, []).append(who)
    many = len(results) > 1
    items = [f"{label} on {' and '.join(w)}" if many else label for label, w in lacking.items()]
    where = '"require" in the JSON' if as_json else '"Requirements" above'
    say(
        f"kvmprobe: {count(len(items), 'requirement')} not met: {', '.join(items)} "
        f"(why: see {where})"
    )
    exit_with(ExitStatus.CHECK_FAILED)
