"""Command-line interface: every command's options and arguments, declared with click, and the
wiring to its body in kvmprobe.commands (where the work is done). Heavy imports happen there,
inside the command that needs them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from kvmprobe import __version__
from kvmprobe.commands import body
from kvmprobe.commands.export import EXPORT_FORMATS
from kvmprobe.completion import cap_names, feature_names, require_list, schema_names
from kvmprobe.errors import ExitStatus, KvmprobeError
from kvmprobe.limits import DEFAULT_DEVICE
from kvmprobe.vocab import CapArch, DisableExit, Irqchip

if TYPE_CHECKING:
    from kvmprobe.commands.common import Invocation


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
            from kvmprobe.commands.common import report_error

            ctx.exit(report_error(e))
        except KeyboardInterrupt:
            if ctx.params.get("debug") or ctx.meta.get("kvmprobe.debug"):
                raise
            from kvmprobe.commands.common import say

            say("kvmprobe: interrupted")
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
_irqchip_choice = click.Choice([m.value for m in Irqchip])


def _irqchip(help: str) -> Any:
    """--irqchip: one VMM set-up, the in-kernel irqchip by default."""
    return click.option(
        "--irqchip", type=_irqchip_choice, default=Irqchip.KERNEL.value, show_default=True,
        help=help,
    )  # fmt: skip


irqchip_option = _irqchip("Where the VMM puts the interrupt controller (LAPIC/IOAPIC/PIC).")
exits_option = click.option(
    "--disable-exits",
    metavar="LIST",
    help=f"Exits the VMM disables with KVM_CAP_X86_DISABLE_EXITS: {','.join(DisableExit)}.",
)


REQUIRE_HELP = (
    "Comma-separated items the guest must have: CPUID features in any spelling (avx2, "
    "tsc-deadline, 0x7.0.ebx[5]), feature-MSR bits (mds-no) and x86-64 levels (x86-64-v2). "
    "Exit status 5 names each one missing and why; unknown counts as missing."
)
require_option = click.option(
    "--require", "require", metavar="LIST", help=REQUIRE_HELP, shell_complete=require_list
)


def _metavar(param: click.Parameter) -> str:
    """An argument's name as its help shows it: ``[FEATURE-FILTER]`` -> ``FEATURE-FILTER``."""
    return (param.metavar or (param.name or "").upper()).strip("[]").removesuffix("...")


