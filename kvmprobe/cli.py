"""Command-line interface: options and wiring only. Heavy imports happen inside commands."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from kvmprobe import __version__
from kvmprobe.completion import cap_names, feature_names, require_list, schema_names
from kvmprobe.errors import ExitStatus, KvmprobeError
from kvmprobe.limits import DEFAULT_DEVICE
from kvmprobe.render.output import emit
from kvmprobe.vocab import CapArch, DisableExit, Irqchip
from kvmprobe.words import count, plural

if TYPE_CHECKING:
    from kvmprobe.analysis.guest_cpuid import GuestCpu
    from kvmprobe.analysis.msr import BitRef
    from kvmprobe.analysis.quirks import Options
    from kvmprobe.snapshot import Snapshot


class KvmprobeGroup(click.Group):
    """Turns KvmprobeError into one line plus a hint and the fixed exit status.

    Subcommands registered with lazy_command are built (their options and arguments created)
    the first time click looks them up: click's lazily loading group (list_commands and
    get_command), so a run pays for its own command's options only."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands: dict[str, Callable[[], click.Command]] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        build = self.lazy_commands.pop(cmd_name, None)
        if build is not None:
            self.add_command(build(), cmd_name)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KvmprobeError as e:
            debug = bool(ctx.params.get("debug") or ctx.meta.get("kvmprobe.debug"))
            if debug:
                raise
            from kvmprobe.render.text import safe

            click.echo(f"kvmprobe: error: {safe(e.message)}", err=True)
            if e.hint:
                click.echo(f"hint: {safe(e.hint)}", err=True)
            ctx.exit(int(e.status))
        except KeyboardInterrupt:
            if ctx.params.get("debug") or ctx.meta.get("kvmprobe.debug"):
                raise
            click.echo("kvmprobe: interrupted", err=True)
            ctx.exit(int(ExitStatus.INTERRUPTED))
        except BrokenPipeError as e:
            # The reader went away (e.g. piped into head). Not an OSError any more, so that
            # click does not turn it into a status of its own; kvmprobe.entry ends it quietly.
            raise ReaderGone() from e


class KvmprobeCommand(click.Command):
    """A subcommand whose usage errors always name it: click's parser reports a missing
    option value ("--from" with nothing after it) without the command's context, so the
    hint would point at the top-level help instead of this command's."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as e:
            if e.ctx is None:
                e.ctx = ctx
            raise


class ReaderGone(Exception):
    """Standard output's reader closed the pipe before everything was written."""


def _warn(message: str) -> None:
    click.echo(f"kvmprobe: warning: {message}", err=True)


def get_snapshot(from_file: str | None, device: str, full: bool = True) -> Snapshot:
    """The snapshot a command works on: a recorded file, or a live probe of the device. Failed
    probe steps are named on stderr: what depends on them is reported as unknown. The vCPU
    verification is part of every full probe: quirks read it (arch-capabilities-refused)."""
    if from_file:
        from kvmprobe.snapshot import load

        ctx = click.get_current_context(silent=True)
        if ctx is not None:
            _warn_unused(ctx, {"device": "with --from (the snapshot is read instead)"})
        snap, warnings = load(from_file)  # a newer format's error already says "upgrade"
        for w in warnings:
            _warn(f"{from_file}: {w}")
    else:
        from kvmprobe.kvm.probe import probe

        snap = probe(device, full=full)
    if snap.errors:
        from kvmprobe.render.text import failed_steps_line

        _warn(failed_steps_line(snap.errors))
    return snap


