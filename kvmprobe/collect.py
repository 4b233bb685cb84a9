"""Reading many snapshot files for ``kvmprobe baseline``: expand the arguments (files,
directories, glob patterns), load each file with the strict loader, reduce it to a
HostProfile and fold it into a BaselineBuilder, in worker processes when there are many.

Each worker reads a chunk of files and sends back one partial builder (a few hundred bytes per
host), so no process ever holds more than one snapshot at a time; the parent merges the chunks
in argument order. A file that fails to load comes back as a ``BadFile`` naming what is wrong.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Sequence

from kvmprobe.analysis.baseline import BaselineBuilder
from kvmprobe.analysis.profile import build
from kvmprobe.errors import KvmprobeError
from kvmprobe.frozen import frozen

#: below this many files one process does the work (starting workers costs more)
PARALLEL_FROM = 200
CHUNK = 250
GLOB_CHARS = frozenset("*?[")


@frozen
class BadFile:
    path: str
    message: str
    hint: str | None


class Chunk:
    """What one worker made of its files: the hosts folded in, the files it could not read,
    and each loaded file's warnings (filled in as the worker goes)."""

    def __init__(self, builder: BaselineBuilder) -> None:
        self.builder = builder
        self.bad: list[BadFile] = []
        self.warnings: list[tuple[str, str]] = []


def expand(args: Sequence[str]) -> tuple[list[str], list[BadFile]]:
    """Files named by the arguments, in order, each once: a directory gives its ``*.json``
    files (sorted, not recursive), a pattern its matches (sorted). An argument that names
    nothing is a BadFile."""
    out: list[str] = []
    bad: list[BadFile] = []
    seen: set[str] = set()

    def add(path: str) -> None:
        key = os.path.normpath(path)
        if key not in seen:
            seen.add(key)
            out.append(path)

    for arg in args:
        if os.path.isdir(arg):
            names = sorted(n for n in os.listdir(arg) if n.endswith(".json"))
            files = [os.path.join(arg, n) for n in names]
            files = [f for f in files if os.path.isfile(f)]
            if not files:
                bad.append(BadFile(arg, f"{arg}: directory holds no *.json snapshot file", None))
            for f in files:
                add(f)
        elif GLOB_CHARS & set(arg) and not os.path.exists(arg):
            matches = sorted(m for m in glob.glob(arg) if os.path.isfile(m))
            if not matches:
                bad.append(BadFile(arg, f"{arg}: no file matches this pattern", None))
            for m in matches:
                add(m)
        else:
            add(arg)
    return out, bad


def _fold(job: tuple[list[str], object, bool]) -> Chunk:
    from kvmprobe.snapshot import load

    paths, options, stop_at_bad = job
    chunk = Chunk(BaselineBuilder())
    for path in paths:
        try:
            snap, warnings = load(path, "baseline")
        except KvmprobeError as e:
            chunk.bad.append(BadFile(path, e.message, e.hint))
            if stop_at_bad:
                break
            continue
        chunk.warnings += [(path, w) for w in warnings]
        chunk.builder.add(build(snap, options))
    return chunk


def _worker_start() -> None:
    """Workers leave Ctrl-C to the parent: it stops the pool and ends the command the one way
    every command ends on an interrupt (no traceback from each worker)."""
    import gc
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gc.freeze()  # the parent's objects (modules, tables) are never garbage: skip them


def fold_all(
    paths: Sequence[str], options: object, *, jobs: int | None = None, stop_at_bad: bool = True
) -> Iterator[Chunk]:
    """Load, profile and fold every file; chunks come back in argument order. ``jobs``: worker
    processes (default: the CPUs this process may run on; 1 = no workers). With
    ``stop_at_bad`` a chunk ends at its first bad file (the caller stops there)."""
    if jobs is None:
        jobs = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    if jobs <= 1 or len(paths) < PARALLEL_FROM:
        yield _fold((list(paths), options, stop_at_bad))
        return
    import multiprocessing

    size = max(1, min(CHUNK, -(-len(paths) // (jobs * 4))))
    chunks = [(list(paths[i : i + size]), options, stop_at_bad) for i in range(0, len(paths), size)]
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(jobs, initializer=_worker_start) as pool:
        yield from pool.imap(_fold, chunks)
