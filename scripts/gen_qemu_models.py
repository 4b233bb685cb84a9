#!/usr/bin/env python3
"""Generate kvmprobe/tables/qemu_models_data.py from scripts/data/qemu_models.json.

The input holds facts only, as one installed QEMU answered them over QMP: its version, every
x86 CPU model it lists (``query-cpu-definitions``: name, what an alias points to) and, per
model, the CPUID feature properties that are on (``query-cpu-model-expansion`` type
``static``, which names features by their canonical property names and is the same on every
host) plus its vendor, family, model and stepping (type ``full``), for each irqchip mode
(``kernel-irqchip=on|split|off``: QEMU's KVM defaults for named models depend on it). The
names of every feature property that QEMU version knows are kept too, so an export never asks
that QEMU for a property it lacks. The input's ``provenance`` says which QEMU and how.

Stdlib only; deterministic output; reads only the committed input::

    python scripts/gen_qemu_models.py            # regenerate the module
    python scripts/gen_qemu_models.py --check    # exit 1 if the committed module is stale
    python scripts/gen_qemu_models.py --record [QEMU]   # re-ask QEMU (needs /dev/kvm),
                                                        # rewrite the input, then regenerate

The generator stops (exit 1, nothing written) on a malformed input: a model feature that is
not among the version's property names, an alias pointing nowhere, a vendor that is not a
12-character CPUID vendor string.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
INPUT = ROOT / "scripts" / "data" / "qemu_models.json"
OUTPUT = ROOT / "kvmprobe" / "tables" / "qemu_models_data.py"
#: kvmprobe's irqchip mode -> QEMU's kernel-irqchip value; "kernel" is recorded in full, the
#: others as differences from it
MODES = {"kernel": "on", "split": "split", "userspace": "off"}
#: models that are not fixed definitions: ``host`` and ``max`` follow the host they run on,
#: ``base`` is the empty model static expansions are written against
NOT_MODELS = frozenset({"host", "max", "base"})


# -- recording (needs QEMU and /dev/kvm; never run by --check) ---------------------------------


def _qmp(qemu: str, accel: str, commands: list[dict[str, Any]]) -> list[Any]:
    argv = [qemu, "-machine", "none", "-accel", accel, "-S",
            "-nodefaults", "-no-user-config", "-display", "none", "-qmp", "stdio"]  # fmt: skip
    cmds = [{"execute": "qmp_capabilities"}, *commands]
    # Standard input stays open until every reply is in: QEMU closes the monitor at end of
    # input and may drop commands it has not answered yet (seen on a loaded machine).
    p = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert p.stdin is not None and p.stdout is not None
    p.stdin.write("".join(json.dumps(c) + "\n" for c in cmds))
    p.stdin.flush()
    replies: list[Any] = []
    while len(replies) < len(cmds):
        line = p.stdout.readline()
        if not line:
            break
        if line.strip():
            answer = json.loads(line)
            if "return" in answer or "error" in answer:
                replies.append(answer)
    _out, err = p.communicate('{"execute": "quit"}\n', timeout=300)
    if len(replies) < len(cmds):
        raise SystemExit(f"QEMU answered {len(replies)} of {len(cmds)} commands: {err}")
    for r in replies:
        if "error" in r:
            raise SystemExit(f"QEMU: {r['error']}")
    return [r["return"] for r in replies[1 : 1 + len(commands)]]


def record(qemu: str) -> dict[str, Any]:
    version = subprocess.run([qemu, "--version"], capture_output=True, text=True, check=True)
    (defs,) = _qmp(qemu, "kvm,kernel-irqchip=on", [{"execute": "query-cpu-definitions"}])
    names = sorted(d["name"] for d in defs if d["name"] not in NOT_MODELS)
    # A model's own vendor: under KVM QEMU gives every named model the host's vendor, so the
    # definition's vendor is read from the TCG accelerator's full expansion.
    tcg = _qmp(qemu, "tcg", [
        {"execute": "query-cpu-model-expansion",
         "arguments": {"type": "full", "model": {"name": n}}} for n in names
    ])  # fmt: skip
    own_vendor = {n: t["model"]["props"].get("vendor") for n, t in zip(names, tcg, strict=True)}
    models: dict[str, Any] = {}
    all_names: set[str] = set()
    per_mode: dict[str, dict[str, list[str]]] = {}
    for mode, irqchip in MODES.items():
        cmds = []
        for n in names:
            for kind in ("static", "full"):
                cmds.append(
                    {"execute": "query-cpu-model-expansion",
                     "arguments": {"type": kind, "model": {"name": n}}}
                )  # fmt: skip
        out = _qmp(qemu, f"kvm,kernel-irqchip={irqchip}", cmds)
        feats: dict[str, list[str]] = {}
        for i, n in enumerate(names):
            static, full = out[2 * i]["model"]["props"], out[2 * i + 1]["model"]["props"]
            all_names |= {k for k, v in static.items() if isinstance(v, bool)}
            feats[n] = sorted(k for k, v in static.items() if v is True)
            if mode == "kernel":
                d = next(x for x in defs if x["name"] == n)
                models[n] = {
                    "alias_of": d.get("alias-of"),
                    "vendor": own_vendor[n],
                    "family": full.get("family"),
                    "model": full.get("model"),
                    "stepping": full.get("stepping"),
                    "model_id": full.get("model-id"),
                    "migration_safe": d.get("migration-safe"),
                    "static": d.get("static"),
                }
        per_mode[mode] = feats
    for n, m in models.items():
        base = set(per_mode["kernel"][n])
        m["features"] = sorted(base)
        for mode in ("split", "userspace"):
            other = set(per_mode[mode][n])
            m[mode] = {"add": sorted(other - base), "remove": sorted(base - other)}
    argv0 = Path(qemu).name
    return {
        "provenance": {
            "qemu": version.stdout.splitlines()[0].strip(),
            "commands": [
                f"{argv0} -machine none -accel kvm,kernel-irqchip=on|split|off -S -nodefaults "
                "-no-user-config -display none -qmp stdio",
                "QMP query-cpu-definitions (kernel-irqchip=on); host, max and base left out",
                "QMP query-cpu-model-expansion type static and type full, every model, "
                "each irqchip mode",
                f"{argv0} -machine none -accel tcg -S -nodefaults -no-user-config -display none "
                "-qmp stdio: QMP query-cpu-model-expansion type full, every model (vendor)",
            ],
            "note": "features: the static expansion's properties that are true (canonical "
            "names); family/model/stepping/model_id: the full expansion under KVM; "
            "vendor: the full expansion under TCG (under KVM every model shows the host's "
            "vendor); split and "
            "userspace: what differs from kernel-irqchip=on. Static expansions of named "
            "models do not depend on the host.",
        },
        "feature_names": sorted(all_names),
        "models": models,
    }


# -- generation (stdlib only, committed input only) --------------------------------------------


def render(text: str) -> str:
    data = json.loads(text)
    prov = data["provenance"]
    known = set(data["feature_names"])
    models = data["models"]
    rows: list[str] = []
    for name in sorted(models):
        m = models[name]
        alias = m["alias_of"]
        if alias is not None and alias not in models:
            raise SystemExit(f"{name}: alias of {alias}, which is not listed")
        feats = m["features"]
        extra = [x for mode in ("split", "userspace") for k in ("add", "remove")
                 for x in m[mode][k]]  # fmt: skip
        bad = sorted(set(feats + extra) - known)
        if bad:
            raise SystemExit(f"{name}: features the version does not name: {bad}")
        vendor = m["vendor"]
        if not isinstance(vendor, str) or len(vendor) != 12:
            raise SystemExit(f"{name}: vendor {vendor!r} is not a CPUID vendor string")
        sig = (m["family"], m["model"], m["stepping"])
        if not all(isinstance(x, int) for x in sig):
            raise SystemExit(f"{name}: family/model/stepping missing")

        def fs(xs: list[str]) -> str:
            return (
                "frozenset({" + ", ".join(json.dumps(x) for x in xs) + "})"
                if xs
                else ("frozenset()")
            )

        modes = ", ".join(
            f'"{mode}": ({fs(m[mode]["add"])}, {fs(m[mode]["remove"])})'
            for mode in ("split", "userspace")
            if m[mode]["add"] or m[mode]["remove"]
        )
        rows.append(
            f"    {json.dumps(name)}: QemuModel({json.dumps(name)}, "
            f"{json.dumps(alias) if alias else 'None'}, {json.dumps(vendor)}, {sig!r}, "
            f"{json.dumps(m['model_id'])}, {fs(feats)}, {{{modes}}}),"
        )
    digest = hashlib.sha256(text.encode()).hexdigest()
    out = [
        "# ruff: noqa: E501",
        "# Generated by scripts/gen_qemu_models.py -- do not edit by hand.",
        "# Regenerate: python scripts/gen_qemu_models.py (--check to verify)",
        "#",
        f"# Upstream facts: the x86 CPU models of {prov['qemu']}, as it answered over QMP;",
        "# see PROVENANCE for the commands.",
        f"# Input: scripts/data/qemu_models.json sha256 {digest}",
        '"""GENERATED by scripts/gen_qemu_models.py from scripts/data/qemu_models.json: do not',
        "edit. QEMU's x86 CPU models (name, alias, vendor, signature, features by QEMU's",
        "canonical property names per irqchip mode) and every feature property name it knows.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "from collections import namedtuple",
        "",
        "TYPE_CHECKING = False",
        "",
        "#: the QEMU whose answers these are (``qemu-system-x86_64 --version``, first line)",
        f"QEMU_VERSION = {json.dumps(prov['qemu'])}",
        "#: how the answers were obtained",
        "PROVENANCE = (",
        *[f"    {json.dumps(c)}," for c in prov["commands"]],
        ")",
        "",
        "",
        "if TYPE_CHECKING:",
        "    from typing import NamedTuple",
        "",
        "    class QemuModel(NamedTuple):",
        "        name: str",
        "        alias_of: str | None",
        "        vendor: str",
        "        signature: tuple[int, int, int]",
        "        model_id: str",
        "        #: feature properties on with kernel-irqchip=on",
        "        features: frozenset[str]",
        "        #: irqchip mode -> (properties added, properties removed) compared with kernel",
        "        modes: dict[str, tuple[frozenset[str], frozenset[str]]]",
        "",
        "else:  # the same named tuple, made without importing typing",
        "    QemuModel = namedtuple(",
        '        "QemuModel", "name alias_of vendor signature model_id features modes"',
        "    )",
        "",
        "",
        "#: every CPUID/MSR feature property name this QEMU version knows (canonical names:",
        "#: the boolean properties of its static expansions)",
        "FEATURE_NAMES: frozenset[str] = frozenset({",
        *[f"    {json.dumps(n)}," for n in sorted(known)],
        "})",
        "",
        "#: model name -> model, versioned names and aliases alike",
        "MODELS: dict[str, QemuModel] = {",
        *rows,
        "}",
        "",
    ]  # fmt: skip
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if the module is stale")
    ap.add_argument(
        "--record", nargs="?", const="qemu-system-x86_64", metavar="QEMU",
        help="re-ask QEMU over QMP and rewrite the input first (needs /dev/kvm)",
    )  # fmt: skip
    ap.add_argument("--input", type=Path, default=INPUT)
    ap.add_argument("--output", type=Path, default=OUTPUT)
    args = ap.parse_args()
    if args.record:
        qemu = shutil.which(args.record) or args.record
        args.input.write_text(json.dumps(record(qemu), indent=1, sort_keys=True) + "\n")
    text = render(args.input.read_text())
    if args.check:
        if not args.output.exists() or args.output.read_text() != text:
            print(f"{args.output} is stale: run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