def _set_flag(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.find_root().meta[f"kvmprobe.{param.name}"] = True
    return value


def common_options(f: Any) -> Any:
    """--no-color and --debug are accepted after the subcommand name as well."""
    f = click.option(
        "--no-color", is_flag=True, expose_value=False, callback=_set_flag,
        help="No colour (also: the NO_COLOR variable).",
    )(f)  # fmt: skip
    return click.option(
        "--debug", is_flag=True, expose_value=False, callback=_set_flag,
        help="Show tracebacks instead of one-line errors.",
    )(f)  # fmt: skip


from_option = click.option(
    "--from",
    "from_file",
    metavar="FILE",
    help="Work on a snapshot recorded with 'kvmprobe record' instead of the live device.",
)
device_option = click.option(
    "--device",
    default=DEFAULT_DEVICE,
    show_default=True,
    metavar="PATH",
    help="KVM device node to probe.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON to stdout.")
irqchip_option = click.option(
    "--irqchip",
    type=click.Choice([m.value for m in Irqchip]),
    default=Irqchip.KERNEL.value,
    show_default=True,
    help="Where the VMM puts the interrupt controller (LAPIC/IOAPIC/PIC).",
)
exits_option = click.option(
    "--disable-exits",
    metavar="LIST",
    help=f"Exits the VMM disables with KVM_CAP_X86_DISABLE_EXITS: {','.join(DisableExit)}.",
)


@click.group(
    cls=KvmprobeGroup,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.option("--no-color", is_flag=True, help="No colour (also: the NO_COLOR variable).")
@click.version_option(__version__, prog_name="kvmprobe")
@click.pass_context
def main(ctx: click.Context, debug: bool, no_color: bool) -> None:
    """Ask /dev/kvm what a KVM guest on this host can really be given, and explain why.

    Without a command: a short summary of this host. Commands: caps, cpuid, doctor, record,
    msr, hyperv, fact, metrics, nfd, schema, export; for fleets of recorded hosts: diff,
    baseline.
    """
    if ctx.invoked_subcommand is None:
        _summary(DEFAULT_DEVICE)


def lazy_command(
    *decorators: Any, name: str | None = None, short_help: str | None = None
) -> Callable[[Any], Any]:
    """Register the function as a subcommand of ``main`` whose click decorators (given top to
    bottom, as they would be stacked) are applied when the command is first looked up.
    ``short_help``: the phrase ``kvmprobe --help`` lists it with (whole: under 45 characters,
    or click cuts the docstring's first sentence short with '...')."""

    def register(f: Any) -> Any:
        key = name or f.__name__

        def build() -> click.Command:
            cmd = f
            for d in reversed(decorators):
                cmd = d(cmd)
            return click.command(key, cls=KvmprobeCommand, short_help=short_help)(cmd)

        main.lazy_commands[key] = build
        return f

    return register


def _summary(device: str) -> None:
    """Usable or not, API version, capability and feature counts, where to look next."""
    from kvmprobe.analysis.effective import analyse
    from kvmprobe.render.summary import summary_text

    try:
        snap = get_snapshot(None, device)
    except KvmprobeError as e:
        e.hint = (e.hint + "; " if e.hint else "") + "run 'kvmprobe doctor' for a full diagnosis"
        raise
    from kvmprobe.render.term import terminal

    analysis = analyse(snap) if snap.supported_cpuid is not None else None
    click.echo(summary_text(snap, analysis, terminal()))


@lazy_command(
    common_options,
    click.argument(
        "name_filter", required=False, metavar="[NAME-FILTER]", shell_complete=cap_names
    ),
    click.option("--all", "include_zero", is_flag=True, help="Also list known caps answered 0."),
    click.option(
        "--arch",
        type=click.Choice([*(a.value for a in CapArch if a is not CapArch.GENERIC), "all"]),
        help="With --all or a NAME-FILTER, whose caps answered 0 to list besides the generic "
        "ones: this host's architecture (default) or another, or all.",
    ),
    json_option,
    from_option,
    device_option,
    click.pass_context,
    short_help="KVM capabilities, each value decoded",
)
def caps(
    ctx: click.Context,
    name_filter: str | None,
    include_zero: bool,
    arch: str | None,
    as_json: bool,
    from_file: str | None,
    device: str,
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
        _warn_unused(ctx, {"arch": "without --all or a NAME-FILTER (only they list zeros)"})
        arch = None
    snap = get_snapshot(from_file, device, full=False)
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

            rows = [r for r in rows if arch_shown(r, CapArch(arch))]
        emit(rj.dumps(rj.document("caps", snap, rj.caps_body(rows, include_zero))))
    elif rows:
        from kvmprobe.render.caps_report import caps_lines

        lines = caps_lines(snap, rows, _term(ctx), include_zero=include_zero or named,
                           arch=arch, filtered=named)  # fmt: skip
        _emit_lines(ctx, lines)


@lazy_command(
    common_options,
    click.option("-o", "--output", metavar="FILE", help="Write here instead of stdout."),
    click.option("--force", is_flag=True, help="Overwrite FILE if it exists."),
    device_option,
    short_help="Save a snapshot for --from and bug reports",
)
def record(output: str | None, force: bool, device: str) -> None:
    """Record a snapshot of everything the live probe reads (for --from and bug reports)."""
    from kvmprobe.analysis.guest_cpuid import effective_tables
    from kvmprobe.kvm.probe import record as record_snapshot

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
    click.echo(msg, err=True)


def _stdin_twice() -> KvmprobeError:
    return KvmprobeError(
        "'-' (standard input) is given more than once: it can be read only once",
        "save all but one snapshot to files first",
        ExitStatus.USAGE,
    )


def _warn_refused_exits(snap: Snapshot, opts: Options) -> tuple[tuple[DisableExit, ...], bool]:
    """Say where the set-up asked for cannot be had: exits KVM will not let a VMM disable.
    Returns them, and whether KVM_CAP_X86_DISABLE_EXITS could be read."""
    from kvmprobe.analysis import cpuid_query as cq

    refused, exits_known = cq.refused_exits(snap, opts.disable_exits)
    for x in refused:
        _warn(
            f"--disable-exits {x}: "
            + (
                f"KVM_CAP_X86_DISABLE_EXITS does not allow disabling {x.upper()} exits here; "
                "analysed as if they stay enabled"
                if exits_known
                else "KVM_CAP_X86_DISABLE_EXITS could not be read; this exit may stay enabled"
            )
        )
    return tuple(refused), exits_known


def _warn_unused(ctx: click.Context, why: dict[str, str]) -> None:
    """Name each option the user gave that has no effect here (``why``: parameter name ->
    the reason), so nothing is silently ignored."""
    from click.core import ParameterSource

    given = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    for param in ctx.command.params:
        name = param.name or ""
        if name in why and ctx.get_parameter_source(name) in given:
            # an argument as the help shows it: FEATURE-FILTER, not FEATURE_FILTER
            flag = param.opts[0] if isinstance(param, click.Option) else _metavar(param)
            _warn(f"{flag} has no effect {why[name]}")


def _metavar(param: click.Parameter) -> str:
    """An argument's name as its help shows it: ``[FEATURE-FILTER]`` -> ``FEATURE-FILTER``."""
    return (param.metavar or (param.name or "").upper()).strip("[]").removesuffix("...")


def _parse_exits(value: str | None) -> frozenset[DisableExit]:
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


def _unknown_feature(name: str) -> KvmprobeError:
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


def _term(ctx: click.Context) -> Any:
    """The terminal a text report is laid out for (width, colour), once per command."""
    root = ctx.find_root()
    term = root.meta.get("kvmprobe.term")
    if term is None:
        from kvmprobe.render.term import terminal

        no_color = bool(root.params.get("no_color") or root.meta.get("kvmprobe.no_color"))
        term = root.meta["kvmprobe.term"] = terminal(no_color=no_color)
    return term


def _emit_lines(ctx: click.Context, lines: Any) -> None:
    emit(_term(ctx).render(lines))


REQUIRE_HELP = (
    "Comma-separated items the guest must have: CPUID features in any spelling (avx2, "
    "tsc-deadline, 0x7.0.ebx[5]), feature-MSR bits (mds-no) and x86-64 levels (x86-64-v2). "
    "Exit status 5 names each one missing and why; unknown counts as missing."
)


def _parse_require(text: str | None) -> Any:
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


def _check_cpuid_require(a: Any, reqs: Any) -> Any:
    if reqs is None:
        return None
    from kvmprobe.analysis.guest import analysis_subject
    from kvmprobe.analysis.require import check

    return [check(reqs, analysis_subject(a))]


def _print_require(ctx: click.Context, results: Any) -> None:
    if results is None:
        return
    from kvmprobe.render.guest_report import require_report

    _emit_lines(ctx, require_report(results, _term(ctx)))


def _require_exit(ctx: click.Context, results: Any, sides: tuple[str, ...] = ()) -> None:
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
    where = '"require" in the JSON' if ctx.params.get("as_json") else '"Requirements" above'
    click.echo(
        f"kvmprobe: {count(len(items), 'requirement')} not met: {', '.join(items)} "
        f"(why: see {where})",
        err=True,
    )
    ctx.exit(int(ExitStatus.CHECK_FAILED))


@lazy_command(
    common_options,
    click.argument(
        "feature_filter", required=False, metavar="[FEATURE-FILTER]", shell_complete=feature_names
    ),
    irqchip_option,
    exits_option,
    click.option(
        "--host",
        "show_host",
        is_flag=True,
        help="Show the host's own CPUID and host-only features.",
    ),
    click.option(
        "--all",
        "show_all",
        is_flag=True,
        help="Also list unsupported and host-only features, zero values and what values mean.",
    ),
    click.option(
        "--raw",
        is_flag=True,
        help="Show the KVM_GET_SUPPORTED_CPUID entries (filtered) as registers.",
    ),
    click.option(
        "--explain",
        metavar="NAME",
        help="Tell one feature's or one value's whole story (phys_addr_bits, 0x1.0.eax[11:8]).",
        shell_complete=feature_names,
    ),
    click.option(
        "--require", "require", metavar="LIST", help=REQUIRE_HELP, shell_complete=require_list
    ),
    json_option,
    from_option,
    device_option,
    click.pass_context,
    short_help="CPUID features a guest can be given, and why",
)
def cpuid(
    ctx: click.Context,
    feature_filter: str | None,
    irqchip: str,
    disable_exits: str | None,
    show_host: bool,
    show_all: bool,
    raw: bool,
    explain: str | None,
    require: str | None,
    as_json: bool,
    from_file: str | None,
    device: str,
) -> None:
    """The CPUID features a guest can really be given, with documented quirks applied.

    FEATURE-FILTER selects features, values, leaf notes and --raw entries: a name in any
    spelling --explain accepts (x2apic, tsc-deadline, X86_FEATURE_AVX, sse3) is always shown
    with everything whose name contains it; a location selects a bit, a register or a leaf
    (0x1.0.ecx[24], 0x1.0.ecx, 0x40000001).

    The report ends with the x86-64 level a guest can be given (and the host's own) and warns
    where KVM's answer contradicts itself. With --require, exit status 5 when the guest lacks
    an item.
    """
    from kvmprobe.analysis import cpuid_query as cq
    from kvmprobe.analysis import effective
    from kvmprobe.analysis.quirks import Options

    reqs = _parse_require(require)
    opts = Options(irqchip=Irqchip(irqchip), disable_exits=_parse_exits(disable_exits))
    unused: dict[str, str] = {}
    if explain:
        with_explain = "with --explain (it shows one feature's or value's story)"
        unused |= dict.fromkeys(("feature_filter", "raw", "show_host", "show_all"), with_explain)
    if as_json:  # the document is the same with and without them
        unused.setdefault("raw", "with --json (the document always carries the raw entries)")
        unused.setdefault("show_host", "with --json (the document always has the host's CPUID)")
        unused.setdefault("show_all", "with --json (the document always lists every feature)")
    elif raw:
        for name in ("show_host", "show_all"):
            unused.setdefault(name, "with --raw (it shows KVM's entries only)")
    _warn_unused(ctx, unused)

    target = None
    msr_explain: Any = ()  # feature-MSR bits --explain names (mds-no), when no CPUID feature
    told = None  # what --explain names: a feature, MSR bits, a value, a bit no table names
    if explain:
        told = cq.explain_target(explain)
        if told is None:
            raise _unknown_feature(explain)
        if told.refusal is not None:
            raise KvmprobeError(*told.refusal, ExitStatus.USAGE)
        target, alias_of, msr_explain = told.feature, told.alias_of, told.msr_bits
    flt = None
    msr_refs: Any = ()  # feature-MSR bits the filter names
    if feature_filter:
        flt = cq.parse_filter(feature_filter)
        if flt.exact is None:
            from kvmprobe.analysis.msr import lookup_bit

            msr_refs = lookup_bit(feature_filter)
        if flt.exact is None and flt.location is None and not msr_refs and not _names_anything(flt):
            raise _unknown_feature(feature_filter)
    # the text report does not show the vCPU verification; JSON carries it
    snap = get_snapshot(from_file, device)
    if snap.supported_cpuid is None:
        raise KvmprobeError(
            "no KVM_GET_SUPPORTED_CPUID answer in "
            + ("the snapshot" if from_file else "the probe"),
            "see the 'errors' list in 'kvmprobe record' output",
        )
    refused, exits_known = _warn_refused_exits(snap, opts)
    a = effective.analyse(snap, opts)
    required = _check_cpuid_require(a, reqs)
    if msr_explain:
        _explain_msr_bits(ctx, a, msr_explain, explain or "", as_json, required)
        return
    if told is not None and told.field is not None:
        _explain_value(ctx, a, told, as_json, required)
        return
    if told is not None and told.bit is not None:  # a bit no table names: KVM sets it, or no
        target = next((r.feature for r in a.features if r.feature.loc == told.bit), None)
        if target is None:
            where = told.text.strip()
            raise KvmprobeError(
                f"no feature kvmprobe knows is at {where}, and KVM does not set that bit here",
                f"'kvmprobe cpuid {where.rsplit('[', 1)[0]}' shows the whole register",
                ExitStatus.USAGE,
            )
    if target is not None:
        from kvmprobe.analysis.explanation import explain as story_of

        story = story_of(a, target)
        assert story is not None
        if as_json:
            from kvmprobe.render import json as rj

            body = rj.cpuid_body(a, [story.result], include_steps=True)
            if required is not None:
                body["require"] = rj.require_json(required)
            emit(rj.dumps(rj.document("cpuid", snap, body)))
        else:
            from kvmprobe.render.cpuid_report import explain_lines
            from kvmprobe.render.text import safe as safe_text

            typed = safe_text(explain) if explain and alias_of is not None else None
            _emit_lines(ctx, explain_lines(a, story, _term(ctx), typed))
            _print_require(ctx, required)
        _require_exit(ctx, required)
        return
    sel = cq.select(a, flt)
    msr_bits: Any = ()
    if msr_refs:
        from kvmprobe.analysis.msr_features import bit_result

        msr_bits = tuple(bit_result(a, ref) for ref in msr_refs)
        if not sel.features:  # only MSR bits match: the report shows them alone
            why = "when FEATURE-FILTER names feature-MSR bits only"
            _warn_unused(ctx, {k: why for k in ("raw", "show_host", "show_all") if k not in unused})
    if flt is not None and sel.empty and not msr_bits:
        raise KvmprobeError(
            f"nothing in KVM's CPUID answer matches {feature_filter!r}",
            "a location must name a leaf KVM answers: see 'kvmprobe cpuid --raw'",
            ExitStatus.USAGE,
        )
    if as_json:
        from kvmprobe.render import json as rj

        body = rj.cpuid_body(a, list(sel.features))
        if flt is not None:
            body["filter"] = flt.text
            body["fields"] = [f for f in body["fields"] if _field_selected(f, sel)]
            ids = {n.quirk.id for n in sel.notes}
            body["leaf_notes"] = [n for n in body["leaf_notes"] if n["quirk"] in ids]
            body["matched"] = rj.matched_json(sel, msr_bits)
        from kvmprobe.analysis.guest import cpuid_consistency, psabi_summary

        body["psabi"] = rj.psabi_json(psabi_summary(a))
        body["consistency"] = rj.consistency_json(cpuid_consistency(snap))
        if required is not None:
            body["require"] = rj.require_json(required)
        if msr_bits:
            body["msr_bits"] = [rj.msr_bit_json(r) for r in msr_bits]
        emit(rj.dumps(rj.document("cpuid", snap, body)))
        _require_exit(ctx, required)
        return
    from kvmprobe.render import cpuid_report as cr

    term = _term(ctx)
    if raw and (sel.features or not msr_bits):  # MSR bits alone have no CPUID registers
        _emit_lines(ctx, cr.raw_lines(sel, term, "KVM_GET_SUPPORTED_CPUID entries"))
        _print_require(ctx, required)
        _require_exit(ctx, required)
        return
    view = cr.View(
        selection=sel,
        flt=flt,
        show_host=show_host,
        show_all=show_all,
        refused=tuple(refused),
        exits_known=exits_known,
        msr_bits=msr_bits,  # feature-MSR bits the filter names (mds-no; ssb-no: CPUID too)
    )
    _emit_lines(ctx, cr.cpuid_lines(a, view, term))
    _print_require(ctx, required)
    _require_exit(ctx, required)


def _explain_msr_bits(
    ctx: click.Context, a: Any, refs: Any, typed: str, as_json: bool, required: Any
) -> None:
    """``cpuid --explain mds-no``: a feature-MSR bit's story (QEMU spells two EPT/VPID
    capabilities alike, so a name can explain more than one bit)."""
    from kvmprobe.analysis.msr_features import bit_result

    results = [bit_result(a, ref) for ref in refs]
    if as_json:
        from kvmprobe.render import json as rj

        body = rj.cpuid_body(a, [], include_steps=True)
        body["msr_bits"] = [rj.msr_bit_json(r) for r in results]
        if required is not None:
            body["require"] = rj.require_json(required)
        emit(rj.dumps(rj.document("cpuid", a.snap, body)))
    else:
        from kvmprobe.render.msr_bits_report import explain_lines
        from kvmprobe.render.text import safe as safe_text

        lines = []
        for r in results:
            names = {n.lower().replace("_", "-") for n in r.bit.names()}
            shown = typed.lower().replace("_", "-") not in names
            lines += explain_lines(r, _term(ctx), safe_text(typed) if shown else None)
        _emit_lines(ctx, lines)
        _print_require(ctx, required)
    _require_exit(ctx, required)


def _explain_value(ctx: click.Context, a: Any, told: Any, as_json: bool, required: Any) -> None:
    """``cpuid --explain phys_addr_bits`` (or its location): one value's story."""
    from kvmprobe.analysis.explanation import explain_field

    story = explain_field(a, told.field)
    assert story is not None
    if as_json:
        from kvmprobe.render import json as rj

        body = rj.cpuid_body(a, [], include_steps=True)
        body["fields"] = [rj.field_story_json(story)]
        if required is not None:
            body["require"] = rj.require_json(required)
        emit(rj.dumps(rj.document("cpuid", a.snap, body)))
    else:
        from kvmprobe.analysis.cpuid_query import parse_location
        from kvmprobe.render.cpuid_report import field_explain_lines
        from kvmprobe.render.text import safe

        loc = parse_location(told.text)  # bits within the value, not the value's own: say so
        inside = loc is not None and loc != parse_location(told.field.where)
        typed = safe(told.text.strip()) if inside else None
        _emit_lines(ctx, field_explain_lines(a, story, _term(ctx), typed))
        _print_require(ctx, required)
    _require_exit(ctx, required)


def _names_anything(flt: Any) -> bool:
    """Does a name filter match any feature or value name in the tables?"""
    from kvmprobe.analysis import cpuid as cp

    return any(flt.matches_feature(f) for f in cp.features()) or any(
        flt.matches_field(fd) for fd in cp.fields()
    )


def _field_selected(item: dict[str, Any], sel: Any) -> bool:
    return any(fr.field.where == item["where"] and fr.field.name == item["name"]
               for fr in sel.fields)  # fmt: skip


@lazy_command(
    common_options,
    json_option,
    from_option,
    device_option,
    click.pass_context,
    short_help="Why KVM does or does not work here",
)
def doctor(ctx: click.Context, as_json: bool, from_file: str | None, device: str) -> None:
    """Why KVM does or does not work here, and what to do about it.

    Checks the device node and access rights, the KVM modules and their parameters, the API,
    readiness for QEMU, Firecracker and cloud-hypervisor, and nested virtualization. Exit
    status: 0 usable, 3 not available, 4 permission denied, 5 a VMM's requirement missing.
    """
    from kvmprobe.analysis.doctor import diagnose

    if from_file:
        snap = get_snapshot(from_file, device)
    else:
        from kvmprobe.analysis.guest_cpuid import effective_tables
        from kvmprobe.kvm.probe import examine

        snap = examine(device, effective_tables)
    report = diagnose(snap)
    if as_json:
        from kvmprobe.render import json as rj

        emit(rj.dumps(rj.doctor_document(snap, report)))
    else:
        from kvmprobe.render.doctor_report import doctor_lines

        _emit_lines(ctx, doctor_lines(snap, report, _term(ctx)))
    ctx.exit(report.verdict.exit_status)


@lazy_command(
    common_options,
    click.argument("name_filter", required=False, metavar="[FILTER]"),
    json_option,
    from_option,
    device_option,
    click.pass_context,
    short_help="Feature MSRs, decoded bit by bit",
)
def msr(
    ctx: click.Context, name_filter: str | None, as_json: bool, from_file: str | None, device: str
) -> None:
    """Feature MSRs KVM reports, decoded bit by bit, and the MSRs KVM saves and restores.

    Feature MSRs (KVM_GET_MSR_FEATURE_INDEX_LIST, values from KVM_GET_MSRS on /dev/kvm) tell a
    guest which speculation mitigations it may skip (ARCH_CAPABILITIES), what its PMU can do
    (PERF_CAPABILITIES) and, for nested guests, every VMX control. FILTER is an MSR number
    (0x10a), part of an MSR name (arch_capabilities) or a bit name as Linux, QEMU or libvirt
    spell it (MDS_NO, mds-no, vmx-ept).
    """
    from kvmprobe.analysis import msr as m

    snap = get_snapshot(from_file, device)
    a = m.analyse(snap)
    sel = m.select(a, name_filter)
    if name_filter and sel.empty and not sel.known_absent:
        raise KvmprobeError(
            f"no MSR or MSR bit matches {name_filter!r}",
            "give an MSR number (0x10a), part of an MSR name (arch_capabilities) or a bit name "
            "(mds-no, vmx-ept); 'kvmprobe msr' lists them all",
            ExitStatus.USAGE,
        )
    mitigations = m.mitigation_summary(snap)
    if as_json:
        from kvmprobe.render import json as rj
        from kvmprobe.render.json import msr_body

        body = msr_body(a, sel, name_filter, mitigations, snap.errors, snap)
        emit(rj.dumps(rj.document("msr", snap, body)))
    else:
        from kvmprobe.render.msr_report import msr_lines

        lines = msr_lines(
            snap, a, sel, _term(ctx),
            name_filter=name_filter, mitigations=mitigations, errors=a.errors,
        )  # fmt: skip
        _emit_lines(ctx, lines)
    if sel.empty and sel.known_absent:
        names = ", ".join(m.msr_name(i)[0] for i in sel.known_absent)
        _warn(f"{name_filter!r} names {names}, which KVM does not report here")


@lazy_command(
    common_options,
    json_option,
    from_option,
    device_option,
    click.pass_context,
    short_help="Hyper-V enlightenments KVM offers",
)
def hyperv(ctx: click.Context, as_json: bool, from_file: str | None, device: str) -> None:
    """The Hyper-V enlightenments KVM offers (KVM_GET_SUPPORTED_HV_CPUID on /dev/kvm).

    Each bit of the Hyper-V leaves 0x40000000-0x4000000A, decoded; for every QEMU hv-*
    property whether KVM supports it, whether hv-passthrough would turn it on and what else it
    needs (an in-kernel irqchip, nested VMX). When KVM was built without Hyper-V emulation this
    says so, with the evidence, and exits 0.
    """
    from kvmprobe.analysis import hyperv as h

    snap = get_snapshot(from_file, device)
    a = h.analyse(snap)
    if as_json:
        from kvmprobe.render import json as rj
        from kvmprobe.render.json import hyperv_body

        emit(rj.dumps(rj.document("hyperv", snap, hyperv_body(a, snap.errors))))
    else:
        from kvmprobe.render.hyperv_report import hyperv_lines

        _emit_lines(ctx, hyperv_lines(snap, a, _term(ctx)))


# ---- fleet integration: Ansible facts, Prometheus metrics, node-feature-discovery labels ----


def _fleet_snapshot(from_file: str | None, device: str) -> Snapshot:
    """The snapshot a fleet output describes: a recorded file, or the live host examined as
    'doctor' does, which is never an error for a device that cannot be used: a fleet wants
    "KVM is not usable here" as a fact, not as a failed job."""
    if from_file:
        return get_snapshot(from_file, device)
    from kvmprobe.analysis.guest_cpuid import effective_tables
    from kvmprobe.kvm.probe import examine

    snap = examine(device, effective_tables)  # as doctor: the same checks live and recorded
    if snap.errors:
        from kvmprobe.render.text import failed_steps_line

        _warn(failed_steps_line(snap.errors))
    return snap


def _write_state_file(output: str | None, text: str) -> None:
    """A file that a timer rewrites: stdout, or FILE replaced atomically (only a regular file
    is ever replaced; a reader sees the old file or the new one, never a part)."""
    if not output or output == "-":
        emit(text)
        return
    from kvmprobe.render.output import write_new_file

    write_new_file(output, text, force=True)


def _feature_names(feature_list: str | None) -> tuple[dict[str, str], tuple[BitRef, ...]] | None:
    """The CPUID features and the feature-MSR bits (mds-no) --features names."""
    if feature_list is None:
        return None
    from kvmprobe.analysis.fleet_facts import resolve_features, resolve_msr_bits

    words = [w.strip() for w in feature_list.split(",") if w.strip()]
    if not words:
        raise KvmprobeError(
            "--features names no feature",
            "give comma-separated names, e.g. avx2,x2apic",
            ExitStatus.USAGE,
        )
    names, bad = resolve_features(words)
    bits = resolve_msr_bits(words)
    bad = [w for w in bad if not resolve_msr_bits([w])]
    if bad:
        raise _unknown_feature(bad[0])
    return names, bits


_irqchip_choice = click.Choice([m.value for m in Irqchip])


@lazy_command(
    common_options,
    click.option(
        "-o",
        "--output",
        metavar="FILE",
        help="Write FILE atomically, replacing it if it is a regular file (node_exporter's "
        "textfile collector reads *.prom files); default: stdout.",
    ),
    click.option(
        "--irqchip",
        "irqchips",
        type=_irqchip_choice,
        multiple=True,
        help="VMM set-up the feature series describe; repeat for several (default: kernel).",
    ),
    click.option(
        "--features",
        "feature_list",
        metavar="LIST",
        help="Per-feature series only for these features (comma-separated names; feature-MSR "
        "bits such as mds-no too); default: every named feature and every MSR bit KVM sets.",
    ),
    from_option,
    device_option,
    short_help="This host as Prometheus metrics",
)
def metrics(
    output: str | None,
    irqchips: tuple[str, ...],
    feature_list: str | None,
    from_file: str | None,
    device: str,
) -> None:
    """This host in Prometheus' text format, for node_exporter's textfile collector.

    Whether KVM is usable, the guest's and the host's x86-64 levels, every CPUID feature a
    guest can be given (0/1 per feature and irqchip set-up; an unknown answer has no 0/1
    sample but a kvmprobe_feature_unknown one), the feature-MSR bits KVM reports set
    (mds-no: 1 only when a vCPU takes it), watched capability values, the doctor's
    checks and verdict, failed probe steps and the kvmprobe versions. Exits 0 when the file
    is written, also when KVM is not usable here (kvmprobe_kvm_usable is then 0).
    """
    from kvmprobe.analysis.fleet_facts import host_facts

    names = _feature_names(feature_list)
    if output and output != "-" and not output.endswith(".prom"):
        _warn(f"{output} does not end in .prom: node_exporter's textfile collector skips it")
    snap = _fleet_snapshot(from_file, device)
    bits = names[1] if names is not None else ()
    facts = host_facts(snap, [Irqchip(m) for m in irqchips] or [Irqchip.KERNEL], msr_bits=bits)
    from kvmprobe.render.metrics import exposition

    if names is None:
        _write_state_file(output, exposition(facts))
    else:
        _write_state_file(output, exposition(facts, set(names[0]), names[1]))


@lazy_command(
    common_options,
    click.option(
        "-o",
        "--output",
        metavar="FILE",
        help="Write FILE atomically, replacing it if it is a regular file (e.g. "
        "/etc/kubernetes/node-feature-discovery/features.d/kvmprobe); default: stdout.",
    ),
    click.option(
        "--irqchip",
        type=_irqchip_choice,
        default=Irqchip.KERNEL.value,
        show_default=True,
        help="VMM set-up the guest labels describe.",
    ),
    click.option(
        "--namespace",
        default=None,
        metavar="NS",
        help="Label namespace (a DNS subdomain; default kvmprobe.feature.node.kubernetes.io, "
        "which nfd-master always publishes).",
    ),
    from_option,
    device_option,
    short_help="Node labels for node-feature-discovery",
)
def nfd(
    output: str | None, irqchip: str, namespace: str | None, from_file: str | None, device: str
) -> None:
    """A node-feature-discovery feature file: this host's guest features as node labels.

    NFD's local source reads it from its features.d directory and labels the node, so VMs
    (KubeVirt) can be scheduled with node selectors on what KVM can really give: the guest's
    x86-64 level, each CPUID feature and feature-MSR bit (mds-no) a guest can be given
    (absent when it cannot or when the answer is unknown), whether KVM is usable. Exits 0
    when the file is written, also when KVM is not usable here (kvm-usable=false).
    """
    from kvmprobe.analysis.fleet_facts import host_facts
    from kvmprobe.render import nfd as rn

    ns = namespace if namespace is not None else rn.DEFAULT_NAMESPACE
    problem = rn.namespace_problem(ns)
    if problem:
        raise KvmprobeError(
            f"--namespace {ns!r}: {problem}",
            f"use a domain you own (e.g. kvmprobe.example.com) or {rn.DEFAULT_NAMESPACE}",
            ExitStatus.USAGE,
        )
    snap = _fleet_snapshot(from_file, device)
    facts = host_facts(snap, [Irqchip(irqchip)])
    labels = rn.nfd_labels(facts, facts.setups[0], ns)
    if labels.skipped:
        _warn(f"left out features whose names cannot be labels: {', '.join(labels.skipped)}")
    text = labels.text(rn.header_lines(facts))
    too_big = rn.check_size(text)
    if too_big:
        raise KvmprobeError(f"the feature file would be {too_big}", "use a shorter --namespace")
    _write_state_file(output, text)


@lazy_command(
    common_options,
    click.option(
        "--irqchip",
        type=_irqchip_choice,
        default=Irqchip.KERNEL.value,
        show_default=True,
        help="VMM set-up the guest facts describe.",
    ),
    from_option,
    device_option,
    short_help="This host as an Ansible local fact",
)
def fact(irqchip: str, from_file: str | None, device: str) -> None:
    """This host as one small JSON document: an Ansible facts.d fact (ansible_local.kvmprobe).

    Whether KVM is usable, the API version, the doctor's verdict, the guest's and the host's
    x86-64 levels, the CPUID features a guest can be given and those whose answer is unknown,
    the feature-MSR bits KVM reports set with their answers, failed probe steps. Prints JSON
    and exits 0 also when KVM is not usable here, so the fact is always there; see
    contrib/ansible in the source tree for the facts.d executable.
    """
    from kvmprobe.analysis.fleet_facts import host_facts
    from kvmprobe.render import json as rj
    from kvmprobe.render.ansible_fact import fact_document

    snap = _fleet_snapshot(from_file, device)
    facts = host_facts(snap, [Irqchip(irqchip)])
    emit(rj.dumps(fact_document(snap, facts, facts.setups[0])))


@lazy_command(
    common_options,
    click.argument("kind", required=False, metavar="[KIND]", shell_complete=schema_names),
    click.option("--list", "list_all", is_flag=True, help="List the schemas kvmprobe ships."),
    short_help="JSON Schema of a document kvmprobe writes",
)
def schema(kind: str | None, list_all: bool) -> None:
    """Print the JSON Schema (draft 2020-12) of a document kvmprobe writes.

    KIND is a document kind as --list names it (cpuid, doctor, export-qemu, snapshot, ...)
    or the document's own "schema" value (kvmprobe.snapshot/1); without a major version, the
    newest. The schema's $id is urn:kvmprobe:schema: followed by that value.
    """
    from kvmprobe import schemas

    if list_all:
        width = max(len(n) for n in schemas.SCHEMAS) + 2  # every title in one column
        titles = (f"{n:<{width}}{schemas.load(n).get('title', '')}\n" for n in schemas.SCHEMAS)
        emit("".join(titles))
        return
    name = schemas.resolve(kind) if kind else None
    if name is None:
        raise KvmprobeError(
            f"no schema for {kind!r}" if kind else "which schema? (give a KIND or --list)",
            f"choose from {', '.join(schemas.kinds())}, or a schema name such as "
            "kvmprobe.snapshot/1; 'kvmprobe schema --list' lists them",
            ExitStatus.USAGE,
        )
    emit(schemas.text(name))


EXPORT_FORMATS = ("cpuid2", "qemu", "firecracker", "libvirt")


@main.command("export", cls=KvmprobeCommand, short_help="The guest CPU in a format a VMM takes")
@common_options
@click.argument("fmt", metavar="FORMAT", type=click.Choice(EXPORT_FORMATS))
@irqchip_option
@exits_option
@click.option(
    "--with-opt-in",
    is_flag=True,
    help="Also include opt-in and emulated bits (they need the VMM's help; see the README).",
)
@click.option("--cpuid-r", "cpuid_r", is_flag=True, help="cpuid2: the 'cpuid -r' text format.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="qemu, libvirt: a JSON document (the value, and everything its comments say); "
    "cpuid2 is JSON already.",
)
@click.option(
    "--qemu-base",
    type=click.Choice(["model", "host"]),
    default="model",
    show_default=True,
    help="qemu: the base ('model': the closest named model QEMU knows, plus and minus "
    "features; 'host': QEMU's host model with explicit removals).",
)
@click.option("-o", "--output", metavar="FILE", help="Write here instead of stdout.")
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
@click.option(
    "--from",
    "from_files",
    metavar="FILE",
    multiple=True,
    help="Export a snapshot recorded with 'kvmprobe record' instead of the live device "
    "(several: their baseline, as 'kvmprobe baseline' makes it).",
)
@device_option
def export(
    fmt: str,
    irqchip: str,
    disable_exits: str | None,
    with_opt_in: bool,
    cpuid_r: bool,
    as_json: bool,
    qemu_base: str,
    output: str | None,
    force: bool,
    from_files: tuple[str, ...],
    device: str,
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
        raise _stdin_twice()
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
        _warn("--force has no effect without -o FILE")
    unused = (
        {"device": "with --from (the snapshots are read instead)"} if len(from_files) > 1 else {}
    )
    if fmt != "qemu":
        unused["qemu_base"] = f"on the {fmt} format"
    _warn_unused(click.get_current_context(), unused)
    seen: set[str] = set()
    for f in from_files:
        key = os.path.realpath(f) if f != "-" else f
        if key in seen:
            _warn(f"{f} is given more than once (the baseline is the same, its host count not)")
        seen.add(key)
    opts = Options(irqchip=Irqchip(irqchip), disable_exits=_parse_exits(disable_exits))
    if len(from_files) > 1:
        from kvmprobe.analysis.baseline import BaselineBuilder
        from kvmprobe.analysis.guest_cpuid import guest_cpu_from_baseline
        from kvmprobe.analysis.profile import build

        builder = BaselineBuilder()
        guests = []
        snaps = [_load_snapshot(f) for f in from_files]
        for one in snaps:
            builder.add(build(one, opts))
            g = guest_cpu_from_analysis(effective.analyse(one, opts), with_opt_in=with_opt_in)
            _try_exported_table(one, g, opts, live=False, device=device)
            guests.append(g)
        snap = snaps[0]
        guest = guest_cpu_from_baseline(builder.finish(), guests)
    else:
        snap = get_snapshot(from_files[0] if from_files else None, device)
        _warn_refused_exits(snap, opts)
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
            click.echo(f"kvmprobe: note: {note}", err=True)
    if not output or output == "-":
        emit(text)
        return
    from kvmprobe.render.output import write_new_file

    write_new_file(output, text, force=force)
    click.echo(f"kvmprobe: wrote {output}", err=True)


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


# -- fleets: diff and baseline -------------------------------------------------------------------

require_option = click.option(
    "--require", "require", metavar="LIST", help=REQUIRE_HELP, shell_complete=require_list
)


def _load_snapshot(path: str, reader: str = "--from") -> Snapshot:
    from kvmprobe.snapshot import load

    snap, warnings = load(path, reader)
    for w in warnings:
        _warn(f"{path}: {w}")
    return snap


@lazy_command(
    common_options,
    click.argument("a_file", metavar="A"),
    click.argument("b_file", metavar="[B]", required=False),
    irqchip_option,
    exits_option,
    require_option,
    json_option,
    device_option,
    click.pass_context,
    short_help="Can guests of host A run on host B?",
)
def diff(
    ctx: click.Context,
    a_file: str,
    b_file: str | None,
    irqchip: str,
    disable_exits: str | None,
    require: str | None,
    as_json: bool,
    device: str,
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

    reqs = _parse_require(require)
    opts = Options(irqchip=Irqchip(irqchip), disable_exits=_parse_exits(disable_exits))
    if a_file == b_file == "-":
        raise _stdin_twice()
    if b_file:
        _warn_unused(ctx, {"device": "when B is given (both sides are snapshots)"})
    a_snap = _load_snapshot(a_file, "diff")
    b_snap = _load_snapshot(b_file, "diff") if b_file else get_snapshot(None, device)
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

        _emit_lines(ctx, diff_lines(_term(ctx), result))
        _print_require(ctx, required)
    _require_exit(ctx, required, ("A", "B"))
    if not result.can_take:
        ctx.exit(int(ExitStatus.CHECK_FAILED))


@lazy_command(
    common_options,
    click.argument("paths", metavar="SNAP|DIR...", nargs=-1, required=True),
    irqchip_option,
    exits_option,
    require_option,
    click.option(
        "--skip-bad",
        is_flag=True,
        help="Report files that cannot be read and carry on without them.",
    ),
    click.option(
        "--jobs",
        type=click.IntRange(min=1),
        metavar="N",
        help="Worker processes for reading many files (default: the CPUs available).",
    ),
    json_option,
    click.pass_context,
    short_help="The largest guest every host can give",
)
def baseline(
    ctx: click.Context,
    paths: tuple[str, ...],
    irqchip: str,
    disable_exits: str | None,
    require: str | None,
    skip_bad: bool,
    jobs: int | None,
    as_json: bool,
) -> None:
    """The largest guest definition every host can give, from their recorded snapshots.

    Arguments are snapshot files, directories (their *.json files) and glob patterns. The
    baseline holds the features every host gives in the set-up named by --irqchip and
    --disable-exits, without those whose dependencies (Linux cpuid-deps.c, XSAVE state) are
    not all there; fields at their common value or at the smallest where smaller is safe; and
    for each feature left out, how many hosts lack it, which, and why. A file that cannot be
    read stops the run (exit 1) unless --skip-bad. Exit status 5 when the hosts' CPU vendors
    differ (no guest can move between them) and, with --require, when the baseline guest lacks
    an item.
    """
    from kvmprobe.analysis.baseline import BaselineBuilder
    from kvmprobe.analysis.guest import baseline_subject
    from kvmprobe.analysis.levels import psabi_level
    from kvmprobe.analysis.quirks import Options
    from kvmprobe.collect import expand, fold_all

    reqs = _parse_require(require)
    opts = Options(irqchip=Irqchip(irqchip), disable_exits=_parse_exits(disable_exits))
    files, missing = expand(paths)
    skipped: list[tuple[str, str]] = []
    for bad in missing:
        if not skip_bad:
            raise KvmprobeError(bad.message, "check the paths given", ExitStatus.USAGE)
        _warn(f"skipping: {bad.message}")
        skipped.append((bad.path, bad.message))
    builder = BaselineBuilder()
    for chunk in fold_all(files, opts, jobs=jobs, stop_at_bad=not skip_bad):
        for path, w in chunk.warnings:
            _warn(f"{path}: {w}")
        for bad_file in chunk.bad:
            if not skip_bad:
                raise KvmprobeError(
                    bad_file.message,
                    (bad_file.hint + "; " if bad_file.hint else "")
                    + "or leave it out with --skip-bad",
                )
            _warn(f"skipping: {bad_file.message}")
            skipped.append((bad_file.path, bad_file.message))
        builder.merge(chunk.builder)
    if not len(builder):
        raise KvmprobeError(
            "no snapshot could be read", "record one with 'kvmprobe record -o FILE' on each host"
        )
    b = builder.finish()
    level = psabi_level(b.answers(level=True))
    required = None
    if reqs is not None:
        from kvmprobe.analysis.require import check

        required = [check(reqs, baseline_subject(b))]
    if as_json:
        from kvmprobe.render import json as rj

        emit(rj.dumps(rj.baseline_document(b, skipped, required, level)))
    else:
        from kvmprobe.render.baseline_report import baseline_lines

        _emit_lines(ctx, baseline_lines(_term(ctx), b, level, skipped))
        _print_require(ctx, required)
    _require_exit(ctx, required)
    if b.vendor is None:  # the report says so; a gate on the exit status must see it too
        raise KvmprobeError(
            "the hosts' CPU vendors differ: no guest can move between them",
            "take the baseline of each vendor's hosts separately",
            ExitStatus.CHECK_FAILED,
        )
