"""Whole-process timings of kvmprobe's commands against two baselines, with every ratio and
each process's peak memory:

* a stdlib-only probe doing the ioctls ``kvmprobe caps`` does (benchmarks/stdlib_probe.py);
* QEMU's own ``-cpu host`` expansion over QMP, where qemu-system-x86_64 is installed: what a
  user would otherwise run to learn what a KVM guest can have
  (``-accel kvm -machine none -S -nodefaults -display none -qmp stdio``, then
  ``qmp_capabilities``, ``query-cpu-model-expansion`` type full model host, ``quit``).

    python benchmarks/startup.py [--runs N] [--device PATH] [--qemu BINARY]

Not a test: the numbers depend on the machine. The targets (issue "A report a person reads
at 80 columns, in a blink"): the ``cpuid`` report within 2.5x of QEMU's expansion, ``cpuid
--json`` within 2x of it, ``cpuid --all`` within 4x, ``caps --json`` within 1.5x of the
stdlib probe, and every report under 40 MB of peak memory."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MB = 1024 * 1024

# Measure what an installed kvmprobe costs: pip writes bytecode at install time, so let the
# warm-up run write it here too even where PYTHONDONTWRITEBYTECODE is set (it would otherwise
# recompile every changed module on every run while the baselines load precompiled code).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
ENV["NO_COLOR"] = "1"
ENV["COLUMNS"] = "80"

QMP_SESSION = (
    b'{"execute": "qmp_capabilities"}\n'
    b'{"execute": "query-cpu-model-expansion", '
    b'"arguments": {"type": "full", "model": {"name": "host"}}}\n'
    b'{"execute": "quit"}\n'
)


def run_once(cmd: list[str], stdin: bytes | None) -> tuple[float, int, bytes]:
    """Wall time (s), peak resident memory (bytes) and standard output of one process."""
    t0 = time.perf_counter()
    p = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=ENV,
    )
    out = b""
    if stdin is not None:
        assert p.stdin is not None
        p.stdin.write(stdin)
        p.stdin.close()
    assert p.stdout is not None
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    elapsed = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode not in (0, 5):  # doctor exits 5 when a VMM's requirement is missing
        raise RuntimeError(f"{' '.join(cmd)} exited with {p.returncode}")
    return elapsed, usage.ru_maxrss * 1024, out


def measure(
    cases: dict[str, tuple[list[str], bytes | None]], runs: int
) -> dict[str, tuple[float, int, bytes]]:
    """Median wall time, largest peak memory and the last output of every case. The cases
    take turns, run after run, so a machine that gets busier or quieter meanwhile weighs on
    them alike (the ratios are what this measures)."""
    for cmd, stdin in cases.values():
        for _ in range(2):  # warm the page cache and write bytecode
            run_once(cmd, stdin)
    samples: dict[str, list[float]] = {name: [] for name in cases}
    peak = dict.fromkeys(cases, 0)
    out = dict.fromkeys(cases, b"")
    for _ in range(runs):
        for name, (cmd, stdin) in cases.items():
            t, rss, out[name] = run_once(cmd, stdin)
            samples[name].append(t)
            peak[name] = max(peak[name], rss)
    return {name: (statistics.median(samples[name]), peak[name], out[name]) for name in cases}


def kvmprobe_command() -> list[str]:
    """The installed console script next to this interpreter, as a user runs it."""
    script = os.path.join(os.path.dirname(sys.executable), "kvmprobe")
    if os.access(script, os.X_OK):
        return [script]
    return [sys.executable, "-m", "kvmprobe"]


def qemu_answered(out: bytes) -> bool:
    for line in out.splitlines():
        try:
            reply = json.loads(line)
        except ValueError:
            continue
        if isinstance(reply, dict) and "model" in (reply.get("return") or {}):
            return True
    return False


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--device", default="/dev/kvm")
    ap.add_argument("--qemu", default="qemu-system-x86_64")
    args = ap.parse_args()
    try:
        os.close(os.open(args.device, os.O_RDWR))
    except OSError as e:
        print(f"cannot open {args.device}: {e.strerror}; nothing to measure", file=sys.stderr)
        return 0
    py = sys.executable
    kp = kvmprobe_command()
    dev = ["--device", args.device]
    baselines = {
        "python -c pass (interpreter floor)": [py, "-c", "pass"],
        "stdlib probe": [py, os.path.join(HERE, "stdlib_probe.py"), args.device],
    }
    reports = {
        "kvmprobe caps --json": [*kp, "caps", "--json", *dev],
        "kvmprobe caps": [*kp, "caps", *dev],
        "kvmprobe cpuid --json": [*kp, "cpuid", "--json", *dev],
        "kvmprobe cpuid": [*kp, "cpuid", *dev],
        "kvmprobe cpuid --all": [*kp, "cpuid", "--all", *dev],
        "kvmprobe cpuid avx": [*kp, "cpuid", "avx", *dev],
        "kvmprobe doctor": [*kp, "doctor", *dev],
    }
    cases: dict[str, tuple[list[str], bytes | None]] = {
        name: (cmd, None) for name, cmd in {**baselines, **reports}.items()
    }
    qemu = shutil.which(args.qemu)
    qemu_name = "QEMU -cpu host expansion (QMP)"
    if qemu is not None:
        cmd = [qemu, "-accel", "kvm", "-machine", "none", "-S", "-nodefaults"]
        cmd += ["-display", "none", "-qmp", "stdio"]
        try:
            t, rss, out = run_once(cmd, QMP_SESSION)
        except (OSError, RuntimeError) as e:
            print(f"QEMU baseline unavailable: {e}", file=sys.stderr)
        else:
            if qemu_answered(out):
                cases[qemu_name] = (cmd, QMP_SESSION)
            else:
                print(
                    "QEMU baseline unavailable: no model expansion in its answer", file=sys.stderr
                )
    results = {name: (t, rss) for name, (t, rss, _) in measure(cases, args.runs).items()}
    stdlib = results["stdlib probe"][0]
    q = results.get(qemu_name, (None, 0))[0]
    print(
        f"median of {args.runs} runs each, whole processes, bytecode compiled (as installed); "
        f"kvmprobe run as {' '.join(os.path.basename(x) for x in kp)}"
    )
    print(f"  {'':38s} {'wall':>9s}   {'/stdlib':>7s}   {'/QEMU':>6s}   {'peak RSS':>8s}")
    for name, (t, rss) in results.items():
        vs_q = f"{t / q:5.2f}x" if q else "    - "
        print(f"  {name:38s} {t * 1000:6.1f} ms   {t / stdlib:6.2f}x   {vs_q}   {rss / MB:5.1f} MB")
    print("targets:")
    ok = True

    def target(label: str, value: float, limit: float, unit: str = "x") -> None:
        nonlocal ok
        within = value <= limit
        ok = ok and within
        verdict = "within" if within else f"OVER by {value / limit - 1:.0%}"
        print(f"  {label:44s} {value:6.2f}{unit} (target {limit:g}{unit}): {verdict}")

    target("caps --json / stdlib probe", results["kvmprobe caps --json"][0] / stdlib, 1.5)
    if q:
        target("cpuid report / QEMU expansion", results["kvmprobe cpuid"][0] / q, 2.5)
        target("cpuid --json / QEMU expansion", results["kvmprobe cpuid --json"][0] / q, 2.0)
        target("cpuid --all / QEMU expansion", results["kvmprobe cpuid --all"][0] / q, 4.0)
    else:
        print("  (no QEMU here: the cpuid targets against its expansion are not measured)")
    peak = max(rss for name, (_, rss) in results.items() if name in reports)
    target("peak memory of any kvmprobe report", peak / MB, 40, " MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
