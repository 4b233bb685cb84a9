"""What ``kvmprobe cpuid`` answers about what it was asked: the summary's counts add up (in the
report, the bare ``kvmprobe`` screen and JSON alike), ``--explain`` takes what the filter takes
or says exactly why not, an explicit location shows every row it names, and a filtered
``--json`` keeps ``counts`` whole and puts the filter's numbers under ``matched``."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import FIXTURES, RECORDED_HOSTS

from kvmprobe.analysis import cpuid_query as cq
from kvmprobe.analysis.effective import analyse
from kvmprobe.cli import main
from kvmprobe.render.summary import summary_text
from kvmprobe.snapshot import CpuidEntry, load

HOSTS = [str(p) for p in RECORDED_HOSTS]
ZEN4 = str(FIXTURES / "amd-epyc-zen4-pvm-6.18.json")

#: the summary's words -> the status they count, as a reader of the sentence takes them
GIVEN = {
    "supported": "supported",
    "added by quirks": "added-by-quirk",
    "opt-in": "opt-in",
    "runtime": "runtime",
    "emulated": "emulated",
}
NOT_GIVEN = {
    "removed by quirks": "removed-by-quirk",
    "runtime bit the guest's kernel sets": "runtime",
    "runtime bits the guest's kernel sets": "runtime",
    "host-only": "host-only",
    "host features KVM does not pass on": "host-only",
    "unsupported": "unsupported",
}


def run(*args: str, columns: int = 80) -> Result:
    return CliRunner().invoke(
        main, list(args), env={"COLUMNS": str(columns), "NO_COLOR": "1"}, catch_exceptions=False
    )


def _paragraph(text: str, start: str) -> str:
    """The wrapped paragraph that begins with ``start``, joined into one line."""
    lines = text.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith(start))
    indent = len(start) - len(start.lstrip()) + 2
    out = [lines[i]]
    for line in lines[i + 1 :]:
        if not line.startswith(" " * indent) or line.startswith(" " * (indent + 1)):
            break
        out.append(line.strip())
    return " ".join(out)


def _items(part: str, words: dict[str, str]) -> dict[str, int]:
    """``94 supported, 2 added by quirks`` -> {status: n}; every item must be a known kind."""
    out: dict[str, int] = {}
    for item in part.split(", "):
        n, word = item.split(" ", 1)
        assert word in words, f"{word!r} is no kind the summary should name"
        out[words[word]] = out.get(words[word], 0) + int(n)
    return out


def _parse(sentence: str) -> tuple[int, dict[str, int], int, dict[str, int]]:
    """(N a guest can be given, the given kinds, unknown, the kinds not given)."""
    m = re.search(r"(\d+) features? (?:a guest )?can be given(?:: ([^;]*))?(.*)$", sentence)
    assert m, sentence
    total, given_part, rest = int(m.group(1)), m.group(2) or "", m.group(3)
    given = _items(given_part, GIVEN) if given_part else {}
    u = re.search(r"; (\d+) unknown", rest)
    ng = re.search(r"; not given: ([^;]*)", rest)
    not_given = _items(ng.group(1), NOT_GIVEN) if ng else {}
    return total, given, int(u.group(1)) if u else 0, not_given


def _check_cpuid_report(args: list[str]) -> None:
    text = run("cpuid", *args).stdout
    total, given, unknown, not_given = _parse(_paragraph(text, "Summary: "))
    assert sum(given.values()) == total
    doc = json.loads(run("cpuid", "--json", *args).stdout)
    # the sentence says what JSON says: the given kinds are given_counts, and per status
    # given + not given + unknown is counts
    assert {k: v for k, v in doc["given_counts"].items() if v} == given
    assert sum(doc["given_counts"].values()) == total
    assert unknown == doc["counts"]["unknown"]
    for status, n in doc["counts"].items():
        if status != "unknown":
            assert given.get(status, 0) + not_given.get(status, 0) == n, status
    assert total + unknown + sum(not_given.values()) == len(doc["features"])


def _check_bare_summary(text: str, doc: dict) -> None:
    total, given, unknown, not_given = _parse(_paragraph(text, "  guest CPUID"))
    assert sum(given.values()) == total == sum(doc["given_counts"].values())
    assert unknown == doc["counts"]["unknown"]
    assert not_given.get("host-only", 0) == doc["counts"]["host-only"]
    assert not_given.get("removed-by-quirk", 0) == doc["counts"]["removed-by-quirk"]
    assert "unsupported" not in not_given  # features neither KVM nor the host has: not news


# ---- 3. the summary's counts add up --------------------------------------------------------


@pytest.mark.parametrize("host", HOSTS, ids=lambda h: Path(h).name)
@pytest.mark.parametrize("irqchip", ["kernel", "userspace"])
def test_summary_numbers_sum_to_the_total(host: str, irqchip: str) -> None:
    _check_cpuid_report(["--from", host, "--irqchip", irqchip])


@pytest.mark.parametrize("host", HOSTS, ids=lambda h: Path(h).name)
def test_bare_summary_numbers_sum_to_the_total(host: str) -> None:
    snap, _ = load(host)
    doc = json.loads(run("cpuid", "--json", "--from", host).stdout)
    _check_bare_summary(summary_text(snap, analyse(snap)), doc)


@pytest.mark.live
def test_summary_numbers_sum_to_the_total_live(live_device: str) -> None:
    _check_cpuid_report(["--device", live_device])
    doc = json.loads(run("cpuid", "--json", "--device", live_device).stdout)
    r = run()  # the bare command: the summary of /dev/kvm
    assert r.exit_code == 0, r.stderr
    _check_bare_summary(r.stdout, doc)


def test_runtime_bits_a_guest_is_not_given_are_said_apart() -> None:
    text = " ".join(run("cpuid", "--from", ZEN4).stdout.split())
    assert "1 runtime, 1 emulated; not given: 1 removed by quirks, 2 runtime bits the guest's" in (
        text
    )
    assert "1 removed by quirks, 5 opt-in" not in text  # removed is never among the given


def test_a_filtered_summary_adds_up_too() -> None:
    text = " ".join(run("cpuid", "0x1.0.ecx", "--from", ZEN4).stdout.split())
    assert (
        "31 features match '0x1.0.ecx', 5 of them a guest can be given: 4 supported, 1 emulated;"
        " not given: 1 runtime bit the guest's kernel sets, 13 host-only, 12 unsupported"
    ) in text


# ---- 4. --explain takes what the filter takes ---------------------------------------------


@pytest.mark.parametrize("text", ["phys_addr_bits", "PHYS-ADDR-BITS", "0x80000008.0.eax[7:0]"])
def test_explain_a_value_by_name_or_location(text: str) -> None:
    r = run("cpuid", "--explain", text, "--from", ZEN4)
    assert r.exit_code == 0, r.stderr
    out = " ".join(r.stdout.split())
    assert out.startswith("phys_addr_bits (a value: bits 7:0 of 0x80000008.0.eax)")
    assert "where: CPUID 0x80000008.0.eax[7:0] (KVM's EAX = 0x00003030)" in out
    assert "result: a guest in this set-up is given 48" in out
    assert "KVM_GET_SUPPORTED_CPUID: 48" in out and "host CPUID: 48" in out
    assert "[guest-phys-bits]" not in out and "guest-phys-bits" in out  # the note on its leaf
    assert "between hosts (diff, baseline): must not shrink" in out
    assert "asked for as" not in out  # its own name or location


def test_explain_bits_inside_a_value_names_the_value() -> None:
    r = run("cpuid", "--explain", "0x1.0.eax[8]", "--from", ZEN4)
    assert r.exit_code == 0, r.stderr
    assert r.stdout.startswith("family  (a value: bits 11:8 of 0x1.0.eax)")
    assert "(asked for as 0x1.0.eax[8], which lies in this value)" in r.stdout


def test_explain_per_vcpu_and_absent_values() -> None:
    out = " ".join(run("cpuid", "--explain", "initial_apic_id", "--from", ZEN4).stdout.split())
    assert "result: each vCPU is given its own value; KVM reports 0" in out
    out = " ".join(run("cpuid", "--explain", "epc_base_low", "--from", ZEN4).stdout.split())
    assert "KVM_GET_SUPPORTED_CPUID has no leaf 0x12.2" in out
    assert "KVM_GET_SUPPORTED_CPUID: no such leaf" in out


@pytest.mark.parametrize("width", (40, 60, 80, 120, 200))
@pytest.mark.parametrize("host", HOSTS, ids=lambda h: Path(h).name)
def test_a_values_story_fits_and_cuts_nothing(host: str, width: int) -> None:
    from kvmprobe.analysis import cpuid as cp
    from kvmprobe.analysis.explanation import explain_field
    from kvmprobe.render.cpuid_report import field_explain_lines
    from kvmprobe.render.term import Term

    snap, _ = load(host)
    a = analyse(snap)
    wide = Term(400)
    for fd in cp.fields():
        story = explain_field(a, fd)
        assert story is not None
        text = Term(width).render(field_explain_lines(a, story, Term(width), "0x1.0.eax[8]"))
        for line in text.splitlines():
            assert len(line) <= width and line == line.rstrip(), line
        whole = wide.render(field_explain_lines(a, story, wide, "0x1.0.eax[8]"))
        assert re.sub(r"\s+", "", text) == re.sub(r"\s+", "", whole), fd.name


def test_explain_a_value_in_json() -> None:
    doc = json.loads(run("cpuid", "--explain", "phys_addr_bits", "--json", "--from", ZEN4).stdout)
    (fd,) = doc["fields"]
    assert doc["features"] == []
    assert (fd["name"], fd["kvm"], fd["guest"], fd["per_vcpu"], fd["compare"]) == (
        "phys_addr_bits", 48, 48, False, "must-not-shrink",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("0x1.0.ecx", "'0x1.0.ecx' is a whole register, with 31 features"),
        ("0x7.1", "'0x7.1' is a whole subleaf, with 30 features"),
        ("0x40000001", "'0x40000001' is a whole leaf, with 19 features"),
        ("0x80000008.0.eax[15:0]", "is bits 15:0 of a register, with 2 values"),
    ],
)
def test_explain_refuses_a_register_with_the_filter_as_the_hint(text: str, said: str) -> None:
    r = run("cpuid", "--explain", text, "--from", ZEN4)
    assert r.exit_code == 2 and r.stdout == ""
    assert said in r.stderr
    assert f"hint: 'kvmprobe cpuid {text}' lists them" in r.stderr
    assert "did you mean" not in r.stderr
    assert run("cpuid", text, "--from", ZEN4).exit_code == 0  # the filter takes it


def test_explain_refuses_part_of_several_names() -> None:
    r = run("cpuid", "--explain", "avx5", "--from", ZEN4)
    assert r.exit_code == 2 and "'avx5' is only part of 25 features (avx512f" in r.stderr
    assert "hint: 'kvmprobe cpuid avx5' lists them" in r.stderr


def test_explain_a_bit_no_table_names(tmp_path: Path) -> None:
    r = run("cpuid", "--explain", "0x1.0.ecx[16]", "--from", ZEN4)
    assert r.exit_code == 2
    assert "no feature kvmprobe knows is at 0x1.0.ecx[16], and KVM does not set that bit" in (
        r.stderr
    )
    assert "hint: 'kvmprobe cpuid 0x1.0.ecx' shows the whole register" in r.stderr
    # a bit KVM sets that no table names is shown by the filter, and explained
    snap, _ = load(ZEN4)
    entries = tuple(
        replace(e, ecx=e.ecx | 1 << 16) if (e.function, e.index) == (1, 0) else e
        for e in snap.supported_cpuid or ()
    )
    assert all(isinstance(e, CpuidEntry) for e in entries)
    path = tmp_path / "unnamed.json"
    path.write_text(replace(snap, supported_cpuid=entries).dumps())
    assert "0x1.0.ecx[16]" in run("cpuid", "0x1.0.ecx[16]", "--from", str(path)).stdout
    r = run("cpuid", "--explain", "0x1.0.ecx[16]", "--from", str(path))
    assert r.exit_code == 0, r.stderr
    assert r.stdout.startswith("0x1.0.ecx[16]") and "bit not named by kvmprobe's tables" in r.stdout


def test_explain_a_location_where_nothing_is_known() -> None:
    r = run("cpuid", "--explain", "0x12345678", "--from", ZEN4)
    assert r.exit_code == 2
    assert "kvmprobe knows no CPUID feature or value at 0x12345678" in r.stderr
    assert "did you mean" not in r.stderr


@pytest.mark.parametrize(
    ("typed", "close"),
    [
        ("x2apci", ["x2apic"]),
        ("hyperviser", ["hypervisor"]),
        ("tscdeadline", ["tsc_deadline_timer"]),
        ("X86_FEATURE_AVX3", ["avx", "avx2"]),
        ("physaddrbits", ["phys_addr_bits", "guest_phys_addr_bits"]),
        ("mds-nope", ["mds-no"]),
        ("xyzzy", []),
        ("0x1.0.ecx", []),
        ("0x80000008.0.eax[7:0]", []),
    ],
)
def test_suggestions_are_close_to_what_was_typed(typed: str, close: list[str]) -> None:
    assert cq.suggestions(typed) == close


def test_unknown_explain_name_suggests_only_close_names() -> None:
    r = run("cpuid", "--explain", "x2apci", "--from", ZEN4)
    assert r.exit_code == 2 and "hint: did you mean: x2apic?" in r.stderr


# ---- 5. filters: a location shows its rows; fields and MSR bits are counted -------------------


def test_a_location_shows_every_row_it_names() -> None:
    r = run("cpuid", "0x7.1", "--from", ZEN4, columns=120)
    assert r.exit_code == 0
    rows = [line.split()[0] for line in r.stdout.splitlines() if "0x7.1." in line]
    assert len(rows) == 30 and "Not shown" not in r.stdout
    assert "30 features match '0x7.1', 0 of them a guest can be given" in r.stdout
    r = run("cpuid", "0x1.0.ecx", "--from", ZEN4, columns=120)
    rows = [line for line in r.stdout.splitlines() if "0x1.0.ecx[" in line]
    assert len(rows) == 31 and any("host-only" in row for row in rows)


def test_a_value_filter_counts_values_not_features() -> None:
    r = run("cpuid", "phys_addr_bits", "--from", ZEN4, columns=120)
    assert r.exit_code == 0
    assert "0 features" not in r.stdout
    assert "Summary: 2 fields match 'phys_addr_bits'" in r.stdout  # and guest_phys_addr_bits
    assert "Why a value is what it is: kvmprobe cpuid --explain NAME" in r.stdout


def test_an_msr_bit_filter_has_the_report_frame() -> None:
    r = run("cpuid", "mds-no", "--from", ZEN4, columns=120)
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    assert lines[0].startswith("Effective guest CPUID - /dev/kvm")
    assert lines[1].startswith("set-up: irqchip=kernel")
    assert "Summary: 1 feature-MSR bit matches 'mds-no', 0 of them a guest can be given" in lines
    assert lines[-1] == "Why a bit is what it is: kvmprobe cpuid --explain NAME"


# ---- 10. filtered --json: counts and entries whole, the filter's numbers under matched ------


def test_filtered_json_keeps_counts_whole_and_says_what_matched() -> None:
    whole = json.loads(run("cpuid", "--json", "--from", ZEN4).stdout)
    doc = json.loads(run("cpuid", "--json", "0x1.0.ecx", "--from", ZEN4).stdout)
    assert doc["counts"] == whole["counts"] and doc["entries"] == whole["entries"]
    assert doc["given_counts"] == whole["given_counts"]
    assert "matched" not in whole
    m = doc["matched"]
    assert (m["features"], m["fields"], m["msr_bits"]) == (len(doc["features"]), 0, 0) == (
        31, 0, 0,
    )  # fmt: skip
    assert sum(m["counts"].values()) == 31 and sum(m["given_counts"].values()) == 5
    text = run("cpuid", "0x1.0.ecx", "--from", ZEN4).stdout
    assert "5 of them a guest can be given: 4 supported, 1 emulated" in " ".join(text.split())
    assert (
        json.loads(run("cpuid", "--json", "mds-no", "--from", ZEN4).stdout)["matched"]["msr_bits"]
        == 1
    )
