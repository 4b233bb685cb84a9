"""Text report for ``kvmprobe diff``: the verdict, then what a guest from A loses on B, what
must match and differs, what is unknown, what B adds, and notes. Laid out with
kvmprobe.render.term: long lines wrap under their own text, never to column 0."""

from __future__ import annotations

from kvmprobe.render.term import GLUE, Line
from kvmprobe.render.text import safe
from kvmprobe.vocab import Change, CompareRule
from kvmprobe.words import count, plural

TYPE_CHECKING = False
if TYPE_CHECKING:
    from kvmprobe.analysis.diff import DiffItem, DiffResult
    from kvmprobe.analysis.profile import HostProfile
    from kvmprobe.render.term import Term

GROUPS: tuple[tuple[Change, str, str], ...] = (
    (Change.LOST, "A guest from A loses on B", "red"),
    (Change.DIFFERS, "Must match (or must not shrink) and differs", "red"),
    (Change.UNKNOWN, "Unknown evidence (never taken as equal)", "yellow"),
    (Change.ADDED, "B adds (a guest from B would lose these on A)", "cyan"),
    (Change.NOTE, "Notes (do not block)", "dim"),
)

#: each comparison rule in words (JSON keeps the rule's name)
RULE_WORDS = {
    CompareRule.MATCH: "must match",
    CompareRule.NOT_LESS: "must not shrink",
    CompareRule.SUPERSET: "B must have all of A's",
    CompareRule.INFO: "",  # listed under "Notes (do not block)"
}

SIGNATURE = ("family", "model", "stepping")

#: where an item's text continues when it wraps (under the item's name)
HANG = 4


def _host(p: HostProfile) -> str:
    sig = ""
    if p.signature is not None:  # each label kept with its value when the line wraps
        sig = " " + " ".join(f"{k}{GLUE}{v}" for k, v in zip(SIGNATURE, p.signature, strict=True))
    return f"{safe(p.name)} (kernel {safe(p.kernel_release) or '?'}; {safe(p.vendor or '?')}{sig})"


def _item(term: Term, i: DiffItem) -> list[Line]:
    line = Line.of(f"  {safe(i.name)}", "bold").add(f"  {i.where}", "dim")
    if i.kind == "feature":
        line.add(f"  A: {i.a}; B: {i.b}")
    else:
        rule = f" ({RULE_WORDS[i.rule]})" if RULE_WORDS[i.rule] else ""
        line.add(f"  A: {safe(i.a)}, B: {safe(i.b)}{rule}")
    if i.change is Change.UNKNOWN or i.kind != "feature":
        line.add(f"  - {safe(i.reason)}", "dim")
    return term.para(line, HANG)


#: unknown features named per failed step before "and N more" (JSON lists them all)
SHOWN_UNKNOWN = 12


def _unknown(term: Term, items: tuple[DiffItem, ...]) -> list[Line]:
    """Unknown features grouped by the failed step behind them (a failed step can make
    hundreds unknown); other unknown items one per line."""
    out: list[Line] = []
    by_reason: dict[str, list[str]] = {}
    for i in items:
        if i.kind == "feature":
            by_reason.setdefault(i.reason, []).append(i.name)
        else:
            out += _item(term, i)
    for reason, names in by_reason.items():
        shown = ", ".join(safe(n) for n in names[:SHOWN_UNKNOWN])
        more = f" and {len(names) - SHOWN_UNKNOWN} more" if len(names) > SHOWN_UNKNOWN else ""
        line = Line.of(f"  {count(len(names), 'feature')}: ", "bold").add(f"{shown}{more}")
        line.add(f"  - {safe(reason)}", "dim")
        out += term.para(line, HANG)
    return out


#: the headline answer to "can a guest started on A run on B?"
_VERDICT: dict[bool | None, tuple[str, str]] = {
    True: ("yes", "bold green"),
    False: ("NO", "bold red"),
    None: ("UNKNOWN", "bold yellow"),
}


def diff_lines(term: Term, d: DiffResult) -> list[Line]:
    word, style = _VERDICT[d.can_take]
    out = [Line.of("Can a guest started on A run on B? ", "bold").add(word, style)]
    out += term.para(Line.of(f"  A: {_host(d.a)}", "dim"), HANG)
    out += term.para(Line.of(f"  B: {_host(d.b)}", "dim"), HANG)
    exits = ",".join(d.a.disable_exits) or "none"
    out.append(Line.of(f"  set-up: irqchip={d.a.irqchip}, exits disabled: {exits}", "dim"))
    for change, title, style in GROUPS:
        items = d.group(change)
        if not items:
            continue
        out.append(Line.of(f"{title} ({len(items)}):", f"bold {style}"))
        if change is Change.UNKNOWN:
            out += _unknown(term, items)
            continue
        for i in items:
            out += _item(term, i)
    blocking = [i for i in d.items if i.blocks]
    if d.can_take:
        end = Line.of("Nothing a guest from A sees or needs is missing on B.", "green")
    elif d.can_take is None:
        end = Line.of(
            f"kvmprobe cannot tell: {count(len(blocking), 'unknown item')} "
            f"{plural(len(blocking), 'stands', 'stand')} between A and B "
            "(each is listed above with what it needs).",
            "yellow",
        )
    else:
        n = len(blocking)
        stop = plural(n, "stops", "stop")
        end = Line.of(f"{count(n, 'item')} {stop} a guest from A on B.", "red")
    out += term.para(end)
    rev = {True: "can", False: "cannot", None: "may or may not (unknown evidence)"}[d.reverse]
    out += term.para(Line.of(f"The reverse: a guest started on B {rev} run on A.", "dim"))
    return out
