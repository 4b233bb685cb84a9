"""Shell completion values for kvmprobe's arguments, served through click's own completion
machinery (``_KVMPROBE_COMPLETE=bash_source kvmprobe`` prints the script for a shell).

Completion runs on every Tab press, so it stays quick and never touches the device: the
values come from kvmprobe's own tables (CPUID feature names, capability names, x86-64
levels, schema names), never from /dev/kvm or a snapshot. Each function has click's
``shell_complete`` signature and is attached to an argument or option in kvmprobe.cli.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

from click.shell_completion import CompletionItem, FishComplete, add_completion_class

TYPE_CHECKING = False
if TYPE_CHECKING:
    import click

__all__ = ["cap_names", "feature_names", "require_list", "schema_names"]

_KERNEL_PREFIXES = ("x86_", "kvm_")


def _matching(
    candidates: Iterable[tuple[str, str]], incomplete: str, before: str = ""
) -> list[CompletionItem]:
    """Candidates (value, help) that start with ``incomplete`` (ignoring case), each behind
    ``before`` (the items of a comma-separated list already typed)."""
    want = incomplete.lower()
    return [
        CompletionItem(before + value, help=text or None)
        for value, text in candidates
        if value.lower().startswith(want)
    ]


@cache
def _feature_candidates(kernel: bool) -> tuple[tuple[str, str], ...]:
    from kvmprobe.analysis.cpuid import features

    out: dict[str, str] = {}
    for f in features():
        names = (f.kernel_name,) if kernel else (f.name, f.qemu_name)
        for n in names:
            if n and n not in out:
                out[n] = f"{f.where} {f.description}".strip()
    return tuple(sorted(out.items()))


def _features(incomplete: str) -> tuple[tuple[str, str], ...]:
    """Linux names (tsc_deadline_timer) and QEMU names (tsc-deadline); the kernel's
    X86_FEATURE_/KVM_FEATURE_ names once the word starts that way."""
    kernel = incomplete.lower().startswith(_KERNEL_PREFIXES)
    return _feature_candidates(False) + (_feature_candidates(True) if kernel else ())


def feature_names(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """CPUID feature names, for ``cpuid FEATURE-FILTER`` and ``cpuid --explain NAME``."""
    return _matching(_features(incomplete), incomplete)


def require_list(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """``--require LIST``: comma-separated feature names and x86-64 levels; completes the
    last item and keeps the ones before it (items already given are not offered again)."""
    from kvmprobe.vocab import PsabiLevel

    before, comma, last = incomplete.rpartition(",")
    given = {item.strip().lower() for item in before.split(",")} if comma else set()
    levels = tuple((lv.value, "x86-64 psABI level") for lv in PsabiLevel.levels())
    candidates = [c for c in levels + _features(last) if c[0].lower() not in given]
    return _matching(candidates, last, before + comma)


@cache
def _cap_candidates() -> tuple[tuple[str, str], ...]:
    from kvmprobe.analysis.caps import known_caps

    return tuple((c.name, c.description) for c in known_caps())


def cap_names(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Capability names for ``caps NAME-FILTER``: x2apic_api as typed in lower case,
    X2APIC_API in upper case, KVM_CAP_X2APIC_API once the word starts with kvm_cap_."""
    full = incomplete.lower().startswith("kvm_cap_")
    upper = incomplete != incomplete.lower()
    out = []
    for name, text in _cap_candidates():
        value = name if full else name.removeprefix("KVM_CAP_")
        out.append((value if upper else value.lower(), text))
    return _matching(out, incomplete)


def schema_names(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Document kinds and schema names for ``schema KIND``."""
    from kvmprobe import schemas

    candidates = [(k, "") for k in schemas.kinds()] + [(n, "") for n in schemas.SCHEMAS]
    return _matching(candidates, incomplete)


class _Fish(FishComplete):
    """Click's fish script splits each reply at every comma, which cuts a --require list
    ("x2apic,tsc_deadline_timer") short; split at the first comma only (after the type)."""

    source_template = FishComplete.source_template.replace(
        'string split "," $completion', 'string split -m 1 "," $completion'
    )


add_completion_class(_Fish, "fish")
