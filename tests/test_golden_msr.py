"""Golden outputs of `kvmprobe msr` and `kvmprobe hyperv` for every recorded host: JSON and
no-colour text, in the style of test_golden.py.

Regenerate after an intended change with KVMPROBE_UPDATE_GOLDEN=1 and review the diff."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner
from conftest import FIXTURES, GOLDEN, RECORDED_HOSTS

from kvmprobe import __version__
from kvmprobe.cli import main

UPDATE = os.environ.get("KVMPROBE_UPDATE_GOLDEN") == "1"

CASES = {
    "msr.json": ["msr", "--json"],
    "msr.txt": ["msr", "--no-color"],
    "msr-mds-no.txt": ["msr", "mds-no", "--no-color"],
    "hyperv.json": ["hyperv", "--json"],
    "hyperv.txt": ["hyperv", "--no-color"],
}


def _render(host: str, args: list[str]) -> str:
    cwd = os.getcwd()
    os.chdir(FIXTURES)  # so the recorded file is named by its base name in every output
    try:
        r = CliRunner().invoke(
            main, [*args, "--from", host], env={"COLUMNS": "80", "NO_COLOR": None},
            catch_exceptions=False,
        )  # fmt: skip
    finally:
        os.chdir(cwd)
    assert r.exit_code == 0, r.stderr
    out = r.stdout
    if "--json" in args:
        doc = json.loads(out)
        assert doc["source"]["kvmprobe_version"] == __version__
        doc["source"]["kvmprobe_version"] = "<version>"  # golden files outlive releases
        out = json.dumps(doc, indent=2) + "\n"
    else:
        assert all(line == line.rstrip() for line in out.splitlines()), "trailing blanks"
    return out


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("host", [p.name for p in RECORDED_HOSTS])
def test_golden(host: str, name: str) -> None:
    got = _render(host, CASES[name])
    path = GOLDEN / host.removesuffix(".json") / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(got)
    assert path.exists(), f"no golden file {path}: run with KVMPROBE_UPDATE_GOLDEN=1"
    assert got == path.read_text(), f"{path} differs (KVMPROBE_UPDATE_GOLDEN=1 to accept)"
