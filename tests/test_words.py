"""The words reports use: counted nouns in agreement, one name per thing (area titles, CPUID
locations, argument names, the live device), no source paths, and labels kept with their
values when a line wraps."""

from __future__ import annotations

import ast
import re
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import FIXTURES

from kvmprobe.analysis.profile import build
from kvmprobe.analysis.quirks import Options
from kvmprobe.cli import main
from kvmprobe.render.cpuid_report import AREA_TITLES
from kvmprobe.render.term import GLUE, Line, Term
from kvmprobe.snapshot import load
from kvmprobe.words import count, plural

PACKAGE = Path(__file__).resolve().parent.parent / "kvmprobe"
PVM = str(FIXTURES / "amd-epyc-pvm-6.18.json")
ZEN4 = str(FIXTURES / "amd-epyc-zen4-pvm-6.18.json")


def run(*args: str, width: int = 80):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, ["--no-color", *args], env={"COLUMNS": str(width)})


def test_counted_nouns_agree() -> None:
    assert [count(n, "host") for n in (0, 1, 2)] == ["0 hosts", "1 host", "2 hosts"]
    assert count(1, "probe step") == "1 probe step"
    assert count(3, "unknown item") == "3 unknown items"
    assert (plural(1, "stops", "stop"), plural(2, "stops", "stop")) == ("stops", "stop")


def _string_constants(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        and id(node) not in docstrings
    ]  # fmt: skip


def test_no_lazy_plural_in_any_message() -> None:
    """'2 host(s)' reads as if nobody counted: every string kvmprobe prints says 1 host or 2
    hosts (kvmprobe.words.count)."""
    lazy = re.compile(r"[a-z]\((s|es)\)")
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {text!r}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for line, text in _string_constants(path)
        if lazy.search(text)
    ]
    assert not found, found


@pytest.mark.parametrize(
    "args",
    [
        ["baseline", str(FIXTURES)],
        ["diff", PVM, ZEN4],
        ["doctor", "--from", PVM],
        ["cpuid", "--from", PVM],
        ["cpuid", "--from", PVM, "--require", "x86-64-v2,mds-no,avx2"],
    ],
    ids=lambda a: " ".join(Path(x).name for x in a),
)
def test_reports_count_in_words(args: list[str]) -> None:
    r = run(*args)
    assert r.exit_code in (0, 5), r.output
    assert not re.search(r"[a-z]\(s\)", r.output), r.output


def test_baseline_groups_under_the_cpuid_reports_area_titles() -> None:
    r = run("baseline", str(FIXTURES), width=200)
    assert r.exit_code == 0, r.output
    block = r.stdout.split("Features every host gives")[1].split("x86-64 level")[0]
    areas = [line.split(": ")[0].strip() for line in block.splitlines()[1:] if line[2] != " "]
    assert areas and set(areas) <= set(AREA_TITLES.values()), areas
    # in the cpuid report's order
    order = list(AREA_TITLES.values())
    assert areas == sorted(areas, key=order.index)
    assert "Cache and topology" in areas and "cache-topology" not in r.stdout


def test_doctor_names_cpuid_bits_as_every_other_report_does() -> None:
    r = run("doctor", "--from", PVM, "--json")
    assert "VMX (0x1.0.ecx[5])" in r.stdout and "SVM (0x80000001.0.ecx[2])" in r.stdout
    assert ".ECX[" not in r.stdout


def test_a_live_side_is_named_by_its_device() -> None:
    snap = replace(load(PVM)[0], source="live", device="/dev/kvm-test")
    assert build(snap, Options()).name == "/dev/kvm-test"
    assert build(load(PVM)[0], Options()).name == PVM


def test_explain_shows_no_source_path() -> None:
    """Citations name kvmprobe's own evidence in words, not by its file."""
    explain = ["cpuid", "--explain"]
    for args in ([*explain, "mds-no", "--from", ZEN4],
                 [*explain, "arch_capabilities", "--from", ZEN4, "--json"]):  # fmt: skip
        r = run(*args)
        assert r.exit_code == 0, r.output
        assert not re.search(r"kvmprobe/[a-z_/]+\.py", r.stdout), r.stdout
    assert "kvmprobe's own vCPU check" in run(*args).stdout


@pytest.mark.parametrize("width", range(40, 121, 4))
def test_labels_stay_with_their_values(width: int) -> None:
    """'given:' and its answer, 'stepping' and its number: never split by a line break."""
    text = run("cpuid", "--explain", "mds-no", "--from", ZEN4, width=width).stdout
    assert "given it: no\n" in text and "given: no\n" in text, text
    assert not re.search(r"(given( it)?:|given|stepping)\n", text), text
    assert "\u00a0" not in text  # the glue is written as a plain space
    text = run("diff", PVM, ZEN4, width=width).stdout
    for n in ("family 26", "model 2", "stepping 1", "family 25", "model 17"):
        assert n in text, (n, text)


def test_glue_never_breaks_and_is_written_as_a_space() -> None:
    term = Term(20)
    lines = term.para(Line.of(f"aaaa bbbb cccc given:{GLUE}yes"))
    assert term.render(lines) == "aaaa bbbb cccc\n  given: yes\n"


def test_cpuid_require_failures_are_told_once() -> None:
    """The report says why; standard error only names what is missing, on one line."""
    r = run("cpuid", "--from", PVM, "--require", "x86-64-v2,mds-no,cx16")
    assert r.exit_code == 5
    assert r.stderr == (
        'kvmprobe: 2 requirements not met: x86-64-v2, mds-no (why: see "Requirements" above)\n'
    )
    flat = " ".join(r.stdout.split())
    assert "MISSING x86-64-v2: the guest reaches x86-64-v1; not offered (host-only): POPCNT" in flat
    assert "(not offered (host-only))" not in flat
    assert "met cx16: offered" in flat
