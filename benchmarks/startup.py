"""Whole-process timings of `kvmprobe caps --json` and `kvmprobe caps` against a stdlib-only
probe doing the same ioctls (benchmarks/stdlib_probe.py). Prints medians and ratios.

    python benchmarks/startup.py [--runs N] [--device PATH]

Not a test: numbers depend on the machine. The target is `caps --json` within 2x of the
stdlib probe."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


# Measure what an installed kvmprobe costs: pip writes bytecode at install time, so let the
# warm-up run write it here too even where PYTHONDONTWRITEBYTECODE is set (it would otherwise
# recompile every module on every run while the stdlib baseline loads precompiled bytecode).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(cmd: list[str], runs: int) -> float:
    for _ in range(2):  # warm the page cache and write bytecode
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=ENV)
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=ENV)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--device", default="/dev/kvm")
    args = ap.parse_args()
    try:
        os.close(os.open(args.device, os.O_RDWR))
    except OSError as e:
        print(f"cannot open {args.device}: {e.strerror}; nothing to measure", file=sys.stderr)
        return 0
    py = sys.executable
    cases = {
        "python -c pass (interpreter floor)": [py, "-c", "pass"],
        "stdlib probe (baseline)": [py, os.path.join(HERE, "stdlib_probe.py"), args.device],
        "kvmprobe caps --json": [py, "-m", "kvmprobe", "caps", "--json", "--device", args.device],
        "kvmprobe caps": [py, "-m", "kvmprobe", "caps", "--no-color", "--device", args.device],
        "kvmprobe cpuid --json": [py, "-m", "kvmprobe", "cpuid", "--json", "--device", args.device],
    }
    results = {name: timed(cmd, args.runs) for name, cmd in cases.items()}
    base = results["stdlib probe (baseline)"]
    print(f"median of {args.runs} runs each, whole processes, bytecode compiled (as installed)")
    for name, t in results.items():
        print(f"  {name:38s} {t * 1000:8.1f} ms   {t / base:5.2f}x baseline")
    ratio = results["kvmprobe caps --json"] / base
    verdict = "within" if ratio <= 2.0 else "OVER"
    print(f"caps --json is {ratio:.2f}x the stdlib probe: {verdict} the 2x target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
