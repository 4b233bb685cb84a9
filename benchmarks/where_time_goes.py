"""Where a ``kvmprobe cpuid`` process spends its time, phase by phase, and how much of the
import time is spent creating value types (kvmprobe.frozen), module by module, and which of the
costly standard modules the --json paths avoid (dataclasses, typing, ...) the process imported
all the same (click imports typing and inspect).

    python benchmarks/where_time_goes.py [--runs N] [--device PATH | --from FILE]
                                         [--python INTERPRETER]

kvmprobe is imported as the README installs it: ``pip install .`` of this checkout into a
temporary venv (as benchmarks/startup.py does; an editable install's import hook would add
to every import phase), unless ``--python`` names the interpreter of an installed kvmprobe.
Each run is a fresh interpreter (imports are what this measures); the smallest time of each
phase over the runs is shown, the one least disturbed by other work on the machine. Not a
test: the numbers depend on the machine."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from startup import install, working_tree

ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

CHILD = r"""
import json, sys, time
marks = []
t0 = time.perf_counter()
def mark(name):
    marks.append((name, time.perf_counter()))

import enum
spent = {}
def timed(build, label):
    def wrapper(cls, *a, **k):
        t = time.perf_counter()
        try:
            return build(cls, *a, **k)
        finally:
            key = f"{label} in {cls.__module__}"
            spent[key] = spent.get(key, 0.0) + time.perf_counter() - t
    return wrapper
import kvmprobe.frozen as fz
fz._build = timed(fz._build, "value types")
mark("import enum (stdlib)")
import kvmprobe.entry, kvmprobe.quick, kvmprobe.commands.cpuid
mark("import the command's path (entry, quick, commands; no click)")
from kvmprobe.kvm import probe as pr
from kvmprobe.snapshot import load
mark("import kvmprobe.kvm.probe (snapshot, ctypes)")
from kvmprobe.analysis import cpuid_query, effective
mark("import analysis (cpuid table, quirks)")
from kvmprobe.render import cpuid_report, term
mark("import render (report, layout)")
source = sys.argv[1]
snap = load(source)[0] if source.endswith(".json") else pr.probe(source)
mark("probe the device" if not source.endswith(".json") else "load the snapshot")
a = effective.analyse(snap)
mark("analyse (quirks applied)")
view = cpuid_report.View(cpuid_query.select(a, None), None, False, False)
t = term.Term(80, False)
text = t.render(cpuid_report.cpuid_lines(a, view, t))
mark("lay out the report (incl. the x86-64 level)")
from kvmprobe.render import json as rj
doc = rj.document("cpuid", snap, rj.cpuid_body(a, list(a.features)))
out = rj.dumps(doc, terminal=False)
mark("build and write the JSON document")
phases, prev = [], t0
for name, at in marks:
    phases.append((name, at - prev))
    prev = at
costly = ("dataclasses", "typing", "inspect", "datetime", "copy", "ast", "dis", "tokenize")
imported = [m for m in costly if m in sys.modules]
print(json.dumps({"phases": phases, "value_types": spent, "costly": imported}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--device", default="/dev/kvm")
    ap.add_argument("--from", dest="from_file")
    ap.add_argument("--python", help="the interpreter of an installed kvmprobe")
    args = ap.parse_args()
    if args.python:
        return phases(args, args.python)
    with tempfile.TemporaryDirectory(prefix="kvmprobe-phases-") as tmp:
        script = install(working_tree(tmp), os.path.join(tmp, "venv"))[0]
        return phases(args, os.path.join(os.path.dirname(script), "python"))


def phases(args: argparse.Namespace, python: str) -> int:
    source = args.from_file or args.device
    best: dict[str, float] = {}
    dc: dict[str, float] = {}
    costly: list[str] = []
    order: list[str] = []
    for i in range(args.runs + 1):
        r = subprocess.run([python, "-c", CHILD, source], capture_output=True, text=True, env=ENV)
        if r.returncode != 0:
            print(r.stderr, file=sys.stderr)
            return 1
        if i == 0:
            continue  # the first run writes bytecode
        got = json.loads(r.stdout)
        for name, t in got["phases"]:
            if name not in best:
                order.append(name)
            best[name] = min(best.get(name, t), t)
        costly = got["costly"]
        for name, t in got["value_types"].items():
            dc[name] = min(dc.get(name, t), t)
    print(f"smallest of {args.runs} fresh interpreters ({python}), after its own start-up")
    for name in order:
        print(f"  {best[name] * 1000:6.1f} ms  {name}")
    print(f"  {sum(best.values()) * 1000:6.1f} ms  in all (the phases' smallest times, summed)")
    print("of the imports, creating value types (@frozen) (smallest per module):")
    for name, t in sorted(dc.items(), key=lambda kv: -kv[1]):
        print(f"  {t * 1000:6.1f} ms  {name}")
    print(f"  {sum(dc.values()) * 1000:6.1f} ms  in all")
    print("costly standard modules imported all the same:", ", ".join(costly) or "none")
    return 0


if __name__ == "__main__":
    sys.exit(main())
