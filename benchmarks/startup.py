"""Whole-process timings of kvmprobe's commands against two baselines, with every ratio and
each process's peak memory:

* a stdlib-only probe doing the ioctls ``kvmprobe caps`` does (benchmarks/stdlib_probe.py);
* QEMU's own ``-cpu host`` expansion over QMP, where qemu-system-x86_64 is installed: what a
  user would otherwise run to learn what a KVM guest can have
  (``-accel kvm -machine none -S -nodefaults -display none -qmp stdio``, then
  ``qmp_capabilities``, ``query-cpu-model-expansion`` type full model host, ``quit``).

    python benchmarks/startup.py [--runs N] [--device PATH] [--qemu BINARY]
                                 [--kvmprobe SCRIPT] [--against GIT-REV]

kvmprobe is measured as the README installs it: ``pip install .`` of this checkout into a
temporary venv (not an editable install, whose import hook costs every start-up), bytecode
written. ``--kvmprobe SCRIPT`` measures an already installed console script instead;
``--against GIT-REV`` installs that revision too, into a second temporary venv, and measures
both in the same run (a before/after table).

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
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MB = 1024 * 1024
DEFAULT_DEVICE = "/dev/kvm"  # kvmprobe's default; the benchmarks import nothing of kvmprobe

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


# A process's peak resident memory as wait4 reports it includes what its parent had resident
# when it was forked (Linux carries the high-water mark across exec), so timing runs started
# from this interpreter would all show at least this interpreter's own size. The memory runs
# go through this small forwarder instead: a fresh interpreter that forks the command and
# prints the command's own peak (its floor is the bare interpreter, well below any report).
PEAK = r"""
import os, sys
report = int(sys.argv[1])
pid = os.fork()
if pid == 0:
    os.close(report)
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
os.write(report, str(usage.ru_maxrss * 1024).encode())
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_once(cmd: list[str], stdin: bytes | None) -> tuple[float, bytes]:
    """Wall time (s) and standard output of one process."""
    t0 = time.perf_counter()
    p = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=ENV,
    )
    if stdin is not None:
        assert p.stdin is not None
        p.stdin.write(stdin)
        p.stdin.close()
    assert p.stdout is not None
    out = p.stdout.read()
    status = p.wait()
    elapsed = time.perf_counter() - t0
    if status not in (0, 5):  # doctor exits 5 when a VMM's requirement is missing
        raise RuntimeError(f"{' '.join(cmd)} exited with {status}")
    return elapsed, out


def peak_memory(cmd: list[str], stdin: bytes | None) -> int:
    """Peak resident memory (bytes) of one run of ``cmd``, measured through PEAK."""
    r, w = os.pipe()
    exe = shutil.which(cmd[0]) or cmd[0]
    p = subprocess.Popen(
        [sys.executable, "-c", PEAK, str(w), exe, *cmd[1:]],
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=ENV,
        pass_fds=(w,),
    )
    os.close(w)
    if stdin is not None:
        assert p.stdin is not None
        p.stdin.write(stdin)
        p.stdin.close()
    with os.fdopen(r, "rb") as f:
        got = f.read()
    p.wait()
    return int(got or 0)


def measure(
    cases: dict[str, tuple[list[str], bytes | None]], runs: int
) -> dict[str, tuple[float, int]]:
    """Median wall time and peak memory of every case. The cases take turns, run after run,
    so a machine that gets busier or quieter meanwhile weighs on them alike (the ratios are
    what this measures)."""
    peak = dict.fromkeys(cases, 0)
    for name, (cmd, stdin) in cases.items():
        run_once(cmd, stdin)  # warm the page cache and write bytecode
        peak[name] = peak_memory(cmd, stdin)
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, (cmd, stdin) in cases.items():
            samples[name].append(run_once(cmd, stdin)[0])
    return {name: (statistics.median(samples[name]), peak[name]) for name in cases}


