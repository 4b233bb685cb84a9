"""``kvmprobe baseline``: the largest guest every recorded host can give."""

from __future__ import annotations

from kvmprobe.commands.common import (
    Invocation,
    parse_exits,
    parse_require,
    print_require,
    require_exit,
    warn,
)
from kvmprobe.errors import ExitStatus, KvmprobeError
from kvmprobe.render.output import emit
from kvmprobe.vocab import Irqchip


def baseline(
    inv: Invocation,
    paths: tuple[str, ...],
    irqchip: str = Irqchip.KERNEL.value,
    disable_exits: str | None = None,
    require: str | None = None,
    skip_bad: bool = False,
    jobs: int | None = None,
    as_json: bool = False,
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

    reqs = parse_require(require)
    opts = Options(irqchip=Irqchip(irqchip), disable_exits=parse_exits(disable_exits))
    files, missing = expand(paths)
    skipped: list[tuple[str, str]] = []
    for bad in missing:
        if not skip_bad:
            raise KvmprobeError(bad.message, "check the paths given", ExitStatus.USAGE)
        warn(f"skipping: {bad.message}")
        skipped.append((bad.path, bad.message))
    builder = BaselineBuilder()
    for chunk in fold_all(files, opts, jobs=jobs, stop_at_bad=not skip_bad):
        for path, w in chunk.warnings:
            warn(f"{path}: {w}")
        for bad_file in chunk.bad:
            if not skip_bad:
                raise KvmprobeError(
                    bad_file.message,
                    (bad_file.hint + "; " if bad_file.hint else "")
                    + "or leave it out with --skip-bad",
                )
            warn(f"skipping: {bad_file.message}")
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

        inv.emit_lines(baseline_lines(inv.term(), b, level, skipped))
        print_require(inv, required)
    require_exit(required, as_json)
    if b.vendor is None:  # the report says so; a gate on the exit status must see it too
        raise KvmprobeError(
            "the hosts' CPU vendors differ: no guest can move between them",
            "take the baseline of each vendor's hosts separately",
            ExitStatus.CHECK_FAILED,
        )
