"""Coloured report for ``kvmprobe cpuid``: features by area, fields, leaf notes, legend."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich import box
from rich.table import Table
from rich.text import Text

from kvmprobe.render.text import safe
from kvmprobe.vocab import FeatureStatus

if TYPE_CHECKING:
    from rich.console import Console

    from kvmprobe.analysis.effective import CpuidAnalysis, Explanation, FeatureResult

STATUS_STYLE: dict[FeatureStatus, tuple[str, str]] = {
    FeatureStatus.SUPPORTED: ("green", "+"),
    FeatureStatus.ADDED_BY_QUIRK: ("bold green", "A"),
    FeatureStatus.REMOVED_BY_QUIRK: ("bold red", "R"),
    FeatureStatus.OPT_IN: ("cyan", "O"),
    FeatureStatus.RUNTIME: ("blue", "~"),
    FeatureStatus.EMULATED: ("yellow", "E"),
    FeatureStatus.HOST_ONLY: ("magenta", "H"),
    FeatureStatus.UNSUPPORTED: ("dim", "-"),
    FeatureStatus.UNKNOWN: ("bold yellow", "?"),
}
LEGEND: dict[FeatureStatus, str] = {
    FeatureStatus.SUPPORTED: "KVM reports it and nothing takes it away",
    FeatureStatus.ADDED_BY_QUIRK: (
        "KVM does not report it, but a documented quirk says a guest can have it"
    ),
    FeatureStatus.REMOVED_BY_QUIRK: "KVM reports it, but it cannot work in this set-up",
    FeatureStatus.OPT_IN: "available if the VMM asks for it or promises something",
    FeatureStatus.RUNTIME: "KVM computes it while the guest runs; not a VMM choice",
    FeatureStatus.EMULATED: "only via KVM's instruction emulator (works, slowly)",
    FeatureStatus.HOST_ONLY: "the host CPU has it; KVM does not pass it on",
    FeatureStatus.UNSUPPORTED: "not available",
    FeatureStatus.UNKNOWN: "a probe step it depends on failed: kvmprobe cannot tell",
}
#: the summary line's order and wording (unsupported is counted apart)
SUMMARY: tuple[tuple[FeatureStatus, str], ...] = (
    (FeatureStatus.SUPPORTED, "supported"),
    (FeatureStatus.ADDED_BY_QUIRK, "added by quirks"),
    (FeatureStatus.REMOVED_BY_QUIRK, "removed by quirks"),
    (FeatureStatus.OPT_IN, "opt-in"),
    (FeatureStatus.RUNTIME, "runtime"),
    (FeatureStatus.EMULATED, "emulated"),
    (FeatureStatus.HOST_ONLY, "host-only"),
)
AREA_TITLES = {
    "base": "Base ISA",
    "simd": "SIMD and vector",
    "security": "Security and speculation",
    "virtualization": "Virtualization",
    "timers-apic": "Timers and APIC",
    "kvm-pv": "KVM paravirtual (0x40000001)",
    "memory": "Memory and paging",
    "power": "Power management",
    "perf-debug": "Performance monitoring and debug",
    "xsave": "XSAVE state",
    "cache-topology": "Cache and topology",
    "other": "Other",
}


def _yn(b: bool | None, style_true: str = "green") -> Text:
    if b is None:
        return Text("?", style="dim")
    return Text("yes", style=style_true) if b else Text("no", style="dim")


def _status(status: FeatureStatus) -> Text:
    style, mark = STATUS_STYLE[status]
    return Text(f"{mark} {status}", style=style)


def _name_cell(r: FeatureResult) -> Text:
    f = r.feature
    t = Text(f.name, style="bold" if r.changed else "")
    if not f.known:
        t.stylize("magenta")
    return t


def print_cpuid(
    console: Console,
    a: CpuidAnalysis,
    features: list[FeatureResult],
    *,
    show_host: bool,
    show_all: bool,
) -> None:
    snap = a.snap
    head = Text("Effective guest CPUID", style="bold")
    head.append(
        f" - {safe(snap.device)}" + ("" if snap.source == "live" else f" ({safe(snap.source)})")
    )
    exits = ",".join(sorted(a.options.disable_exits)) or "none"
    head.append(f"\nset-up: irqchip={a.options.irqchip}, exits disabled: {exits}; ", style="dim")
    head.append(
        f"kernel {safe(snap.host.kernel_release) or '?'}; "
        f"{safe(a.strings.get('vendor') or '?')} {a.strings.get('signature') or ''}",
        style="dim",
    )
    console.print(head)
    if show_host and a.host_cpuid_error is not None:
        console.print(Text(f"host CPUID unavailable: {safe(a.host_cpuid_error)}", style="yellow"))
    by_area: dict[str, list[FeatureResult]] = {}
    for r in features:
        by_area.setdefault(r.feature.area, []).append(r)
    for area in sorted(by_area, key=lambda x: list(AREA_TITLES).index(x) if x in AREA_TITLES
                       else 99):  # fmt: skip
        rows = by_area[area]
        table = Table(
            title=AREA_TITLES.get(area, area), title_justify="left", title_style="bold",
            pad_edge=False, expand=False, box=box.SIMPLE_HEAD,
        )  # fmt: skip
        table.add_column("feature", no_wrap=True)
        table.add_column("where", style="dim", no_wrap=True)
        table.add_column("KVM", no_wrap=True)
        if show_host:
            table.add_column("host", no_wrap=True)
        table.add_column("guest", no_wrap=True)
        table.add_column("status", no_wrap=True)
        table.add_column("why", overflow="fold", ratio=1)
        for r in rows:
            v = r.verdict
            why = Text()
            if v.quirks:
                why.append(v.reason)
                why.append(f"  [{', '.join(v.quirks)}]", style="dim")
            elif v.status is FeatureStatus.HOST_ONLY:
                why.append(v.reason, style="magenta")
            elif show_all or not r.feature.known:
                why.append(r.feature.description, style="dim")
            cells: list[Text | str] = [_name_cell(r), r.feature.where, _yn(v.kvm)]
            if show_host:
                cells.append(_yn(v.host, "cyan"))
            cells += [_yn(v.effective, "bold green"), _status(v.status), why]
            table.add_row(*cells)
        console.print(table)
    _print_fields(console, a, show_host)
    _print_notes(console, a)
    _print_legend(console, a, show_all, show_host)
    from kvmprobe.render.guest_report import print_guest_decisions

    print_guest_decisions(console, a)


def _print_fields(console: Console, a: CpuidAnalysis, show_host: bool) -> None:
    rows = [fr for fr in a.fields if fr.kvm is not None]
    if not rows:
        return
    table = Table(title="Values (multi-bit fields)", title_justify="left", title_style="bold",
                  pad_edge=False, box=box.SIMPLE_HEAD)  # fmt: skip
    table.add_column("field", no_wrap=True)
    table.add_column("where", style="dim", no_wrap=True)
    table.add_column("KVM", justify="right", no_wrap=True)
    if show_host:
        table.add_column("host", justify="right", no_wrap=True)
    table.add_column("meaning", overflow="fold", style="dim")
    for fr in rows:

        def fmt(x: int | None) -> str:
            if x is None:
                return "?"
            return str(x) if x < 1024 else f"{x:#x}"

        cells = [fr.field.name, fr.field.where, fmt(fr.kvm)]
        if show_host:
            cells.append(fmt(fr.host))
        cells.append(fr.field.description)
        table.add_row(*cells)
    console.print(table)
    xcr0, supp = a.strings.get("xcr0_mask"), a.strings.get("xcomp_guest_supp")
    if xcr0 is not None:
        line = f"XCR0 mask in 0xD.0: {xcr0}"
        if supp is not None:
            line += f"; KVM_X86_XCOMP_GUEST_SUPP: {supp}"
        if a.xsave_components:
            parts = [
                f"{x.number}:{x.size}B@{x.offset}" + ("(S)" if x.supervisor else "")
                for x in a.xsave_components
            ]
            line += "; components (size@offset): " + " ".join(parts)
        console.print(Text(line, style="dim"))
    sig = a.strings.get("kvm_signature")
    if sig is not None:
        console.print(Text(f"KVM signature at 0x40000000: {safe(repr(sig))}", style="dim"))


def _print_notes(console: Console, a: CpuidAnalysis) -> None:
    notes = [n for n in a.leaf_notes if n.shown]
    if not notes:
        return
    console.print(Text("Leaves the VMM must build or treat with care", style="bold"))
    for n in notes:
        leaves = ", ".join(f"{x:#x}" for x in n.quirk.leaves)
        line = Text(f"  {leaves}: ", style="cyan")
        line.append(n.quirk.reason)
        if n.evidence:
            line.append(f" ({safe(n.evidence)})", style="dim")
        line.append(f"  [{n.quirk.id}]", style="dim")
        console.print(line)


def _print_legend(console: Console, a: CpuidAnalysis, show_all: bool, show_host: bool) -> None:
    counts = a.counts()
    legend = Text("Legend: ", style="bold")
    for status, (style, mark) in STATUS_STYLE.items():
        legend.append(f"{mark} {status}", style=style)
        legend.append(f" = {LEGEND[status]}.  ", style="dim")
    console.print(legend)
    summary = Text("Summary: ", style="bold")
    shown = [
        *SUMMARY,
        *([(FeatureStatus.UNKNOWN, "unknown")] if counts[FeatureStatus.UNKNOWN] else []),
    ]
    for i, (status, label) in enumerate(shown):
        if i:
            summary.append(", ")
        summary.append(f"{counts[status]} {label}", style=STATUS_STYLE[status][0])
    summary.append(f"; {a.effective_count} features a guest can be given")
    if not show_all:
        hidden = f"{counts[FeatureStatus.UNSUPPORTED]} unsupported"
        if not show_host:
            hidden += f" and {counts[FeatureStatus.HOST_ONLY]} host-only"
        summary.append(f" ({hidden} not listed: --all, --host)", style="dim")
    console.print(summary)
    console.print(Text("Why a feature is what it is: kvmprobe cpuid --explain NAME", style="dim"))


def print_raw(console: Console, a: CpuidAnalysis) -> None:
    table = Table(
        title="KVM_GET_SUPPORTED_CPUID entries",
        title_justify="left",
        pad_edge=False,
        box=box.SIMPLE_HEAD,
    )
    for col in ("function", "index", "flags", "eax", "ebx", "ecx", "edx"):
        table.add_column(col, justify="right", no_wrap=True)
    for e in a.snap.supported_cpuid or ():
        table.add_row(
            f"{e.function:#010x}", str(e.index), str(e.flags),
            *(f"{x:#010x}" for x in (e.eax, e.ebx, e.ecx, e.edx)),
        )  # fmt: skip
    console.print(table)


def print_explain(console: Console, a: CpuidAnalysis, ex: Explanation) -> None:
    r = ex.result
    f, v = r.feature, r.verdict
    title = Text(f.name, style="bold")
    alias = [x for x in (f.qemu_name, f.kernel_name) if x]
    if alias:
        title.append(f"  ({', '.join(alias)})", style="dim")
    console.print(title)
    console.print(f"  {f.description}")
    raw_s = "leaf absent" if ex.kvm_register is None else f"{ex.kvm_register:#010x}"
    console.print(f"  where: CPUID {f.where}  (KVM's {f.register.upper()} = {raw_s})")
    console.print(Text("  KVM_GET_SUPPORTED_CPUID: ").append(_yn(v.kvm)))
    if a.emulated_probed:
        console.print(Text("  KVM_GET_EMULATED_CPUID:  ").append(_yn(v.emulated)))
    host = (
        _yn(v.host)
        if a.host_cpuid_error is None
        else Text(f"unknown ({safe(a.host_cpuid_error)})", style="dim")
    )
    console.print(Text("  host CPUID:              ").append(host))
    exits = ",".join(sorted(a.options.disable_exits)) or "none"
    console.print(f"  set-up: irqchip={a.options.irqchip}, exits disabled: {exits}")
    if not ex.steps:
        console.print(Text("  no documented quirk concerns this feature", style="dim"))
    for s in ex.steps:
        q = s.record
        mark = (
            Text("  applied  ", style="bold yellow")
            if s.applied
            else Text("  skipped  ", style="dim")
        )
        line = mark.append(Text(s.quirk, style="bold")).append(f" ({s.effect})")
        console.print(line)
        scope = "" if q.vendor is None else f"  ({q.vendor.display} hosts only)"
        console.print(Text(f"      when:     {q.when}{scope}", style="dim"))
        console.print(Text(f"      here:     {safe(s.evidence)}"))
        if s.applied:
            console.print(Text(f"      so:       {q.reason}"))
        console.print(Text(f"      source:   {'; '.join(q.citation)}", style="dim"))
    verdict = Text("  result: ", style="bold").append(_status(v.status))
    verdict.append("; a guest in this set-up ")
    verdict.append("can" if v.effective else "cannot", style="bold green" if v.effective
                   else "bold red")  # fmt: skip
    verdict.append(" be given it")
    console.print(verdict)
    if not v.quirks:
        console.print(Text(f"  because: {v.reason}", style="dim"))