def install(source: str, into: str) -> list[str]:
    """A fresh venv at ``into`` with ``pip install source`` (not editable), as the README
    installs kvmprobe; the console script in it."""
    subprocess.run([sys.executable, "-m", "venv", into], check=True)
    pip = [os.path.join(into, "bin", "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, source], check=True, stdout=subprocess.DEVNULL, env=ENV)
    return [os.path.join(into, "bin", "kvmprobe")]


def working_tree(into: str) -> str:
    """The checkout's files as they are now (committed or not, ignored files left out),
    copied under ``into``: installing the checkout itself would let setuptools reuse its
    build/ directory, which keeps modules since deleted."""
    tree = os.path.join(into, "src")
    files = subprocess.run(
        ["git", "-C", ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True, capture_output=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, files):
        src = os.path.join(ROOT, name)
        if os.path.isfile(src):  # a deleted file may still be listed as cached
            os.makedirs(os.path.dirname(os.path.join(tree, name)), exist_ok=True)
            shutil.copy2(src, os.path.join(tree, name))
    return tree


def export_revision(rev: str, into: str) -> str:
    """The tree of git revision ``rev`` of this checkout, unpacked under ``into``."""
    tree = os.path.join(into, "src")
    os.mkdir(tree)
    archive = subprocess.run(
        ["git", "-C", ROOT, "archive", "--format=tar", rev], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", tree], input=archive, check=True)
    return tree


def qemu_answered(out: bytes) -> bool:
    for line in out.splitlines():
        try:
            reply = json.loads(line)
        except ValueError:
            continue
        if isinstance(reply, dict) and "model" in (reply.get("return") or {}):
            return True
    return False


REPORTS = {
    "caps --json": ["caps", "--json"],
    "caps": ["caps"],
    "cpuid --json": ["cpuid", "--json"],
    "cpuid": ["cpuid"],
    "cpuid --all": ["cpuid", "--all"],
    "cpuid avx": ["cpuid", "avx"],
    "doctor": ["doctor"],
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--device", default=DEFAULT_DEVICE)
    ap.add_argument("--qemu", default="qemu-system-x86_64")
    ap.add_argument("--kvmprobe", help="an installed kvmprobe console script to measure")
    ap.add_argument("--against", metavar="GIT-REV", help="also measure this revision (before)")
    args = ap.parse_args()
    try:
        os.close(os.open(args.device, os.O_RDWR))
    except OSError as e:
        print(f"cannot open {args.device}: {e.strerror}; nothing to measure", file=sys.stderr)
        return 0
    with tempfile.TemporaryDirectory(prefix="kvmprobe-bench-") as tmp:
        if args.kvmprobe:
            kp = [os.path.abspath(args.kvmprobe)]
            how = f"the console script {kp[0]}"
        else:
            kp = install(working_tree(tmp), os.path.join(tmp, "after"))
            how = "`pip install .` of this checkout into a temporary venv (not editable)"
        before: list[str] | None = None
        if args.against:
            old = os.path.join(tmp, "before")
            os.mkdir(old)
            before = install(export_revision(args.against, old), os.path.join(old, "venv"))
            how += f"; before: `pip install .` of {args.against} likewise"
        return bench(args, kp, before, how)


def bench(args: argparse.Namespace, kp: list[str], before: list[str] | None, how: str) -> int:
    # The baselines run on the interpreter kvmprobe is installed with, so that every row pays
    # the same interpreter start-up (an editable install's import hook, say, would otherwise
    # weigh on the baselines but not on kvmprobe).
    py = os.path.join(os.path.dirname(kp[0]), "python")
    if not os.access(py, os.X_OK):
        py = sys.executable
    # as a user runs them: on the default device a command line is a command and its flags,
    # which kvmprobe carries out without its option parser; naming another device makes
    # every command line one the parser reads (slower by the parser's import)
    dev = [] if args.device == DEFAULT_DEVICE else ["--device", args.device]
    baselines = {
        "python -c pass (interpreter floor)": [py, "-c", "pass"],
        "stdlib probe": [py, os.path.join(HERE, "stdlib_probe.py"), args.device],
    }
    reports = {f"kvmprobe {name}": [*kp, *argv, *dev] for name, argv in REPORTS.items()}
    if before is not None:
        reports.update(
            {f"  before: {name}": [*before, *argv, *dev] for name, argv in REPORTS.items()}
        )
    cases: dict[str, tuple[list[str], bytes | None]] = {
        name: (cmd, None) for name, cmd in {**baselines, **reports}.items()
    }
    qemu = shutil.which(args.qemu)
    qemu_name = "QEMU -cpu host expansion (QMP)"
    if qemu is not None:
        cmd = [qemu, "-accel", "kvm", "-machine", "none", "-S", "-nodefaults"]
        cmd += ["-display", "none", "-qmp", "stdio"]
        try:
            out = run_once(cmd, QMP_SESSION)[1]
        except (OSError, RuntimeError) as e:
            print(f"QEMU baseline unavailable: {e}", file=sys.stderr)
        else:
            if qemu_answered(out):
                cases[qemu_name] = (cmd, QMP_SESSION)
            else:
                print(
                    "QEMU baseline unavailable: no model expansion in its answer", file=sys.stderr
                )
    results = measure(cases, args.runs)
    stdlib = results["stdlib probe"][0]
    q = results.get(qemu_name, (None, 0))[0]
    print(f"median of {args.runs} runs each, whole processes, bytecode compiled (as installed)")
    print(f"kvmprobe: {how}; the baselines run on {py}")
    print(f"  {'':38s} {'wall':>9s}   {'/stdlib':>7s}   {'/QEMU':>6s}   {'peak RSS':>8s}")
    order = [*baselines, qemu_name] + [
        n for name in REPORTS for n in (f"kvmprobe {name}", f"  before: {name}")
    ]
    for name in order:
        if name not in results:
            continue
        t, rss = results[name]
        vs_q = f"{t / q:5.2f}x" if q else "    - "
        print(f"  {name:38s} {t * 1000:6.1f} ms   {t / stdlib:6.2f}x   {vs_q}   {rss / MB:5.1f} MB")
    ok = True

    def target(label: str, value: float, limit: float, unit: str = "x") -> None:
        nonlocal ok
        within = value <= limit
        ok = ok and within
        verdict = "within" if within else f"OVER by {value / limit - 1:.0%}"
        print(f"  {label:44s} {value:6.2f}{unit} (target {limit:g}{unit}): {verdict}")

    for prefix, title in (("kvmprobe ", "targets:"), ("  before: ", "targets, before:")):
        if f"{prefix}caps" not in results:
            continue
        print(title)
        target("caps --json / stdlib probe", results[f"{prefix}caps --json"][0] / stdlib, 1.5)
        if q:
            target("cpuid report / QEMU expansion", results[f"{prefix}cpuid"][0] / q, 2.5)
            target("cpuid --json / QEMU expansion", results[f"{prefix}cpuid --json"][0] / q, 2.0)
            target("cpuid --all / QEMU expansion", results[f"{prefix}cpuid --all"][0] / q, 4.0)
        else:
            print("  (no QEMU here: the cpuid targets against its expansion are not measured)")
        peak = max(rss for name, (_, rss) in results.items() if name.startswith(prefix))
        target("peak memory of any kvmprobe report", peak / MB, 40, " MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
