"""Golden outputs of the fleet commands on the recorded hosts: `baseline` of both, `diff` from
the Zen 4 host to the other (a move that fails), JSON and no-colour text.

Regenerate after an intended change with KVMPROBE_UPDATE_GOLDEN=1 and review the diff."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner
from conftest import FIXTURES, GOLDEN

from kvmprobe import __version__
from kvmprobe.cli import main

UPDATE = os.environ.get("KVMPROBE_UPDATE_GOLDEN") == "1"
PVM, ZEN4 = "amd-epyc-pvm-6.18.json", "amd-epyc-zen4-pvm-6.18.json"

CASES = {
    "baseline.json": (["baseline", PVM, ZEN4, "--json"], 0),
    "baseline.txt": (["baseline", PVM, ZEN4, "--no-color"], 0),
    "diff.json": (["diff", ZEN4, PVM, "--json"], 5),
    "diff.txt": (["diff", ZEN4, PVM, "--no-color"], 5),
}


def _version_free(doc: dict) -> None:  # type: ignore[type-arg]
    src = doc["source"]
    src["kvmprobe_version"] = "<version>"
    for side in ("a", "b"):
        if side in src:
            assert src[side]["kvmprobe_version"] == __version__
            src[side]["kvmprobe_version"] = "<version>"


def _render(args: list[str], status: int) -> str:
    cwd = os.getcwd()
    os.chdir(FIXTURES)  # so the recorded files are named by their base names
    try:
        r = CliRunner().invoke(
            main, args, env={"COLUMNS": "120", "NO_COLOR": None}, catch_exceptions=False
        )
    finally:
        os.chdir(cwd)
    assert r.exit_code == status, r.output
    out = r.stdout
    if "--json" in args:
        doc = json.loads(out)
        _version_free(doc)
        out = json.dumps(doc, indent=2) + "\n"
    return "\n".join(line.rstrip() for line in out.splitlines()) + "\n"


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_fleet(name: str) -> None:
    got = _render(*CASES[name])
    path = GOLDEN / "fleet" / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(got)
    assert path.exists(), f"no golden file {path}: run with KVMPROBE_UPDATE_GOLDEN=1"
    assert got == path.read_text(), f"{path} differs (KVMPROBE_UPDATE_GOLDEN=1 to accept)"