def invocation(ctx: click.Context) -> Invocation:
    """How click says the command was called, for its body: the parameters given on the
    command line (each as the user wrote it: an option's first name, an argument's metavar),
    and --no-color and --debug, before or after the command's name."""
    from click.core import ParameterSource

    from kvmprobe.commands.common import Invocation

    given = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    spelled = {
        p.name: p.opts[0] if isinstance(p, click.Option) else _metavar(p)
        for p in ctx.command.params
        if p.name and ctx.get_parameter_source(p.name) in given
    }
    root = ctx.find_root()
    return Invocation(
        spelled,
        no_color=bool(root.params.get("no_color") or root.meta.get("kvmprobe.no_color")),
        debug=bool(root.params.get("debug") or root.meta.get("kvmprobe.debug")),
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
        body("")(invocation(ctx))


def lazy_command(name: str, *decorators: Any, short_help: str | None = None) -> None:
    """Register subcommand ``name`` of ``main``: its body is kvmprobe.commands' (whose
    docstring is its help), its click decorators (given top to bottom, as they would be
    stacked) are applied when the command is first looked up. ``short_help``: the phrase
    ``kvmprobe --help`` lists it with (whole: under 45 characters, or click cuts the
    docstring's first sentence short with '...')."""

    def build() -> click.Command:
        run = body(name)

        def callback(**params: Any) -> Any:
            return run(invocation(click.get_current_context()), **params)

        callback.__doc__ = run.__doc__
        cmd: Any = callback
        for d in reversed(decorators):
            cmd = d(cmd)
        return click.command(name, cls=KvmprobeCommand, short_help=short_help)(cmd)

    main.lazy_commands[name] = build


lazy_command(
    "caps",
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
    short_help="KVM capabilities, each value decoded",
)


lazy_command(
    "record",
    common_options,
    click.option("-o", "--output", metavar="FILE", help="Write here instead of stdout."),
    click.option("--force", is_flag=True, help="Overwrite FILE if it exists."),
    device_option,
    short_help="Save a snapshot for --from and bug reports",
)


lazy_command(
    "cpuid",
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
    require_option,
    json_option,
    from_option,
    device_option,
    short_help="CPUID features a guest can be given, and why",
)


lazy_command(
    "doctor",
    common_options,
    json_option,
    from_option,
    device_option,
    short_help="Why KVM does or does not work here",
)


lazy_command(
    "msr",
    common_options,
    click.argument("name_filter", required=False, metavar="[FILTER]"),
    json_option,
    from_option,
    device_option,
    short_help="Feature MSRs, decoded bit by bit",
)


lazy_command(
    "hyperv",
    common_options,
    json_option,
    from_option,
    device_option,
    short_help="Hyper-V enlightenments KVM offers",
)


lazy_command(
    "metrics",
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


lazy_command(
    "nfd",
    common_options,
    click.option(
        "-o",
        "--output",
        metavar="FILE",
        help="Write FILE atomically, replacing it if it is a regular file (e.g. "
        "/etc/kubernetes/node-feature-discovery/features.d/kvmprobe); default: stdout.",
    ),
    _irqchip("VMM set-up the guest labels describe."),
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


lazy_command(
    "fact",
    common_options,
    _irqchip("VMM set-up the guest facts describe."),
    from_option,
    device_option,
    short_help="This host as an Ansible local fact",
)


lazy_command(
    "schema",
    common_options,
    click.argument("kind", required=False, metavar="[KIND]", shell_complete=schema_names),
    click.option("--list", "list_all", is_flag=True, help="List the schemas kvmprobe ships."),
    short_help="JSON Schema of a document kvmprobe writes",
)


lazy_command(
    "export",
    common_options,
    click.argument("fmt", metavar="FORMAT", type=click.Choice(EXPORT_FORMATS)),
    irqchip_option,
    exits_option,
    click.option(
        "--with-opt-in",
        is_flag=True,
        help="Also include opt-in and emulated bits (they need the VMM's help; see the README).",
    ),
    click.option("--cpuid-r", "cpuid_r", is_flag=True, help="cpuid2: the 'cpuid -r' text format."),
    click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="qemu, libvirt: a JSON document (the value, and everything its comments say); "
        "cpuid2 is JSON already.",
    ),
    click.option(
        "--qemu-base",
        type=click.Choice(["model", "host"]),
        default="model",
        show_default=True,
        help="qemu: the base ('model': the closest named model QEMU knows, plus and minus "
        "features; 'host': QEMU's host model with explicit removals).",
    ),
    click.option("-o", "--output", metavar="FILE", help="Write here instead of stdout."),
    click.option("--force", is_flag=True, help="Overwrite FILE if it exists."),
    click.option(
        "--from",
        "from_files",
        metavar="FILE",
        multiple=True,
        help="Export a snapshot recorded with 'kvmprobe record' instead of the live device "
        "(several: their baseline, as 'kvmprobe baseline' makes it).",
    ),
    device_option,
    short_help="The guest CPU in a format a VMM takes",
)


lazy_command(
    "diff",
    common_options,
    click.argument("a_file", metavar="A"),
    click.argument("b_file", metavar="[B]", required=False),
    irqchip_option,
    exits_option,
    require_option,
    json_option,
    device_option,
    short_help="Can guests of host A run on host B?",
)


lazy_command(
    "baseline",
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
    short_help="The largest guest every host can give",
)
