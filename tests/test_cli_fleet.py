"""CLI tests for `kvmprobe diff`, `kvmprobe baseline` and `--require` on cpuid, diff and
baseline: help, exit statuses, JSON documents, directories and globs, bad files, --skip-bad."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import FIXTURES
from support import hosts

from kvmprobe.cli import main

PVM = str(FIXTURES / "amd-epyc-pvm-6.18.json")
ZEN4 = str(FIXTURES / "amd-epyc-zen4-pvm-6.18.json")


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _write(path: Path, model: hosts.HostModel, clear: tuple[str, ...] = ()) -> str:
    c = hosts.cpuid(model)
    for name in clear:
        f = next(hosts.resolve(w, name) for w, ns in model.words.items() if name in ns)
        c.clear(f.leaf, f.subleaf, f.register, f.bit)
    c.put(0x80000008, 0, eax=46 | 48 << 8)
    path.write_text(hosts.host_snapshot(model, c).dumps())
    return str(path)


# ---- help ---------------------------------------------------------------------------------------


def test_help() -> None:
    assert "diff" in run("--help").output and "baseline" in run("--help").output
    r = run("diff", "--help")
    assert r.exit_code == 0 and "Can a guest started on host A run on host B" in r.output
    for opt in ("--irqchip", "--disable-exits", "--require", "--json"):
        assert opt in r.output
    r = run("baseline", "--help")
    assert r.exit_code == 0 and "--skip-bad" in r.output and "--require" in r.output
    assert "--require" in run("cpuid", "--help").output


# ---- diff ---------------------------------------------------------------------------------------


def test_diff_recorded_hosts_exit_0_and_5() -> None:
    r = run("diff", ZEN4, ZEN4, "--no-color")
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("Can a guest started on A run on B? yes")
    # the format-1 PVM snapshot has no vCPU verification: whether its guests get
    # arch_capabilities is unknown, and unknown evidence blocks (with the step named): the
    # answer is UNKNOWN, not NO, when nothing known stands in the way
    r = run("diff", PVM, ZEN4, "--no-color")
    assert r.exit_code == 5, r.output
    assert r.stdout.startswith("Can a guest started on A run on B? UNKNOWN")
    assert "Unknown evidence (never taken as equal) (2):" in r.stdout
    assert "arch_capabilities  - A: no vCPU verification in this snapshot" in r.stdout
    assert "IA32_ARCH_CAPABILITIES  MSR 0x10a  A: unknown, B: 0x0" in r.stdout
    assert "kvmprobe cannot tell: 2 unknown items stand between A and B" in r.stdout
    assert "B adds (a guest from B would lose these on A) (1):" in r.stdout
    assert "The reverse: a guest started on B cannot run on A." in r.stdout
    doc = json.loads(run("diff", PVM, ZEN4, "--json").stdout)
    assert doc["can_take"] is False and doc["answer"] == "unknown"
    assert doc["reverse"] is False and doc["reverse_answer"] == "no"
    r = run("diff", ZEN4, PVM, "--no-color")
    assert r.exit_code == 5
    assert r.stdout.startswith("Can a guest started on A run on B? NO")  # a known loss
    assert "A guest from A loses on B (1):" in r.stdout and "fp_256" in r.stdout
    assert "may or may not (unknown evidence) run on A" in r.stdout


def test_diff_json(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.json", hosts.SKYLAKE_SERVER)
    b = _write(tmp_path / "b.json", hosts.SKYLAKE_SERVER, clear=("clwb",))
    r = run("diff", a, b, "--json")
    assert r.exit_code == 5
    doc = json.loads(r.stdout)
    assert doc["schema"] == "kvmprobe.diff/1"
    assert doc["source"]["a"]["file"] == a and doc["source"]["b"]["file"] == b
    assert doc["can_take"] is False and doc["reverse"] is True
    assert [i["name"] for i in doc["lost"]] == ["clwb"]
    assert doc["lost"][0]["where"] == "0x7.0.ebx[24]" and doc["lost"][0]["blocks"] is True
    assert doc["counts"]["lost"] == 1
    assert doc["probe_errors"] == []
    assert json.loads(run("diff", b, a, "--json").stdout)["can_take"] is True


def test_diff_set_up_options() -> None:
    for args in (["--irqchip", "userspace"], ["--disable-exits", "hlt,pause"]):
        r = run("diff", PVM, ZEN4, "--json", *args)
        assert r.exit_code == 5, r.output
        doc = json.loads(r.stdout)
        assert doc["irqchip"] == (args[1] if args[0] == "--irqchip" else "kernel")
        blocking = [i["name"] for k in ("lost", "differs", "unknown") for i in doc[k]
                    if i["blocks"]]  # fmt: skip
        # unverified on A only: the CPUID bit and the ARCH_CAPABILITIES value
        assert sorted(blocking) == ["IA32_ARCH_CAPABILITIES", "arch_capabilities"]
    r = run("diff", PVM, ZEN4, "--disable-exits", "nope")
    assert r.exit_code == 2 and "unknown exit name" in r.stderr


def test_diff_require() -> None:
    r = run("diff", ZEN4, ZEN4, "--require", "cx16")
    assert r.exit_code == 0, r.output
    # mds-no: advertised on both; unverified on the format-1 host, refused by the Zen 4 vCPU
    r = run("diff", PVM, ZEN4, "--require", "cx16,mds-no", "--json")
    assert r.exit_code == 5
    subjects = json.loads(r.stdout)["require"]["subjects"]
    mds = [next(i for i in s["items"] if i["name"] == "mds-no") for s in subjects]
    assert [(i["met"], i["offered"]) for i in mds] == [(False, "unknown"), (False, "no")]
    assert "no vCPU verification" in mds[0]["why"]
    assert "refused by KVM_SET_MSRS on a vCPU" in mds[1]["why"]
    r = run("diff", PVM, ZEN4, "--require", "x86-64-v2", "--json")
    assert r.exit_code == 5
    doc = json.loads(r.stdout)
    assert doc["require"]["met"] is False
    assert [s["subject"] for s in doc["require"]["subjects"]] == [PVM, ZEN4]
    # one short line naming the item and the sides lacking it; the JSON carries the details
    assert r.stderr == (
        'kvmprobe: 1 requirement not met: x86-64-v2 on A and B (why: see "require" in the JSON)\n'
    )
    assert (
        "x86-64-v1; not offered (host-only): POPCNT"
        in doc["require"]["subjects"][0]["items"][0]["why"]
    )


def test_diff_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    r = run("diff", PVM, str(bad))
    assert r.exit_code == 1
    assert r.stderr.startswith(f"kvmprobe: error: {bad}: not valid JSON")
    assert "Traceback" not in r.output
    r = run("diff", str(tmp_path / "missing.json"), PVM)
    assert r.exit_code == 1 and "no such snapshot file" in r.stderr


@pytest.mark.live
def test_diff_against_the_live_device(live_device: str) -> None:
    r = run("diff", PVM, "--json", "--device", live_device)
    assert r.exit_code in (0, 5), r.output
    doc = json.loads(r.stdout)
    assert doc["source"]["b"]["kind"] == "live"
    assert doc["can_take"] is (r.exit_code == 0) is (doc["answer"] == "yes")


# ---- baseline -----------------------------------------------------------------------------------


def test_baseline_directory_and_text() -> None:
    r = run("baseline", str(FIXTURES), "--no-color")
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert out.startswith("Baseline of 2 hosts")
    assert "x86-64 level of the baseline guest: x86-64-v1" in out
    assert "Left out (2):" in out and "fp_256" in out
    assert "1 of 2 hosts lack it" in out
    # unverified on the format-1 host, refused by the Zen 4 host's vCPU
    flat = " ".join(out.split())
    assert "amd-epyc-pvm-6.18.json (unknown)" in flat
    assert "amd-epyc-zen4-pvm-6.18.json (not offered (removed-by-quirk))" in flat


def test_baseline_json_and_one_host(tmp_path: Path) -> None:
    r = run("baseline", PVM, "--json")
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    assert doc["schema"] == "kvmprobe.baseline/1"
    assert doc["hosts"] == [PVM] and doc["dropped"] == {}
    # one host, and only what it cannot tell is left out: no vCPU verification in format 1
    assert [x["name"] for x in doc["left_out"]] == ["arch_capabilities"]
    cpuid = json.loads(run("cpuid", "--json", "--from", PVM).stdout)
    effective = {f["where"] for f in cpuid["features"] if f["effective"]}
    assert {f["where"] for f in doc["features"]} == effective
    assert doc["count"] == len(effective)
    assert doc["vendor"] == "AuthenticAMD"
    assert doc["psabi"]["guest"] == "x86-64-v1"
    assert any(e["function"] == 0xD and e["index"] == 0 for e in doc["cpuid"])


def test_baseline_drops_a_chain_on_the_cli(tmp_path: Path) -> None:
    _write(tmp_path / "sky-1.json", hosts.SKYLAKE_SERVER)
    _write(tmp_path / "sky-2.json", hosts.SKYLAKE_SERVER, clear=("avx",))
    r = run("baseline", str(tmp_path / "sky-*.json"), "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert len(doc["hosts"]) == 2
    sky2 = str(tmp_path / "sky-2.json")
    assert doc["dropped"]["avx2"] == f"avx2 dropped: needs avx, which {sky2} lacks"
    avx = next(x for x in doc["left_out"] if x["name"] == "avx")
    assert avx["lacking"] == 1 and avx["hosts_lacking"] == {"host-only": [sky2]}


def test_baseline_require_exit_statuses() -> None:
    assert run("baseline", str(FIXTURES), "--require", "cx16,x86-64-v1").exit_code == 0
    r = run("baseline", str(FIXTURES), "--require", "fp_256,x86-64-v2")
    assert r.exit_code == 5
    # stdout's Requirements section says why; stderr only names what is missing, once
    assert r.stderr == (
        'kvmprobe: 2 requirements not met: fp_256, x86-64-v2 (why: see "Requirements" above)\n'
    )
    assert "MISSING x86-64-v2" in r.stdout
    assert "MISSING fp_256: 1 of 2 hosts lack it" in " ".join(r.stdout.split())
    r = run("baseline", str(FIXTURES), "--require", "avx3")
    assert r.exit_code == 2
    assert "unknown name 'avx3'" in r.stderr and "did you mean" in r.stderr


def test_baseline_bad_file_stops_unless_skip_bad(tmp_path: Path) -> None:
    shutil.copy(PVM, tmp_path / "a.json")
    (tmp_path / "b.json").write_text('{"schema": "kvmprobe.snapshot/2", "caps": 3}')
    shutil.copy(ZEN4, tmp_path / "c.json")
    r = run("baseline", str(tmp_path))
    assert r.exit_code == 1
    assert r.stderr.startswith(f"kvmprobe: error: {tmp_path / 'b.json'}: ")
    assert "--skip-bad" in r.stderr
    r = run("baseline", str(tmp_path), "--skip-bad", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert [Path(h).name for h in doc["hosts"]] == ["a.json", "c.json"]
    assert [Path(s["file"]).name for s in doc["skipped"]] == ["b.json"]
    assert "kvmprobe: warning: skipping:" in r.stderr


def test_baseline_paths_that_name_nothing(tmp_path: Path) -> None:
    r = run("baseline", str(tmp_path / "none-*.json"))
    assert r.exit_code == 2 and "no file matches this pattern" in r.stderr
    (tmp_path / "empty").mkdir()
    r = run("baseline", str(tmp_path / "empty"))
    assert r.exit_code == 2 and "holds no *.json" in r.stderr
    r = run("baseline", str(tmp_path / "empty"), "--skip-bad")
    assert r.exit_code == 1 and "no snapshot could be read" in r.stderr
    assert run("baseline").exit_code == 2


def test_baseline_in_workers_equals_one_process(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import kvmprobe.collect as collect

    for i in range(12):
        shutil.copy(PVM if i % 3 else ZEN4, tmp_path / f"h{i:02d}.json")
    one = run("baseline", str(tmp_path), "--json", "--jobs", "1").stdout
    monkeypatch.setattr(collect, "PARALLEL_FROM", 2)
    two = run("baseline", str(tmp_path), "--json", "--jobs", "2").stdout
    assert one == two


# ---- cpuid --require and the new cpuid JSON -------------------------------------------------


def test_cpuid_require_exit_statuses() -> None:
    assert run("cpuid", "--from", PVM, "--require", "cx16,x86-64-v1").exit_code == 0
    r = run("cpuid", "--from", PVM, "--require", "x86-64-v2,sse4.2,mds-no", "--json")
    assert r.exit_code == 5
    doc = json.loads(r.stdout)
    items = {i["name"]: i for i in doc["require"]["subjects"][0]["items"]}
    # advertised, but this format-1 snapshot cannot tell whether a vCPU takes it
    assert (items["mds-no"]["met"], items["mds-no"]["offered"]) == (False, "unknown")
    assert items["sse4_2"]["met"] is False and items["sse4_2"]["offered"] == "no"
    assert r.stderr == (
        "kvmprobe: 3 requirements not met: x86-64-v2, sse4_2, mds-no "
        '(why: see "require" in the JSON)\n'
    )
    r = run("cpuid", "--from", PVM, "--require", "sse4.2", "--no-color")
    assert r.exit_code == 5 and "MISSING sse4_2" in r.stdout
    r = run("cpuid", "--from", PVM, "--require", "nosuchthing")
    assert r.exit_code == 2 and "unknown name 'nosuchthing'" in r.stderr
    r = run("cpuid", "--from", PVM, "--require", " , ")
    assert r.exit_code == 2 and "the list is empty" in r.stderr


def test_cpuid_json_psabi_and_consistency() -> None:
    doc = json.loads(run("cpuid", "--json", "--from", PVM).stdout)
    assert doc["psabi"]["guest"] == "x86-64-v1"
    assert doc["psabi"]["host"] == "x86-64-v4" and doc["psabi"]["host_source"] == "cpuid"
    v2 = doc["psabi"]["missing"]["x86-64-v2"]
    assert [m["feature"] for m in v2] == ["popcnt", "pni", "sse4_1", "sse4_2", "ssse3"]
    assert {m["reason"] for m in v2} == {"host-only"}
    assert doc["psabi"]["emulated"] == {"x86-64-v3": ["movbe"]}
    checks = {c["check"] for c in doc["consistency"]}
    assert "xsave-state-without-xsave" in checks
    assert all(c["evidence"] and c["raw"] for c in doc["consistency"])


def test_interrupt_with_workers_running_ends_cleanly(tmp_path: Path) -> None:
    """Ctrl-C reaches the whole process group: the workers leave it to the parent, which ends
    with "kvmprobe: interrupted" and 130 (or had already finished), never a traceback."""
    import os
    import signal
    import subprocess
    import sys
    import time

    for i in range(2000):
        os.link(PVM, tmp_path / f"h{i:04d}.json")
    p = subprocess.Popen(
        [sys.executable, "-m", "kvmprobe", "baseline", str(tmp_path), "--json", "--jobs", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    time.sleep(1.0)
    os.killpg(p.pid, signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert "Traceback" not in err, err
    assert p.returncode in (0, 130), (p.returncode, err)
    if p.returncode == 130:
        assert err.strip() == "kvmprobe: interrupted"


def test_baseline_of_two_vendors_is_no_guest(tmp_path: Path) -> None:
    """Hosts whose CPU vendors differ share no guest: exit 5 (text and JSON), and every
    --require item is missing for that reason, the levels included."""
    intel = _write(tmp_path / "intel.json", hosts.SKYLAKE_SERVER)
    r = run("baseline", ZEN4, intel, "--no-color")
    assert r.exit_code == 5
    assert "vendor differs between hosts" in r.stdout
    assert "the hosts' CPU vendors differ" in r.stderr
    r = run("baseline", ZEN4, intel, "--json", "--require", "sse2,x86-64-v1")
    assert r.exit_code == 5
    doc = json.loads(r.stdout)
    assert doc["vendor"] is None
    (subject,) = doc["require"]["subjects"]
    assert [i["met"] for i in subject["items"]] == [False, False], subject
    assert subject["items"][1]["offered"] == "no"
