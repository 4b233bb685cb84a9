"""Reading many snapshot files for ``kvmprobe baseline``: expand the arguments (files,
directories, glob patterns), load each file with the strict loader and reduce it to a
HostProfile, in worker processes when there are many.

Each worker loads and profiles a chunk of files and sends back only the profiles (a few
kilobytes each), so the parent never holds a snapshot. Results come back in argument order; a
file that fails to load comes back as a ``BadFile`` naming what is wrong.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from kvmprobe.analysis.profile import HostProfile, build
from kvmprobe.errors import KvmprobeError

#: below this many files one process does the work (starting workers costs more)
PARALLEL_FROM = 200
CHUNK = 100
GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class BadFile:
    path: str
    message: str
    hint: str | None


@dataclass(frozen=True)
class Loaded:
    path: str
    profile: HostProfile
    warnings: tuple[str, ...]


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


def _load_one(path: str, options: object) -> Loaded | BadFile:
    from kvmprobe.snapshot import load

    try:
        snap, warnings = load(path)
    except KvmprobeError as e:
        return BadFile(path, e.message, e.hint)
    return Loaded(path, build(snap, options), tuple(warnings))


def _load_chunk(job: tuple[list[str], object]) -> list[Loaded | BadFile]:
    paths, options = job
    return [_load_one(p, options) for p in paths]


def load_all(
    paths: Sequence[str], options: object, *, jobs: int | None = None
) -> Iterator[Loaded | BadFile]:
    """Load and profile every file, in order. ``jobs``: worker processes (default: the CPUs
    this process may run on; 1 = no workers)."""
    if jobs is None:
        jobs = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    if jobs <= 1 or len(paths) < PARALLEL_FROM:
        for p in paths:
            yield _load_one(p, options)
        return
    import multiprocessing

    chunks = [(list(paths[i : i + CHUNK]), options) for i in range(0, len(paths), CHUNK)]
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(jobs) as pool:
        for result in pool.imap(_load_chunk, chunks):
            yield from result
