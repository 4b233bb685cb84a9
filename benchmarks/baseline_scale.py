"""How `kvmprobe baseline` scales: time and peak memory at 100, 1,000 and 10,000 snapshots,
and `kvmprobe diff` of two files next to `kvmprobe cpuid --json`.

    python benchmarks/baseline_scale.py [--sizes 100,1000,10000] [--jobs N] [--seed S]

A fleet is made from the recorded hosts in tests/fixtures: each generated host is a copy of one
of them with features removed at random (bits of leaves 1, 7 and 0x80000001 cleared in
KVM_GET_SUPPORTED_CPUID), and about one in four is an "older" host (smaller maximum basic leaf,
no leaf 7 subleaf 1, fewer MSRs in the index list, an older kernel release). Every file is
different, so nothing can be shared between hosts. The files go into a temporary directory.

Peak memory is the largest sum of the resident set sizes of the kvmprobe process and its
worker processes, sampled every 10 ms. Not a test: numbers depend on the machine. The targets:
10,000 files within 10 s and 500 MB, time growing linearly; diff as fast as cpuid --json."""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, os.pardir, "tests", "fixtures")
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
KVMPROBE = [sys.executable, "-m", "kvmprobe"]

# (function, index, register) whose feature bits the generator may clear
MUTABLE = ((0x1, 0, "ecx"), (0x1, 0, "edx"), (0x7, 0, "ebx"), (0x7, 0, "ecx"),
           (0x7, 0, "edx"), (0x80000001, 0, "ecx"), (0x80000001, 0, "edx"))  # fmt: skip


def _bases() -> list[dict[str, object]]:
    out = []
    for name in sorted(os.listdir(FIXTURES)):
        if name.endswith(".json"):
            with open(os.path.join(FIXTURES, name), encoding="utf-8") as f:
                out.append(json.load(f))
    return out


def _vary(doc: dict[str, object], rng: random.Random, i: int) -> dict[str, object]:
    d = json.loads(json.dumps(doc))
    entries = d["supported_cpuid"]
    assert isinstance(entries, list)
    for _ in range(rng.randint(0, 6)):  # features removed at random
        fn, idx, reg = rng.choice(MUTABLE)
        for e in entries:
            if e["function"] == fn and e["index"] == idx and e[reg]:
                bits = [b for b in range(32) if e[reg] >> b & 1]
                e[reg] &= ~(1 << rng.choice(bits))
    host = d["host"]
    assert isinstance(host, dict)
    if rng.random() < 0.25:  # an older host
        d["supported_cpuid"] = [e for e in entries if (e["function"], e["index"]) != (0x7, 1)]
        for e in d["supported_cpuid"]:  # type: ignore[union-attr]
            if e["function"] == 0:
                e["eax"] = min(e["eax"], 0x10)
        msrs = d.get("msr_index_list")
        if isinstance(msrs, list) and len(msrs) > 4:
            d["msr_index_list"] = msrs[: -rng.randint(1, 4)]
        host["kernel_release"] = "6.1.0-older"
    d["recorded_at"] = f"2026-01-01T00:00:{i % 60:02d}Z"
    host["online_cpus"] = 1 + i % 512
    return d


def generate(directory: str, n: int, seed: int) -> None:
    rng = random.Random(seed)
    bases = _bases()
    for i in range(n):
        doc = _vary(rng.choice(bases), rng, i)
        with open(os.path.join(directory, f"host-{i:05d}.json"), "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)


def _tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants."""
    total = 0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/status", encoding="ascii") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children", encoding="ascii") as f:
                    stack += [int(x) for x in f.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def run(cmd: list[str]) -> tuple[float, int, int, float]:
    """Wall time, peak memory of the process tree, exit status, CPU seconds of the tree."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss(proc.pid))
        time.sleep(0.01)
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 5):
        sys.stderr.write(proc.stderr.read().decode() if proc.stderr else "")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, peak, proc.returncode, cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100,1000,10000")
    ap.add_argument("--jobs", type=int, default=None)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--runs", type=int, default=5, help="runs of diff and cpuid --json")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    top = tempfile.mkdtemp(prefix="kvmprobe-fleet-")
    try:
        print(f"generating {max(sizes)} varied snapshots ...", flush=True)
        full = os.path.join(top, "all")
        os.mkdir(full)
        generate(full, max(sizes), args.seed)
        run([*KVMPROBE, "--version"])  # bytecode and page cache
        print(
            f"load average before: {os.getloadavg()[0]:.2f} (other work on the machine slows "
            "the wall-clock figures; CPU seconds are the whole process tree's)"
        )
        print(f"{'files':>7} {'seconds':>8} {'ms/file':>8} {'CPU s':>7} {'peak MB':>8}")
        rows = []
        for n in sizes:
            d = os.path.join(top, f"n{n}")
            os.mkdir(d)
            for name in sorted(os.listdir(full))[:n]:
                os.link(os.path.join(full, name), os.path.join(d, name))
            cmd = [*KVMPROBE, "baseline", d, "--json"]
            if args.jobs:
                cmd += ["--jobs", str(args.jobs)]
            elapsed, peak, status, cpu = run(cmd)
            if status != 0:
                print(f"kvmprobe baseline exited {status}", file=sys.stderr)
                return 1
            rows.append((n, elapsed))
            print(f"{n:>7} {elapsed:>8.2f} {elapsed / n * 1000:>8.3f} {cpu:>7.2f} "
                  f"{peak / 1e6:>8.1f}", flush=True)  # fmt: skip
        if len(rows) > 1:
            (n0, t0), (n1, t1) = rows[-2], rows[-1]
            print(f"growth from {n0} to {n1} files: x{t1 / t0:.1f} time for x{n1 / n0:.0f} files")
        a, b = (os.path.join(full, f"host-{i:05d}.json") for i in (0, 1))
        for label, cmd in (
            ("cpuid --json A", [*KVMPROBE, "cpuid", "--json", "--from", a]),
            ("diff A B", [*KVMPROBE, "diff", a, b]),
            ("diff --json A B", [*KVMPROBE, "diff", "--json", a, b]),
        ):
            times = [run(cmd)[0] for _ in range(args.runs)]
            print(f"{label:>16}: median {statistics.median(times) * 1000:.0f} ms")
    finally:
        shutil.rmtree(top, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
