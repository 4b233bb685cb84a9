"""CLI tests for `kvmprobe msr` and `kvmprobe hyperv`: help, --from, --json, filters, exit
statuses, 80-column text, and the live device when it can be opened."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from conftest import FIXTURES
from support.synth_msr import hyperv_host, intel_nested_vmx

from kvmprobe.cli import main

FIX = str(FIXTURES / "amd-epyc-pvm-6.18.json")
ZEN4 = str(FIXTURES / "amd-epyc-zen4-pvm-6.18.json")
SAFE_INT = 2**53


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def _ints(doc: Any) -> list[int]:
    if isinstance(doc, bool):
        return []
    if isinstance(doc, int):
        return [doc]
    if isinstance(doc, dict):
        return [i for v in doc.values() for i in _ints(v)]
    if isinstance(doc, list):
        return [i for v in doc for i in _ints(v)]
    return []


@pytest.fixture(scope="module")
def intel_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    p = tmp_path_factory.mktemp("snap") / "intel-nested-vmx.json"
    p.write_text(intel_nested_vmx().dumps())
    return str(p)


@pytest.fixture(scope="module")
def hv_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    p = tmp_path_factory.mktemp("snap") / "hyperv.json"
    p.write_text(hyperv_host().dumps())
    return str(p)


def test_help() -> None:
    r = run("--help")
    assert "msr" in r.output and "hyperv" in r.output
    r = run("msr", "--help")
    assert r.exit_code == 0 and "FILTER" in r.output and "--from" in r.output
    r = run("hyperv", "--help")
    assert r.exit_code == 0 and "--json" in r.output and "--device" in r.output


def test_msr_json_from_fixture() -> None:
    r = run("msr", "--json", "--from", FIX)
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["schema"] == "kvmprobe.msr/1"
    assert doc["source"]["kind"] == "snapshot" and doc["source"]["file"] == FIX
    caps = {d["name"]: d for d in doc["feature_msrs"]}["MSR_IA32_ARCH_CAPABILITIES"]
    assert caps["value"] == "0x400000000c000069"
    assert (caps["value_hi"] << 32) | caps["value_lo"] == 0x400000000C000069
    assert caps["set"] == ["RDCL_NO", "SKIP_VMENTRY_L1DFLUSH", "MDS_NO", "PSCHANGE_MC_NO",
                           "GDS_NO", "RFDS_NO", "ITS_NO"]  # fmt: skip
    assert caps["remainder"] == "0x0"
    mds = next(b for b in caps["bits"] if b["name"] == "MDS_NO")
    assert mds["libvirt"] == "mds-no" and mds["qemu"] == "mds-no" and mds["set"] is True
    assert len(doc["msr_index_list"]) == 40
    # recorded before the vCPU check: what a guest is told is unknown, never the advertisement
    assert doc["mitigations"].startswith("unknown: KVM advertises RDCL_NO")
    assert (
        caps["vcpu"]["accepted"] is None and "no vCPU verification" in caps["vcpu"]["why_unknown"]
    )
    assert doc["probe_errors"] == [] and doc["unread"] == []
    assert max(_ints(doc)) < SAFE_INT


def test_msr_json_intel_controls(intel_file: str) -> None:
    doc = json.loads(run("msr", "--json", "--from", intel_file).stdout)
    assert doc["vendor"] == "intel"
    by = {d["hex_index"]: d for d in doc["feature_msrs"]}
    procbased = by["0x48e"]
    assert procbased["kind"] == "controls" and procbased["value"] == "0xfff9fffe04006172"
    hlt = next(b for b in procbased["bits"] if b["qemu"] == "vmx-hlt-exit")
    assert (hlt["setting"], hlt["allowed0"], hlt["allowed1"]) == ("optional", 0, 1)
    assert procbased["default1"] == "0x4006172" and procbased["remainder_must_be_1"] == "0x0"
    assert max(_ints(doc)) < SAFE_INT


@pytest.mark.parametrize("name", ["mds-no", "rdctl-no", "pschange-mc-no", "skip-l1dfl-vmentry"])
def test_libvirt_names_as_filter(name: str) -> None:
    r = run("msr", name, "--json", "--from", FIX)
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [d["name"] for d in doc["feature_msrs"]] == ["MSR_IA32_ARCH_CAPABILITIES"]
    bits = doc["feature_msrs"][0]["bits"]
    assert [b["libvirt"] for b in bits] == [name] and bits[0]["set"] is True


def test_filter_matching_nothing_is_a_usage_error() -> None:
    r = run("msr", "no-such-msr-bit", "--from", FIX)
    assert r.exit_code == 2
    lines = r.stderr.splitlines()
    assert lines[0] == "kvmprobe: error: no MSR or MSR bit matches 'no-such-msr-bit'"
    assert lines[1].startswith("hint: ") and len(lines) == 2
    assert r.stdout == ""


def test_filter_known_but_not_reported_warns() -> None:
    r = run("msr", "vmx-ept", "--from", FIX, "--no-color")
    assert r.exit_code == 0
    assert "MSR_IA32_VMX_PROCBASED_CTLS2, which KVM does not report here" in r.stderr
    assert "not reported by KVM here: IA32_VMX_PROCBASED_CTLS2 (0x48b)" in r.stdout


def test_msr_text_no_color() -> None:
    r = run("msr", "--from", FIX, "--no-color")
    assert r.exit_code == 0
    assert "\x1b[" not in r.stdout
    assert "IA32_ARCH_CAPABILITIES = 0x400000000c000069" in r.stdout
    assert "unknown whether a vCPU takes this value: no vCPU verification" in r.stdout
    assert run("msr", "--from", FIX, env={"NO_COLOR": "1"}).stdout == r.stdout


def test_msr_counts_only_what_a_vcpu_takes(tmp_path) -> None:
    """The guest's speculation picture is the advertised bits a vCPU takes: all refused (the
    zen4 recording), all taken, or some refused (synthetic verifications of the same MSR)."""
    from dataclasses import replace

    from kvmprobe.snapshot import SetAttempt, load

    snap, _ = load(ZEN4)
    r = run("msr", "--json", "--from", ZEN4)
    doc = json.loads(r.stdout)
    caps = {d["name"]: d for d in doc["feature_msrs"]}["MSR_IA32_ARCH_CAPABILITIES"]
    assert caps["vcpu"]["accepted"] is False
    assert {b["name"] for b in caps["vcpu"]["refused_bits"]} >= {"MDS_NO", "RDCL_NO"}
    assert doc["mitigations"].startswith("a guest is told of no immunity: KVM advertises")
    value = snap.feature_msrs[0x10A]
    for refused, start in (((), "a guest may skip mitigations for: Meltdown/L1TF"),
                           ((5,), "a guest may skip mitigations for: Meltdown/L1TF")):  # fmt: skip
        kept = tuple(a for a in snap.verification or () if a.target != 0x10A)
        tried = SetAttempt("KVM_SET_MSRS", "split", 0x10A, value, not refused, None, refused)
        path = tmp_path / f"v{len(refused)}.json"
        path.write_text(replace(snap, verification=(*kept, tried)).dumps())
        doc = json.loads(run("msr", "--json", "--from", str(path)).stdout)
        assert doc["mitigations"].startswith(start), doc["mitigations"]
        assert ("a vCPU refuses MDS_NO" in doc["mitigations"]) is bool(refused)
        assert "MDS" not in doc["mitigations"].split("(")[0] or not refused


def test_hyperv_not_built_on_the_recorded_host() -> None:
    r = run("hyperv", "--from", FIX, "--no-color")
    assert r.exit_code == 0
    assert "Hyper-V emulation: not in this KVM" in r.stdout
    assert "built without Hyper-V" in r.stdout and "KVM_CAP_SYS_HYPERV_CPUID (191)" in r.stdout
    doc = json.loads(run("hyperv", "--json", "--from", FIX).stdout)
    assert doc["schema"] == "kvmprobe.hyperv/1"
    assert doc["availability"] == "not-built" and doc["passthrough"] == []
    assert doc["capabilities"]["KVM_CAP_HYPERV"] == 0 and doc["leaves"] == []
    assert {p["supported"] for p in doc["properties"]} == {False}


def test_hyperv_available(hv_file: str) -> None:
    doc = json.loads(run("hyperv", "--json", "--from", hv_file).stdout)
    assert doc["availability"] == "available" and doc["vendor"] == "Linux KVM Hv"
    props = {p["name"]: p for p in doc["properties"]}
    assert props["hv-synic"]["requirements"][0]["needs"] == "lapic"
    assert props["hv-syndbg"]["supported"] is True and props["hv-syndbg"]["passthrough"] is False
    assert "hv-syndbg" not in doc["passthrough"] and "hv-synic" in doc["passthrough"]
    assert doc["leaves"][3]["registers"]["eax"]["remainder"] == "0x0"
    text = run("hyperv", "--from", hv_file, "--no-color").stdout
    assert "hv-passthrough would turn on: hv-relaxed" in text


def test_bad_snapshot_file_fails_cleanly(tmp_path: Path) -> None:
    p = tmp_path / "bad.json"
    p.write_text("{")
    for cmd in ("msr", "hyperv"):
        r = run(cmd, "--from", str(p))
        assert r.exit_code != 0 and r.stderr.startswith("kvmprobe: error:")
        assert "Traceback" not in r.stderr


def _check_80(out: str) -> None:
    lines = out.splitlines()
    assert lines
    assert max(len(line) for line in lines) <= 80
    assert not any(line != line.rstrip() for line in lines), "trailing blanks"
    assert "…" not in out, "text was cut"


@pytest.mark.parametrize("cmd", ["msr", "hyperv"])
def test_80_columns_without_cuts(cmd: str, intel_file: str, hv_file: str) -> None:
    for source in (FIX, intel_file, hv_file):
        r = run(cmd, "--from", source, "--no-color", env={"COLUMNS": "80"})
        assert r.exit_code == 0
        _check_80(r.stdout)
    # names are never split across lines, however narrow the meaning column gets
    from kvmprobe.tables.hyperv_data import HV_BITS

    r = run("msr", "--from", intel_file, "--no-color", env={"COLUMNS": "80"})
    words = set(r.stdout.replace(",", " ").split())
    doc = json.loads(run("msr", "--json", "--from", intel_file).stdout)
    shown = {
        n
        for d in doc["feature_msrs"]
        for b in d["bits"]
        for n in (b["name"], b["qemu"], b["libvirt"], b["cpuinfo"])
        if n
    }
    assert len(shown) > 200 and shown - words == set()
    r = run("hyperv", "--from", hv_file, "--no-color", env={"COLUMNS": "80"})
    words = set(r.stdout.split())
    assert {row[3] for row in HV_BITS} - words == set()


def test_msr_json_never_imports_rich() -> None:
    code = (
        "import sys; from kvmprobe.cli import main\n"
        "try:\n"
        f"    main(['msr', '--json', '--from', {FIX!r}], standalone_mode=False)\n"
        f"    main(['hyperv', '--json', '--from', {FIX!r}], standalone_mode=False)\n"
        "finally:\n"
        "    print('RICH' if any(m == 'rich' or m.startswith('rich.') for m in sys.modules)"
        " else 'NORICH', file=sys.stderr)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip().endswith("NORICH")


@pytest.mark.live
def test_live_device(live_device: str) -> None:
    r = run("msr", "--json", "--device", live_device)
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["source"]["kind"] == "live"
    assert doc["feature_msr_list"] is not None and max(_ints(doc)) < SAFE_INT
    r = run("hyperv", "--device", live_device, "--no-color")
    assert r.exit_code == 0 and "Hyper-V emulation:" in r.stdout
